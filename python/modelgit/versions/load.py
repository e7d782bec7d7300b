"""Reading a version back: its tensors as a new state_dict, on the CPU or the GPU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .. import cuda
from ..progress import Counter, ProgressFn
from ..storage.reader import read_tensors
from ..storage.reader_cuda import gpu_worthwhile, read_tensors_cuda

if TYPE_CHECKING:
    from .engine import VersionStore

__all__ = ["load_state_dict"]


def load_state_dict(
    engine: VersionStore,
    vid: int,
    device: str | torch.device = "cpu",
    keys: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors of version ``vid`` (those named ``keys``, when given), every chunk
    verified. With ``device="cuda"``, the CUDA module built and most chunks of a codec
    that has a GPU kernel, the transforms run on the GPU (``storage.reader_cuda``);
    otherwise tensors are decoded on the CPU and moved."""
    rows = engine.tensor_rows(vid, keys)
    dev = torch.device(device)
    if dev.type == "cuda" and cuda.is_available() and gpu_worthwhile(engine.store, rows):
        sd = read_tensors_cuda(engine.store, rows, engine.pool, dev)
    else:
        total = sum(r.nbytes for r in rows if r.tie is None)
        sd = read_tensors(engine.store, rows, engine.pool, progress=Counter(progress, total))
        if dev.type != "cpu":
            moved: dict[int, torch.Tensor] = {}
            sd = {k: moved.setdefault(id(t), t.to(dev)) for k, t in sd.items()}
    if keys is not None:
        sd = {k: sd[k] for k in keys}
    return sd
