"""Removing a model, and what its descendants keep of their ancestry.

A model with descendants (models with a provenance edge from it) is removed only with
``force``; the descendants then keep their ancestry:

* each child's edge from the removed model is re-linked to the removed model's own
  parents (the child's grandparents), with the child's relation; at the version level,
  each child version's link to a removed version goes to the nearest provenance parents
  of that version (following the removed model's version chain back);
* a child of a removed root (no parents to re-link to) keeps a *tombstone*;
* either way the child's model row records a note (``models.metadata``,
  ``removed_ancestors``: the removed model, the relation, the models it was re-linked
  to, and which of the child's versions were linked), which ``log``, ``ls`` and
  ``graph`` show ("via removed X", "from removed X").

Everything happens in one transaction, with the row checks of every changed version and
edge refreshed (``catalog.checks``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..catalog import checks
from ..errors import LineageError

if TYPE_CHECKING:
    from .engine import VersionStore

__all__ = [
    "remove_model",
    "descendants_of",
    "removed_ancestors",
    "relinked_parents",
    "forget_relink",
    "NOTE_KEY",
]

NOTE_KEY = "removed_ancestors"


def descendants_of(db: Any, name: str) -> list[str]:
    """The models with a provenance edge or link from model ``name`` (creation order)."""
    rows = db.execute(
        "SELECT m.name FROM models m WHERE m.name != ? AND (m.name IN"
        " (SELECT child FROM edges WHERE parent = ?) OR m.name IN (SELECT cv.model FROM"
        " version_parents vp JOIN versions cv ON cv.id = vp.version JOIN versions pv ON"
        " pv.id = vp.parent WHERE pv.model = ? AND vp.kind = 'provenance'))"
        " ORDER BY m.created, m.name",
        (name, name, name),
    ).fetchall()
    return [r[0] for r in rows]


def relinked_parents(notes: list[dict[str, Any]]) -> dict[str, str]:
    """The parents a forced removal re-linked a model to (from its ``removed_ancestors``
    notes): parent -> the removed model the link goes through (no derivation anyone
    recorded)."""
    return {p: n["model"] for n in notes for p in n.get("linked_to") or ()}


def forget_relink(db: Any, child: str, parent: str) -> None:
    """Drop ``parent`` from the re-links noted on ``child`` (its edge was removed)."""
    row = db.execute("SELECT metadata FROM models WHERE name = ?", (child,)).fetchone()
    if row is None or parent not in relinked_parents(removed_ancestors(row[0])):
        return
    meta = json.loads(row[0])
    for n in meta.get(NOTE_KEY, []):
        if isinstance(n, dict) and isinstance(n.get("linked_to"), list):
            n["linked_to"] = [p for p in n["linked_to"] if p != parent]
    db.execute(
        "UPDATE models SET metadata = ? WHERE name = ?", (json.dumps(meta, sort_keys=True), child)
    )


def removed_ancestors(metadata: str | None) -> list[dict[str, Any]]:
    """The notes a model's metadata keeps of removed ancestors (empty if none or unreadable)."""
    try:
        notes = json.loads(metadata or "{}").get(NOTE_KEY, [])
    except (ValueError, AttributeError):
        return []
    return [n for n in notes if isinstance(n, dict) and isinstance(n.get("model"), str)]


def _nearest_provenance(db: Any, vid: int) -> list[tuple[int, str]]:
    """(version id, relation) of the provenance parents nearest to version ``vid``,
    walking its model's version links back."""
    seen = set()
    todo = [vid]
    while todo:
        cur = todo.pop(0)
        if cur in seen:
            continue
        seen.add(cur)
        rows = db.execute(
            "SELECT parent, kind, relation FROM version_parents WHERE version = ?"
            " ORDER BY position",
            (cur,),
        ).fetchall()
        prov = [(p, r) for p, k, r in rows if k == "provenance"]
        if prov:
            return prov
        todo += [p for p, k, _ in rows if k == "version"]
    return []


