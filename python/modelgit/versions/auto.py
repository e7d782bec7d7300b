"""``tolerance=Auto(...)``: the most compact lossy setting that keeps a test metric.

Each candidate is applied in memory exactly as the writer will apply it (same chunks,
same predictions from the parent's decoded tensors, same kernels), the test function
runs on the result, and the first candidate (most aggressive first) whose metric moves
by no more than ``max_drop`` in the bad direction wins; ``higher_is_better=False`` is
for loss-like metrics. If none qualifies, the version is stored losslessly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import codec
from ..callables import resolve_callable
from ..codec import lossy
from ..dtypes import by_torch
from ..errors import UnsupportedInput
from ..formats.sources import tensor_bytes
from ..tolerance import Auto, ErrorBound, LowBit

if TYPE_CHECKING:
    import torch

__all__ = ["AutoTrial", "choose_tolerance", "apply_tolerance"]


@dataclass(frozen=True)
class AutoTrial:
    tolerance: ErrorBound | LowBit | None
    metric: float
    drop: float
    accepted: bool


def _metric(fn, sd: dict[str, torch.Tensor]) -> float:
    value = fn(sd)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value)


def apply_tolerance(
    sd: dict[str, torch.Tensor],
    parent: dict[str, torch.Tensor] | None,
    tol: ErrorBound | LowBit,
    chunk_elems: int,
) -> dict[str, torch.Tensor]:
    """What ``load`` would return after storing ``sd`` with ``tol`` against ``parent``."""
    import torch

    out: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        dt = by_torch(t.dtype)
        if dt.name not in lossy.KERNEL_DTYPES or t.numel() == 0:
            out[name] = t
            continue
        data = tensor_bytes(t)
        p = parent.get(name) if parent else None
        predictor, pdt, pdata = codec.ZERO, dt, None
        if p is not None and p.shape == t.shape and p.is_floating_point():
            pdt = by_torch(p.dtype)
            predictor = codec.IDENT if pdt == dt else codec.CAST
            pdata = tensor_bytes(p)
        eps = None
        if isinstance(tol, ErrorBound):
            finite = t.double()[torch.isfinite(t.double())]
            eps = tol.eps_for(float(finite.abs().max()) if finite.numel() else 0.0)
            if eps is None:
                out[name] = t
                continue
        step = chunk_elems * dt.size
        pieces = []
        for s in range(0, len(data), step):
            chunk = data[s : s + step]
            bases = (
                []
                if pdata is None
                else [pdata[s // dt.size * pdt.size :][: len(chunk) // dt.size * pdt.size]]
            )
            if isinstance(tol, ErrorBound):
                _, payload, dec = lossy.encode_qdelta(chunk, dt, eps, predictor, bases, [], pdt)
            else:
                _, payload, dec = lossy.encode_lowbit(
                    chunk, dt, tol.bits, tol.group, predictor, bases, [], pdt
                )
            pieces.append(dec if len(payload) < len(chunk) else bytes(chunk))
        buf = bytearray(b"".join(pieces))
        out[name] = torch.frombuffer(buf, dtype=torch.uint8).view(t.dtype).reshape(t.shape)
    return out


def choose_tolerance(
    auto: Auto,
    sd: dict[str, torch.Tensor],
    parent: dict[str, torch.Tensor] | None,
    chunk_elems: int,
) -> tuple[ErrorBound | LowBit | None, list[AutoTrial]]:
    """The first candidate of ``auto`` that keeps the test metric (and passes its guard),
    and every trial."""
    if auto.guard is not None and not callable(auto.guard):
        raise UnsupportedInput(
            "Auto(guard=True) is resolved by Repository.add/commit (the tests registered "
            "on the model); pass a callable(state_dict) -> bool here"
        )
    fn = resolve_callable(auto.test) if auto.test is not None else None  # type: ignore[arg-type]
    reference = _metric(fn, sd) if fn is not None else 0.0
    trials: list[AutoTrial] = []
    for cand in auto.candidates:
        lossy_sd = apply_tolerance(sd, parent, cand, chunk_elems)
        m = _metric(fn, lossy_sd) if fn is not None else 0.0
        drop = reference - m if auto.higher_is_better else m - reference
        ok = drop <= auto.allowed_drop(reference)
        if ok and auto.guard is not None:
            ok = bool(auto.guard(lossy_sd))  # type: ignore[operator]
        trials.append(AutoTrial(cand, m, drop, ok))
        if ok:
            return cand, trials
    return None, trials
