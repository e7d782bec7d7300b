"""Lineage operations of a repository (graph, edges, tags, rename, diff).

Mixed into :class:`modelgit.Repository`; they use the engine's internal API
(:class:`~modelgit.versions.VersionStore`: catalog, ``resolve``, ``require_model``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..catalog import checks
from ..catalog.records import VERSION_COLUMNS
from ..catalog.schema import rename_model_rows
from ..errors import (
    InvalidName,
    LineageError,
    ModelExists,
    ModelgitWarning,
    UnknownModel,
    UnknownVersion,
)
from ..names import parse_ref, validate_name, warn_misspelt_relation
from ..versions.diff import Diff, diff_versions
from ..versions.refs import names_a_version_id, version_from_row
from ..versions.remove import forget_relink, removed_ancestors
from ..versions.version import Version
from .graph import INFERRED, Edge, LineageGraph, check_no_cycle

if TYPE_CHECKING:
    from ..versions import VersionStore

    _Base = VersionStore
else:
    _Base = object

__all__ = ["LineageMixin", "graph_of"]

MAX_RELATION_LENGTH = 64


def _check_relation(relation: object) -> str:
    if not isinstance(relation, str) or not relation.strip() or len(relation) > MAX_RELATION_LENGTH:
        raise LineageError(
            f"relation must be a non-empty string of at most {MAX_RELATION_LENGTH} characters, "
            "e.g. 'finetune', 'distill', 'prune', 'quantize', 'cast', 'adapter' or 'merge'"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in relation):
        raise LineageError(f"relation {relation!r} contains control characters")
    return relation


def graph_of(engine: VersionStore) -> LineageGraph:
    """A fresh snapshot of the lineage graph of ``engine``'s repository."""
    return LineageGraph.from_catalog(engine.catalog, stats=engine.stats)


