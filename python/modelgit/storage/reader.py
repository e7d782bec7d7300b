"""The read path: tensor rows back into tensors, decoding chunks in parallel.

Each tensor is allocated once and every chunk decodes straight into its slice (a delta
chunk with its standalone base in one pass, or its base first, in place:
``ChunkStore.get_into``); records are checksum-verified,
decoded bytes are checked against their chunk id, and each tensor's content id is
recomputed from its verified chunk ids. Before decoding, the rows of every chunk the
load needs, delta bases included, are fetched in a few catalog queries; a base that
several chunks of the load need is decoded once (into the decoded-base cache), and a
chunk that several tensors hold is decoded once and copied.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ..catalog.records import ChunkRow, TensorRow, tensor_content_id
from ..dtypes import by_name
from ..errors import CorruptObject
from ..pool import WorkerPool, settle_jobs
from .store import ChunkStore

if TYPE_CHECKING:
    import torch

__all__ = [
    "read_tensors",
    "decode_rows_into",
    "verify_row",
    "decode_row_into",
    "iter_row_chunks",
    "prepare_bases",
]


def verify_row(row: TensorRow) -> None:
    if len(row.chunks) % 16:
        raise CorruptObject(f"tensor {row.name!r}: chunk list is damaged")
    expected_chunks = -(-row.nbytes // row.chunk_bytes) if row.nbytes else 0
    if len(row.chunks) // 16 != expected_chunks:
        raise CorruptObject(f"tensor {row.name!r}: wrong number of chunks")
    if tensor_content_id(row.dtype, row.shape, row.nbytes, row.chunks) != row.content:
        raise CorruptObject(f"tensor {row.name!r}: content id does not match its chunks")


_BATCH_BYTES = 4 << 20  # decoded bytes per pool task (fewer futures, fewer GIL handoffs)


def _decode_batch(
    store: ChunkStore, work: list[tuple[ChunkRow, memoryview, list[memoryview]]]
) -> int:
    done = 0
    for crow, mv, copies in work:
        store.get_into(crow, mv)
        for other in copies:
            other[:] = mv
        done += len(mv) * (1 + len(copies))
    return done


def prepare_bases(store: ChunkStore, targets: dict[bytes, ChunkRow]) -> None:
    """Fetch the rows of every delta base the ``targets`` need, transitively, in bulk
    (the store decodes them without a catalog query each), and decode once into the
    decoded-base cache each base that two or more chunks of this load need."""
    uses: dict[bytes, int] = {}
    known: dict[bytes, ChunkRow] = dict(targets)
    level = list(targets.values())
    while level:
        wanted = []
        for row in level:
            for b in row.bases:
                uses[b] = uses.get(b, 0) + 1
                if b not in known:
                    wanted.append(b)
        found = store.rows(wanted) if wanted else {}
        known.update(found)
        level = list(found.values())
    store.hint_rows({c: r for c, r in known.items() if c not in targets})
    for cid, n in uses.items():
        row = known.get(cid)
        if n > 1 and row is not None and 2 * row.raw_length <= store.cache.limit:
            store.get(cid)


def decode_rows_into(
    store: ChunkStore,
    targets: Sequence[tuple[TensorRow, memoryview]],
    pool: WorkerPool,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Decode each tensor row into its buffer (exactly ``row.nbytes`` bytes; a tied row's
    chunks are its target's), all chunks at once on the pool, in batches.

    ``progress(n)`` is called with the decoded bytes of each batch of chunks."""
    for r, mv in targets:
        verify_row(r)
        if len(mv) != r.nbytes:
            raise ValueError(f"tensor {r.name!r}: {len(mv)}-byte target for {r.nbytes} bytes")
    chunk_rows = store.rows([c for r, _ in targets for c in r.chunk_ids])
    work: list[tuple[ChunkRow, memoryview, list[memoryview]]] = []
    first: dict[bytes, list[memoryview]] = {}  # chunk id -> the other slices it fills
    for r, mv in targets:
        for i, cid in enumerate(r.chunk_ids):
            crow = chunk_rows.get(cid)
            if crow is None:
                raise CorruptObject(f"tensor {r.name!r}: chunk {cid.hex()} is missing")
            s = i * r.chunk_bytes
            piece = mv[s : min(r.nbytes, s + r.chunk_bytes)]
            if cid in first:  # the same chunk again: decoded once, copied here
                first[cid].append(piece)
                continue
            first[cid] = []
            work.append((crow, piece, first[cid]))
    prepare_bases(store, chunk_rows)
    # batches of about _BATCH_BYTES, but at least two per worker so that both cores
    # stay busy to the end on a small model
    target = min(_BATCH_BYTES, max(1, sum(len(m) for _, m, _ in work) // (4 * pool.workers)))
    futures: list[Future] = []
    batch: list[tuple[ChunkRow, memoryview, list[memoryview]]] = []
    size = 0
    for item in work:
        batch.append(item)
        size += len(item[1])
        if size >= target:
            futures.append(pool.submit(_decode_batch, store, batch))
            batch, size = [], 0
    if batch:
        futures.append(pool.submit(_decode_batch, store, batch))
    try:
        for f in futures:
            n = f.result()
            if progress is not None:
                progress(n)
    except BaseException:  # no job may write into buffers the caller will never see
        settle_jobs((f,) for f in futures)
        raise


def read_tensors(
    store: ChunkStore,
    rows: Iterable[TensorRow],
    pool: WorkerPool,
    progress: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Decode the given tensor rows into new tensors; tied rows come back sharing
    storage. ``progress(n)`` is called with the decoded bytes of each batch."""
    import torch

    rows = sorted(rows, key=lambda r: r.position)
    buffers: dict[str, torch.Tensor] = {}
    targets: list[tuple[TensorRow, memoryview]] = []
    for r in rows:
        if r.tie is None:
            buf = torch.empty(r.nbytes, dtype=torch.uint8)
            buffers[r.name] = buf
            if r.nbytes:
                targets.append((r, memoryview(buf.numpy())))
        else:
            verify_row(r)
    decode_rows_into(store, targets, pool, progress)
    out: dict[str, torch.Tensor] = {}
    for r in rows:
        if r.tie is not None:
            if r.tie not in out:
                raise CorruptObject(f"tensor {r.name!r} is tied to a missing tensor {r.tie!r}")
            out[r.name] = out[r.tie]
            continue
        dt = by_name(r.dtype)
        if r.nbytes == 0:
            out[r.name] = torch.empty(r.shape, dtype=dt.torch)
        else:
            out[r.name] = buffers[r.name].view(dt.torch).reshape(r.shape)
    return out


def _spans(row: TensorRow) -> Iterator[tuple[int, bytes, int, int]]:
    for i, cid in enumerate(row.chunk_ids):
        s = i * row.chunk_bytes
        yield i, cid, s, min(row.nbytes, s + row.chunk_bytes)


def decode_row_into(
    store: ChunkStore,
    row: TensorRow,
    out: memoryview,
    pool: WorkerPool,
    window: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Decode one tensor's chunks straight into ``out`` (exactly ``row.nbytes`` bytes),
    with at most ``window`` chunks in flight: no memory beyond ``out`` itself."""
    verify_row(row)
    if len(out) != row.nbytes:
        raise ValueError(f"tensor {row.name!r}: {len(out)}-byte target for {row.nbytes} bytes")
    found = store.rows(row.chunk_ids)
    prepare_bases(store, found)
    inflight: deque[tuple[Future, int]] = deque()
    try:
        for _, cid, s, e in _spans(row):
            crow = found.get(cid)
            if crow is None:
                raise CorruptObject(f"tensor {row.name!r}: chunk {cid.hex()} is missing")
            inflight.append((pool.submit(store.get_into, crow, out[s:e]), e - s))
            while len(inflight) > window:
                f, n = inflight.popleft()
                f.result()
                if progress is not None:
                    progress(n)
        while inflight:
            f, n = inflight.popleft()
            f.result()
            if progress is not None:
                progress(n)
    except BaseException:
        settle_jobs(inflight)
        raise


def iter_row_chunks(
    store: ChunkStore, row: TensorRow, pool: WorkerPool, window: int
) -> Iterator[memoryview]:
    """The decoded bytes of one tensor, chunk by chunk in order, decoded ahead on the
    pool with at most ``window`` chunks in flight (for writers that stream to a file)."""
    verify_row(row)
    found = store.rows(row.chunk_ids)
    prepare_bases(store, found)
    inflight: deque[tuple[Future, bytearray]] = deque()

    def decode(crow: object, buf: bytearray) -> None:
        store.get_into(crow, memoryview(buf))  # type: ignore[arg-type]

    try:
        for _, cid, s, e in _spans(row):
            crow = found.get(cid)
            if crow is None:
                raise CorruptObject(f"tensor {row.name!r}: chunk {cid.hex()} is missing")
            buf = bytearray(e - s)
            inflight.append((pool.submit(decode, crow, buf), buf))
            if len(inflight) > window:
                f, done = inflight.popleft()
                f.result()
                yield memoryview(done)
        while inflight:
            f, done = inflight.popleft()
            f.result()
            yield memoryview(done)
    finally:
        settle_jobs(inflight)
