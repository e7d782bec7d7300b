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
slices of at most ``STAR_MAX`` members in the order the
versions were written (each slice its own star). A group holding a lossy chunk, or
none deeper than 1, is left as it is.

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

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .. import _core, codec
from ..catalog.records import CHUNK_COLUMNS, ChunkRow, update_chunks
from ..dtypes import DType
from ..storage.policy import _strided
from ..storage.similarity import replace_storage_bases

if TYPE_CHECKING:
    from ..storage.store import ChunkStore
    from .engine import VersionStore

__all__ = ["StarReport", "star_pass", "STAR_MAX", "STAR_SLACK"]

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
    rewritten: int = 0
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
) -> list[list[bytes]]:
    """Slices of the connected components of the single-base delta relation within a
    dtype (byte-planes deltas, and predicted records of one base of the same dtype and
    length: a scaled parent, a masked one), members in the order their versions were
    written, at most ``STAR_MAX`` each."""
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
        out += [members[i : i + size] for i in range(0, n, size)]
    return out


def _medoid(samples: list, dtype: DType) -> int:
    """The member the others are cheapest to code against, with its own standalone
    cost, priced on the members' samples (``_core.residual_bits``, ``plane_entropy``)."""
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
    return best


def _dependents(engine: VersionStore) -> dict[bytes, list[tuple[bytes, list[bytes]]]]:
    """base chunk -> (chunk, its bases) of every chunk coded against it."""
    out: dict[bytes, list[tuple[bytes, list[bytes]]]] = {}
    for cid, base in engine.catalog.query("SELECT id, base FROM chunks WHERE base IS NOT NULL"):
        bases = [bytes(base[i : i + 16]) for i in range(0, len(base), 16)]
        for b in bases:
            out.setdefault(b, []).append((bytes(cid), bases))
    return out


def _moved_depths(
    changed: dict[bytes, int],
    deps: dict[bytes, list[tuple[bytes, list[bytes]]]],
    rows: dict[bytes, ChunkRow],
) -> dict[bytes, int]:
    """The new recorded depth of every chunk coded (transitively) against the members
    in ``changed`` (member -> its new depth) whose depth moves; ``rows``: every chunk's
    row now. (Members of other groups are never reached: a chunk
    coded against a member by a byte-planes delta is a member itself.)"""

    def depth_of(c: bytes) -> int:
        r = rows.get(c)
        return 0 if r is None else r.depth

    now = dict(changed)
    todo = list(changed)
    out: dict[bytes, int] = {}
    while todo:
        cid = todo.pop()
        for child, bases in deps.get(cid, ()):
            if child in changed:
                continue
            d = 1 + max(now[b] if b in now else depth_of(b) for b in bases)
            if d != (now[child] if child in now else depth_of(child)):
                now[child] = out[child] = d
                todo.append(child)
    return out


def _try_star(
    engine: VersionStore,
    members: list[bytes],
    rows: dict[bytes, ChunkRow],
    dtype: DType,
    deps: dict[bytes, list[tuple[bytes, list[bytes]]]],
    owner: dict[bytes, int],
    owned: dict[int, list[bytes]],
    report: StarReport,
) -> None:
    store: ChunkStore = engine.store
    datas = [memoryview(store.get(c)) for c in members]
    n = len(datas[0]) // dtype.size
    centre = _medoid([_strided(d, dtype.size, n) for d in datas], dtype)
    m_id, m_data = members[centre], datas[centre]
    flat = max(rows[c].depth for c in members) <= 1
    if flat and all(rows[c].bases == [m_id] for c in members if c != m_id):
        return  # a star around its medoid already
    moved = _moved_depths({c: int(c != m_id) for c in members}, deps, rows)
    if any(d > max(rows[c].depth, engine.max_depth) for c, d in moved.items()):
        return  # a cast or merge below the group would get too deep
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
    after = sum(_record_length(e) for e in encoded)
    # a chain may become a star that takes a little more space; a star (a repack's
    # first pass codes new deltas against standalone chunks) moves to its medoid only
    # to save space, so that repacking again finds nothing to do
    # (plus STAR_ALLOWANCE for small chunks, a bias or a norm's weights, whose chain
    # costs a load more in per-chunk overhead than in bytes)
    extra = STAR_ALLOWANCE if len(m_data) <= SMALL_CHUNK else 0
    limit = (1 - MIN_GAIN) * before if flat else (1 + STAR_SLACK) * before + extra
    if after > limit:
        return
    try:
        # the centre first: the members' rows take their depth from its pending row
        new = [store.put(datas[centre], encoded[centre], m_id)]
        new += [store.put(datas[i], e, members[i]) for i, e in enumerate(encoded)
                if i != centre]  # fmt: skip
        store.sync()
        now = {**rows, **{r.id: r for r in new}}
        with engine.catalog.transaction() as db:
            update_chunks(db, new)
            db.executemany(
                "UPDATE chunks SET depth = ? WHERE id = ?", [(d, c) for c, d in moved.items()]
            )
            for vid in sorted({owner[c] for c in members if c in owner}):
                bases = {owner.get(b, vid) for c in owned[vid] for b in now[c].bases}
                replace_storage_bases(db, vid, bases)
    except BaseException:
        store.abandon()
        raise
    store.published()
    for r in new:
        rows[r.id] = r
    for c, d in moved.items():
        if c in rows:
            rows[c] = replace(rows[c], depth=d)
    report.stars += 1
    report.rewritten += len(new)
    report.bytes_before += before
    report.bytes_after += sum(r.length for r in new)


def _record_length(enc: codec.Encoded) -> int:
    from ..storage.packs import CHECKSUM, RECORD_HEADER

    return RECORD_HEADER.size + len(enc.params) + len(enc.payload) + CHECKSUM.size


def star_pass(
    engine: VersionStore, dtypes: dict[bytes, DType], owner: dict[bytes, int]
) -> StarReport:
    """Re-code every group of byte-planes delta chunks that is deeper than 1 as a star
    around its medoid where that costs at most ``STAR_SLACK`` more bytes. ``dtypes``:
    each chunk's dtype; ``owner``: the version that introduced each chunk (the first
    that holds it). Call with the repository lock held exclusively."""
    report = StarReport()
    order = owner
    rows = {
        bytes(r[0]): ChunkRow.from_db(r)
        for r in engine.catalog.query(f"SELECT {CHUNK_COLUMNS} FROM chunks")
    }
    deps = _dependents(engine)
    owned: dict[int, list[bytes]] = {}
    for cid, vid in order.items():
        if cid in rows:
            owned.setdefault(vid, []).append(cid)
    for members in _groups(rows, order, dtypes):
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
        _try_star(engine, members, rows, dtype, deps, order, owned, report)
    return report
