"""Casts: the repack's pass that codes a cast of a delta one delta deep.

A cast (a float32 model saved as bfloat16, say) is stored as its parent's cast plus a
residual (predicted codec, ``cast`` predictor, docs/FORMAT.md 3.2): it costs almost
nothing, but loading it decodes its parent first. Where the parent is itself a delta
(a fine-tune, after the star pass a member of a star), the cast lies two or more
deltas deep and a load decodes a float32 model and its residual before casting: about
1.8 times a standalone bfloat16 model.

This pass re-codes such a cast against the standalone chunk its parent's chain of
single-base deltas ends in (a star's centre): still the ``cast`` predictor, now of that
chunk, with a residual that holds what the relatives between them changed, at the
cast's precision. The cast then decodes one delta. That costs bytes: for a bfloat16 cast
of a MiniLM fine-tune of a fine-tune, about 2.4 bits per element (a standalone bfloat16
chunk takes about 10.6). A record is re-coded only where the new one takes at most
``CAST_LIMIT`` of the chunk's raw bytes (a small chunk, a bias, whatever it takes);
``repack(casts=False)`` keeps every cast as it is.

Safety, as for the star pass (``versions.stars``): chunk ids are content hashes, so
versions and tensors are untouched; the new records of one version's casts (in batches
of ``_BATCH_BYTES`` raw bytes) are appended to a fresh pack and made durable, then one
catalog transaction points their
rows at them, sets the recorded depth of every chunk coded against them and rewrites
the version's ``storage_bases``; a kill leaves the old rows or the new ones. No cycle
can arise: the new base is a chunk without bases. A cast only gets shallower, so a
later repack's first pass, which never makes a delta deeper, leaves it so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import _core, codec
from ..catalog.records import ChunkRow
from ..dtypes import DType, by_code
from ..errors import CorruptObject
from ..storage.packs import record_length
from ..storage.policy import MASK_MIN_ZEROS
from .stars import SMALL_CHUNK, Links

if TYPE_CHECKING:
    from .engine import VersionStore

__all__ = ["CastReport", "cast_pass", "CAST_LIMIT"]

CAST_LIMIT = 0.5  # a re-coded cast may take at most this share of its raw bytes
_BATCH_BYTES = 64 << 20  # casts' raw bytes re-coded per transaction
_MAX_WALK = 256  # a chain longer than any layout allows is not followed


@dataclass
class CastReport:
    """What the pass did: chunks of casts re-coded (their ids), the bytes of their
    records before and after."""

    casts: int = 0
    ids: set[bytes] = field(default_factory=set)
    bytes_before: int = 0
    bytes_after: int = 0


@dataclass(frozen=True)
class _Job:
    row: ChunkRow  # the cast's chunk
    root: ChunkRow  # the standalone chunk its parent's chain ends in
    dtype: DType
    base_dtype: DType
    mask: bool  # the record has a zero mask


def _root(rows: dict[bytes, ChunkRow], start: ChunkRow, dtype: DType | None,
          dtypes: dict[bytes, DType]) -> ChunkRow | None:  # fmt: skip
    """The chunk without bases that the chain of single-base deltas from ``start``
    ends in, every link lossless and of ``start``'s dtype and length; None if there is
    none."""
    row = start
    for _ in range(_MAX_WALK):
        if not row.bases:
            return row
        if row.lossy or len(row.bases) != 1:
            return None
        row = rows.get(row.bases[0])  # type: ignore[assignment]
        if row is None or row.raw_length != start.raw_length or dtypes.get(row.id) != dtype:
            return None
    return None


def _job(engine: VersionStore, rows: dict[bytes, ChunkRow], row: ChunkRow,
         dtypes: dict[bytes, DType]) -> _Job | None:  # fmt: skip
    """The re-coding a chunk qualifies for: a lossless cast (predicted codec, one base,
    the ``cast`` predictor) whose base is a delta with a standalone root."""
    if row.codec != codec.PREDICTED or row.lossy or len(row.bases) != 1:
        return None
    base = rows.get(row.bases[0])
    dtype = dtypes.get(row.id)
    if base is None or not base.bases or dtype is None or row.raw_length % dtype.size:
        return None
    root = _root(rows, base, dtypes.get(base.id), dtypes)
    if root is None:
        return None
    _, rec = engine.store.read_record(row)
    params = rec.params
    if len(params) < 8 or params[0] != codec.CAST or params[5] != 1:
        return None
    try:
        declared, base_dtype = by_code(params[1]), by_code(params[2])
    except ValueError as exc:
        raise CorruptObject(f"chunk {row.id.hex()}: {exc}") from None
    if declared != dtype or dtypes.get(root.id) != base_dtype:
        return None
    if root.raw_length // base_dtype.size != row.raw_length // dtype.size:
        return None
    return _Job(row, root, dtype, base_dtype, bool(params[6] & 1))


def _sparse(data: memoryview, dtype: DType) -> bool:
    """At least ``MASK_MIN_ZEROS`` of the chunk's words are zero (a pruned model's)."""
    import numpy as np  # (not at import: the CLI starts without numpy)

    words = np.frombuffer(data, dtype=f"<u{dtype.size}")
    return np.count_nonzero(words == 0) >= MASK_MIN_ZEROS * len(words)


def _encode(engine: VersionStore, job: _Job) -> tuple[memoryview, codec.Encoded | None]:
    """The cast's bytes and its record against the root (with a zero mask too where the
    chunk is sparse: the smaller); None where that takes more than ``CAST_LIMIT`` of its
    raw bytes. A small chunk (a bias, a norm's weights: at most ``SMALL_CHUNK`` bytes,
    which cost a load more per chunk than in bytes) is re-coded whatever it takes, as
    the star pass does: stored standalone, the next repack's first pass would code it
    against its parent again."""
    store = engine.store
    data = memoryview(store.get(job.row.id))
    root = memoryview(store.get(job.root.id))
    delta = _core.DELTA_OSUB if job.dtype.is_float else _core.DELTA_XOR
    masks = {job.mask, job.mask or _sparse(data, job.dtype)}
    enc = min(
        (codec.encode_predicted(data, job.dtype, codec.CAST, [root], [job.root.id],
                                job.base_dtype, delta, use_mask=m) for m in masks),
        key=lambda e: record_length(e.params, e.payload),
    )  # fmt: skip
    if len(data) > SMALL_CHUNK and (
        record_length(enc.params, enc.payload) > CAST_LIMIT * job.row.raw_length
    ):
        return data, None
    return data, enc


def _recode(engine: VersionStore, jobs: list[_Job], links: Links, report: CastReport) -> None:
    """Re-code some casts of one version: records appended and made durable, then one
    transaction."""
    store = engine.store
    encoded = list(engine.pool.map(lambda j: (j, *_encode(engine, j)), jobs))
    kept = [(j, data, enc) for j, data, enc in encoded if enc is not None]
    if not kept:
        return
    try:
        new = [store.put(data, enc, j.row.id) for j, data, enc in kept]
        store.sync()
        links.publish(engine, new, links.moved_depths({r.id: r.depth for r in new}))
    except BaseException:
        store.abandon()
        raise
    store.published()
    report.casts += len(new)
    report.ids.update(r.id for r in new)
    report.bytes_before += sum(j.row.length for j, _, _ in kept)
    report.bytes_after += sum(r.length for r in new)


def cast_pass(
    engine: VersionStore,
    links: Links,
    dtypes: dict[bytes, DType],
    count: Callable[[int], None] | None = None,
) -> CastReport:
    """Re-code every cast whose base is a delta against the standalone chunk its
    base's chain ends in, where that takes at most ``CAST_LIMIT`` of its raw bytes (see
    the module docstring). ``links``: every chunk row (``Links.load``, or as the star
    pass left them; kept current); ``dtypes``: each chunk's dtype; ``count(n)``: called
    with the raw bytes of each predicted chunk looked at (progress). Call with the
    repository lock held exclusively."""
    report = CastReport()
    rows, owner = links.rows, links.owner
    by_version: dict[int, list[_Job]] = {}
    for row in sorted(rows.values(), key=lambda r: (owner.get(r.id, 1 << 62), r.id)):
        if row.codec != codec.PREDICTED:
            continue
        job = _job(engine, rows, row, dtypes)
        if count is not None:
            count(row.raw_length)
        if job is not None:
            by_version.setdefault(owner.get(row.id, -1), []).append(job)
    for jobs in by_version.values():
        batch: list[_Job] = []
        size = 0
        for job in jobs:  # batches of about _BATCH_BYTES: bounded memory
            batch.append(job)
            size += job.row.raw_length
            if size >= _BATCH_BYTES:
                _recode(engine, batch, links, report)
                batch, size = [], 0
        if batch:
            _recode(engine, batch, links, report)
    return report