class LineageMixin(_Base):
    """Graph-level API of a repository (mixed into a :class:`VersionStore`)."""

    # -- the graph ------------------------------------------------------------------
    @property
    def graph(self) -> LineageGraph:
        """A fresh snapshot of the lineage graph (models, provenance and version edges)."""
        return graph_of(self)

    def add_edge(self, parent: str, child: str, relation: str = "finetune") -> Edge:
        """Record after the fact that ``child`` was derived from ``parent``.

        ``parent`` may name a version (``base@2``; latest by default); the edge is
        attached to ``child``'s first version unless ``child`` names one. Refused with
        :class:`LineageError` if it would make a provenance cycle. Adding an edge that
        exists with the same relation does nothing; an ``inferred`` edge (from
        :meth:`import_models`) takes the new relation: that confirms it. With any other
        relation it is an error (remove it first).
        """
        relation = _check_relation(relation)
        pid, pv = self.resolve(parent)
        cref = parse_ref(child)
        self.require_model(cref.name)
        cid, cv = self.resolve(cref.name, cref.version or 1)
        if pv.model == cv.model:
            raise LineageError(f"model {cv.model!r} cannot be its own parent")
        with self.catalog.transaction() as db:
            graph = LineageGraph.from_rows(db)
            old = graph.edge(pv.model, cv.model)
            if old is not None:
                if old.relation == relation:
                    return old
                if old.relation == INFERRED:  # the user confirms a guessed edge
                    db.execute(
                        "UPDATE edges SET relation = ? WHERE parent = ? AND child = ?",
                        (relation, pv.model, cv.model),
                    )
                    db.execute(
                        "UPDATE version_parents SET relation = ? WHERE relation = ? AND parent IN"
                        " (SELECT id FROM versions WHERE model = ?) AND version IN"
                        " (SELECT id FROM versions WHERE model = ?)",
                        (relation, INFERRED, pv.model, cv.model),
                    )
                    checks.refresh_model(db, cv.model)
                    warn_misspelt_relation(relation)  # recorded: said only now
                    return Edge(pv.model, cv.model, relation)
                raise LineageError(
                    f"{pv.model} -> {cv.model} is already recorded as {old.relation!r}; "
                    "remove_edge() first to change it"
                )
            check_no_cycle(graph, pv.model, cv.model)
            db.execute(
                "INSERT INTO edges(parent, child, relation) VALUES (?,?,?)",
                (pv.model, cv.model, relation),
            )
            pos = db.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM version_parents WHERE version = ?",
                (cid,),
            ).fetchone()[0]
            db.execute(
                "INSERT OR IGNORE INTO version_parents(version, parent, kind, relation, position)"
                " VALUES (?,?,'provenance',?,?)",
                (cid, pid, relation, pos),
            )
            checks.refresh(db, [cid], edges=[(pv.model, cv.model)])
            disjoint = db.execute(
                "SELECT EXISTS (SELECT 1 FROM tensors WHERE version = ?)"
                " AND EXISTS (SELECT 1 FROM tensors WHERE version = ?) AND NOT EXISTS"
                " (SELECT 1 FROM tensors a JOIN tensors b ON b.version = ? AND b.name = a.name"
                " WHERE a.version = ?)",
                (pid, cid, pid, cid),
            ).fetchone()[0]
        warn_misspelt_relation(relation)  # once recorded: a refused edge warns of nothing
        if disjoint:
            warnings.warn(
                f"parent {pv.ref} shares no tensor names with {cv.ref}: is it the right parent?",
                ModelgitWarning,
                stacklevel=2,
            )
        return Edge(pv.model, cv.model, relation)

    def removed_ancestors(self, name: str) -> list[dict[str, Any]]:
        """What model ``name`` keeps of ancestors removed with ``remove(..., force=True)``:
        one dict per removed model, ``{"model", "relation", "linked_to", "versions"}``
        (``linked_to``: the models its edge was re-linked to, empty for a tombstone;
        ``versions``: the numbers of its versions that were linked to it)."""
        self.require_model(name)
        row = self.catalog.one("SELECT metadata FROM models WHERE name = ?", (name,))
        return removed_ancestors(row[0] if row else None)

    def remove_edge(self, parent: str, child: str) -> Edge:
        """Forget that ``child`` was derived from ``parent`` (model names).

        The weights are untouched: a child stored as deltas against its parent stays
        readable. Raises :class:`LineageError` if there is no such edge.
        """
        self.require_model(parent)
        self.require_model(child)
        with self.catalog.transaction() as db:
            row = db.execute(
                "SELECT relation FROM edges WHERE parent = ? AND child = ?", (parent, child)
            ).fetchone()
            if row is None:
                raise LineageError(f"there is no edge {parent} -> {child}")
            db.execute("DELETE FROM edges WHERE parent = ? AND child = ?", (parent, child))
            db.execute(
                "DELETE FROM version_parents WHERE kind = 'provenance' "
                "AND version IN (SELECT id FROM versions WHERE model = ?) "
                "AND parent IN (SELECT id FROM versions WHERE model = ?)",
                (child, parent),
            )
            forget_relink(db, child, parent)  # a note of a forced removal no longer holds
            checks.refresh_model(db, child)
            checks.refresh(db, edges=[(parent, child)])
        return Edge(parent, child, row[0])

    def rename(self, old: str, new: str) -> None:
        """Rename a model; its versions, edges and tags follow."""
        self.require_model(old)
        validate_name(new)
        if new == old:
            return
        with self.catalog.transaction() as db:
            if db.execute("SELECT 1 FROM models WHERE name = ?", (new,)).fetchone():
                raise ModelExists(f"a model named {new!r} exists already")
            if db.execute("SELECT 1 FROM tags WHERE name = ?", (new,)).fetchone():
                raise ModelExists(f"{new!r} is a tag; a model may not take a tag's name")
            db.execute(
                "INSERT INTO models(name, created, metadata) "
                "SELECT ?, created, metadata FROM models WHERE name = ?",
                (new, old),
            )
            db.execute("UPDATE versions SET model = ? WHERE model = ?", (new, old))
            db.execute("UPDATE edges SET parent = ? WHERE parent = ?", (new, old))
            db.execute("UPDATE edges SET child = ? WHERE child = ?", (new, old))
            rename_model_rows(db, old, new)  # creators, factories, test selectors
            db.execute("DELETE FROM models WHERE name = ?", (old,))
            checks.refresh_model(db, new)  # (the old edge keys' digests are left unused)

    # -- tags -----------------------------------------------------------------------
    def tag(self, ref: str, tag: str, force: bool = False) -> Version:
        """Name a version: ``repo.tag("base@2", "prod")`` (the version first, then the
        tag's name); then ``repo.load("prod")``. The command line is ``modelgit tag prod
        base@2`` (git's order); a call with the two swapped (a ``ref`` that names nothing
        and a ``tag`` that names a version) is refused with InvalidName, never carried out.

        A tag names one version and is not moved by later commits. ``force=True`` moves
        an existing tag; otherwise reusing a tag name is an error. A tag may not take the
        name of a model, nor look like the id of a version (it would hide it).
        """
        if self._tag_args_swapped(ref, tag):  # before the tag's name is judged ('@')
            raise InvalidName(
                f"{ref!r} names no version but {tag!r} does: repo.tag takes the version "
                f"first, then the tag's name; did you mean repo.tag({tag!r}, {ref!r})?"
            )
        validate_name(tag, "tag name")
        vid, v = self.resolve(ref)
        if tag in self:
            raise InvalidName(f"{tag!r} is a model name; a tag must not shadow a model")
        if names_a_version_id(self.catalog, tag):
            raise InvalidName(f"{tag!r} is the start of a version id; a tag must not hide it")
        with self.catalog.transaction() as db:
            old = db.execute("SELECT version FROM tags WHERE name = ?", (tag,)).fetchone()
            if old is not None and old[0] != vid and not force:
                raise ModelExists(f"tag {tag!r} exists already; untag it or pass force=True")
            db.execute("INSERT OR REPLACE INTO tags(name, version) VALUES (?, ?)", (tag, vid))
            checks.refresh(db, tags=[tag])
        return v

    def _tag_args_swapped(self, ref: str, tag: str) -> bool:
        """Whether ``tag(ref, tag)`` looks like a call with its arguments swapped: ``ref``
        names no version (and could be a new tag's name) while ``tag`` names one."""
        if not isinstance(ref, str) or not isinstance(tag, str):
            return False
        try:
            self.resolve(ref)
            return False
        except (UnknownModel, InvalidName):
            pass
        try:
            validate_name(ref, "tag name")
            self.resolve(tag)
        except (UnknownModel, InvalidName):
            return False
        return True

    def untag(self, tag: str) -> None:
        """Delete a tag (the version stays)."""
        validate_name(tag, "tag name")
        with self.catalog.transaction() as db:
            if db.execute("DELETE FROM tags WHERE name = ?", (tag,)).rowcount == 0:
                raise UnknownVersion(f"no tag named {tag!r}")
            checks.refresh(db, tags=[tag])

    def tags(self, ref: str | None = None) -> dict[str, Version]:
        """All tags (``{tag: Version}``), or those of one model or version."""
        rows = self.catalog.query(
            f"SELECT t.name, {VERSION_COLUMNS} FROM tags t "
            "JOIN versions v ON v.id = t.version ORDER BY t.name"
        )
        out = {r[0]: version_from_row(self.catalog, r[1:]) for r in rows}
        if ref is None:
            return out
        if "@" not in ref and ref in self:  # a model: the tags of all its versions
            return {t: v for t, v in out.items() if v.model == ref}
        _, want = self.resolve(ref)  # a version or a tag
        return {t: v for t, v in out.items() if v.model == want.model and v.number == want.number}

    # -- diff -----------------------------------------------------------------------
    def diff(
        self,
        a: str,
        b: str,
        *,
        values: bool = True,
        structure: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Diff:
        """Compare two versions (any two, across models): tensors added, removed and
        changed, with value statistics, and an architecture summary of each side.

        ``values=False`` compares only names, shapes, dtypes and content ids (no
        tensor is decoded). ``progress(done_bytes, total_bytes)`` is called as tensors
        are compared. Tensors are decoded in batches of at most a quarter of the memory
        budget per side (a larger tensor alone).

        ``structure=True`` also aligns the two module trees (``Diff.structure``, a
        :class:`~modelgit.StructureDiff`): layers renamed, added, removed, changed, cast
        or reshaped, recognised by content id as well as by name, and a divergence
        score in [0, 1]. The trees come from a stored ``config.json`` (built on the
        meta device, when transformers is installed and the config fits the tensors),
        else from the tensor names.
        """
        return diff_versions(
            self,
            a,
            b,
            values=values,
            progress=progress,
            batch_bytes=self.budget.window,
            structure=structure,
        )
