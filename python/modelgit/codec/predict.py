"""Predictions of a chunk from its base chunks (the decoded chunks of relatives).

A delta codec stores the chunk as a residual against a prediction. Predictors:

* ``IDENT`` (0): the single base, same dtype (a fine-tune, a new version).
* ``CAST`` (1): the single base cast to the chunk's dtype with torch's rounding
  (a float32 model cast to bfloat16 predicts its cast exactly).
* ``MEAN`` (2): the float32 mean of the bases (summed in order, divided by their
  count), cast to the chunk's dtype (a merge by averaging).
* ``ZERO`` (3): no base; all zeros (a lossy root model quantizes its own values).
"""

from __future__ import annotations

import torch

from ..dtypes import DType

__all__ = ["IDENT", "CAST", "MEAN", "ZERO", "PREDICTOR_NAMES", "predict"]

IDENT, CAST, MEAN, ZERO = 0, 1, 2, 3
PREDICTOR_NAMES = {IDENT: "ident", CAST: "cast", MEAN: "mean", ZERO: "zero"}


def _as(buf: memoryview | bytes, dtype: DType) -> torch.Tensor:
    return torch.frombuffer(bytearray(buf), dtype=torch.uint8).view(dtype.torch)


def _bytes(t: torch.Tensor) -> memoryview:
    return memoryview(t.contiguous().view(torch.uint8).numpy())


def predict(
    kind: int, bases: list[memoryview], base_dtype: DType, dtype: DType, n: int
) -> memoryview:
    """The predicted bytes (n elements of ``dtype``). ValueError if inconsistent."""
    if kind == ZERO:
        if bases:
            raise ValueError("the zero predictor takes no base")
        return memoryview(bytes(n * dtype.size))
    if not bases or any(len(b) != n * base_dtype.size for b in bases):
        raise ValueError("base chunks do not match the chunk's element count")
    if kind == IDENT:
        if len(bases) != 1 or base_dtype != dtype:
            raise ValueError("the identity predictor takes one base of the same dtype")
        return bases[0]
    if n == 0:
        return memoryview(b"")
    if kind == CAST:
        if len(bases) != 1:
            raise ValueError("the cast predictor takes one base")
        return _bytes(_as(bases[0], base_dtype).to(dtype.torch))
    if kind == MEAN:
        acc = _as(bases[0], base_dtype).to(torch.float32)
        for b in bases[1:]:
            acc = acc + _as(b, base_dtype).to(torch.float32)
        return _bytes((acc / len(bases)).to(dtype.torch))
    raise ValueError(f"unknown predictor {kind}")
