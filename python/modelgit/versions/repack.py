"""Repack: re-choose the bases of stored chunks under the current policy.

A repository filled before automatic bases existed, or without declared parents by an
older modelgit, holds relatives as standalone chunks; a merge written before linear
predictors holds it as a plain delta. ``repack`` goes through the versions oldest
first and re-encodes each chunk a version introduced against the closest chunks of
*older* versions (automatic bases, ``versions.bases``; the declared parents and the
previous version too), keeping a new record only where it is smaller. Chunk ids are
content hashes, so nothing above the chunk rows changes: versions, tensors and every
reader's results stay exactly the same. A second pass (``versions.stars``, unless
``stars=False``) then re-codes delta chains as stars around their medoid, and a third
(``versions.casts``, unless ``casts=False``) codes each cast of a delta against the
standalone chunk that delta's chain ends in, so that it too decodes one delta.

Safety:

* no cycle: a chunk is only coded against chunks of older versions whose own bases
  (transitively) do not lead back to it;
* no chain past the layout bound, and no chunk made deeper that others are coded
  against (their recorded depth would be wrong) or that is a delta already (a star's
  member would go back and forth between runs): such a chunk may only get shallower;
* crash safety as for a write: the new records are appended to a fresh pack and made
  durable, then one catalog transaction per version points the chunk rows at them. A
  kill at any point leaves either the old rows or the new ones, both complete; the old
  records stay in their packs (readers holding an old row keep reading them) until
  ``gc`` drops them;
* bounded memory: one version's chunk rows at a time, chunks decoded one by one on the
  worker pool (the decoded-chunk cache is bounded).

The repository lock is held exclusively while it runs (adds and commits wait; loads do
not). Record changes are described in docs/FORMAT.md (section 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..catalog.records import ChunkRow, TensorRow, chain_depths, split_ids, update_chunks
from ..codec import PREDICTED
from ..dtypes import DType, by_name
from ..formats.sources import open_model
from ..progress import Counter, ProgressFn
from ..storage.packs import record_length
from ..storage.policy import ChunkJob, encode_lossless, plan_bases
from ..storage.similarity import (
    ensure_tables,
    insert_sketches,
    replace_storage_bases,
    sketch_source,
    sketches_of,
)
from .bases import choose_bases
from .casts import cast_pass
from .stars import STAR_SLACK, Links, star_pass

if TYPE_CHECKING:
    from ..storage.store import ChunkStore
    from .engine import VersionStore

__all__ = ["RepackReport", "repack", "deepest_chain"]

MIN_GAIN = 0.01  # a new record must be at least this much smaller than the old one
CANDIDATES = 8  # stored versions ranked per version (newer ones are filtered out)


@dataclass
class RepackReport:
    """What a repack did: versions and chunks looked at, chunks given a new record (by
    any pass), the bytes of the chunks' current records before and after (``saved``:
    how much smaller they are now; ``gc`` reclaims more, the superseded records too),
    delta groups made stars, chunks of casts coded one delta deep, and the deepest
    chunk before and after."""

    versions: int = 0
    chunks: int = 0
    rewritten: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    stars: int = 0
    casts: int = 0
    deepest_before: int = 0
    deepest_after: int = 0
    gc_reclaimed: int | None = None

    @property
    def saved(self) -> int:
        return self.bytes_before - self.bytes_after

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "saved": self.saved}

    def __str__(self) -> str:
        from ..units import human_bytes

        pct = 100 * abs(self.saved) / self.bytes_before if self.bytes_before else 0.0
        # stars and casts one delta deep may cost a little space for speed: say "grew"
        change = "saved" if self.saved >= 0 else "grew by"
        text = (
            f"repacked {self.versions} version(s): {self.rewritten} of {self.chunks} chunks "
            f"re-encoded; stored {human_bytes(self.bytes_before)} -> "
            f"{human_bytes(self.bytes_after)} ({change} {human_bytes(abs(self.saved))}, "
            f"{pct:.1f}%); "
            f"{self.stars} delta chain(s) made stars, {self.casts} cast chunk(s) made one "
            f"delta deep; deepest delta chain "
            f"{self.deepest_before} -> {self.deepest_after}"
        )
        if self.gc_reclaimed is not None:
            text += f"; gc reclaimed {human_bytes(self.gc_reclaimed)} on disk"
        return text


class _State:
    """What the repack knows of the chunks: the version that introduced each (its
    owner), the chunks others are coded against, and every chunk's current row."""

    def __init__(self, engine: VersionStore) -> None:
        self.owner: dict[bytes, int] = {}
        self.dtype: dict[bytes, DType] = {}
        for vid, dtype, chunks in engine.catalog.query(
            "SELECT version, dtype, chunks FROM tensors ORDER BY version"
        ):
            dt = by_name(dtype)
            for i in range(0, len(chunks), 16):
                cid = bytes(chunks[i : i + 16])
                self.owner.setdefault(cid, vid)
                self.dtype.setdefault(cid, dt)
        self.rewritten: set[bytes] = set()  # chunks given a new record (any pass)
        self.freed: set[bytes] = set()  # chunks no version holds that nothing needs now
        self.needed: set[bytes] = set()  # chunks some record is coded against
        for (base,) in engine.catalog.query("SELECT base FROM chunks WHERE base IS NOT NULL"):
            base = bytes(base)
            self.needed.update(base[i : i + 16] for i in range(0, len(base), 16))


