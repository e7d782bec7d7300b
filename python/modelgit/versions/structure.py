"""The structural diff: two models' module trees, aligned layer by layer.

``structure_diff(left, right)`` compares any two models (``nn.Module``, state_dict,
``.safetensors`` file, Hugging Face folder, or a :class:`StructureSide`);
``repo.diff(a, b, structure=True)`` puts one in ``Diff.structure`` for two stored
versions, from the content ids the catalog keeps (nothing is decoded to align).
The trees come from ``structure_tree.py``, the alignment from ``structure_align.py``.

Each module and tensor gets a status: ``same``, ``changed`` (values, dtype, shape, or
the class of a module without tensors), ``renamed`` (the same content under another
path), ``added``, ``removed``, or ``mixed`` (several of these inside). ``changes``
is the smallest list of module-level changes: a renamed layer is one change, an
inserted block one ``added``, and a module whose every tensor changed the same way
(a fine-tune of all of it, a cast) one ``changed``/``retyped``/``reshaped``.

**Divergence** (a lineage-inference signal, in [0, 1]): the parameter-weighted share
of what the two models do not hold in common,

    divergence = sum_t w_t d_t / sum_t w_t

over the aligned tensor pairs and the tensors without a partner, where ``w`` is the
element count (the larger of a pair) and ``d`` is 0 for identical content (renamed
or not), ``min(1, ||b - a|| / ||a||)`` for changed values or a cast when the values
were compared, and 1 for a tensor without a partner, a new shape, or a change whose
values were not compared. Identical models score 0, models with nothing in common 1,
a fine-tune about its relative update size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .architecture import _count
from .diff import compare_tensors
from .structure_align import Alignment, align
from .structure_tree import Node, StructureSide, TNode, build_tree, side_of, side_of_version

if TYPE_CHECKING:
    from ..catalog.records import TensorRow

__all__ = [
    "KINDS",
    "StructureChange",
    "StructureDiff",
    "StructureSide",
    "structure_diff",
    "divergence",
    "structure_of_versions",
]

KINDS = ("renamed", "added", "removed", "changed", "retyped", "reshaped")
_IN_PLACE = {"changed", "retyped", "reshaped", "typed"}
BATCH_BYTES = 256 << 20  # values read at once per side, for the divergence

Stats = Mapping[str, tuple[int | None, float | None]]  # left name -> (changed, rel L2)


@dataclass(frozen=True)
class StructureChange:
    """One module-level change: ``kind`` in KINDS, the left and right paths (None for
    the side that lacks it) and a human-readable one-liner."""

    kind: str
    left: str | None
    right: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "left": self.left, "right": self.right, "detail": self.detail}

    def describe(self) -> str:
        where = self.left if self.right is None else self.right
        if self.kind == "renamed" or (self.left is not None and self.left != self.right):
            where = f"{_shown(self.left)} -> {_shown(self.right)}"
        return f"{self.kind:<9}{_shown(where)}: {self.detail}"


def _shown(path: str | None) -> str:
    return "(model)" if path == "" else str(path)


@dataclass
class StructureDiff:
    """The result of a structural diff (``Diff.structure``, ``structure_diff``)."""

    divergence: float
    source: tuple[str, str]  # "module", "config" or "names", per side
    changes: list[StructureChange]
    same: int  # tensors identical and in place
    left: dict[str, Any] = field(repr=False)  # the trees, as to_json gives them
    right: dict[str, Any] = field(repr=False)
    notes: list[str] = field(default_factory=list)  # why a config was not used

    @property
    def summary(self) -> dict[str, int]:
        out = {"same": self.same, "changed": 0, "renamed": 0, "added": 0, "removed": 0}
        for c in self.changes:
            out["changed" if c.kind in ("retyped", "reshaped") else c.kind] += 1
        return out

    @property
    def identical(self) -> bool:
        return not self.changes

    def to_json(self) -> dict[str, Any]:
        return {
            "divergence": self.divergence,
            "source": {"left": self.source[0], "right": self.source[1]},
            "summary": self.summary,
            "changes": [c.to_json() for c in self.changes],
            "left": self.left,
            "right": self.right,
        }

    def lines(self) -> list[str]:
        s = self.summary
        head = (
            f"structure (trees from {self.source[0]} | {self.source[1]}): "
            f"divergence {self.divergence:.4g}"
        )
        out = [
            head,
            f"  {s['renamed']} renamed, {s['added']} added, {s['removed']} removed, "
            f"{s['changed']} changed; {s['same']} tensors the same",
        ]
        out += [f"  {c.describe()}" for c in self.changes]
        out += [f"  note: {n}" for n in self.notes]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


# -- entry points ------------------------------------------------------------------------


def structure_diff(
    left: object, right: object, *, values: bool = True, known: Stats | None = None
) -> StructureDiff:
    """The structural diff of two models. Each is an ``nn.Module``, a state_dict, a
    ``.safetensors`` file, a Hugging Face folder or a :class:`StructureSide`.

    ``values=False`` reads no tensor values: changed tensors count fully in the
    divergence. ``known`` gives (changed elements, relative L2) of changed tensors by
    left name, when a caller compared them already.
    """
    a, b = side_of(left), side_of(right)
    return _diff(a, b, values=values, known=known or {})


def divergence(left: object, right: object, *, values: bool = True) -> float:
    """The divergence score of two models (see the module's docstring), in [0, 1]."""
    return structure_diff(left, right, values=values).divergence


def structure_of_versions(
    rows_a: list[TensorRow],
    rows_b: list[TensorRow],
    files_a: Mapping[str, bytes],
    files_b: Mapping[str, bytes],
    refs: tuple[str, str],
    load: Callable[[str, list[str]], dict[str, Any]] | None,
    known: Stats,
    batch_bytes: int = BATCH_BYTES,
) -> StructureDiff:
    """The structural diff of two stored versions (``repo.diff(..., structure=True)``).
    ``load(ref, names)`` reads tensors for the divergence (None: no values are read)."""

    def reader(ref: str) -> Callable[[list[str]], dict[str, Any]] | None:
        return None if load is None else (lambda names: load(ref, names))

    a = side_of_version(rows_a, files_a, refs[0], reader(refs[0]))
    b = side_of_version(rows_b, files_b, refs[1], reader(refs[1]))
    return _diff(a, b, values=load is not None, known=known, batch_bytes=batch_bytes)


def _diff(
    a: StructureSide,
    b: StructureSide,
    *,
    values: bool,
    known: Stats,
    batch_bytes: int = BATCH_BYTES,
) -> StructureDiff:
    typed = a.source != "names" and b.source != "names"
    left, right = build_tree(a, keep_empty=typed), build_tree(b, keep_empty=typed)
    m = align(left, right)
    # ``known`` compared each tensor with the tensor of the same name: it holds only for
    # pairs the alignment keeps in place (a shifted block pairs blocks.2 with blocks.3)
    stats = {
        t.path: known[t.path] for t, u in m.tl2r.items() if t.path == u.path and t.path in known
    }
    if values:
        _read_stats(m, a, b, stats, batch_bytes)
    r = _Report(m, stats)
    return StructureDiff(
        divergence=r.divergence(),
        source=(a.source, b.source),
        changes=r.changes(),
        same=sum(1 for t in left.walk_tensors() if r.in_place(t)),
        left=r.tree(left, True),
        right=r.tree(right, False),
        notes=[n for n in (a.note, b.note) if n],
    )


# -- values ------------------------------------------------------------------------------


def _kind(t: TNode, u: TNode) -> str | None:
    e, f = t.entry, u.entry
    if e.shape != f.shape:
        return "reshaped"
    if e.dtype != f.dtype:
        return "retyped"
    return "changed" if e.content != f.content else None


def _read_stats(
    m: Alignment, a: StructureSide, b: StructureSide, stats: dict, batch_bytes: int
) -> None:
    """(changed, rel L2) of the changed and retyped pairs not in ``stats``, read in
    batches of at most ``batch_bytes`` per side."""
    if a.values is None or b.values is None:
        return
    todo = [
        (t, u)
        for t, u in m.tl2r.items()
        if _kind(t, u) in ("changed", "retyped") and t.path not in stats
    ]
    batch: list[tuple[TNode, TNode]] = []
    used = 0
    for i, (t, u) in enumerate(todo):
        batch.append((t, u))
        used += max(t.numel, 1) * 8
        if used >= batch_bytes or i == len(todo) - 1:
            ta = a.values([x.path for x, _ in batch])
            tb = b.values([y.path for _, y in batch])
            for x, y in batch:
                changed, _, rel = compare_tensors(ta[x.path], tb[y.path])
                stats[x.path] = (changed, rel)
            batch, used = [], 0
            del ta, tb


# -- statuses, changes, divergence -------------------------------------------------------


class _Report:
    def __init__(self, m: Alignment, stats: Stats) -> None:
        self.m = m
        self.stats = stats
        self.flags: dict[Node, frozenset[str]] = {}
        for root, left in ((m.left, True), (m.right, False)):
            for n in reversed(list(root.walk())):
                self.flags[n] = self._inner(n, left)

    # a pair of tensors whose values turned out equal (another chunking) is the same
    def kind(self, t: TNode, u: TNode) -> str | None:
        k = _kind(t, u)
        if k == "changed" and self.stats.get(t.path, (None, None))[0] == 0:
            return None
        return k

    def partner(self, n: Node, left: bool) -> Node | None:
        return (self.m.l2r if left else self.m.r2l).get(n)

    def tpartner(self, t: TNode, left: bool) -> TNode | None:
        return (self.m.tl2r if left else self.m.tr2l).get(t)

    def renamed(self, n: Node, left: bool) -> bool:
        p = self.partner(n, left)
        return p is not None and self.m.renamed(n if left else p)

    def tensor_flags(self, t: TNode, left: bool) -> set[str]:
        u = self.tpartner(t, left)
        if u is None:
            return {"removed" if left else "added"}
        a, b = (t, u) if left else (u, t)
        out = {k} if (k := self.kind(a, b)) else set()
        if self.m.renamed_tensor(a):
            out.add("renamed")
        return out

    def _inner(self, n: Node, left: bool) -> frozenset[str]:
        out: set[str] = set()
        for t in n.tensors.values():
            out |= self.tensor_flags(t, left)
        for c in n.children.values():
            p = self.partner(c, left)
            if p is None:
                if not c.count:
                    out.add("removed" if left else "added")
            else:
                if self.renamed(c, left):
                    out.add("renamed")
                if _retyped_module(c, p):
                    out.add("typed")
            out |= self.flags[c]
        return frozenset(out)

    def both(self, n: Node, left: bool) -> frozenset[str]:
        p = self.partner(n, left)
        return self.flags[n] | (self.flags[p] if p is not None else frozenset())

    def status(self, n: Node, left: bool) -> str:
        p = self.partner(n, left)
        if p is None:
            gone = "removed" if left else "added"
            if self.flags[n] <= {gone}:
                return gone
            return "renamed" if self.flags[n] == {"renamed"} else "mixed"  # all moved out/in
        flags = self.both(n, left)
        if _retyped_module(n, p):
            flags = flags | {"typed"}
        if self.renamed(n, left):
            return "renamed" if not flags else "mixed"
        if not flags:
            return "same"
        return "changed" if flags <= _IN_PLACE else "mixed"

    def in_place(self, t: TNode) -> bool:
        """A left tensor identical to its partner, under no renamed module."""
        return self.tensor_status(t, True) == "same" and not any(
            a.parent is not None and a in self.m.l2r and self.m.renamed(a) for a in t.parent_chain()
        )

    def tensor_status(self, t: TNode, left: bool) -> str:
        f = self.tensor_flags(t, left)
        if not f:
            return "same"
        if f <= {"added", "removed", "renamed"}:
            return next(iter(f))
        return "mixed" if "renamed" in f else "changed"

    # -- the tree as JSON
    def tree(self, root: Node, left: bool) -> dict[str, Any]:
        def node(n: Node) -> dict[str, Any]:
            p = self.partner(n, left)
            return {
                "name": n.name,
                "path": n.path,
                "type": n.type,
                "status": self.status(n, left),
                "partner": None if p is None else p.path,
                "tensors": [
                    {
                        "name": t.name,
                        "shape": list(t.entry.shape),
                        "dtype": t.entry.dtype,
                        "status": self.tensor_status(t, left),
                        "partner": None if (u := self.tpartner(t, left)) is None else u.path,
                    }
                    for t in n.tensors.values()
                ],
                "children": [node(c) for c in n.children.values()],
            }

        return node(root)

    # -- changes
    def changes(self) -> list[StructureChange]:
        out: list[StructureChange] = []
        self._visit_left(self.m.left, out)
        self._visit_right(self.m.right, out)
        return out

    def _visit_left(self, n: Node, out: list[StructureChange]) -> None:
        p = self.m.l2r.get(n)
        if p is None:
            if self.status(n, True) == "removed":
                out.append(StructureChange("removed", n.path, None, _what(n)))
                return
        elif n.parent is not None and self.m.renamed(n):
            inside = self.both(n, True)
            more = f"; inside: {', '.join(sorted(inside))}" if inside else ", identical"
            out.append(StructureChange("renamed", n.path, p.path, _what(n) + more))
        if p is not None:
            flags = self.both(n, True) | ({"typed"} if _retyped_module(n, p) else set())
            if not flags:
                return
            uniform = self._uniform(n, p, flags)
            if uniform is not None:
                out.append(StructureChange(uniform[0], n.path, p.path, uniform[1]))
                return
            if _retyped_module(n, p):
                out.append(StructureChange("changed", n.path, p.path, f"type {n.type} -> {p.type}"))
            out.extend(self._own_in_place(n, p))
        for t in n.tensors.values():
            u = self.m.tl2r.get(t)
            if u is None:
                out.append(StructureChange("removed", t.path, None, _tdesc(t)))
            elif self.m.renamed_tensor(t):
                k = self.kind(t, u)
                extra = f", {self._tdetail(t, u, k)}" if k else ", identical"
                out.append(StructureChange("renamed", t.path, u.path, _tdesc(t) + extra))
        for c in n.children.values():
            self._visit_left(c, out)

    def _visit_right(self, n: Node, out: list[StructureChange]) -> None:
        p = self.m.r2l.get(n)
        if p is None and self.status(n, False) == "added":
            out.append(StructureChange("added", None, n.path, _what(n)))
            return
        if "added" not in self.flags[n]:
            return
        for t in n.tensors.values():
            if t not in self.m.tr2l:
                out.append(StructureChange("added", None, t.path, _tdesc(t)))
        for c in n.children.values():
            self._visit_right(c, out)

    def _pairs_in(self, n: Node) -> Iterator[tuple[TNode, TNode]]:
        for t in n.walk_tensors():
            yield t, self.m.tl2r[t]

    def _uniform(self, n: Node, p: Node, flags: frozenset[str]) -> tuple[str, str] | None:
        """(kind, detail) when every tensor under ``n`` changed the same way in place."""
        if len(flags) != 1 or not n.count or next(iter(flags)) not in _IN_PLACE - {"typed"}:
            return None
        kind = next(iter(flags))
        pairs = list(self._pairs_in(n))
        if any(self.kind(t, u) != kind for t, u in pairs):
            return None
        if kind == "retyped":
            moves = {(t.entry.dtype, u.entry.dtype) for t, u in pairs}
            if len(moves) != 1:
                return None
            ((x, y),) = moves
            return kind, f"{x} -> {y} ({_tensors(len(pairs))}, {_count(n.numel)} params)"
        if len(pairs) == 1:
            t, u = pairs[0]
            return kind, f"{t.name} {self._tdetail(t, u, kind)}"
        return kind, f"{_tensors(len(pairs))} {self._group_detail(pairs, kind)}"

    def _own_in_place(self, n: Node, p: Node) -> list[StructureChange]:
        groups: dict[str, list[tuple[TNode, TNode]]] = {}
        for t in n.tensors.values():
            u = self.m.tl2r.get(t)
            if u is not None and not self.m.renamed_tensor(t) and (k := self.kind(t, u)):
                groups.setdefault(k, []).append((t, u))
        out = []
        for k, pairs in groups.items():
            if len(pairs) == 1:
                t, u = pairs[0]
                detail = f"{t.name} {self._tdetail(t, u, k)}"
            else:
                detail = f"{', '.join(t.name for t, _ in pairs)}: {self._group_detail(pairs, k)}"
            out.append(StructureChange(k, n.path, p.path, detail))
        return out

    def _tdetail(self, t: TNode, u: TNode, kind: str | None) -> str:
        if kind == "reshaped":
            return f"shape {list(t.entry.shape)} -> {list(u.entry.shape)}"
        if kind == "retyped":
            return f"{t.entry.dtype} -> {u.entry.dtype}"
        rel = self.stats.get(t.path, (None, None))[1]
        return "values changed" + (f" (rel L2 {rel:.3g})" if rel is not None else "")

    def _group_detail(self, pairs: list[tuple[TNode, TNode]], kind: str) -> str:
        if kind == "reshaped":
            return "reshaped"
        if kind == "retyped":
            return "retyped " + ", ".join(
                sorted({f"{t.entry.dtype} -> {u.entry.dtype}" for t, u in pairs})
            )
        rels = [self.stats.get(t.path, (None, None))[1] for t, _ in pairs]
        known = [r for r in rels if r is not None and math.isfinite(r)]
        top = f" (rel L2 up to {max(known):.3g})" if known and len(known) == len(rels) else ""
        return "values changed" + top

    def divergence(self) -> float:
        total = diverged = 0.0
        for t in self.m.left.walk_tensors():
            u = self.m.tl2r.get(t)
            if u is None:
                total += t.numel
                diverged += t.numel
                continue
            w = max(t.numel, u.numel)
            total += w
            diverged += w * self._distance(t, u)
        for u in self.m.right.walk_tensors():
            if u not in self.m.tr2l:
                total += u.numel
                diverged += u.numel
        return min(1.0, max(0.0, diverged / total)) if total else 0.0

    def _distance(self, t: TNode, u: TNode) -> float:
        k = self.kind(t, u)
        if k is None:
            return 0.0
        if k == "reshaped":
            return 1.0
        changed, rel = self.stats.get(t.path, (None, None))
        if changed == 0:
            return 0.0
        if rel is None or not math.isfinite(rel):
            return 1.0
        return min(1.0, rel)


def _retyped_module(n: Node, p: Node) -> bool:
    """A module without tensors whose class changed (GELU -> ReLU)."""
    return not n.count and not p.count and None not in (n.type, p.type) and n.type != p.type


def _what(n: Node) -> str:
    kind = f"{n.type}, " if n.type else ""
    if not n.count:
        return f"{kind}no tensors".strip()
    return f"{kind}{_tensors(n.count)}, {_count(n.numel)} params"


def _tdesc(t: TNode) -> str:
    return f"tensor {t.entry.dtype}{list(t.entry.shape)}"


def _tensors(n: int) -> str:
    return f"{n} tensor" + ("s" if n != 1 else "")
