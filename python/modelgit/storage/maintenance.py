"""Repository maintenance: storage statistics, consistency checks and garbage collection.

Each function works on a catalog and its chunk store; ``gc`` must be called with the
repository lock held exclusively (``Backend.lock``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from ..catalog import Catalog, checks
from ..catalog.records import TENSOR_COLUMNS, TensorRow, split_ids
from ..errors import CorruptObject, ModelgitError
from ..progress import Counter, ProgressFn
from ..units import human_bytes
from .packs import PACK_HEADER, Record
from .reader import verify_row
from .store import ChunkStore

MERGE_BELOW = 64 << 20  # gc merges packs smaller than this (when there are two or more)
MAX_CHUNK_BYTES = 1 << 31  # no chunk decodes to more (fsck allocates none larger)

__all__ = [
    "ModelStats",
    "RepoStats",
    "VersionStats",
    "FsckReport",
    "GcReport",
    "stats",
    "version_stats",
    "fsck",
    "gc",
]


@dataclass
class ModelStats:
    name: str
    versions: int
    logical_bytes: int  # sum over versions of their tensors' sizes
    stored_bytes: int  # bytes of the chunk records this model introduced
    dedup_bytes: int  # logical bytes served by chunks another version introduced
    delta_bytes: int  # logical bytes of chunks it introduced as deltas
    lossy: bool

    @property
    def ratio(self) -> float:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else float("inf")

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["ratio"] = self.ratio if self.stored_bytes else None
        return d


@dataclass
class RepoStats:
    models: list[ModelStats]
    logical_bytes: int
    stored_bytes: int  # bytes of live chunk records
    pack_bytes: int  # bytes of pack files on disk (includes garbage until gc)
    chunks: int

    @property
    def ratio(self) -> float:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else float("inf")

    def to_json(self) -> dict:
        return {
            "logical_bytes": self.logical_bytes,
            "stored_bytes": self.stored_bytes,
            "pack_bytes": self.pack_bytes,
            "chunks": self.chunks,
            "ratio": self.ratio if self.stored_bytes else None,
            "models": [m.to_json() for m in self.models],
        }

    def __str__(self) -> str:
        lines = [f"{'model':<32} {'versions':>8} {'logical':>12} {'stored':>12} {'ratio':>7}"]
        for m in self.models:
            lines.append(
                f"{m.name:<32} {m.versions:>8} {human_bytes(m.logical_bytes):>12} "
                f"{human_bytes(m.stored_bytes):>12} {_ratio(m.logical_bytes, m.stored_bytes):>7}"
            )
        lines.append(
            f"{'total':<32} {sum(m.versions for m in self.models):>8} "
            f"{human_bytes(self.logical_bytes):>12} "
            f"{human_bytes(self.stored_bytes):>12} "
            f"{_ratio(self.logical_bytes, self.stored_bytes):>7}"
        )
        return "\n".join(lines)


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}x" if b else "-"


@dataclass
class VersionStats:
    """Where one version's bytes are: the chunk records it introduced (it was the first
    version to list them), the bytes it shares with earlier versions, and how deep the
    delta chains under its chunks go (what a load of it decodes)."""

    model: str
    number: int
    logical_bytes: int  # its tensors' sizes
    stored_bytes: int  # bytes of the chunk records it introduced
    dedup_bytes: int  # logical bytes served by chunks an earlier version introduced
    delta_bytes: int  # logical bytes of the chunks it introduced as deltas
    chunks: int  # distinct chunks it lists
    max_depth: int  # the longest delta chain under its chunks (0: all standalone)
    lossy: bool

    def to_json(self) -> dict:
        return dict(self.__dict__)


def version_stats(db: Catalog) -> list[VersionStats]:
    """Storage of every version, oldest first (the order that decides who introduced a
    chunk: a chunk's bytes count for the first version that lists it)."""
    chunk_info = {
        r[0]: (r[1], r[2], r[3] is not None, r[4] or 0)
        for r in db.query("SELECT id, length, raw_length, base, depth FROM chunks")
    }
    seen: set[bytes] = set()
    out: list[VersionStats] = []
    rows = db.query("SELECT id, model, number, logical_bytes, lossy FROM versions ORDER BY id")
    for vid, model, number, logical, lossy in rows:
        v = VersionStats(model, number, logical, 0, 0, 0, 0, 0, bool(lossy))
        mine: set[bytes] = set()
        for (chunks,) in db.query(
            "SELECT chunks FROM tensors WHERE version = ? AND tie IS NULL", (vid,)
        ):
            for i in range(0, len(chunks), 16):
                cid = chunks[i : i + 16]
                length, raw, is_delta, depth = chunk_info.get(cid, (0, 0, False, 0))
                mine.add(cid)
                v.max_depth = max(v.max_depth, depth)
                if cid in seen:
                    v.dedup_bytes += raw
                    continue
                seen.add(cid)
                v.stored_bytes += length
                if is_delta:
                    v.delta_bytes += raw
        v.chunks = len(mine)
        out.append(v)
    return out


def stats(db: Catalog, store: ChunkStore, versions: list[VersionStats] | None = None) -> RepoStats:
    """Storage per model (the sums of :func:`version_stats`; pass them when already read)
    and of the whole repository."""
    per: dict[str, ModelStats] = {}
    model_order = [r[0] for r in db.query("SELECT name FROM models ORDER BY created, name")]
    for name in model_order:
        per[name] = ModelStats(name, 0, 0, 0, 0, 0, False)
    for v in version_stats(db) if versions is None else versions:
        m = per[v.model]
        m.versions += 1
        m.logical_bytes += v.logical_bytes
        m.lossy = m.lossy or v.lossy
        m.stored_bytes += v.stored_bytes
        m.dedup_bytes += v.dedup_bytes
        m.delta_bytes += v.delta_bytes
    # delta bases that no version lists directly are still stored
    stored, chunks = db.one("SELECT COALESCE(SUM(length), 0), COUNT(*) FROM chunks") or (0, 0)
    pack_bytes = sum(store.objects.list().values())
    return RepoStats(
        models=[per[n] for n in model_order],
        logical_bytes=sum(m.logical_bytes for m in per.values()),
        stored_bytes=stored,
        pack_bytes=pack_bytes,
        chunks=chunks,
    )


SHOWN_PROBLEMS = 50  # fsck's text lists this many problems; its JSON lists them all


@dataclass
class FsckReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    chunks_checked: int = 0
    versions_checked: int = 0
    garbage_bytes: int = 0  # reclaimable by gc (not a problem)

    def __str__(self) -> str:
        head = f"checked {self.versions_checked} versions and {self.chunks_checked} chunks: " + (
            "ok" if self.ok else f"{len(self.problems)} problem(s)"
        )
        lines = [head, *(f"  - {p}" for p in self.problems[:SHOWN_PROBLEMS])]
        if len(self.problems) > SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - SHOWN_PROBLEMS} more (--json lists all)")
        if self.garbage_bytes:
            lines.append(f"{human_bytes(self.garbage_bytes)} of garbage (bytes no version needs):"
                         " `modelgit gc` reclaims them")  # fmt: skip
        return "\n".join(lines)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def fsck(
    db: Catalog, store: ChunkStore, full: bool = True, progress: ProgressFn | None = None
) -> FsckReport:
    """Check the catalog (SQLite's own checks, every row against its digest, every
    tensor row against its chunks) and the packs; ``full`` decodes every chunk. The
    catalog is read in one snapshot, so a write that lands meanwhile is not mistaken
    for damage; a damaged value is reported as a problem, never raised."""
    problems: list[str] = []
    with db.snapshot():
        problems.extend(_guarded("catalog", db.integrity_problems))
        problems.extend(_guarded("row checks", lambda: checks.problems(db)))
        chunk_rows = {
            r[0]: r
            for r in db.query("SELECT id, pack, offset, length, base, raw_length FROM chunks")
        }
        versions = db.query("SELECT id, model, number FROM versions ORDER BY id")
        tensors = {
            vid: db.query(f"SELECT {TENSOR_COLUMNS} FROM tensors WHERE version = ?", (vid,))
            for vid, _, _ in versions
        }
        sizes = dict(store.objects.list())  # listed after the snapshot began: it has them all
    missing = {r[1] for r in chunk_rows.values()} - set(sizes)
    lost = _lost_chunks(chunk_rows, missing)
    for pack in sorted({r[1] for r in chunk_rows.values()}):
        if pack not in sizes:
            problems.append(_missing_pack_problem(pack, chunk_rows, lost, versions, tensors))
            continue
        try:
            store.objects.check_header(pack)
        except CorruptObject as exc:
            problems.append(str(exc))
    for cid, (_, pack, offset, length, base, raw_length) in chunk_rows.items():
        where = f"chunk {bytes(cid).hex()}"
        try:
            for b in split_ids(base):
                if b not in chunk_rows:
                    problems.append(f"{where}: its delta base {b.hex()} is missing")
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: its base list is damaged ({exc})")
        if not (isinstance(raw_length, int) and 0 <= raw_length <= MAX_CHUNK_BYTES):
            problems.append(f"{where}: decoded length {raw_length!r} is impossible")
        elif pack in missing:
            continue  # one line for the whole pack, above
        elif not (isinstance(offset, int) and isinstance(length, int) and offset >= 0
                  and length > 0 and pack in sizes and offset + length <= sizes[pack]):  # fmt: skip
            problems.append(f"{where}: record {pack}:{offset}+{length} lies outside its pack")
    referenced: set[bytes] = set()
    for vid, model, number in versions:
        for r in tensors[vid]:
            try:
                row = TensorRow.from_db(r)
                verify_row(row)
                ids = row.chunk_ids
            except (ModelgitError, ValueError, TypeError, ZeroDivisionError) as exc:
                problems.append(f"{model}@{number}: tensor row {r[0]!r} is damaged ({exc})")
                continue
            for i, cid in enumerate(ids):
                referenced.add(cid)
                if cid not in chunk_rows:
                    problems.append(
                        f"{model}@{number}: tensor {row.name!r} needs missing chunk {cid.hex()}"
                    )
                    continue
                want = min(row.nbytes, (i + 1) * row.chunk_bytes) - i * row.chunk_bytes
                if chunk_rows[cid][5] != want:  # what load checks before it decodes
                    problems.append(
                        f"{model}@{number}: tensor {row.name!r} chunk {i} holds "
                        f"{chunk_rows[cid][5]} bytes, its layout says {want}"
                    )
    checked = 0
    if full:
        count = Counter(progress, len(chunk_rows))
        for cid, r in chunk_rows.items():
            count(1)
            raw_length = r[5]
            if not (isinstance(raw_length, int) and 0 <= raw_length <= MAX_CHUNK_BYTES):
                continue  # reported above
            if cid in lost:
                continue  # in (or coded against a chunk in) a missing pack: reported above
            try:
                row = store.row(cid)
                if row is None:
                    continue
                store.get_into(row, memoryview(bytearray(row.raw_length)))
            except ModelgitError as exc:
                problems.append(str(exc))
            except (ValueError, TypeError, OverflowError, MemoryError) as exc:
                problems.append(f"chunk {bytes(cid).hex()}: cannot be decoded ({exc!r})")
            checked += 1
    live_by_pack: dict[str, int] = {}
    for _, pack, _, length, _, _ in chunk_rows.values():
        if isinstance(length, int):
            live_by_pack[pack] = live_by_pack.get(pack, 0) + length
    garbage = 0
    for name, size in sizes.items():
        garbage += max(0, size - PACK_HEADER.size - live_by_pack.get(name, 0))
    try:
        unreachable = set(chunk_rows) - _closure(referenced, chunk_rows)
        garbage += sum(chunk_rows[c][3] for c in unreachable if isinstance(chunk_rows[c][3], int))
    except (TypeError, ValueError):
        pass  # a damaged base list, reported above
    return FsckReport(not problems, problems, checked, len(versions), garbage)