def _leads_to(store: ChunkStore, start: list[bytes], target: bytes) -> bool:
    """Whether decoding ``start`` needs ``target`` (following bases transitively)."""
    seen: set[bytes] = set()
    todo = list(start)
    while todo:
        cid = todo.pop()
        if cid == target:
            return True
        if cid in seen:
            continue
        seen.add(cid)
        row = store.row(cid)
        if row is not None:
            todo.extend(row.bases)
    return False


def _orphans(store: ChunkStore, bases: list[bytes], owner: dict[bytes, int]) -> list[bytes]:
    """The chunks that decoding needs through ``bases`` (transitively) and that no
    version holds: left only as the bases of others after their versions were removed
    (pruned checkpoints), which gc must keep while anything is coded against them."""
    seen: set[bytes] = set()
    found = []
    todo = list(bases)
    while todo:
        cid = todo.pop()
        if cid in seen:
            continue
        seen.add(cid)
        if cid not in owner:
            found.append(cid)
        row = store.row(cid)
        if row is not None:
            todo.extend(row.bases)
    return found


def _sketches(engine: VersionStore, vid: int) -> tuple[dict, bool]:
    """The version's sketches from the index, or computed from its decoded weights
    (a version written before the index existed); and whether they were computed."""
    have = sketches_of(engine.catalog, [vid])[vid]
    if have:
        return have, False
    v = engine.version_by_id(vid)
    with open_model(engine.load(v.ref)) as source:
        return sketch_source(source, engine.chunk_elems, engine.pool), True


def _links(engine: VersionStore, vid: int) -> list[tuple]:
    """The version's parent links (declared parents, previous version) as
    ``write`` takes them: (parent id, parent Version, kind, relation)."""
    rows = engine.catalog.query(
        "SELECT parent, kind, relation FROM version_parents WHERE version = ? "
        "ORDER BY kind = 'version' DESC, position",
        (vid,),
    )
    out = []
    for pid, kind, relation in rows:
        if pid < vid:
            out.append((pid, engine.version_by_id(pid), kind, relation))
    return out


