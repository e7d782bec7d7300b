"""The read path: tensor rows back into tensors, decoding chunks in parallel.

Each tensor is allocated once and every chunk decodes straight into its slice;
records are checksum-verified, decoded bytes are checked against their chunk id, and
each tensor's content id is recomputed from its verified chunk ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from .dtypes import by_name
from .errors import CorruptObject
from .store import ChunkStore
from .writer import TensorRow, tensor_content_id

__all__ = ["read_tensors", "verify_row"]


def verify_row(row: TensorRow) -> None:
    if len(row.chunks) % 16:
        raise CorruptObject(f"tensor {row.name!r}: chunk list is damaged")
    expected_chunks = -(-row.nbytes // row.chunk_bytes) if row.nbytes else 0
    if len(row.chunks) // 16 != expected_chunks:
        raise CorruptObject(f"tensor {row.name!r}: wrong number of chunks")
    if tensor_content_id(row.dtype, row.shape, row.nbytes, row.chunks) != row.content:
        raise CorruptObject(f"tensor {row.name!r}: content id does not match its chunks")


def read_tensors(
    store: ChunkStore,
    rows: Iterable[TensorRow],
    pool: ThreadPoolExecutor,
    progress: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Decode the given tensor rows; tied rows come back sharing storage.

    ``progress(n)`` is called with the decoded bytes of each chunk."""
    rows = sorted(rows, key=lambda r: r.position)
    for r in rows:
        verify_row(r)
    chunk_rows = store.rows([c for r in rows if r.tie is None for c in r.chunk_ids])
    out: dict[str, torch.Tensor] = {}
    futures: list[tuple[Future, int]] = []
    buffers: dict[str, torch.Tensor] = {}
    for r in rows:
        if r.tie is not None:
            continue
        buf = torch.empty(r.nbytes, dtype=torch.uint8)
        buffers[r.name] = buf
        if r.nbytes == 0:
            continue
        mv = memoryview(buf.numpy())
        for i, cid in enumerate(r.chunk_ids):
            crow = chunk_rows.get(cid)
            if crow is None:
                raise CorruptObject(f"tensor {r.name!r}: chunk {cid.hex()} is missing")
            s = i * r.chunk_bytes
            e = min(r.nbytes, s + r.chunk_bytes)
            futures.append((pool.submit(store.get_into, crow, mv[s:e]), e - s))
    for f, n in futures:
        f.result()
        if progress is not None:
            progress(n)
    for r in rows:
        if r.tie is not None:
            if r.tie not in out:
                raise CorruptObject(f"tensor {r.name!r} is tied to a missing tensor {r.tie!r}")
            out[r.name] = out[r.tie]
            continue
        dt = by_name(r.dtype)
        buf = buffers[r.name]
        if r.nbytes == 0:
            out[r.name] = torch.empty(r.shape, dtype=dt.torch)
        else:
            out[r.name] = buf.view(dt.torch).reshape(r.shape)
    return out