def _lost_chunks(chunk_rows: dict, missing: set[str]) -> set[bytes]:
    """The chunks in the ``missing`` packs, and those coded against them, transitively."""
    lost = {cid for cid, r in chunk_rows.items() if r[1] in missing}
    grew = bool(lost)
    while grew:
        grew = False
        for cid, r in chunk_rows.items():
            if cid in lost:
                continue
            try:
                if any(b in lost for b in split_ids(r[4])):
                    lost.add(cid)
                    grew = True
            except (TypeError, ValueError):
                continue  # a damaged base list: reported on its own
    return lost


def _missing_pack_problem(
    pack: str, chunk_rows: dict, lost: set[bytes], versions: list, tensors: dict
) -> str:
    """One line for a missing pack: its chunks, and the versions that cannot be read."""
    own = sum(1 for r in chunk_rows.values() if r[1] == pack)
    hit = []
    for vid, model, number in versions:
        try:
            needs = {c for r in tensors[vid] for c in TensorRow.from_db(r).chunk_ids}
        except (ModelgitError, ValueError, TypeError, ZeroDivisionError):
            continue  # a damaged tensor row: reported on its own
        if needs & lost:
            hit.append(f"{model}@{number}")
    shown = ", ".join(hit[:8]) + (f" and {len(hit) - 8} more" if len(hit) > 8 else "")
    return f"pack {pack} is referenced by the catalog but missing: {own} chunk(s) in it; " + (
        f"{len(hit)} version(s) cannot be read ({shown})" if hit else "no version needs it"
    )


