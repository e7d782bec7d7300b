"""The layers of docs/architecture.md, checked on the source: who may import whom.

Every import of every module under ``python/modelgit`` is parsed (nothing is
imported). A module's layer is its folder; the modules at the package root are either
shared helpers (errors, dtypes, units, ...), the front (``repository``) or
applications (``demo``, ``__init__``). Imports under ``if TYPE_CHECKING:`` count for
the layer rules (a type names a dependency too) but not for cycles (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import modelgit

PACKAGE = Path(modelgit.__file__).parent
SRC = PACKAGE.parent

# rank: a layer may import its own folder and layers of a lower rank, with the exceptions
# below; the root's shared helpers are rank 0
HELPERS = {
    "errors", "dtypes", "names", "tolerance", "memory", "progress", "units", "scratch",
    "callables", "pool", "text", "_native", "cuda", "localservers",
    "_core", "_cuda",  # the native modules
}  # fmt: skip
NATIVE = {"modelgit._core", "modelgit._cuda"}
RANK = {
    "helpers": 0,
    "catalog": 1,
    "codec": 1,
    "formats": 1,
    "storage": 2,
    "versions": 3,
    "lineage": 4,
    "workflows": 5,
    "repository": 6,
    "zoo": 6,  # the reference zoos (used by bench)
    "bench": 7,
    "integrations": 7,  # training-framework callbacks (take a repository)
    "web": 7,  # the web UI (modelgit serve, modelgit site): an application like cli
    "app": 7,  # demo, __init__, __main__
    "cli": 8,
}
MAX_LINES = 600
MAX_FRONT_LINES = 250


@dataclass(frozen=True)
class Import:
    source: str  # dotted module name, e.g. modelgit.storage.store
    target: str  # dotted module name (a package means its __init__)
    line: int
    kind: str  # "eager" (runs at import), "lazy" (inside a function), "typing" (never runs)

    @property
    def eager(self) -> bool:
        return self.kind == "eager"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """The package's Python modules (the native ones by the path of their stub)."""
    found = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    return found | {m: PACKAGE / "_core.pyi" for m in NATIVE}


def layer(mod: str) -> str:
    parts = mod.split(".")
    if len(parts) == 1:
        return "app"
    if parts[1] == "__main__":  # python -m modelgit: the command line
        return "cli"
    if len(parts) == 2 and parts[1] in HELPERS:
        return "helpers"
    if len(parts) == 2 and parts[1] == "repository":
        return "repository"
    if len(parts) == 2 and parts[1] == "demo":
        return "app"
    return parts[1]


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _walk(nodes: list[ast.stmt], kind: str) -> Iterator[tuple[ast.stmt, str]]:
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, kind
        elif isinstance(node, ast.If):
            yield from _walk(node.body, "typing" if _type_checking(node) else kind)
            yield from _walk(node.orelse, kind)
        elif isinstance(node, (ast.Try, ast.With)):
            for block in ("body", "handlers", "orelse", "finalbody"):
                for part in getattr(node, block, []) or []:
                    body = part.body if isinstance(part, ast.ExceptHandler) else [part]
                    yield from _walk(body, kind)
        elif isinstance(node, ast.ClassDef):
            yield from _walk(node.body, kind)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(node.body, "typing" if kind == "typing" else "lazy")
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _walk([child], "lazy")


def imports_of(mod: str, path: Path, known: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: list[Import] = []
    for node, kind in _walk(tree.body, "eager"):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            assert isinstance(node, ast.ImportFrom)
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            subs = [f"{stem}.{a.name}" for a in node.names if f"{stem}.{a.name}" in known]
            targets = subs or [stem]
        for t in targets:
            if t == "modelgit" or t.startswith("modelgit."):
                while t not in known and "." in t:  # modelgit._core and other natives
                    t = t.rpartition(".")[0]
                out.append(Import(mod, t, node.lineno, kind))
    return out


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    known = modules()
    return [
        i for mod, path in known.items() if mod not in NATIVE for i in imports_of(mod, path, known)
    ]


def _allowed(src: str, dst: str) -> bool:
    a, b = layer(src), layer(dst)
    if a == b or b == "helpers":
        return True
    if b == "app" and dst == "modelgit" and a in ("bench", "cli", "app"):
        return True  # applications may use the public package
    if a == "helpers":
        return False
    if RANK[a] == 1:  # catalog, codec, formats: only helpers (and not each other)
        return False
    return RANK[b] < RANK[a]


def test_every_module_has_a_layer() -> None:  # a new root module must be placed
    for mod in modules():
        assert layer(mod) in RANK, mod


def test_imports_run_downward(graph: list[Import]) -> None:
    wrong = [
        f"{i.source}:{i.line} imports {i.target} ({layer(i.source)} -> {layer(i.target)})"
        for i in graph
        if not _allowed(i.source, i.target)
    ]
    assert wrong == []


def test_the_library_never_imports_the_cli(graph: list[Import]) -> None:
    assert [
        f"{i.source}:{i.line}"
        for i in graph
        if layer(i.target) == "cli" and layer(i.source) != "cli"
    ] == []


def test_services_take_the_engine_not_the_front(graph: list[Import]) -> None:
    """Only the applications (cli, web, demo, the package itself) import the front class."""
    importers = {i.source for i in graph if i.target == "modelgit.repository"}
    assert {layer(m) for m in importers} <= {"app", "cli", "web"}, importers


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_spans_folders(graph: list[Import]) -> None:
    """Between layers no cycle at all, lazy imports included (type-only ones never run)."""
    edges: dict[str, set[str]] = {}
    for i in graph:
        a, b = layer(i.source), layer(i.target)
        if i.kind != "typing" and a != b:
            edges.setdefault(a, set()).add(b)
    assert _cycles(edges) == []


def test_no_eager_import_cycle_between_modules(graph: list[Import]) -> None:
    """Modules of one folder may import each other lazily (graph <-> render), never
    both at import time."""
    edges: dict[str, set[str]] = {}
    for i in graph:
        if i.eager and i.source != i.target:
            edges.setdefault(i.source, set()).add(i.target)
    # a package's __init__ importing its own submodules is how packages work; a
    # submodule importing its package back at import time is a cycle
    assert _cycles(edges) == []


def test_module_sizes() -> None:
    big = {
        mod: n
        for mod, path in modules().items()
        if mod not in NATIVE
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}, f"modules over {MAX_LINES} lines: {big}"
    front = len((PACKAGE / "repository.py").read_text().splitlines())
    assert front <= MAX_FRONT_LINES


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    """The parser finds eager, lazy and TYPE_CHECKING imports (so the tests above can
    fail)."""
    src = tmp_path / "modelgit" / "storage"
    src.mkdir(parents=True)
    f = src / "bad.py"
    f.write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..versions import engine\n"
        "if TYPE_CHECKING:\n    from ..cli import main\n"
        "def f():\n    from ..repository import Repository\n"
    )
    known = {
        "modelgit.storage.bad": f,
        "modelgit.versions": f,
        "modelgit.versions.engine": f,
        "modelgit.cli": f,
        "modelgit.repository": f,
    }
    got = imports_of("modelgit.storage.bad", f, known)
    assert [(i.target, i.kind) for i in got] == [
        ("modelgit.versions.engine", "eager"),
        ("modelgit.cli", "typing"),
        ("modelgit.repository", "lazy"),
    ]
    assert not any(_allowed(i.source, i.target) for i in got)
