"""Transfer between repositories: the machinery of ``push`` and ``pull``.

A transfer copies from a *source* repository into a *receiver* everything the receiver
lacks: versions (matched by their global ``uid``), with their tensor rows, side files,
parent links, models, provenance edges and tags, and the chunk records they need
(delta bases included, transitively). Chunk records are copied verbatim (checksums and
all) into a new pack of the receiver, which is fsynced; then ONE catalog transaction
on the receiver publishes the rows. A crash before that commit leaves only unnamed
records in a pack (garbage, reclaimed by ``gc``); after it, everything is there.

Version numbers travel: a version keeps, in every repository, the number it was made
with, and no transfer ever changes what ``name@N`` means in a repository that has it.
Per model present on both sides:

- the receiver has every version of the source: nothing to do;
- the receiver's versions are all in the source, its own or fetched there (it is
  behind): *fast-forward*. Each missing version takes its own number; one whose number
  names another version here (a diverged line that the source has merged) is fetched
  aside instead (below);
- both sides have versions the other lacks: *diverged*. The receiver's history is left
  untouched; the source's versions it lacks are *fetched*: stored aside as versions of
  the same model, never the latest, reachable by id and as ``name@fetched:N`` (N: their
  number where they were made). ``repo.merge(name)`` then merges the fetched head into
  a new version numbered above every number the model has here, fetched ones included;
  the fetched versions stay reachable as they were.

(``catalog.schema.REMOTE_TABLE``, created on first use).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..catalog import checks
from ..catalog.records import (
    VERSION_COLUMNS,
    ChunkRow,
    TensorRow,
    VersionRow,
    chain_depths,
    insert_chunks,
    insert_files,
    insert_parent_link,
    insert_tensors,
    insert_version,
    tensor_rows,
)
from ..catalog.schema import ensure_remote_table, has_table
from ..errors import DivergedHistory, LineageError, ModelgitError
from ..lineage.graph import LineageGraph, check_no_cycle
from ..storage.packs import Record
from ..storage.similarity import TensorSketch, insert_sketches, sketches_of, storage_bases_of
from ..units import human_bytes

if TYPE_CHECKING:
    import sqlite3

    from ..versions import VersionStore

__all__ = ["TransferReport", "DivergedModel", "transfer"]

# Called after the copied records are durable and before the catalog transaction (tests
# use it to kill the process at the worst moment).
_before_commit: Callable[[], None] | None = None


@dataclass
class DivergedModel:
    """A model both sides changed: ours is untouched, theirs are fetched for a merge."""

    name: str
    ours: str  # ref of the receiver's latest version
    theirs: str  # uid of the source's latest version
    fetched: list[str] = field(default_factory=list)  # uids of their versions kept aside

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TransferReport:
    """What a push or pull moved."""

    source: str
    destination: str
    chunks: int = 0
    bytes: int = 0  # bytes of chunk records copied
    models_added: list[str] = field(default_factory=list)
    versions_added: list[str] = field(default_factory=list)  # refs in the receiver
    versions_fetched: list[str] = field(default_factory=list)  # diverged, kept aside there
    fast_forwarded: list[str] = field(default_factory=list)
    diverged: list[DivergedModel] = field(default_factory=list)
    tags_added: list[str] = field(default_factory=list)
    tags_skipped: list[str] = field(default_factory=list)  # name taken there
    edges_skipped: list[str] = field(default_factory=list)  # would close a cycle

    @property
    def up_to_date(self) -> bool:
        return not (self.versions_added or self.diverged or self.tags_added or self.chunks)

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["diverged"] = [m.to_json() for m in self.diverged]
        d["up_to_date"] = self.up_to_date
        return d

    def __str__(self) -> str:
        if self.up_to_date:
            return f"{self.destination} is up to date with {self.source}"
        aside = len(self.versions_fetched)  # stored by this transfer, not their latest
        lines = [
            f"{self.source} -> {self.destination}: {len(self.versions_added)} version(s)"
            + (f" and {aside} fetched aside" if aside else "")
            + f", {len(self.models_added)} new model(s), {self.chunks} chunk(s), "
            f"{human_bytes(self.bytes)}"
        ]
        if self.models_added:
            lines.append(f"  new models: {', '.join(self.models_added)}")
        if self.fast_forwarded:
            lines.append(f"  fast-forwarded: {', '.join(self.fast_forwarded)}")
        for d in self.diverged:
            lines.append(
                f"  diverged: {d.name} (ours {d.ours}, theirs {d.theirs}); "
                f"merge with: modelgit merge {d.name} {d.theirs} --strategy ..."
            )
        if self.tags_added:
            lines.append(f"  tags: {', '.join(self.tags_added)}")
        if self.tags_skipped:
            lines.append(f"  tags not moved (name taken): {', '.join(self.tags_skipped)}")
        if self.edges_skipped:
            lines.append(f"  edges not recorded (cycle): {', '.join(self.edges_skipped)}")
        return "\n".join(lines)


# -- the source's side ---------------------------------------------------------------
@dataclass
class _Source:
    path: str
    versions: dict[int, VersionRow]  # by id
    by_uid: dict[str, int]
    parents: dict[int, list[tuple[int, str, str, int]]]  # id -> (parent id, kind, rel, pos)
    models: dict[str, tuple[float, str]]  # name -> (created, metadata)
    model_order: list[str]
    edges: list[tuple[str, str, str]]
    tags: list[tuple[str, int]]
    fetched_numbers: dict[int, int] = field(default_factory=dict)  # id -> number where made

    def origin_number(self, vid: int) -> int:
        """The number version ``vid`` has where it was made (it travels with it)."""
        row = self.versions[vid]
        return row.number if row.number >= 1 else self.fetched_numbers.get(vid, row.number)


def _snapshot(src: VersionStore) -> _Source:
    db = src.catalog.connection()
    db.execute("BEGIN")
    try:
        rows = [
            VersionRow.from_db(r)
            for r in db.execute(f"SELECT {VERSION_COLUMNS} FROM versions v ORDER BY model, number")
        ]
        parents: dict[int, list[tuple[int, str, str, int]]] = {}
        for v, p, kind, rel, pos in db.execute(
            "SELECT version, parent, kind, relation, position FROM version_parents "
            "ORDER BY version, position"
        ):
            parents.setdefault(v, []).append((p, kind, rel, pos))
        models = db.execute("SELECT name, created, metadata FROM models ORDER BY created, name")
        model_rows = models.fetchall()
        edges = db.execute("SELECT parent, child, relation FROM edges ORDER BY rowid").fetchall()
        tags = db.execute("SELECT name, version FROM tags ORDER BY name").fetchall()
        has_remote = has_table(db, "remote_versions")
        fetched_numbers = dict(
            db.execute("SELECT version, remote_number FROM remote_versions").fetchall()
            if has_remote
            else []
        )
    finally:
        db.execute("COMMIT")
    return _Source(
        path=src.location,
        versions={r.id: r for r in rows},
        by_uid={r.uid: r.id for r in rows},
        parents=parents,
        models={n: (c, m) for n, c, m in model_rows},
        model_order=[n for n, _, _ in model_rows],
        edges=edges,
        tags=tags,
        fetched_numbers=fetched_numbers,
    )


# -- planning ------------------------------------------------------------------------
@dataclass
class _Plan:
    inserts: list[tuple[int, int]] = field(default_factory=list)  # (source id, number)
    stages: list[int] = field(default_factory=list)  # source ids fetched aside
    # versions the receiver held aside that join its history under their own number
    renumber: list[tuple[int, int]] = field(default_factory=list)  # (receiver id, number)
    new_models: list[str] = field(default_factory=list)
    fast_forwarded: list[str] = field(default_factory=list)
    diverged: list[DivergedModel] = field(default_factory=list)

    @property
    def source_ids(self) -> list[int]:
        return [s for s, _ in self.inserts] + self.stages


def _plan(s: _Source, db: sqlite3.Connection) -> _Plan:
    have = {
        uid: (vid, model, number)
        for vid, uid, model, number in db.execute("SELECT id, uid, model, number FROM versions")
    }
    dst_models = {r[0] for r in db.execute("SELECT name FROM models")}
    plan = _Plan()
    chains: dict[str, list[VersionRow]] = {}
    for row in s.versions.values():
        if row.number >= 1:
            chains.setdefault(row.model, []).append(row)
    for model in s.model_order:
        chain = sorted(chains.get(model, []), key=lambda r: r.number)
        if not chain:
            continue
        if model not in dst_models:
            plan.new_models.append(model)
            plan.inserts.extend((r.id, r.number) for r in chain)
            continue
        ours = [(n, uid) for uid, (_, m, n) in have.items() if m == model and n >= 1]
        # theirs that we lack in this model's history (absent, or only fetched aside)
        fetched_here = {u for u, (_, m, n) in have.items() if m == model and n < 1}
        missing = [r for r in chain if r.uid not in have or r.uid in fetched_here]
        if not missing:
            continue
        # every version the source has of the model, those it only fetched included
        src_uids = {r.uid for r in s.versions.values() if r.model == model}
        ahead = [uid for _, uid in ours if uid not in src_uids]
        if not ahead:  # the receiver is behind: fast-forward
            # a version keeps the number it was made with; where that number already
            # names another version here (a diverged line merged since), it is fetched
            # aside instead: name@N never changes meaning in a repository
            taken = {n: uid for n, uid in ours}
            for r in missing:
                if r.number not in taken:
                    if r.uid in have:
                        plan.renumber.append((have[r.uid][0], r.number))
                    else:
                        plan.inserts.append((r.id, r.number))
                    taken[r.number] = r.uid
                elif r.uid not in have:
                    plan.stages.append(r.id)
            plan.fast_forwarded.append(model)
        else:  # both sides moved: keep theirs aside
            fetched = []
            for r in missing:
                fetched.append(r.uid)
                if r.uid not in have:
                    plan.stages.append(r.id)
            ref = f"{model}@{max(ours)[0]}"
            plan.diverged.append(DivergedModel(model, ref, chain[-1].uid, fetched))
    # parents the receiver lacks (e.g. versions the source itself only fetched)
    planned = {s.versions[i].uid for i in plan.source_ids}
    todo = list(plan.source_ids)
    while todo:
        vid = todo.pop()
        for pid, _, _, _ in s.parents.get(vid, []):
            uid = s.versions[pid].uid
            if uid in have or uid in planned:
                continue
            planned.add(uid)
            model = s.versions[pid].model
            if model not in dst_models and model not in plan.new_models:
                plan.new_models.append(model)
            plan.stages.append(pid)
            todo.append(pid)
    plan.stages = list(dict.fromkeys(plan.stages))
    return plan


def _staged_number(db: sqlite3.Connection, model: str, used: dict[str, int]) -> int:
    if model not in used:
        low = db.execute("SELECT MIN(number) FROM versions WHERE model = ?", (model,)).fetchone()[0]
        used[model] = min(1, low if low is not None else 1)
    used[model] -= 1
    return used[model]


# -- the transfer ----------------------------------------------------------------------
def _refuse_diverged(plan: _Plan, dst: VersionStore) -> None:
    names = ", ".join(f"{d.name} (there {d.ours}, here {d.theirs})" for d in plan.diverged)
    first = plan.diverged[0].name
    error = DivergedHistory(
        f"push refused, nothing was uploaded: {dst.location} has versions that this repository "
        f"lacks, so their histories diverged: {names}. Pull and merge first (modelgit pull "
        f"OTHER, then modelgit merge {first}), or push with --allow-diverged "
        "(allow_diverged=True) to send ours aside for a merge there"
    )
    error.diverged = list(plan.diverged)  # type: ignore[attr-defined]
    raise error


def transfer(src: VersionStore, dst: VersionStore, allow_diverged: bool = True) -> TransferReport:
    """Copy into ``dst`` what it lacks of ``src``; see the module docstring. With
    ``allow_diverged=False`` (push), a diverged model raises :class:`DivergedHistory`
    before anything is copied."""
    if _where(src) == _where(dst):
        raise ModelgitError("cannot push or pull a repository into itself")
    report = TransferReport(src.location, dst.location)
    with src.lock(exclusive=False, writes=False), dst.lock(exclusive=False):
        s = _snapshot(src)
        plan = _plan(s, dst.catalog.connection())
        if plan.diverged and not allow_diverged:
            _refuse_diverged(plan, dst)
        tensors = _tensor_rows(src, plan.source_ids)
        needed = _chunk_closure(src, tensors)
        present = set(dst.store.rows(list(needed)))
        missing = [c for c in needed if c not in present]
        copied = _copy_records(src, dst, missing, needed)
        report.chunks = len(copied)
        report.bytes = sum(r.length for r in copied)
        if _before_commit is not None:
            _before_commit()
        with dst.catalog.transaction() as db:
            ensure_remote_table(db)
            # the receiver may have changed meanwhile: plan again inside the transaction
            plan = _plan(s, db)
            if plan.diverged and not allow_diverged:
                _refuse_diverged(plan, dst)  # (the copied records are garbage for gc)
            tensors = _tensor_rows(src, plan.source_ids)
            files = _files(src, plan.source_ids)
            index = (
                sketches_of(src.catalog, plan.source_ids),
                storage_bases_of(src.catalog, plan.source_ids),
            )
            need_now = _chunk_closure(src, tensors)
            have_rows = {r.id for r in copied} | set(dst.store.rows(list(need_now)))
            if not need_now <= have_rows:
                raise ModelgitError(
                    f"{dst.location} changed during the transfer (chunks went away); run it again"
                )
            insert_chunks(db, copied)
            _publish(s, plan, tensors, files, index, db, report)
    report.fast_forwarded = plan.fast_forwarded
    report.diverged = plan.diverged
    report.models_added = plan.new_models
    return report


def _tensor_rows(src: VersionStore, ids: list[int]) -> dict[int, list[TensorRow]]:
    return {vid: tensor_rows(src.catalog, vid) for vid in ids}


def _files(src: VersionStore, ids: list[int]) -> dict[int, list[tuple[str, bytes]]]:
    return {
        vid: src.catalog.query(
            "SELECT path, data FROM files WHERE version = ? ORDER BY path", (vid,)
        )
        for vid in ids
    }


def _chunk_closure(src: VersionStore, tensors: dict[int, list[TensorRow]]) -> set[bytes]:
    ids: set[bytes] = set()
    for rows in tensors.values():
        for r in rows:
            if r.tie is None:
                ids.update(r.chunk_ids)
    todo = list(ids)
    while todo:
        rows = src.store.rows(todo[:5000])
        todo = todo[5000:]
        for row in rows.values():
            for b in row.bases:
                if b not in ids:
                    ids.add(b)
                    todo.append(b)
    return ids


def _copy_records(
    src: VersionStore, dst: VersionStore, missing: list[bytes], needed: set[bytes]
) -> list[ChunkRow]:
    if not missing:
        return []
    rows = src.store.rows(missing)
    lost = [c for c in missing if c not in rows]
    if lost:
        raise ModelgitError(
            f"{src.location} lacks chunk {lost[0].hex()} that its catalog names; run fsck there"
        )
    objects = dst.store.objects
    writer = objects.writer()
    out = []
    try:
        for cid in sorted(missing, key=lambda c: (rows[c].pack, rows[c].offset)):
            row, rec = src.store.read_record(rows[cid])  # checksum and header checked
            pack, offset, length = writer.append(
                Record(rec.codec, rec.chunk_id, rec.raw_length, rec.params, rec.payload)
            )
            out.append(
                ChunkRow(
                    cid, pack, offset, length, row.raw_length, row.codec, row.base, row.depth,
                    row.lossy,
                )
            )  # fmt: skip
        writer.sync()
    finally:
        writer.close()
    objects.publish({r.pack for r in out})  # durable in the store before the catalog names them
    return _with_local_depths(dst, out)


def _with_local_depths(dst: VersionStore, copied: list[ChunkRow]) -> list[ChunkRow]:
    """The copied rows with the depth their bases give them here: a base this
    repository holds already may be encoded otherwise than at the source (a repack
    there or here), so the source's recorded depth is not this repository's."""
    bases = {r.id: r.bases for r in copied}
    held = {b for r in copied for b in r.bases if b not in bases}
    depth = chain_depths(bases, {c: r.depth for c, r in dst.store.rows(list(held)).items()})
    return [replace(r, depth=depth[r.id]) for r in copied]


def _where(repo: VersionStore) -> str:
    return repo.location if repo.team is not None else str(repo.root.resolve())


def _publish(
    s: _Source,
    plan: _Plan,
    tensors: dict[int, list[TensorRow]],
    files: dict[int, list[tuple[str, bytes]]],
    index: tuple[dict[int, dict[str, TensorSketch]], dict[int, list[int]]],
    db: sqlite3.Connection,
    report: TransferReport,
) -> None:
    now = time.time()
    touched: list[int] = [vid for vid, _ in plan.renumber]
    new_edges: list[tuple[str, str]] = []
    new_tags: list[str] = []
    for name in plan.new_models:
        created, meta = s.models[name]
        db.execute(
            "INSERT INTO models(name, created, metadata) VALUES (?,?,?)", (name, created, meta)
        )
    for vid, number in plan.renumber:
        db.execute("UPDATE versions SET number = ? WHERE id = ?", (number, vid))
        db.execute("DELETE FROM remote_versions WHERE version = ?", (vid,))
        model = db.execute("SELECT model FROM versions WHERE id = ?", (vid,)).fetchone()[0]
        report.versions_added.append(f"{model}@{number}")
    new_ids: dict[int, int] = {}
    staged: dict[str, int] = {}
    todo = [(sid, number, False) for sid, number in plan.inserts]
    todo += [(sid, 0, True) for sid in plan.stages]
    for sid, number, stage in todo:
        row = s.versions[sid]
        if stage:
            number = _staged_number(db, row.model, staged)
        new_ids[sid] = insert_version(db, replace(row, number=number))
        if stage:
            db.execute(
                "INSERT INTO remote_versions(version, remote, remote_number, fetched)"
                " VALUES (?,?,?,?)",
                (new_ids[sid], s.path, s.origin_number(sid), now),
            )
            report.versions_fetched.append(f"{row.model}@fetched:{s.origin_number(sid)}")
        else:
            report.versions_added.append(f"{row.model}@{number}")
    local = {uid: vid for vid, uid in db.execute("SELECT id, uid FROM versions")}
    for sid, new in new_ids.items():
        for pid, kind, rel, pos in s.parents.get(sid, []):
            insert_parent_link(db, new, local[s.versions[pid].uid], kind, rel, pos)
        insert_tensors(db, new, tensors[sid])
    sketches, bases = index
    for sid, new in new_ids.items():
        insert_files(db, new, files.get(sid, []))
        if sketches.get(sid):  # the receiver's similarity index learns them too
            mapped = [local[s.versions[b].uid] for b in bases.get(sid, [])
                      if b in s.versions and s.versions[b].uid in local]  # fmt: skip
            insert_sketches(db, new, sketches[sid].values(), mapped)
    # provenance edges between models both sides now have
    models = {r[0] for r in db.execute("SELECT name FROM models")}
    graph = LineageGraph.from_rows(db)
    for parent, child, rel in s.edges:
        if parent not in models or child not in models or graph.edge(parent, child):
            continue
        try:
            check_no_cycle(graph, parent, child)
        except LineageError:
            report.edges_skipped.append(f"{parent} -> {child}")
            continue
        db.execute(
            "INSERT INTO edges(parent, child, relation) VALUES (?,?,?)", (parent, child, rel)
        )
        new_edges.append((parent, child))
        graph = LineageGraph.from_rows(db)
    # tags naming versions the receiver has
    for tag, sid in s.tags:
        uid = s.versions[sid].uid
        if uid not in local:
            continue
        old = db.execute("SELECT version FROM tags WHERE name = ?", (tag,)).fetchone()
        if old is not None:
            if old[0] != local[uid]:
                report.tags_skipped.append(tag)
            continue
        if tag in models:
            report.tags_skipped.append(tag)
            continue
        db.execute("INSERT INTO tags(name, version) VALUES (?,?)", (tag, local[uid]))
        new_tags.append(tag)
        report.tags_added.append(tag)
    checks.refresh(db, touched + list(new_ids.values()), new_tags, new_edges)