def _guarded(what: str, fn: Callable[[], list[str]]) -> list[str]:
    """A check's problems; one that cannot run at all is a problem itself."""
    try:
        return fn()
    except ModelgitError as exc:
        return [f"{what}: {exc}"]


def _closure(ids: set[bytes], chunk_rows: dict[bytes, tuple]) -> set[bytes]:
    """Chunks reachable from ``ids`` through delta bases."""
    live = set()
    stack = list(ids)
    while stack:
        cid = stack.pop()
        if cid in live or cid not in chunk_rows:
            continue
        live.add(cid)
        stack.extend(split_ids(chunk_rows[cid][4]))
    return live


@dataclass
class GcReport:
    chunks_removed: int
    packs_rewritten: int
    packs_deleted: int
    bytes_freed: int

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return (
            f"removed {self.chunks_removed} unreachable chunks, rewrote {self.packs_rewritten} "
            f"and deleted {self.packs_deleted} packs, freed {human_bytes(self.bytes_freed)}"
        )


def gc(db: Catalog, store: ChunkStore, progress: ProgressFn | None = None) -> GcReport:
    """Drop unreachable chunks, delete packs that hold nothing live, compact packs that
    hold garbage, then merge packs smaller than MERGE_BELOW into larger ones (each CLI
    write starts a pack of its own). Each step frees space before the next needs it; a
    merge that runs out of disk space is given up (nothing is lost: it was optional).
    Call with the repository lock held."""
    store.close()  # our own writer must not append to a pack we may rewrite
    chunk_rows = {r[0]: r for r in db.query("SELECT id, pack, offset, length, base FROM chunks")}
    referenced: set[bytes] = set()
    for (chunks,) in db.query("SELECT chunks FROM tensors"):
        referenced.update(chunks[i : i + 16] for i in range(0, len(chunks), 16))
    live = _closure(referenced, chunk_rows)
    dead = [cid for cid in chunk_rows if cid not in live]
    with db.transaction() as tx:
        tx.executemany("DELETE FROM chunks WHERE id = ?", [(c,) for c in dead])
    objects = store.objects
    sizes = objects.list()
    before = sum(sizes.values())
    live_by_pack: dict[str, list[tuple]] = {}
    for cid in live:
        live_by_pack.setdefault(chunk_rows[cid][1], []).append(chunk_rows[cid])
    empty = [p for p in sorted(sizes) if p not in live_by_pack]
    for old in empty:  # no row names them: nothing to copy
        objects.delete(old)
    objects.sync_folder()
    holey = [
        p
        for p in sorted(live_by_pack)
        if p in sizes and sizes[p] - PACK_HEADER.size != sum(r[3] for r in live_by_pack[p])
    ]
    count = Counter(progress, sum(r[3] for p in holey for r in live_by_pack[p]))
    _rewrite(db, store, {p: live_by_pack[p] for p in holey}, count)
    merged = _merge_small(db, store, progress)
    after = sum(objects.list().values())
    return GcReport(len(dead), len(holey) + merged, len(empty), max(0, before - after))