def remove_model(engine: VersionStore, name: str, force: bool = False) -> list[str]:
    """Delete model ``name`` and its versions (see the module docstring); returns the
    descendants that were re-linked or given a tombstone."""
    engine.require_model(name)
    with engine.catalog.transaction() as db:
        kids = descendants_of(db, name)
        if kids and not force:
            raise LineageError(
                f"{name!r} has descendants: {', '.join(kids)}; removing it would cut their "
                "ancestry. Remove them first, or force it (repo.remove(name, force=True), "
                "modelgit rm --force): they are then re-linked to its parents, or keep a "
                "tombstone if it has none"
            )
        vids = [r[0] for r in db.execute("SELECT id FROM versions WHERE model = ?", (name,))]
        marks = ",".join("?" * len(vids))
        grand = db.execute(
            "SELECT parent, relation FROM edges WHERE child = ? ORDER BY rowid", (name,)
        ).fetchall()
        new_edges: list[tuple[str, str]] = []
        for kid in kids:
            new_edges += _relink(db, name, kid, vids, [g for g, _ in grand])
        children: list[int] = []
        tags: list[str] = []
        if vids:
            children = [r[0] for r in db.execute(
                f"SELECT version FROM version_parents WHERE parent IN ({marks})", vids
            )]  # fmt: skip
            tags = [r[0] for r in db.execute(
                f"SELECT name FROM tags WHERE version IN ({marks})", vids
            )]  # fmt: skip
            db.execute(f"DELETE FROM version_parents WHERE parent IN ({marks})", vids)
            db.execute(f"DELETE FROM tags WHERE version IN ({marks})", vids)
        edges = db.execute(
            "SELECT parent, child FROM edges WHERE parent = ? OR child = ?", (name, name)
        ).fetchall()
        db.execute("DELETE FROM models WHERE name = ?", (name,))
        # the children's digests cover their parent links; the rest lose theirs
        checks.refresh(db, vids + children, tags, [tuple(e) for e in edges] + new_edges)
    return kids


def _relink(
    db: Any, name: str, kid: str, vids: list[int], grandparents: list[str]
) -> list[tuple[str, str]]:
    """Re-link ``kid``'s ancestry from ``name`` to ``name``'s parents and note it."""
    row = db.execute(
        "SELECT relation FROM edges WHERE parent = ? AND child = ?", (name, kid)
    ).fetchone()
    marks = ",".join("?" * len(vids))
    links = (
        db.execute(
            "SELECT vp.version, vp.parent, vp.relation, cv.number FROM version_parents vp"
            " JOIN versions cv ON cv.id = vp.version"
            f" WHERE vp.kind = 'provenance' AND cv.model = ? AND vp.parent IN ({marks})"
            " ORDER BY cv.number",
            [kid, *vids],
        ).fetchall()
        if vids
        else []
    )
    relation = row[0] if row is not None else (links[0][2] if links else "finetune")
    linked_to: list[str] = []
    new_edges: list[tuple[str, str]] = []
    for g in grandparents:
        if g == kid:
            continue
        if (
            db.execute("SELECT 1 FROM edges WHERE parent = ? AND child = ?", (g, kid)).fetchone()
            is None
        ):
            db.execute(
                "INSERT INTO edges(parent, child, relation) VALUES (?,?,?)", (g, kid, relation)
            )
            new_edges.append((g, kid))
        linked_to.append(g)
    for cvid, pvid, rel, _ in links:
        pos = db.execute(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM version_parents WHERE version = ?",
            (cvid,),
        ).fetchone()[0]
        for gvid, _ in _nearest_provenance(db, pvid):
            gmodel = db.execute("SELECT model FROM versions WHERE id = ?", (gvid,)).fetchone()
            if gmodel is None or gmodel[0] in (kid, name):
                continue
            db.execute(
                "INSERT OR IGNORE INTO version_parents(version, parent, kind, relation, position)"
                " VALUES (?,?,'provenance',?,?)",
                (cvid, gvid, rel, pos),
            )
            pos += 1
    meta_row = db.execute("SELECT metadata FROM models WHERE name = ?", (kid,)).fetchone()
    try:
        meta = json.loads(meta_row[0] or "{}") if meta_row else {}
        if not isinstance(meta, dict):
            meta = {}
    except ValueError:
        meta = {}
    note = {
        "model": name,
        "relation": relation,
        "linked_to": linked_to,
        "versions": sorted({number for _, _, _, number in links}),
    }
    meta[NOTE_KEY] = [*removed_ancestors(json.dumps(meta)), note]
    db.execute(
        "UPDATE models SET metadata = ? WHERE name = ?", (json.dumps(meta, sort_keys=True), kid)
    )
    return new_edges
