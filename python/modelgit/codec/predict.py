"""Predictions of a chunk from its base chunks (the decoded chunks of relatives).

A delta codec stores the chunk as a residual against a prediction. Predictors:

* ``IDENT`` (0): the single base, same dtype (a fine-tune, a new version).
* ``CAST`` (1): the single base cast to the chunk's dtype with torch's rounding
  (a float32 model cast to bfloat16 predicts its cast exactly).
* ``MEAN`` (2): the float32 mean of the bases (summed in order, divided by their
  count), cast to the chunk's dtype (a merge by averaging).
* ``ZERO`` (3): no base; all zeros (a lossy root model quantizes its own values).
* ``LINEAR`` (4), ``LINEAR_SEQ`` (5), ``LINEAR_ANCHORED`` (6): a linear combination of
  the bases with one stored coefficient each (a weighted average, task arithmetic):
  computed exactly in float64 and rounded once; as torch computes
  ``c_1*b_1 + c_2*b_2 + ...``; as torch computes ``b_1 + c_2*(b_2 - b_1) + ...``
  (``_core.linear_cast``).

Casts and means between float64, float32, float16 and bfloat16 run in the native core
(``_core.cast``, ``_core.mean_cast``: the rules of docs/FORMAT.md 3.3, which are
torch's); other float dtypes (float8) go through torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._native import _core
from ..dtypes import DType

if TYPE_CHECKING:
    import torch

__all__ = [
    "IDENT",
    "CAST",
    "MEAN",
    "ZERO",
    "LINEAR",
    "LINEAR_SEQ",
    "LINEAR_ANCHORED",
    "LINEAR_PREDICTORS",
    "PREDICTOR_NAMES",
    "predict",
]

IDENT, CAST, MEAN, ZERO, LINEAR, LINEAR_SEQ, LINEAR_ANCHORED = 0, 1, 2, 3, 4, 5, 6
# predictor -> _core.linear_cast mode; these predictors carry one coefficient per base
LINEAR_PREDICTORS = {
    LINEAR: _core.LINEAR_EXACT,
    LINEAR_SEQ: _core.LINEAR_SEQ,
    LINEAR_ANCHORED: _core.LINEAR_ANCHORED,
}
PREDICTOR_NAMES = {
    IDENT: "ident",
    CAST: "cast",
    MEAN: "mean",
    ZERO: "zero",
    LINEAR: "linear",
    LINEAR_SEQ: "linear-seq",
    LINEAR_ANCHORED: "linear-anchored",
}


def _as(buf: memoryview | bytes, dtype: DType) -> torch.Tensor:
    import torch

    return torch.frombuffer(bytearray(buf), dtype=torch.uint8).view(dtype.torch)


def _bytes(t: torch.Tensor, out: memoryview | None) -> memoryview:
    import torch

    got = memoryview(t.contiguous().view(torch.uint8).numpy())
    if out is None:
        return got
    out[:] = got
    return out


NATIVE = ("float64", "float32", "float16", "bfloat16")


def predict(
    kind: int,
    bases: list[memoryview],
    base_dtype: DType,
    dtype: DType,
    n: int,
    out: memoryview | None = None,
    coeffs: Sequence[float] = (),
) -> memoryview:
    """The predicted bytes (n elements of ``dtype``), written into ``out`` when given (a
    writable buffer of exactly those bytes, overlapping no base); ``coeffs``: one per
    base for the linear predictors. ValueError if inconsistent."""
    if out is not None and len(out) != n * dtype.size:
        raise ValueError("out does not hold the chunk's bytes")
    if kind == ZERO:
        if bases:
            raise ValueError("the zero predictor takes no base")
        if out is None:
            return memoryview(bytes(n * dtype.size))
        out[:] = bytes(len(out))
        return out
    if not bases or any(len(b) != n * base_dtype.size for b in bases):
        raise ValueError("base chunks do not match the chunk's element count")
    if kind == IDENT:
        if len(bases) != 1 or base_dtype != dtype:
            raise ValueError("the identity predictor takes one base of the same dtype")
        if out is None:
            return bases[0]
        out[:] = bases[0]
        return out
    if n == 0:
        return memoryview(b"") if out is None else out
    native = base_dtype.name in NATIVE and dtype.name in NATIVE
    if kind == CAST:
        if len(bases) != 1:
            raise ValueError("the cast predictor takes one base")
        if native:
            return memoryview(_core.cast(bases[0], base_dtype.name, dtype.name, out=out, threads=1))
        return _bytes(_as(bases[0], base_dtype).to(dtype.torch), out)
    if kind == MEAN:
        if native:
            return memoryview(
                _core.mean_cast(bases, base_dtype.name, dtype.name, out=out, threads=1)
            )
        import torch  # float8: torch's rounding (the other dtypes never come here)

        acc = _as(bases[0], base_dtype).to(torch.float32)
        for b in bases[1:]:
            acc = acc + _as(b, base_dtype).to(torch.float32)
        return _bytes((acc / len(bases)).to(dtype.torch), out)
    if kind in LINEAR_PREDICTORS:
        mode = LINEAR_PREDICTORS[kind]
        if len(coeffs) != len(bases):
            raise ValueError("a linear predictor takes one coefficient per base")
        if not native or (mode != _core.LINEAR_EXACT and base_dtype != dtype):
            raise ValueError(f"no linear predictor from {base_dtype.name} to {dtype.name}")
        return memoryview(
            _core.linear_cast(
                bases, list(coeffs), base_dtype.name, dtype.name, mode, out=out, threads=1
            )
        )
    raise ValueError(f"unknown predictor {kind}")