def _repack_version(
    engine: VersionStore,
    vid: int,
    state: _State,
    report: RepackReport,
    count: Callable[[int], None],
) -> None:
    store = engine.store
    rows = engine.tensor_rows(vid, state=True)
    mine: list[tuple[TensorRow, int, bytes]] = []  # each chunk the version introduced, once
    seen: set[bytes] = set()
    for t in rows:
        for i, c in enumerate(t.chunk_ids if t.tie is None else ()):
            if state.owner.get(c) == vid and c not in seen:
                seen.add(c)
                mine.append((t, i, c))
    if not mine:
        return
    sketches, computed = _sketches(engine, vid)
    links = _links(engine, vid)
    choices, _ = choose_bases(
        engine, sketches, links, limit=CANDIDATES, allowed=lambda other: other < vid
    )
    parents = [{r.name: r for r in engine.tensor_rows(pid, state=True)} for pid, _, _, _ in links]
    plans = {
        t.name: plan_bases(t.name, by_name(t.dtype), tuple(t.shape), t.chunk_bytes
                           // by_name(t.dtype).size, parents, choices.get(t.name))
        for t in rows if t.tie is None
    }  # fmt: skip
    old_rows = store.rows([c for _, _, c in mine])

    def one(item: tuple) -> tuple[bytes, ChunkRow | None, list[bytes]]:
        t, i, cid = item
        old = old_rows.get(cid)
        if old is None or old.lossy:
            return cid, None, []
        # coded through chunks no version holds any more: its record costs theirs too,
        # so any record that frees them is better (standalone where nothing else is)
        orphans = _orphans(store, list(old.bases), state.owner)
        if not plans[t.name] and not orphans:
            return cid, None, []
        data = memoryview(store.get(cid))
        job = ChunkJob(data, by_name(t.dtype), i, plans[t.name])
        enc = encode_lossless(store, job, engine.max_depth)
        frees = bool(orphans) and not _orphans(store, list(enc.bases), state.owner)
        if not frees and record_length(enc.params, enc.payload) > (1 - MIN_GAIN) * old.length:
            return cid, None, []
        depth = 1 + max((store.row(b).depth for b in enc.bases), default=-1)  # type: ignore[union-attr]
        if depth > old.depth and (cid in state.needed or old.depth > 0):
            # others are coded against it, or it is a delta already (a star's member:
            # the star pass would only flatten it again): it may not get deeper
            return cid, None, []
        if _leads_to(store, list(enc.bases), cid):
            return cid, None, []
        return cid, store.put(data, enc, cid), orphans if frees else []

    try:
        done: dict[bytes, ChunkRow] = {}
        for cid, new, freed in engine.pool.map(one, mine):
            old = old_rows.get(cid)
            report.chunks += 1
            if old is not None:
                count(old.raw_length)
                report.bytes_before += old.length
                report.bytes_after += (new or old).length
            for o in freed:  # what it no longer needs counts as what it cost before
                orphan = store.row(o)
                if o not in state.freed and orphan is not None:
                    state.freed.add(o)
                    report.bytes_before += orphan.length
            if new is not None:
                done[cid] = new
        if not done and not computed:
            return
        store.sync()
        with engine.catalog.transaction() as db:
            update_chunks(db, list(done.values()))
            ensure_tables(db)
            if computed:
                insert_sketches(db, vid, sketches.values())
            bases = set()
            for t in rows:
                for c in t.chunk_ids:
                    row = done.get(c) or old_rows.get(c)
                    if row is not None and state.owner.get(c) == vid:
                        bases.update(state.owner.get(b, vid) for b in row.bases)
            replace_storage_bases(db, vid, bases)
    except BaseException:
        store.abandon()
        raise
    store.published()
    for row in done.values():
        state.needed.update(row.bases)
    state.rewritten.update(done)
    report.rewritten = len(state.rewritten)


def _true_depths(engine: VersionStore) -> None:
    """Set every chunk's recorded depth to 1 + its deepest base's (0 without a base),
    in one transaction: the first pass makes a chunk others are coded against
    shallower without following them (an overstated depth is safe, but it keeps
    chunks from being chosen as bases)."""
    bases: dict[bytes, list[bytes]] = {}
    recorded: dict[bytes, int] = {}
    for cid, b, depth in engine.catalog.query("SELECT id, base, depth FROM chunks"):
        bases[bytes(cid)] = split_ids(None if b is None else bytes(b))
        recorded[bytes(cid)] = depth
    wrong = [(d, c) for c, d in chain_depths(bases).items() if d != recorded[c]]
    if wrong:
        with engine.catalog.transaction() as db:
            db.executemany("UPDATE chunks SET depth = ? WHERE id = ?", wrong)


def deepest_chain(engine: VersionStore) -> int:
    """The longest delta chain any stored chunk has (its recorded depth)."""
    return engine.catalog.one("SELECT COALESCE(MAX(depth), 0) FROM chunks")[0]


def repack(
    engine: VersionStore,
    progress: ProgressFn | None = None,
    stars: bool = True,
    star_slack: float = STAR_SLACK,
    casts: bool = True,
) -> RepackReport:
    """Re-encode every chunk whose record the current policy makes smaller, then (with
    ``stars``) turn delta chains into stars around their medoid where that takes at most
    ``star_slack`` (a share) more bytes (``versions.stars``), then (with ``casts``) code
    each cast of a delta one delta deep (``versions.casts``); see the module docstring.
    Call :meth:`~modelgit.Repository.gc` afterwards to reclaim the old records' space
    (``Repository.repack`` does by default)."""
    if isinstance(star_slack, bool) or not isinstance(star_slack, (int, float)):
        raise ValueError(f"star_slack must be a number (a share), not {star_slack!r}")
    if not 0 <= star_slack <= 1:  # (NaN too)
        raise ValueError(f"star_slack must be a share between 0 and 1, not {star_slack!r}")
    report = RepackReport()
    with engine.lock(exclusive=True):
        report.deepest_before = deepest_chain(engine)
        state = _State(engine)
        vids = [r[0] for r in engine.catalog.query("SELECT id FROM versions ORDER BY id")]
        # (int: PostgreSQL's SUM of a bigint is a Decimal)
        size = int(engine.catalog.one("SELECT COALESCE(SUM(raw_length), 0) FROM chunks")[0])
        predicted = int(engine.catalog.one(
            "SELECT COALESCE(SUM(raw_length), 0) FROM chunks WHERE codec = ?", (PREDICTED,)
        )[0])  # fmt: skip
        # (the star pass goes over the chunks again, the cast pass over predicted ones)
        total = size * (1 + stars) + (predicted if casts else 0)
        counter = Counter(progress, total)

        def count(n: int) -> None:  # forward only, never past the total: the passes
            counter(max(0, min(n, total - counter.done)))  # estimate what they will see

        for vid in vids:
            _repack_version(engine, vid, state, report, count)
            report.versions += 1
        if stars or casts:
            # every chunk row as the first pass left them, kept current by the passes
            links = Links.load(engine, state.owner)
            if stars:
                count(size - counter.done)  # (the first pass counted the chunks versions own)
                got = star_pass(engine, links, state.dtype, count, star_slack)
                report.stars = got.stars
                state.rewritten.update(got.ids)
                report.bytes_after += got.bytes_after - got.bytes_before  # (pass 1's after)
            if casts:
                count(size * (1 + stars) - counter.done)  # (as above)
                made = cast_pass(engine, links, state.dtype, count)
                report.casts = made.casts
                state.rewritten.update(made.ids)
                report.bytes_after += made.bytes_after - made.bytes_before
            report.rewritten = len(state.rewritten)
        _true_depths(engine)
        report.deepest_after = deepest_chain(engine)
        if progress is not None:
            progress(total, total)
    return report
