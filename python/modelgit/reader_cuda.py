"""The GPU read path: chunk transforms run on the GPU, straight into CUDA tensors.

For every chunk, the CPU reads the record, verifies its checksum and undoes the entropy
stage (zstd) on the thread pool; the byte planes cross the bus and the GPU undoes the
delta + byte-plane transform into the destination tensor, with the decoded delta bases
already resident on the GPU (decoded once, kept while the load runs). Codecs without a
GPU kernel (predicted, lossy, raw, zstd) decode on the CPU and are copied up.

The record checksum of every chunk is verified; the decoded bytes are not hashed again
on this path (the transforms are bit-identical to the CPU ones, which the tests and
``bench/gpu_check.py`` check).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import torch

from . import codec, cuda
from .dtypes import by_name
from .errors import CorruptObject
from .reader import verify_row
from .store import ChunkRow, ChunkStore
from .writer import TensorRow

__all__ = ["read_tensors_cuda"]

_GPU_DELTAS = (cuda.DELTA_NONE, cuda.DELTA_XOR, cuda.DELTA_SUB, cuda.DELTA_OSUB)


class _GpuDecoder:
    def __init__(self, store: ChunkStore, device: torch.device) -> None:
        self.store = store
        self.device = device
        self.resident: dict[bytes, torch.Tensor] = {}  # decoded chunks on the GPU

    def host_stage(self, row: ChunkRow) -> object:
        """CPU part: read + verify the record, undo zstd. Thread-safe."""
        where = f"chunk {row.id.hex()}"
        rec = self.store.reader.read(row.pack, row.offset, row.length)
        if rec.chunk_id != row.id or rec.raw_length != row.raw_length or rec.codec != row.codec:
            raise CorruptObject(f"{where}: record header does not match the catalog")
        if rec.codec == codec.PLANES:
            parts = codec.planes_parts(rec.params, memoryview(rec.payload), row.raw_length, where)
            if parts.delta in _GPU_DELTAS:
                return parts
        buf = bytearray(row.raw_length)  # no GPU kernel: decode fully on the CPU
        self.store.get_into(row, memoryview(buf))
        return buf

    def device_stage(self, row: ChunkRow, staged: object, out: torch.Tensor) -> None:
        """GPU part: upload and transform into ``out`` (a uint8 CUDA view)."""
        if isinstance(staged, codec.PlanesParts):
            base = self.base(staged.base_id) if staged.base_id is not None else None
            planes = cuda.upload(staged.planes, self.device)
            cuda.planes_decode(
                planes,
                staged.elem_size,
                base=base,
                delta=staged.delta,
                rotate=staged.rotate,
                out=out,
            )
        else:
            out.copy_(torch.frombuffer(staged, dtype=torch.uint8), non_blocking=False)

    def base(self, cid: bytes) -> torch.Tensor:
        t = self.resident.get(cid)
        if t is None:
            row = self.store.row(cid)
            if row is None:
                raise CorruptObject(f"chunk {cid.hex()} is referenced but not in the store")
            t = torch.empty(row.raw_length, dtype=torch.uint8, device=self.device)
            self.device_stage(row, self.host_stage(row), t)
            self.resident[cid] = t
        return t


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
    dec = _GpuDecoder(store, device)
    out: dict[str, torch.Tensor] = {}
    buffers: dict[str, torch.Tensor] = {}
    work = []
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
            work.append((crow, buf[s : min(r.nbytes, s + r.chunk_bytes)]))
    futures = [pool.submit(dec.host_stage, crow) for crow, _ in work]
    for (crow, view), fut in zip(work, futures, strict=True):
        dec.device_stage(crow, fut.result(), view)
    for r in rows:
        if r.tie is not None:
            out[r.name] = out[r.tie]
            continue
        dt = by_name(r.dtype)
        if r.nbytes == 0:
            out[r.name] = torch.empty(r.shape, dtype=dt.torch, device=device)
        else:
            out[r.name] = buffers[r.name].view(dt.torch).reshape(r.shape)
    torch.cuda.synchronize(device)
    return out
