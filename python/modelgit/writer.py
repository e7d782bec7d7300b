"""The write path: a model's tensors become chunks in the store and tensor rows.

Each tensor is cut into chunks of ``chunk_bytes`` (a multiple of every element size) at
fixed offsets, so chunk i of a fine-tuned tensor lines up with chunk i of its parent.
For every chunk: known id -> dedup; else a lossless delta against the aligned chunk of
the base tensor (same name, dtype and length) when there is one and its chain is not
too deep; else standalone coding. Work runs on a thread pool (the native core and
zstandard release the GIL), with a bounded number of chunks in flight.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import xxhash

from . import codec
from ._native import _core
from .dtypes import DType
from .sources import ModelSource, TensorSource
from .store import ChunkStore, chunk_id

__all__ = ["DEFAULT_CHUNK_BYTES", "TensorRow", "WriteStats", "write_tensors", "tensor_content_id"]

DEFAULT_CHUNK_BYTES = 1 << 20
_DELTA_RETRY_RATIO = 0.9  # a delta worse than this share of raw is checked against standalone


@dataclass(frozen=True)
class TensorRow:
    name: str
    position: int
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    content: bytes
    chunk_bytes: int
    chunks: bytes  # concatenated 16-byte ids
    tie: str | None = None

    @property
    def chunk_ids(self) -> list[bytes]:
        return [self.chunks[i : i + 16] for i in range(0, len(self.chunks), 16)]

    @classmethod
    def from_db(cls, r: tuple) -> TensorRow:
        name, position, dtype, shape, nbytes, content, chunk_bytes, chunks, tie = r
        return cls(
            name,
            position,
            dtype,
            tuple(json.loads(shape)),
            nbytes,
            content,
            chunk_bytes,
            chunks,
            tie,
        )


TENSOR_COLUMNS = "name, position, dtype, shape, nbytes, content, chunk_bytes, chunks, tie"


@dataclass
class WriteStats:
    chunks: int = 0
    dedup: int = 0
    delta: int = 0
    standalone: int = 0
    logical_bytes: int = 0
    new_bytes: int = 0


def tensor_content_id(dtype: str, shape: tuple[int, ...], nbytes: int, chunks: bytes) -> bytes:
    h = xxhash.xxh3_128()
    h.update(f"{dtype}|{list(shape)}|{nbytes}|".encode())
    h.update(chunks)
    return h.digest()


def _chunk_spans(nbytes: int, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    for start in range(0, nbytes, chunk_bytes):
        yield start, min(nbytes, start + chunk_bytes)


def encode_chunk(
    store: ChunkStore,
    data: memoryview,
    dtype: DType,
    base_id: bytes | None,
    max_depth: int,
) -> tuple[bytes, str]:
    """Store one chunk losslessly; return (chunk id, how: dedup/delta/standalone)."""
    cid = chunk_id(data)
    if store.row(cid) is not None:
        return cid, "dedup"
    enc = None
    if base_id is not None:
        base_row = store.row(base_id)
        if base_row is not None and base_row.depth < max_depth and base_row.raw_length == len(data):
            base = memoryview(store.get(base_id))
            enc = codec.encode_planes(
                data, dtype.size, dtype.is_float, base=base, base_id=base_id, delta=_core.DELTA_XOR
            )
            if len(enc.payload) > _DELTA_RETRY_RATIO * len(data):
                alt = codec.encode_standalone(data, dtype.size, dtype.is_float)
                if len(alt.payload) < len(enc.payload):
                    enc = alt
    if enc is None:
        enc = codec.encode_standalone(data, dtype.size, dtype.is_float)
    store.put(data, enc, cid)
    return cid, "delta" if enc.base is not None else "standalone"


def write_tensors(
    store: ChunkStore,
    source: ModelSource,
    base: dict[str, TensorRow],
    pool: ThreadPoolExecutor,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_depth: int = 8,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[TensorRow], WriteStats]:
    """Store every tensor of ``source``; ``base`` maps names to the base version's rows."""
    stats = WriteStats()
    rows: list[TensorRow] = []
    window = max(4, 4 * (pool._max_workers or 1))  # chunks in flight
    inflight: deque[Future] = deque()

    def drain(limit: int) -> None:
        while len(inflight) > limit:
            cid, how, n = inflight.popleft().result()
            stats.chunks += 1
            setattr(stats, how, getattr(stats, how) + 1)
            if progress is not None:
                progress(n)

    def job(data: memoryview, dtype: DType, base_id: bytes | None) -> tuple[bytes, str, int]:
        cid, how = encode_chunk(store, data, dtype, base_id, max_depth)
        return cid, how, len(data)

    planned: list[tuple[TensorSource, int, int, list[Future]]] = []
    for position, t in enumerate(source.tensors):
        if t.tie is not None:
            planned.append((t, position, 0, []))
            continue
        stats.logical_bytes += t.nbytes
        view = t.view()
        if len(view) != t.nbytes:
            raise ValueError(f"tensor {t.name!r}: {len(view)} bytes, expected {t.nbytes}")
        step = max(t.dtype.size, chunk_bytes - chunk_bytes % 8)
        b = base.get(t.name)
        base_ids = None
        if (
            b is not None
            and b.dtype == t.dtype.name
            and b.nbytes == t.nbytes
            and b.chunk_bytes == step
        ):
            base_ids = b.chunk_ids
        futures = []
        for i, (s, e) in enumerate(_chunk_spans(t.nbytes, step)):
            fut = pool.submit(job, view[s:e], t.dtype, base_ids[i] if base_ids else None)
            futures.append(fut)
            inflight.append(fut)
            drain(window)
        planned.append((t, position, step, futures))
    drain(0)
    for t, position, step, futures in planned:
        if t.tie is not None:
            rows.append(_tie_row(t, position, rows))
            continue
        ids = b"".join(f.result()[0] for f in futures)
        content = tensor_content_id(t.dtype.name, t.shape, t.nbytes, ids)
        rows.append(
            TensorRow(t.name, position, t.dtype.name, t.shape, t.nbytes, content, step, ids)
        )
    stats.new_bytes = sum(r.length for r in store.pending_rows())
    return rows, stats


def _tie_row(t: TensorSource, position: int, rows: list[TensorRow]) -> TensorRow:
    target = next(r for r in rows if r.name == t.tie)
    return TensorRow(
        t.name,
        position,
        target.dtype,
        target.shape,
        target.nbytes,
        target.content,
        target.chunk_bytes,
        target.chunks,
        t.tie,
    )
