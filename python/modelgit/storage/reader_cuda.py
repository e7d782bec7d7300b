"""The GPU read path: chunk transforms run on the GPU, straight into CUDA tensors.

For every chunk (and every delta base it needs, transitively), the CPU threads read the
record through the chunk store (which verifies its checksum and follows a chunk that gc
moved meanwhile, as on the CPU path) and undo the entropy stage (zstd, rANS) into pinned
memory; the byte planes cross the bus asynchronously and the GPU undoes the delta + byte-plane
transform into the destination tensor, bases first (they stay resident on the GPU while
the load runs). Codecs without a GPU kernel (predicted, lossy, raw, zstd) decode fully on
the CPU and are copied up.

The record checksum of every chunk is verified; the decoded bytes are not hashed again
on this path (the transforms are bit-identical to the CPU ones, which the tests and
``bench/gpu_check.py`` check).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from .. import codec, cuda
from ..catalog.records import ChunkRow, TensorRow
from ..dtypes import by_name
from ..errors import CorruptObject
from ..pool import WorkerPool
from .reader import verify_row
from .store import ChunkStore

if TYPE_CHECKING:
    import torch

__all__ = ["read_tensors_cuda", "gpu_worthwhile", "host_stage"]

_GPU_DELTAS = (cuda.DELTA_NONE, cuda.DELTA_XOR, cuda.DELTA_SUB, cuda.DELTA_OSUB)


def gpu_worthwhile(store: ChunkStore, rows: Sequence[TensorRow]) -> bool:
    """Whether most chunks of ``rows`` use a codec whose transform runs on the GPU
    (other codecs decode on the CPU anyway: then a CPU decode and one copy is faster)."""
    ids = [c for r in rows if r.tie is None for c in r.chunk_ids]
    found = store.rows(ids)
    on_gpu = sum(1 for c in ids if (row := found.get(c)) and codec.has_gpu_transform(row.codec))
    return 2 * on_gpu >= len(ids)


def host_stage(store: ChunkStore, row: ChunkRow, out: memoryview) -> object:
    """CPU part (thread-safe): read and verify the record through the chunk store (which
    follows a chunk that gc moved meanwhile), undo the entropy stage into ``out``
    (``row.raw_length`` bytes; pinned memory on this path).

    Returns the PlanesParts to transform on the GPU, or None when ``out`` holds the
    fully decoded chunk (the codec has no GPU kernel)."""
    where = f"chunk {row.id.hex()}"
    row, rec = store.read_record(row)
    if codec.has_gpu_transform(rec.codec):
        parts = codec.planes_parts(rec.params, memoryview(rec.payload), row.raw_length, where, out)
        if parts.delta in _GPU_DELTAS:
            return parts
    store.get_into(row, out)
    return None


def _pinned_stage(store: ChunkStore, row: ChunkRow) -> tuple[object, torch.Tensor]:
    import torch

    pinned = torch.empty(row.raw_length, dtype=torch.uint8, pin_memory=True)
    return host_stage(store, row, memoryview(pinned.numpy())), pinned


def read_tensors_cuda(
    store: ChunkStore,
    rows: Iterable[TensorRow],
    pool: WorkerPool,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    import torch

    rows = sorted(rows, key=lambda r: r.position)
    for r in rows:
        verify_row(r)
    chunk_rows = store.rows([c for r in rows if r.tie is None for c in r.chunk_ids])
    buffers: dict[str, torch.Tensor] = {}
    targets: list[tuple[ChunkRow, torch.Tensor]] = []
    for r in rows:
        if r.tie is not None:
            continue
        buf = torch.empty(r.nbytes, dtype=torch.uint8, device=device)
        buffers[r.name] = buf
        for i, cid in enumerate(r.chunk_ids):
            crow = chunk_rows.get(cid)
            if crow is None:
                raise CorruptObject(f"tensor {r.name!r}: chunk {cid.hex()} is missing")
            s = i * r.chunk_bytes
            targets.append((crow, buf[s : min(r.nbytes, s + r.chunk_bytes)]))
    # the delta bases the targets need, transitively; decoded on the GPU into scratch
    bases: dict[bytes, ChunkRow] = {}
    stack = [b for crow, _ in targets for b in crow.bases]
    while stack:
        cid = stack.pop()
        if cid in bases:
            continue
        brow = store.row(cid)
        if brow is None:
            raise CorruptObject(f"chunk {cid.hex()} is referenced but not in the store")
        bases[cid] = brow
        stack.extend(brow.bases)
    order = sorted(bases.values(), key=lambda b: b.depth)
    resident = {b.id: torch.empty(b.raw_length, dtype=torch.uint8, device=device) for b in order}
    work = [(b, resident[b.id]) for b in order] + targets  # bases before what needs them
    futures: list[Future] = [pool.submit(_pinned_stage, store, crow) for crow, _ in work]
    keep: list[torch.Tensor] = []  # pinned buffers in flight
    for (crow, out), fut in zip(work, futures, strict=True):
        parts, pinned = fut.result()
        keep.append(pinned)
        if parts is None:
            out.copy_(pinned, non_blocking=True)
            continue
        planes = torch.empty(crow.raw_length, dtype=torch.uint8, device=device)
        planes.copy_(pinned, non_blocking=True)
        base = resident.get(parts.base_id) if parts.base_id is not None else None
        if parts.base_id is not None and base is None:
            raise CorruptObject(f"chunk {crow.id.hex()}: delta base is missing")
        cuda.planes_decode(planes, parts.elem_size, base=base, delta=parts.delta,
                           rotate=parts.rotate, out=out)  # fmt: skip
    torch.cuda.synchronize(device)
    out_sd: dict[str, torch.Tensor] = {}
    for r in rows:
        if r.tie is not None:
            out_sd[r.name] = out_sd[r.tie]
            continue
        dt = by_name(r.dtype)
        if r.nbytes == 0:
            out_sd[r.name] = torch.empty(r.shape, dtype=dt.torch, device=device)
        else:
            out_sd[r.name] = buffers[r.name].view(dt.torch).reshape(r.shape)
    return out_sd
