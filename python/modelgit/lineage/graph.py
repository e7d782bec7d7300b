"""The lineage graph: models as nodes, provenance edges between them.

A :class:`LineageGraph` is a consistent snapshot of the catalog taken when it is built
(``repo.graph`` builds a fresh one on every access). All algorithms here are plain
Python over that snapshot: no SQL, no tensors.

Two kinds of edges exist:

- *provenance* edges between models (``base -> ft`` with a relation such as
  ``finetune``, ``distill``, ``prune``, ``quantize``, ``cast``, ``adapter``, ``merge``
  or any user string). A model may have several provenance parents (a merge). The
  provenance graph is a DAG: :func:`check_no_cycle` refuses an edge that would close a
  cycle.
- *version* edges between consecutive versions of one model (``m@1 -> m@2``).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import LineageError, UnknownModel
from ..names import KNOWN_RELATIONS
from ..versions.remove import removed_ancestors

if TYPE_CHECKING:
    import sqlite3

    from ..catalog import Catalog
    from ..storage.maintenance import RepoStats

__all__ = ["Edge", "Node", "LineageGraph", "check_no_cycle", "KNOWN_RELATIONS", "INFERRED"]


INFERRED = "inferred"  # the relation of an edge an import guessed; edge add confirms it


@dataclass(frozen=True)
class Edge:
    """A lineage edge. Model-level edges name models; version-level edges name refs."""

    parent: str
    child: str
    relation: str
    kind: str = "provenance"  # "provenance" or "version"
    via: str = ""  # the removed model this edge was re-linked across (``rm --force``)

    @property
    def label(self) -> str:
        """The relation, with "via removed X" for an edge re-linked across a removal."""
        return f"{self.relation} via removed {self.via}" if self.via else self.relation

    def to_json(self) -> dict[str, str]:
        out = {
            "parent": self.parent,
            "child": self.child,
            "relation": self.relation,
            "kind": self.kind,
        }
        if self.via:
            out["via"] = self.via
        return out


def _iso(ts: float) -> str:
    """A catalog timestamp as ISO 8601 (UTC), as every JSON output writes dates."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


@dataclass(frozen=True)
class VersionInfo:
    """What the graph knows of one version (enough to draw it)."""

    number: int
    id: str
    logical_bytes: int
    lossy: bool
    created: float
    message: str

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["created"] = _iso(self.created)
        return out


@dataclass(frozen=True)
class Node:
    """A model in the graph and the versions it has."""

    name: str
    created: float
    versions: tuple[VersionInfo, ...]
    # tombstones: (removed model, relation) of removed ancestors it was not re-linked past
    removed_parents: tuple[tuple[str, str], ...] = ()

    @property
    def latest(self) -> int:
        return self.versions[-1].number if self.versions else 0

    @property
    def lossy(self) -> bool:
        return any(v.lossy for v in self.versions)

    @property
    def logical_bytes(self) -> int:
        """Size of the latest version's tensors."""
        return self.versions[-1].logical_bytes if self.versions else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [v.to_json() for v in self.versions],
            "latest": self.latest,
            "lossy": self.lossy,
            "logical_bytes": self.logical_bytes,
            **(
                {"removed_parents": [{"model": m, "relation": r} for m, r in self.removed_parents]}
                if self.removed_parents
                else {}
            ),
        }


