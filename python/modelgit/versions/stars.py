"""Stars: the repack's pass that turns delta chains into stars around their medoid.

A chunk position that many versions changed (a training run's checkpoints, a family of
fine-tunes) is stored as a tree of byte-planes deltas: each version's chunk coded
against an older one, chains bounded by the layout's ``max_depth``. Loading a version
decodes its whole chain, so the deeper it lies, the slower it loads.

The residual of a delta grows only with the logarithm of how far the chunk moved (a
changed element costs about log2 of its change), so a version coded against a
*distant* relative costs hardly more than against its neighbour. This pass therefore
re-codes each such group of chunks as a star: one member, the medoid (the one the
others are cheapest to code against, priced on samples), standalone, and every other
member one delta against it. Every version of the group then decodes at most one
delta. A group is re-coded only where the star's records take no more than
``STAR_SLACK`` more than the group's records now (plus ``STAR_ALLOWANCE`` bytes for
chunks of at most ``SMALL_CHUNK`` bytes).

Which chunks form a group: the connected components of the single-base delta relation
(byte-planes deltas; predicted records of one base of the same dtype and length), in
slices of at most ``STAR_MAX`` members in the order the versions were written, each a
star around its own medoid or around the previous slice's centre (stored standalone
already), whichever the samples price lower. A slice holding a lossy chunk, or no
delta at all, is left as it is.

Safety, as for the rest of repack (``versions.repack``): chunk ids are content hashes,
so versions and tensors are untouched; a star's records are appended to a fresh pack
and made durable, then one catalog transaction points the group's rows at them and
corrects the recorded depth of every chunk coded against them (casts, merges: their
record is not rewritten); a kill leaves the old rows or the new ones. No cycle can
arise: the medoid has no base and every other member only the medoid. A group is left
as it is where it would make some chunk that is not a member deeper than both its
depth now and the layout bound.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .. import _core, codec
from ..catalog.records import CHUNK_COLUMNS, ChunkRow, update_chunks
from ..dtypes import DType
from ..storage.packs import record_length
from ..storage.policy import _strided
from ..storage.similarity import replace_storage_bases

if TYPE_CHECKING:
    from ..storage.store import ChunkStore
    from .engine import VersionStore

__all__ = ["StarReport", "star_pass", "Links", "STAR_MAX", "STAR_SLACK"]

STAR_MAX = 64  # members per star: a longer group is cut into slices of this many
STAR_SLACK = 0.01  # a star may take this much more than the group's records now
STAR_ALLOWANCE = 64 << 10  # ... and this many bytes more where chunks are small:
SMALL_CHUNK = 16 << 10  # at most this many bytes
MEDOID_CANDIDATES = 16  # members priced as the centre of a group (spread over it)
MIN_GAIN = 0.01  # a star moves to another centre only to save this much


@dataclass
class StarReport:
    """What the pass did: groups looked at and re-coded, chunks given a new record,
    the bytes of their records before and after."""

    groups: int = 0
    stars: int = 0
    ids: set[bytes] = field(default_factory=set)  # chunks given a new record
    bytes_before: int = 0
    bytes_after: int = 0


class _Union:
    def __init__(self) -> None:
        self.up: dict[bytes, bytes] = {}

    def find(self, a: bytes) -> bytes:
        up = self.up
        root = a
        while up.setdefault(root, root) != root:
            root = up[root]
        while up[a] != root:
            up[a], a = root, up[a]
        return root

    def join(self, a: bytes, b: bytes) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.up[ra] = rb


def _groups(
    rows: dict[bytes, ChunkRow], order: dict[bytes, int], dtypes: dict[bytes, DType]
) -> list[list[list[bytes]]]:
    """The connected components of the single-base delta relation within a dtype
    (byte-planes deltas, and predicted records of one base of the same dtype and
    length: a scaled parent, a masked one), each cut into slices of at most
    ``STAR_MAX`` members in the order their versions were written."""
    u = _Union()
    for r in rows.values():
        if r.codec not in (codec.PLANES, codec.PREDICTED) or r.base is None or r.lossy:
            continue
        bases = r.bases
        if len(bases) != 1 or bases[0] not in rows:
            continue
        b = rows[bases[0]]
        if b.raw_length == r.raw_length and dtypes.get(b.id) == dtypes.get(r.id) is not None:
            u.join(r.id, b.id)
    comps: dict[bytes, list[bytes]] = {}
    for cid in u.up:
        comps.setdefault(u.find(cid), []).append(cid)
    out = []
    for members in comps.values():
        members.sort(key=lambda c: (order.get(c, 1 << 62), c))
        n = len(members)
        parts = -(-n // STAR_MAX)
        size = -(-n // parts)
        out.append([members[i : i + size] for i in range(0, n, size)])
    return out


def _medoid(samples: list, dtype: DType, outside: object = None) -> int:
    """The member the others are cheapest to code against, with its own standalone
    cost, priced on the members' samples (``_core.residual_bits``, ``plane_entropy``);
    -1 for ``outside`` (the sample of a chunk stored standalone already, the previous
    slice's centre: it costs nothing more) where every member is cheapest against it."""
    n = len(samples)
    step = max(1, n // MEDOID_CANDIDATES)
    best, best_bits = 0, float("inf")
    for m in range(0, n, step):
        bits = _core.plane_entropy(samples[m], dtype.size, dtype.is_float)
        for y in range(n):
            if y != m:
                bits += _core.residual_bits(samples[y], samples[m], dtype.size)[0]
        if bits < best_bits:
            best, best_bits = m, bits
    if outside is not None:
        bits = sum(_core.residual_bits(y, outside, dtype.size)[0] for y in samples)
        if bits < best_bits:
            best = -1
    return best


class Links:
    """Who is coded against whom, kept current as stars are made: ``children[b]``, the
    chunks whose record names ``b`` as a base (a superset: an edge a star removed is
    checked against the child's row when walked), and per version the owners of the
    bases of the chunks it introduced (``storage_bases``), counted."""

    def __init__(self, rows: dict[bytes, ChunkRow], owner: dict[bytes, int]) -> None:
        self.rows, self.owner = rows, owner
        self.children: dict[bytes, set[bytes]] = {}
        self.uses: dict[int, Counter[int]] = {}
        for r in rows.values():
            self._add(r, 1)

    @classmethod
    def load(cls, engine: VersionStore, owner: dict[bytes, int]) -> Links:
        """The links of every chunk row in the catalog (``owner``: the version that
        introduced each chunk)."""
        rows = {
            bytes(r[0]): ChunkRow.from_db(r)
            for r in engine.catalog.query(f"SELECT {CHUNK_COLUMNS} FROM chunks")
        }
        return cls(rows, owner)

    def _add(self, r: ChunkRow, sign: int) -> None:
        vid = self.owner.get(r.id)
        for b in r.bases:
            if sign > 0:
                self.children.setdefault(b, set()).add(r.id)
            if vid is not None:
                self.uses.setdefault(vid, Counter())[self.owner.get(b, vid)] += sign

    def bases_of(self, vid: int) -> set[int]:
        return {b for b, n in self.uses.get(vid, Counter()).items() if n > 0 and b != vid}

    def moved_depths(self, changed: dict[bytes, int]) -> dict[bytes, int]:
        """The new depth of every chunk coded (transitively) against the members in
        ``changed`` (member -> its new depth) whose depth moves. (A chunk coded against
        a member by a single-base delta of its dtype is a member itself: the walk
        reaches casts, merges and what is coded against them.)"""
        rows = self.rows
        now = dict(changed)
        todo = list(changed)
        out: dict[bytes, int] = {}
        while todo:
            cid = todo.pop()
            for child in self.children.get(cid, ()):
                bases = rows[child].bases
                if child in changed or cid not in bases:
                    continue  # a member, or an edge a star has removed
                d = 1 + max(now[b] if b in now else rows[b].depth for b in bases)
                if d != (now[child] if child in now else rows[child].depth):
                    now[child] = out[child] = d
                    todo.append(child)
        return out

    def replace(self, new: list[ChunkRow], moved: dict[bytes, int]) -> set[int]:
        """Record the members' new rows and the moved depths; the versions whose
        ``storage_bases`` changed."""
        touched = {self.owner[r.id] for r in new if r.id in self.owner}
        before = {vid: self.bases_of(vid) for vid in touched}
        for r in new:
            self._add(self.rows[r.id], -1)
            self.rows[r.id] = r
            self._add(r, 1)
        for c, d in moved.items():
            self.rows[c] = replace(self.rows[c], depth=d)
        return {vid for vid in touched if self.bases_of(vid) != before[vid]}

    def publish(self, engine: VersionStore, new: list[ChunkRow], moved: dict[bytes, int]) -> None:
        """Point the catalog at the ``new`` rows (their records durable already) and set
        the ``moved`` depths, in one transaction that also rewrites the ``storage_bases``
        of the versions whose bases changed; these links follow it, or stay as they were
        where it fails."""
        old = [self.rows[r.id] for r in new]
        old_depths = {c: self.rows[c].depth for c in moved}
        changed = self.replace(new, moved)
        try:
            with engine.catalog.transaction() as db:
                update_chunks(db, new)
                db.executemany(
                    "UPDATE chunks SET depth = ? WHERE id = ?", [(d, c) for c, d in moved.items()]
                )
                for vid in sorted(changed):
                    replace_storage_bases(db, vid, self.bases_of(vid))
        except BaseException:
            self.replace(old, old_depths)  # (as it was: the catalog is unchanged)
            raise


def _try_star(
    engine: VersionStore,
    members: list[bytes],
    links: Links,
    dtype: DType,
    report: StarReport,
    outside: bytes | None = None,
    slack: float = STAR_SLACK,
) -> bytes | None:
    """Make the slice a star (``outside``: a centre stored standalone already, the
    previous slice's, that it may take instead of a member); its centre if it is a
    star now, else None."""
    store: ChunkStore = engine.store
    rows = links.rows
    datas = [memoryview(store.get(c)) for c in members]
    n = len(datas[0]) // dtype.size
    samples = [_strided(d, dtype.size, n) for d in datas]
    o_data = None
    if outside is not None and rows[outside].depth == 0:
        o_data = memoryview(store.get(outside))
    centre = _medoid(samples, dtype, None if o_data is None else _strided(o_data, dtype.size, n))
    m_id, m_data = (outside, o_data) if centre < 0 else (members[centre], datas[centre])
    assert m_id is not None and m_data is not None
    flat = max(rows[c].depth for c in members) <= 1
    if flat and all(rows[c].bases == [m_id] for c in members if c != m_id):
        return m_id  # a star around its medoid already
    moved = links.moved_depths({c: int(c != m_id) for c in members})
    if any(d > max(rows[c].depth, engine.max_depth) for c, d in moved.items()):
        return None  # a cast or merge below the group would get too deep
    delta = _core.DELTA_OSUB if dtype.is_float else _core.DELTA_XOR
    rotate = dtype.is_float and delta != _core.DELTA_OSUB

    def encode(i: int) -> codec.Encoded:
        # every member but the centre a delta (even a poor one: a standalone member
        # would be coded against its neighbours again by the next repack's first pass)
        if i == centre:
            return codec.encode_standalone(m_data, dtype.size, dtype.is_float)
        return codec.encode_planes(datas[i], dtype.size, rotate, m_data, m_id, delta)

    encoded = list(engine.pool.map(encode, range(len(members))))
    before = sum(rows[c].length for c in members)
    after = sum(record_length(e.params, e.payload) for e in encoded)
    # a chain may become a star that takes a little more space; a star (a repack's
    # first pass codes new deltas against standalone chunks) moves to its medoid only
    # to save space, so that repacking again finds nothing to do. Small chunks (a
    # bias, a norm's weights), whose chains cost a load more in per-chunk overhead
    # than in bytes, may take STAR_ALLOWANCE more, within a tenth of their bytes.
    extra = min(STAR_ALLOWANCE, before // 10) if len(m_data) <= SMALL_CHUNK else 0
    limit = (1 - MIN_GAIN) * before if flat else (1 + slack) * before + extra
    if after > limit:
        return None
    try:
        # the centre first: the members' rows take their depth from its pending row
        new = [store.put(datas[centre], encoded[centre], m_id)] if centre >= 0 else []
        new += [store.put(datas[i], e, members[i]) for i, e in enumerate(encoded)
                if i != centre]  # fmt: skip
        store.sync()
        links.publish(engine, new, moved)
    except BaseException:
        store.abandon()
        raise
    store.published()
    report.stars += 1
    report.ids.update(r.id for r in new)
    report.bytes_before += before
    report.bytes_after += sum(r.length for r in new)
    return m_id


def star_pass(
    engine: VersionStore,
    links: Links,
    dtypes: dict[bytes, DType],
    count: Callable[[int], None] | None = None,
    slack: float = STAR_SLACK,
) -> StarReport:
    """Re-code every group of single-base delta chunks that holds a delta as a star
    around its medoid where that costs at most ``slack`` (a share) more bytes (a group
    that is a star already: only where its medoid saves ``MIN_GAIN``). ``links``: every
    chunk row (``Links.load``; kept current); ``dtypes``: each chunk's dtype;
    ``count(n)``: called with the decoded bytes of each slice looked at (progress). Call
    with the repository lock held exclusively."""
    report = StarReport()
    rows = links.rows
    for slices in _groups(rows, links.owner, dtypes):
        centre = None  # the last slice's: a later slice may take it as its own
        for members in slices:
            report.groups += 1
            group = [rows[c] for c in members]
            dtype = dtypes.get(members[0])
            if (
                len(members) < 3
                or max(r.depth for r in group) < 1
                or any(r.lossy for r in group)
                or dtype is None
                or any(dtypes.get(c) != dtype for c in members)
                or len({r.raw_length for r in group}) != 1
                or group[0].raw_length % dtype.size
            ):
                continue
            centre = _try_star(engine, members, links, dtype, report, centre, slack) or centre
        if count is not None:
            count(sum(rows[c].raw_length for part in slices for c in part))
    return report
