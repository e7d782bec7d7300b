"""Repository maintenance: storage statistics, consistency checks and garbage collection.

Each function works on a catalog and its chunk store; ``gc`` must be called with the
repository lock held exclusively (``Backend.lock``).
"""

from __future__ import annotations

import errno
from contextlib import suppress
from dataclasses import dataclass, field

from ..catalog import Catalog
from ..catalog.records import TENSOR_COLUMNS, TensorRow, split_ids
from ..errors import CorruptObject, ModelgitError
from ..progress import Counter, ProgressFn
from ..units import human_bytes
from .packs import PACK_HEADER, Record
from .reader import verify_row
from .store import ChunkStore

MERGE_BELOW = 64 << 20  # gc merges packs smaller than this (when there are two or more)

__all__ = ["ModelStats", "RepoStats", "FsckReport", "GcReport", "stats", "fsck", "gc"]


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
            f"{'total':<32} {'':>8} {human_bytes(self.logical_bytes):>12} "
            f"{human_bytes(self.stored_bytes):>12} "
            f"{_ratio(self.logical_bytes, self.stored_bytes):>7}"
        )
        return "\n".join(lines)


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}x" if b else "-"


def stats(db: Catalog, store: ChunkStore) -> RepoStats:
    chunk_info = {
        r[0]: (r[1], r[2], r[3] is not None)
        for r in db.query("SELECT id, length, raw_length, base FROM chunks")
    }
    seen: set[bytes] = set()
    per: dict[str, ModelStats] = {}
    model_order = [r[0] for r in db.query("SELECT name FROM models ORDER BY created, name")]
    for name in model_order:
        per[name] = ModelStats(name, 0, 0, 0, 0, 0, False)
    versions = db.query("SELECT id, model, logical_bytes, lossy FROM versions ORDER BY id")
    for vid, model, logical, lossy in versions:
        m = per[model]
        m.versions += 1
        m.logical_bytes += logical
        m.lossy = m.lossy or bool(lossy)
        for (chunks,) in db.query(
            "SELECT chunks FROM tensors WHERE version = ? AND tie IS NULL", (vid,)
        ):
            for i in range(0, len(chunks), 16):
                cid = chunks[i : i + 16]
                length, raw, is_delta = chunk_info.get(cid, (0, 0, False))
                if cid in seen:
                    m.dedup_bytes += raw
                    continue
                seen.add(cid)
                m.stored_bytes += length
                if is_delta:
                    m.delta_bytes += raw
    # delta bases that no version lists directly are still stored
    stored = sum(length for length, _, _ in chunk_info.values())
    pack_bytes = sum(store.objects.list().values())
    return RepoStats(
        models=[per[n] for n in model_order],
        logical_bytes=sum(m.logical_bytes for m in per.values()),
        stored_bytes=stored,
        pack_bytes=pack_bytes,
        chunks=len(chunk_info),
    )


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
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])

    def to_json(self) -> dict:
        return dict(self.__dict__)


def fsck(
    db: Catalog, store: ChunkStore, full: bool = True, progress: ProgressFn | None = None
) -> FsckReport:
    problems: list[str] = []
    problems.extend(db.integrity_problems())
    chunk_rows = {r[0]: r for r in db.query("SELECT id, pack, offset, length, base FROM chunks")}
    objects = store.objects
    pack_sizes = objects.list()
    pack_names = set(pack_sizes)
    for pack in sorted({r[1] for r in chunk_rows.values()}):
        if pack not in pack_names:
            problems.append(f"pack {pack} is referenced by the catalog but missing")
            continue
        try:
            objects.check_header(pack)
        except CorruptObject as exc:
            problems.append(str(exc))
    for cid, (_, _, _, _, base) in chunk_rows.items():
        for b in split_ids(base):
            if b not in chunk_rows:
                problems.append(f"chunk {cid.hex()}: its delta base {b.hex()} is missing")
    versions = db.query("SELECT id, model, number FROM versions ORDER BY id")
    referenced: set[bytes] = set()
    for vid, model, number in versions:
        for r in db.query(f"SELECT {TENSOR_COLUMNS} FROM tensors WHERE version = ?", (vid,)):
            row = TensorRow.from_db(r)
            try:
                verify_row(row)
            except CorruptObject as exc:
                problems.append(f"{model}@{number}: {exc}")
                continue
            for cid in row.chunk_ids:
                referenced.add(cid)
                if cid not in chunk_rows:
                    problems.append(
                        f"{model}@{number}: tensor {row.name!r} needs missing chunk {cid.hex()}"
                    )
    checked = 0
    if full:
        count = Counter(progress, len(chunk_rows))
        for cid in chunk_rows:
            count(1)
            row = store.row(cid)
            if row is None:
                continue
            try:
                store.get_into(row, memoryview(bytearray(row.raw_length)))
            except ModelgitError as exc:
                problems.append(str(exc))
            checked += 1
    live_by_pack: dict[str, int] = {}
    for _, pack, _, length, _ in chunk_rows.values():
        live_by_pack[pack] = live_by_pack.get(pack, 0) + length
    garbage = 0
    for name in pack_names:
        size = pack_sizes[name]
        garbage += max(0, size - PACK_HEADER.size - live_by_pack.get(name, 0))
    garbage += sum(chunk_rows[c][3] for c in set(chunk_rows) - _closure(referenced, chunk_rows))
    return FsckReport(not problems, problems, checked, len(versions), garbage)


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
