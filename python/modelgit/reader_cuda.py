"""The GPU read path: chunk transforms run on the GPU, straight into CUDA tensors.

For every chunk (and every delta base it needs, transitively), the CPU threads read the
record, verify its checksum and undo the entropy stage (zstd, rANS) into pinned memory; the
byte planes cross the bus asynchronously and the GPU undoes the delta + byte-plane
transform into the destination tensor, bases first (they stay resident on the GPU while
the load runs). Codecs without a GPU kernel (predicted, lossy, raw, zstd) decode fully on
the CPU and are copied up.

The record checksum of every chunk is verified; the decoded bytes are not hashed again
on this path (the transforms are bit-identical to the CPU ones, which the tests and
``bench/gpu_check.py`` check).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from . import codec, cuda
from .dtypes import by_name
from .errors import CorruptObject
from .reader import verify_row
from .store import ChunkRow, ChunkStore
from .writer import TensorRow

__all__ = ["read_tensors_cuda"]

_GPU_DELTAS = (cuda.DELTA_NONE, cuda.DELTA_XOR, cuda.DELTA_SUB, cuda.DELTA_OSUB)


def _host_stage(store: ChunkStore, row: ChunkRow) -> tuple[object, torch.Tensor]:
    """CPU part (thread-safe): read + verify the record, undo the entropy stage into pinned
    memory.

    Returns (PlanesParts or None, pinned bytes): planes to transform on the GPU, or the
    fully decoded chunk when the codec has no GPU kernel."""
    where = f"chunk {row.id.hex()}"
    pinned = torch.empty(row.raw_length, dtype=torch.uint8, pin_memory=True)
    mv = memoryview(pinned.numpy())
    rec = store.reader.read(row.pack, row.offset, row.length)
    if rec.chunk_id != row.id or rec.raw_length != row.raw_length or rec.codec != row.codec:
        raise CorruptObject(f"{where}: record header does not match the catalog")
    if rec.codec == codec.PLANES:
        parts = codec.planes_parts(rec.params, memoryview(rec.payload), row.raw_length, where, mv)
        if parts.delta in _GPU_DELTAS:
            return parts, pinned
    store.get_into(row, mv)
    return None, pinned


def read_tensors_cuda(
    store: ChunkStore,
    rows: Iterable[TensorRow],
    pool: ThreadPoolExecutor,
    device: torch.device,
) -> dict[str, torch.Tensor]:
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
    futures: list[Future] = [pool.submit(_host_stage, store, crow) for crow, _ in work]
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
