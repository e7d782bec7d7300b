"""Architecture summaries: a module tree built from tensor names and shapes alone.

``encoder.layer.3.attention.query.weight`` -> module ``encoder.layer.3.attention.query``;
runs of numbered sibling modules of identical structure are folded (``layer.0..11 x12``).
Numbered siblings are ordered as numbers (0, 1, 2, ..., 10, 11), whatever order the
tensors were stored in (a ``.safetensors`` file sorts its names as strings). Used by
``diff`` (``Diff.arch_a``/``arch_b``), ``show`` and the structural diff's fallback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..units import human_bytes

__all__ = ["TensorInfo", "Module", "architecture", "module_order"]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "nbytes": self.nbytes,
        }

    def describe(self) -> str:
        return f"{self.dtype}{list(self.shape)}"


@dataclass
class Module:
    """A node of the module tree: its own tensors and its sub-modules."""

    name: str  # full dotted path; "" for the root
    params: dict[str, TensorInfo] = field(default_factory=dict)  # leaf name -> tensor
    children: dict[str, Module] = field(default_factory=dict)

    def walk_tensors(self) -> Iterable[TensorInfo]:
        yield from self.params.values()
        for c in self.children.values():
            yield from c.walk_tensors()

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.walk_tensors())

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.walk_tensors())

    @property
    def tensors(self) -> int:
        return sum(1 for _ in self.walk_tensors())

    def signature(self) -> tuple:
        """Structure (relative names, shapes, dtypes) independent of the module's name."""
        cut = len(self.name) + 1 if self.name else 0
        return tuple(sorted((t.name[cut:], t.shape, t.dtype) for t in self.walk_tensors()))

    def to_json(self, max_depth: int = 8) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "params": self.numel,
            "nbytes": self.nbytes,
            "tensors": {k: t.to_json() for k, t in self.params.items()},
        }
        if max_depth > 0:
            out["children"] = [c.to_json(max_depth - 1) for c in self.children.values()]
        elif self.children:  # deeper than asked: say what was left out
            out["children_omitted"] = len(self.children)
        return out

    def lines(self, max_depth: int = 3) -> list[str]:
        """An indented text summary, folding runs of identical numbered modules."""
        head = f"{_count(self.numel)} params in {self.tensors} tensors, {human_bytes(self.nbytes)}"
        out = [f"model: {head}"]
        self._lines(out, 1, max_depth)
        return out

    def _lines(self, out: list[str], depth: int, max_depth: int) -> None:
        pad = "  " * depth
        for key, group in _fold(list(self.children.items())):
            first = group[0]
            label = key if len(group) == 1 else f"{key} x{len(group)}"
            each = " each" if len(group) > 1 else ""
            leaf = not first.children
            detail = _shapes(first) if leaf else f"{first.tensors} tensors"
            out.append(f"{pad}{label}: {_count(first.numel)} params{each} ({detail})")
            if not leaf and depth < max_depth:
                first._lines(out, depth + 1, max_depth)
        if self.params:
            label = "(own tensors)" if self.children else "tensors"
            out.append(f"{pad}{label}: {_shapes(self)}")


def _shapes(m: Module, limit: int = 8) -> str:
    items = [f"{k} {t.dtype}{list(t.shape)}" for k, t in m.params.items()]
    more = f", ... {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _numbered(key: str) -> bool:
    """A module name that is a layer number (``0``, ``11``)."""
    return key.isascii() and key.isdigit()


def _fold(items: list[tuple[str, Module]]) -> list[tuple[str, list[Module]]]:
    """Group consecutive numbered siblings of identical structure: 0..11."""
    out: list[tuple[str, list[Module]]] = []
    i = 0
    while i < len(items):
        key, mod = items[i]
        j = i + 1
        if _numbered(key):
            sig = mod.signature()
            while (
                j < len(items)
                and _numbered(items[j][0])
                and int(items[j][0]) == int(items[j - 1][0]) + 1
                and items[j][1].signature() == sig
            ):
                j += 1
        group = [m for _, m in items[i:j]]
        label = key if j - i == 1 else f"{key}..{items[j - 1][0]}"
        out.append((label, group))
        i = j
    return out


def architecture(tensors: Iterable[TensorInfo]) -> Module:
    """The module tree of a list of tensors (names split on dots)."""
    root = Module("")
    for t in tensors:
        parts = t.name.split(".")
        node = root
        for i, p in enumerate(parts[:-1]):
            child = node.children.get(p)
            if child is None:
                child = node.children[p] = Module(".".join(parts[: i + 1]))
            node = child
        node.params[parts[-1]] = t
    _number_order(root)
    return root


def module_order(names: Iterable[str]) -> list[str]:
    """Tensor names in their given order, except that numbered siblings come in numeric
    order: ``layer.2`` before ``layer.10`` (a ``.safetensors`` file sorts names as
    strings, so its layers read 0, 1, 10, 11, 2, ...)."""
    names = list(names)
    # per module path: its entries (sub-module or tensor leaf) in order of appearance
    entries: dict[tuple[str, ...], dict[tuple[bool, str], int]] = {}
    for n in names:
        parts = n.split(".")
        for i, p in enumerate(parts):
            here = entries.setdefault(tuple(parts[:i]), {})
            here.setdefault((i < len(parts) - 1, p), len(here))
    for here in entries.values():
        keys = list(here)
        slots = [i for i, (sub, p) in enumerate(keys) if sub and _numbered(p)]
        numbered = sorted((keys[i] for i in slots), key=lambda k: (int(k[1]), k[1]))
        for i, k in zip(slots, numbered, strict=True):
            here[k] = i

    def rank(n: str) -> tuple[int, ...]:
        parts = n.split(".")
        return tuple(
            entries[tuple(parts[:i])][(i < len(parts) - 1, p)] for i, p in enumerate(parts)
        )

    return sorted(names, key=rank)


def _number_order(node: Module) -> None:
    """Put numbered children in numeric order (0, 1, 2, ..., 10), in the places the
    numbered ones held; named children keep theirs."""
    items = list(node.children.items())
    slots = [i for i, (k, _) in enumerate(items) if _numbered(k)]
    if len(slots) > 1:
        numbered = sorted((items[i] for i in slots), key=lambda kv: (int(kv[0]), kv[0]))
        for i, kv in zip(slots, numbered, strict=True):
            items[i] = kv
        node.children = dict(items)
    for child in node.children.values():
        _number_order(child)


def _count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)
