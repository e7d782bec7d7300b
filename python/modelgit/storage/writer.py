"""The write path: a model's tensors become chunks in the store and tensor rows.

Each tensor is cut into chunks of a fixed number of elements (``chunk_elems``) at fixed
offsets, so chunk i of a fine-tuned, cast or pruned tensor lines up with chunk i of its
parent whatever the dtypes. What each chunk becomes (dedup, a delta against a
prediction from the parents, standalone, lossy) is decided in ``policy``. Work runs on
a thread pool (the native core and zstandard release the GIL), with a bounded number of
chunks in flight; a failed write waits for its jobs before it raises.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from ..catalog.records import TensorRow, tensor_content_id
from ..formats.sources import ModelSource, TensorSource
from ..pool import WorkerPool, settle_jobs
from ..tolerance import ErrorBound, LowBit
from .policy import ChunkJob, plan_bases, store_chunk
from .store import ChunkStore

__all__ = ["DEFAULT_CHUNK_ELEMS", "WriteStats", "write_tensors"]

DEFAULT_CHUNK_ELEMS = 1 << 18  # elements per chunk: relatives of any dtype line up


@dataclass
class WriteStats:
    """What one add or commit did (``Repository.last_write``): chunks written, and how
    each was stored (an existing chunk reused, a delta, standalone, lossy: within the
    bound, ``lossy_delta`` of those coded against a base); the tensor bytes of the model
    and the bytes of the records it added."""

    chunks: int = 0
    dedup: int = 0
    delta: int = 0
    standalone: int = 0
    lossy: int = 0
    lossy_delta: int = 0
    logical_bytes: int = 0
    new_bytes: int = 0


def _chunk_spans(nbytes: int, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    for start in range(0, nbytes, chunk_bytes):
        yield start, min(nbytes, start + chunk_bytes)


def _max_abs(t: TensorSource, step: int) -> float:
    """The largest finite magnitude in a float tensor, read one chunk at a time."""
    import torch

    view = t.view()
    best = 0.0
    for s, e in _chunk_spans(t.nbytes, step):
        x = torch.frombuffer(bytearray(view[s:e]), dtype=torch.uint8).view(t.dtype.torch)
        x = x.to(torch.float64).abs()
        x = x[torch.isfinite(x)]
        if x.numel():
            best = max(best, float(x.max()))
    return best


def write_tensors(
    store: ChunkStore,
    source: ModelSource,
    parents: list[dict[str, TensorRow]],
    pool: WorkerPool,
    chunk_elems: int = DEFAULT_CHUNK_ELEMS,
    max_depth: int = 8,
    tolerance: ErrorBound | LowBit | None = None,
    tolerance_for: Callable[[str], ErrorBound | LowBit | None] | None = None,
    progress: Callable[[int], None] | None = None,
    window: int | None = None,
    choices: dict[str, list[list[TensorRow]]] | None = None,
) -> tuple[list[TensorRow], WriteStats]:
    """Store every tensor of ``source``.

    ``parents`` maps tensor names to rows, one dict per base version (the provenance
    parents in order, or the previous version): chunks are coded against them.
    ``choices`` (by tensor name) replaces the parents' rows with groups of stored rows
    chosen for that tensor (automatic bases: one row a delta base, several a mean).
    At most ``window`` chunks are in flight (each read from the source when it is
    submitted), so memory stays bounded. ``tolerance_for`` (a tensor name -> its bound)
    replaces ``tolerance`` where given (a training state may be lossy, its weights not).
    """
    stats = WriteStats()
    if window is None:
        window = max(4, 4 * pool.workers)
    inflight: deque[tuple[Future]] = deque()

    def drain(limit: int) -> None:
        while len(inflight) > limit:
            (fut,) = inflight.popleft()
            _, how, n = fut.result()
            stats.chunks += 1
            if how == "lossy_delta":
                stats.lossy += 1
            setattr(stats, how, getattr(stats, how) + 1)
            if progress is not None:
                progress(n)

    def job(j: ChunkJob) -> tuple[bytes, str, int]:
        cid, how = store_chunk(store, j, max_depth)
        return cid, how, len(j.data)

    planned: list[tuple[TensorSource, int, int, list[Future]]] = []
    fits: dict[str, int] = {}  # linear fits of this write: hits and misses
    try:
        for position, t in enumerate(source.tensors):
            if t.tie is not None:
                planned.append((t, position, 0, []))
                continue
            stats.logical_bytes += t.nbytes
            view = t.view()
            if len(view) != t.nbytes:
                raise ValueError(f"tensor {t.name!r}: {len(view)} bytes, expected {t.nbytes}")
            step = chunk_elems * t.dtype.size
            chosen = None if choices is None else choices.get(t.name)
            plans = plan_bases(t.name, t.dtype, t.shape, chunk_elems, parents, chosen, fits)
            eps = None
            tol = tolerance if tolerance_for is None else tolerance_for(t.name)
            if isinstance(tol, ErrorBound) and t.dtype.is_float and t.nbytes:
                eps = tol.eps_for(_max_abs(t, step) if tol.rel else 0.0)
            futures = []
            for i, (s, e) in enumerate(_chunk_spans(t.nbytes, step)):
                j = ChunkJob(view[s:e], t.dtype, i, plans, tol, eps)
                fut = pool.submit(job, j)
                futures.append(fut)
                inflight.append((fut,))
                drain(window)
            planned.append((t, position, step, futures))
        drain(0)
    except BaseException:
        # let no chunk job outlive the failed write: nothing may touch the store after
        # the caller abandons it
        settle_jobs(inflight)
        raise
    rows: list[TensorRow] = []
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
