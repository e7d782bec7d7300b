"""The two inputs of a structural diff: a model's tensors (names, layouts, content ids)
and its module tree.

A :class:`StructureSide` is built from an ``nn.Module`` (its ``named_modules`` give the
class of every module, its ``state_dict`` the tensors), a state_dict, a ``.safetensors``
file or Hugging Face folder, or a stored version (``side_of_version``: the content ids
are read from the catalog, nothing is decoded). A folder or version whose
``config.json`` describes exactly the tensors it holds gets its module classes from
that config, the model being built by ``transformers`` on the meta device (no weights;
``formats/hf.py``). Otherwise, or without transformers, the tree is the tensor names
split on dots (``source`` says which of ``module``, ``config`` and ``names`` it is).

A tensor's content id is the one the repository stores (``tensors.content``: XXH3-128
of its layout and of its chunks' ids), computed for tensors in memory, so a stored
version and a model in memory compare by content. :func:`build_tree` turns a side into
:class:`Node` objects with three digests per subtree, all hashed bottom-up:

- ``exact``: tensor names relative to the node, dtypes, shapes and contents (two
  subtrees with equal ``exact`` are the same layer under any name);
- ``bag``: the multiset of tensor contents, names ignored (a layer whose insides were
  renamed);
- ``shape``: relative names and shapes, contents and dtypes ignored (the same kind of
  layer with other values: a fine-tune, a cast).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xxhash

from ..catalog.records import tensor_content_id
from ..errors import InvalidArgument, UnsupportedInput
from ..formats.sources import ModelSource, TensorSource, open_model, tensor_from_buffer
from ..storage.store import chunk_id
from ..storage.writer import DEFAULT_CHUNK_ELEMS

if TYPE_CHECKING:
    import torch

    from ..catalog.records import TensorRow

__all__ = [
    "SOURCES",
    "TensorEntry",
    "StructureSide",
    "Node",
    "TNode",
    "side_of",
    "side_of_version",
    "build_tree",
    "numbered",
]

SOURCES = ("module", "config", "names")
MAX_DEPTH = 64  # deeper names keep their tail as one tensor name
_MASK = (1 << 128) - 1

ValuesFn = Callable[[list[str]], "dict[str, torch.Tensor]"]


@dataclass(frozen=True)
class TensorEntry:
    """A tensor as the structural diff sees it: name, layout and content id."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    content: bytes

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class StructureSide:
    """One side of a structural diff.

    ``types`` maps module paths (``""`` for the model) to class names when they are known
    (``source`` ``module`` or ``config``); ``values(names)`` returns those tensors (a dict)
    when they can be read (for the divergence of changed tensors), else it is None.
    """

    tensors: list[TensorEntry]
    types: dict[str, str] | None = None
    source: str = "names"
    note: str | None = None  # why a config was not used
    values: ValuesFn | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InvalidArgument(f"source must be one of {SOURCES}, not {self.source!r}")
        if self.types is None and self.source != "names":
            raise InvalidArgument(f"source {self.source!r} needs the module types")


def numbered(key: str) -> bool:
    """A module name that is a layer number (``0``, ``11``)."""
    return key.isascii() and key.isdigit()


# -- sides -------------------------------------------------------------------------------


def _content(t: TensorSource, chunk_elems: int) -> bytes:
    view = t.view()
    step = chunk_elems * t.dtype.size
    ids = b"".join(chunk_id(view[s : min(t.nbytes, s + step)]) for s in range(0, t.nbytes, step))
    return tensor_content_id(t.dtype.name, t.shape, t.nbytes, ids)


def _entries(src: ModelSource, chunk_elems: int) -> list[TensorEntry]:
    out: list[TensorEntry] = []
    by_name: dict[str, TensorEntry] = {}
    for t in src.tensors:
        if t.tie is not None and t.tie in by_name:
            e = by_name[t.tie]
            entry = TensorEntry(t.name, e.dtype, e.shape, e.content)
        else:
            entry = TensorEntry(t.name, t.dtype.name, t.shape, _content(t, chunk_elems))
        by_name[t.name] = entry
        out.append(entry)
    return out