def _rewrite(db: Catalog, store: ChunkStore, packs: dict[str, list[tuple]], count: Counter) -> None:
    """Copy the live records of ``packs`` (name -> chunk rows) into new packs, repoint
    their rows in one transaction, then delete the old packs."""
    if not packs:
        return
    objects = store.objects
    writer = objects.writer()
    moves: list[tuple[str, int, bytes]] = []
    try:
        for rows in packs.values():
            for cid, pack, offset, length, _ in sorted(rows, key=lambda r: r[2]):
                rec = store.reader.read(pack, offset, length)
                name, new_off, _ = writer.append(
                    Record(rec.codec, rec.chunk_id, rec.raw_length, rec.params, rec.payload)
                )
                moves.append((name, new_off, cid))
                count(length)
        writer.close()
    except BaseException:
        with suppress(OSError):
            writer.close()
        for name in {m[0] for m in moves}:  # no row names them yet
            with suppress(OSError):
                objects.delete(name)
        raise
    objects.publish({m[0] for m in moves})  # durable before the catalog names them
    with db.transaction() as tx:
        tx.executemany("UPDATE chunks SET pack = ?, offset = ? WHERE id = ?", moves)
    store.reader.close()
    for old in packs:
        objects.delete(old)
    objects.sync_folder()


def _merge_small(db: Catalog, store: ChunkStore, progress: ProgressFn | None) -> int:
    """Merge the packs under MERGE_BELOW (when there are two or more); how many were
    merged (0 when the disk had no room for the copy)."""
    sizes = store.objects.list()
    small = [p for p in sorted(sizes) if sizes[p] < MERGE_BELOW]
    if len(small) < 2:
        return 0
    marks = ",".join("?" * len(small))
    rows: dict[str, list[tuple]] = {p: [] for p in small}
    for r in db.query(
        f"SELECT id, pack, offset, length, base FROM chunks WHERE pack IN ({marks})",
        tuple(small),
    ):
        rows[r[1]].append(r)
    try:
        _rewrite(db, store, rows, Counter(progress, sum(sizes[p] for p in small)))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return 0
    return len(small)