class LineageGraph:
    """A snapshot of the lineage graph of a repository.

    Build one with ``repo.graph``; or directly from nodes and edges (tests, tools).
    Every method that takes a model name raises :class:`UnknownModel` for a name not in
    the graph. Results are lists in a deterministic order (parents: the order the
    edges were recorded; traversals: breadth first, ties by model creation order).
    """

    def __init__(
        self,
        nodes: Iterable[Node],
        edges: Iterable[Edge],
        version_edges: Iterable[Edge] = (),
        stats: Any = None,
    ) -> None:
        self._nodes: dict[str, Node] = {n.name: n for n in nodes}
        self._edges: list[Edge] = []
        self._parents: dict[str, list[Edge]] = {n: [] for n in self._nodes}
        self._children: dict[str, list[Edge]] = {n: [] for n in self._nodes}
        for e in edges:
            if e.parent not in self._nodes or e.child not in self._nodes:
                continue  # an edge to a removed model
            self._edges.append(e)
            self._parents[e.child].append(e)
            self._children[e.parent].append(e)
        self._version_edges = list(version_edges)
        self._stats_source = stats  # a callable returning RepoStats, or None

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_catalog(cls, catalog: Catalog, stats: Any = None) -> LineageGraph:
        """Read models, versions and edges from ``catalog`` in one read transaction."""
        db = catalog.connection()
        if db.in_transaction:
            return cls.from_rows(db, stats)
        db.execute("BEGIN")  # one snapshot for all the reads (WAL: never blocks)
        try:
            return cls.from_rows(db, stats)
        finally:
            db.execute("COMMIT")

    @classmethod
    def from_rows(cls, db: sqlite3.Connection, stats: Any = None) -> LineageGraph:
        """Build from an open connection (inside the caller's transaction)."""
        models = db.execute(
            "SELECT name, created, metadata FROM models ORDER BY created, name"
        ).fetchall()
        versions = db.execute(
            "SELECT model, number, uid, logical_bytes, lossy, created, message "
            "FROM versions ORDER BY model, number"
        ).fetchall()
        edges = db.execute("SELECT parent, child, relation FROM edges ORDER BY rowid").fetchall()
        vparents = db.execute(
            "SELECT p.kind, p.relation, pv.model, pv.number, cv.model, cv.number "
            "FROM version_parents p JOIN versions pv ON pv.id = p.parent "
            "JOIN versions cv ON cv.id = p.version ORDER BY cv.id, p.position"
        ).fetchall()
        per_model: dict[str, list[VersionInfo]] = {}
        for model, number, uid, logical, lossy, created, message in versions:
            per_model.setdefault(model, []).append(
                VersionInfo(number, uid, logical, bool(lossy), created, message)
            )
        notes = {name: removed_ancestors(meta) for name, _, meta in models}
        nodes = [
            Node(
                name,
                created,
                tuple(per_model.get(name, ())),
                tuple(
                    (n["model"], str(n.get("relation", "")))
                    for n in notes[name]
                    if not n.get("linked_to")
                ),
            )  # fmt: skip
            for name, created, _ in models
        ]
        via = {
            (p, c): n["model"]
            for c, ns in notes.items()
            for n in ns
            for p in n.get("linked_to") or ()
        }
        model_edges = [Edge(p, c, r, "provenance", via.get((p, c), "")) for p, c, r in edges]
        v_edges = [
            Edge(f"{pm}@{pn}", f"{cm}@{cn}", rel, kind) for kind, rel, pm, pn, cm, cn in vparents
        ]
        return cls(nodes, model_edges, v_edges, stats)

    # -- nodes ----------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"<LineageGraph: {len(self._nodes)} models, {len(self._edges)} edges>"

    @property
    def models(self) -> list[str]:
        """Model names in creation order."""
        return list(self._nodes)

    def node(self, name: str) -> Node:
        self._need(name)
        return self._nodes[name]

    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def _need(self, name: str) -> None:
        if name not in self._nodes:
            known = ", ".join(list(self._nodes)[:10])
            hint = f"; known models: {known}" if known else " (the graph is empty)"
            raise UnknownModel(f"no model named {name!r}{hint}")

    # -- edges ----------------------------------------------------------------------
    def edges(self, kind: str | None = "provenance") -> list[Edge]:
        """Edges of the graph.

        ``kind="provenance"`` (default): model-to-model provenance edges.
        ``kind="version"``: version-to-version edges (``m@1 -> m@2``).
        ``kind=None``: the version-level graph, both kinds, between refs ``model@N``.
        """
        if kind == "provenance":
            return list(self._edges)
        if kind == "version":
            return [e for e in self._version_edges if e.kind == "version"]
        if kind is None:
            return list(self._version_edges)
        raise ValueError(f"kind must be 'provenance', 'version' or None, not {kind!r}")

    def edge(self, parent: str, child: str) -> Edge | None:
        """The provenance edge ``parent -> child``, or None."""
        self._need(parent)
        self._need(child)
        for e in self._parents[child]:
            if e.parent == parent:
                return e
        return None

    def parents(self, name: str) -> list[str]:
        """Direct provenance parents of a model."""
        self._need(name)
        return [e.parent for e in self._parents[name]]

    def children(self, name: str) -> list[str]:
        """Models directly derived from ``name``."""
        self._need(name)
        return [e.child for e in self._children[name]]

    def ancestors(self, name: str) -> list[str]:
        """Every model ``name`` was derived from, nearest first (breadth first)."""
        self._need(name)
        return self._bfs(name, self._parents, "parent")

    def descendants(self, name: str) -> list[str]:
        """Every model derived from ``name``, directly or not, nearest first."""
        self._need(name)
        return self._bfs(name, self._children, "child")

    def _bfs(self, start: str, adj: dict[str, list[Edge]], end: str) -> list[str]:
        seen = {start}
        out: list[str] = []
        queue = deque([start])
        while queue:
            cur = queue.popleft()
            for e in adj[cur]:
                nxt = getattr(e, end)
                if nxt not in seen:
                    seen.add(nxt)
                    out.append(nxt)
                    queue.append(nxt)
        return out

    def roots(self) -> list[str]:
        """Models without provenance parents."""
        return [n for n in self._nodes if not self._parents[n]]

    def leaves(self) -> list[str]:
        """Models nothing was derived from."""
        return [n for n in self._nodes if not self._children[n]]

    def topological_order(self) -> list[str]:
        """All models, each after all of its parents (ties: creation order)."""
        order_index = {n: i for i, n in enumerate(self._nodes)}
        indeg = {n: len(self._parents[n]) for n in self._nodes}
        ready = [n for n, d in indeg.items() if d == 0]
        out: list[str] = []
        heap = [(order_index[n], n) for n in ready]
        heapq.heapify(heap)
        while heap:
            _, cur = heapq.heappop(heap)
            out.append(cur)
            for e in self._children[cur]:
                indeg[e.child] -= 1
                if indeg[e.child] == 0:
                    heapq.heappush(heap, (order_index[e.child], e.child))
        if len(out) != len(self._nodes):  # only possible with a damaged catalog
            stuck = sorted(set(self._nodes) - set(out))
            raise LineageError(f"the provenance graph has a cycle through {', '.join(stuck)}")
        return out

    def depth(self, name: str) -> int:
        """Length of the longest provenance chain from a root down to ``name``."""
        return self.layers()[name]

    def layers(self) -> dict[str, int]:
        """Longest-path layer of every model (roots are 0)."""
        layer: dict[str, int] = {}
        for n in self.topological_order():
            layer[n] = max((layer[e.parent] + 1 for e in self._parents[n]), default=0)
        return layer

    def path(self, a: str, b: str, directed: bool = False) -> list[str] | None:
        """A shortest path of models from ``a`` to ``b``, both included; None if none.

        ``directed=True`` follows edges from parent to child only (``a`` must be an
        ancestor of ``b``); otherwise edges are walked either way, so two fine-tunes
        of one base are joined through it.
        """
        self._need(a)
        self._need(b)
        if a == b:
            return [a]
        prev: dict[str, str] = {a: a}
        queue = deque([a])
        while queue:
            cur = queue.popleft()
            nbrs = [e.child for e in self._children[cur]]
            if not directed:  # relatives are joined through a common ancestor first
                nbrs = [e.parent for e in self._parents[cur]] + nbrs
            for nxt in nbrs:
                if nxt in prev:
                    continue
                prev[nxt] = cur
                if nxt == b:
                    out = [b]
                    while out[-1] != a:
                        out.append(prev[out[-1]])
                    return out[::-1]
                queue.append(nxt)
        return None

    def would_create_cycle(self, parent: str, child: str) -> list[str] | None:
        """The cycle (a list of models) that ``parent -> child`` would close, else None."""
        if parent == child:
            return [parent, child]
        if parent not in self._nodes or child not in self._nodes:
            return None
        back = self.path(child, parent, directed=True)
        return None if back is None else [*back, child]

    def components(self) -> list[list[str]]:
        """Weakly connected families of models, each in topological order."""
        order = self.topological_order()
        comp: dict[str, int] = {}
        groups: list[list[str]] = []
        for n in order:
            if n in comp:
                continue
            idx = len(groups)
            members = {n}
            stack = [n]
            while stack:
                cur = stack.pop()
                for e in self._children[cur] + self._parents[cur]:
                    for m in (e.parent, e.child):
                        if m not in members:
                            members.add(m)
                            stack.append(m)
            for m in members:
                comp[m] = idx
            groups.append([m for m in order if m in members])
        return groups

    # -- output ---------------------------------------------------------------------
    def stats(self) -> RepoStats | None:
        """Storage statistics of the repository the graph was read from, if known."""
        if self._stats_source is None:
            return None
        return self._stats_source() if callable(self._stats_source) else self._stats_source

    def to_json(self) -> dict[str, Any]:
        return {
            "models": [n.to_json() for n in self._nodes.values()],
            "edges": [e.to_json() for e in self._edges],
            "version_edges": [e.to_json() for e in self._version_edges],
        }

    def to_dot(self, versions: bool = False) -> str:
        """Graphviz source of the graph (``versions=True``: one node per version)."""
        from .render import to_dot

        return to_dot(self, versions=versions)

    def to_svg(self, versions: bool = False) -> str:
        """A self-contained SVG drawing (no graphviz needed)."""
        from .render import to_svg

        return to_svg(self, versions=versions)

    def to_html(self, versions: bool = False, title: str = "modelgit lineage") -> str:
        """A self-contained HTML page with the SVG drawing and a table of models."""
        from .render import to_html

        return to_html(self, versions=versions, title=title)

    def to_text(self) -> str:
        """The graph as an indented tree for a terminal."""
        from .render import to_text

        return to_text(self)

    def __str__(self) -> str:
        return self.to_text()


def check_no_cycle(graph: LineageGraph, parent: str, child: str) -> None:
    """Raise :class:`LineageError` if the edge ``parent -> child`` would close a cycle."""
    cycle = graph.would_create_cycle(parent, child)
    if cycle is not None:
        if parent == child:
            raise LineageError(f"model {child!r} cannot be its own parent")
        raise LineageError(
            f"the edge {parent} -> {child} would make a provenance cycle: "
            f"{' -> '.join(cycle)}; provenance must stay acyclic"
        )