def _tensor(t: TensorSource) -> torch.Tensor:
    return tensor_from_buffer(bytearray(t.view()[:]), t.dtype, t.shape)


def _config_types(
    files: Mapping[str, bytes], names: list[str], ref: str
) -> tuple[dict[str, str] | None, str | None]:
    """The module classes of ``files``' config.json, or (None, why not)."""
    from ..formats.hf import CONFIG_FILE, config_modules

    raw = files.get(CONFIG_FILE)
    if raw is None:
        return None, None
    try:
        return config_modules(raw, names, ref), None
    except UnsupportedInput as exc:
        return None, str(exc)


def side_of(model: object, *, chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> StructureSide:
    """The side of an ``nn.Module`` (source ``module``), a state_dict (``names``), a
    ``.safetensors`` file or a Hugging Face folder (``config`` when its config.json fits
    its tensors and transformers is installed, else ``names``). A side is returned as is."""
    if isinstance(model, StructureSide):
        return model
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        sd = model.state_dict()
        with open_model(sd) as src:
            tensors = _entries(src, chunk_elems)
        types = {n: type(m).__name__ for n, m in model.named_modules(remove_duplicate=False)}
        return StructureSide(tensors, types, "module", values=lambda ns: {n: sd[n] for n in ns})
    if isinstance(model, Mapping):
        with open_model(model) as src:
            tensors = _entries(src, chunk_elems)
        sd = dict(model)
        return StructureSide(tensors, values=lambda ns: {n: sd[n] for n in ns})
    if isinstance(model, (str, os.PathLike)):
        with open_model(model) as src:
            tensors = _entries(src, chunk_elems)
            types, note = _config_types(src.files, [t.name for t in tensors], os.fspath(model))

        def values(names: list[str]) -> dict[str, torch.Tensor]:
            with open_model(model) as again:
                by_name = {t.name: t for t in again.tensors}
                return {n: _tensor(by_name[n]) for n in names}

        source = "config" if types is not None else "names"
        return StructureSide(tensors, types, source, note, values)
    raise UnsupportedInput(
        f"cannot compare a {type(model).__name__}: pass an nn.Module, a state_dict, a "
        ".safetensors file or a Hugging Face folder"
    )


def side_of_version(
    rows: list[TensorRow], files: Mapping[str, bytes], ref: str, values: ValuesFn | None
) -> StructureSide:
    """The side of a stored version: its tensor rows (content ids as stored) and side
    files (for config.json). Nothing is decoded."""
    tensors = [TensorEntry(r.name, r.dtype, tuple(r.shape), r.content) for r in rows]
    types, note = _config_types(files, [t.name for t in tensors], ref)
    return StructureSide(tensors, types, "config" if types is not None else "names", note, values)


# -- trees -------------------------------------------------------------------------------


class TNode:
    """A tensor in a tree: its leaf name, its full name (``path``) and its module."""

    __slots__ = ("name", "path", "entry", "parent")

    def __init__(self, name: str, entry: TensorEntry, parent: Node) -> None:
        self.name = name
        self.path = entry.name
        self.entry = entry
        self.parent = parent

    @property
    def numel(self) -> int:
        return self.entry.numel

    def parent_chain(self) -> Iterator[Node]:
        """Its module and the module's ancestors."""
        yield self.parent
        yield from self.parent.ancestors()

    def key(self) -> tuple[str, tuple[int, ...], bytes]:
        e = self.entry
        return (e.dtype, e.shape, e.content)


class Node:
    """A module: its own tensors, its sub-modules and the digests of its subtree."""

    __slots__ = (
        "name", "path", "type", "parent", "children", "tensors",
        "numel", "count", "exact", "bag", "shape", "depth",
    )  # fmt: skip

    def __init__(self, name: str, path: str, parent: Node | None) -> None:
        self.name = name
        self.path = path
        self.parent = parent
        self.type: str | None = None
        self.children: dict[str, Node] = {}
        self.tensors: dict[str, TNode] = {}
        self.numel = 0
        self.count = 0  # tensors in the subtree
        self.exact = b""
        self.bag = 0
        self.shape = b""
        self.depth = 0 if parent is None else parent.depth + 1

    def child(self, name: str) -> Node:
        c = self.children.get(name)
        if c is None:
            path = f"{self.path}.{name}" if self.parent is not None else name
            c = self.children[name] = Node(name, path, self)
        return c

    def walk(self) -> Iterator[Node]:
        """This node and its descendants, parents first."""
        stack = [self]
        while stack:
            n = stack.pop()
            yield n
            stack.extend(reversed(list(n.children.values())))

    def walk_tensors(self) -> Iterator[TNode]:
        for n in self.walk():
            yield from n.tensors.values()

    def ancestors(self) -> Iterator[Node]:
        n = self.parent
        while n is not None:
            yield n
            n = n.parent


def _split(name: str) -> list[str]:
    """A tensor name as module path + leaf; a name with an empty part (``a..b``, ``.x``)
    is one tensor of the model itself, so that every module path stays distinct."""
    parts = name.split(".")
    if "" in parts:
        return [name]
    if len(parts) > MAX_DEPTH:
        parts = parts[: MAX_DEPTH - 1] + [".".join(parts[MAX_DEPTH - 1 :])]
    return parts


def build_tree(side: StructureSide, *, keep_empty: bool) -> Node:
    """The module tree of ``side``. ``keep_empty``: keep the modules that hold no tensor
    (activations, dropouts: known only from module types)."""
    root = Node("", "", None)
    types = side.types or {}
    if keep_empty:
        for path in types:
            node = root
            for p in path.split(".") if path else []:
                node = node.child(p)
    for t in side.tensors:
        *mods, leaf = _split(t.name)
        node = root
        for p in mods:
            node = node.child(p)
        node.tensors[leaf] = TNode(leaf, t, node)
    for n in root.walk():
        n.type = types.get(n.path)
        _number_order(n)
    for n in reversed(list(root.walk())):
        _digest(n)
    return root


def _number_order(node: Node) -> None:
    """Numbered children in numeric order (0, 1, 2, ..., 10), in the places the numbered
    ones held (a .safetensors file sorts names as strings)."""
    items = list(node.children.items())
    slots = [i for i, (k, _) in enumerate(items) if numbered(k)]
    if len(slots) > 1:
        ordered = sorted((items[i] for i in slots), key=lambda kv: (int(kv[0]), kv[0]))
        for i, kv in zip(slots, ordered, strict=True):
            items[i] = kv
        node.children = dict(items)


def _h(obj: Any) -> bytes:
    return xxhash.xxh3_128_digest(repr(obj).encode("utf-8", "surrogatepass"))


def _digest(n: Node) -> None:
    """The node's digests from its tensors and its children's digests (children first)."""
    own = sorted((k, t.entry.dtype, t.entry.shape, t.entry.content) for k, t in n.tensors.items())
    kids = [(k, c) for k, c in n.children.items() if c.count]
    n.count = len(n.tensors) + sum(c.count for _, c in kids)
    n.numel = sum(t.numel for t in n.tensors.values()) + sum(c.numel for _, c in kids)
    n.exact = _h((own, sorted((k, c.exact) for k, c in kids)))
    n.shape = _h(
        (
            sorted((k, s) for k, _, s, _ in own),
            sorted((k, c.shape) for k, c in kids),
        )
    )
    bag = sum(int.from_bytes(_h(t.key()), "little") for t in n.tensors.values())
    n.bag = (bag + sum(c.bag for _, c in kids)) & _MASK
