"""What the pages show, read from a repository once per state of its catalog.

A :class:`Snapshot` gathers, through the repository's read API, everything the graph,
model, search and storage pages need: the lineage graph, every model's versions, tags,
creation function, registered tests and their results, storage per version (what it
introduced, what it shares, how deep its delta chains go, which versions it was coded
against) and the file names of the site (slugs). Side files and diffs are read when a
page asks for them. Nothing here writes.

Model names become file names only through :func:`make_slugs` (letters, digits, ``.``,
``_`` and ``-``; any other name gets a hash suffix, and so does a name that differs from
an earlier one only by case), and URLs are mapped back by looking the slug up here,
never by building a path from them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ModelgitError
from ..formats.hf import import_transformers, no_disk_cache
from ..storage.maintenance import ModelStats, RepoStats, VersionStats, stats, version_stats
from ..storage.similarity import storage_base_refs
from ..workflows.tests_registry import select_models

if TYPE_CHECKING:
    from ..lineage.graph import Edge, LineageGraph, Node
    from ..repository import Repository
    from ..versions import Version
    from ..versions.diff import Diff
    from ..workflows import Creator, TestResult, TestSpec

__all__ = ["Snapshot", "ModelView", "DiffView", "make_slugs", "compute_diff", "warm_up"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SLUG = 60


def _digest(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def make_slugs(names: list[str]) -> dict[str, str]:
    """A file-name-safe, unique (case-insensitively too) slug for every name, in order:
    a name made of safe characters is its own slug unless an earlier one took it."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = _UNSAFE.sub("_", name).strip("._-")[:MAX_SLUG] or "model"
        tries = ([base] if base == name else []) + [
            f"{base}-{_digest(name, n)}" for n in (8, 12, 16, 32, 64)
        ]
        slug = next((t for t in tries if t.lower() not in taken), "")
        k = 2
        while not slug or slug.lower() in taken:
            slug = f"{base}-{_digest(name, 64)}-{k}"
            k += 1
        taken.add(slug.lower())
        out[name] = slug
    return out


@dataclass
class ModelView:
    """One model as its page shows it."""

    name: str
    slug: str
    node: Node
    versions: list[Version]
    parents: list[Edge]  # its provenance edges, in the order they were recorded
    children: list[Edge]
    tags: dict[int, list[str]]  # version number -> its tags
    creator: Creator | None
    stats: ModelStats | None
    tests: list[TestSpec]  # the registered tests that select this model
    results: list[TestResult]  # stored results on its versions, oldest first

    @property
    def latest(self) -> Version | None:
        own = [v for v in self.versions if v.fetched_number is None]
        return own[-1] if own else (self.versions[-1] if self.versions else None)

    @property
    def relation(self) -> str:
        """How it was derived from its first parent ("root" for none)."""
        return self.parents[0].relation if self.parents else "root"


@dataclass
class DiffView:
    """A diff as the diff page shows it: ``repo.diff``, and its structural diff as the
    JSON of ``StructureDiff.to_json()`` when this modelgit computes one."""

    diff: Diff
    structure: dict[str, Any] | None
    note: str = ""  # why there is no structure panel


def warm_up() -> None:
    """Import what a diff needs (torch, and transformers when it is installed) now, once.
    Their first import reads files outside the repository (transformers, through
    huggingface_hub and filelock, reads ``/proc/self/mountinfo`` and the boot id; both
    read package metadata), so a server does it before it answers anything: then a
    request opens no file outside the repository, the package and Python's installation.
    It costs about 1-2 s once, at start (nothing afterwards)."""
    import torch  # noqa: F401

    try:
        import_transformers()
    except Exception:  # noqa: BLE001 - not installed or broken: the diff that needs it says so
        pass


def compute_diff(repo: Repository, a: str, b: str, *, values: bool = True) -> DiffView:
    """``repo.diff(a, b, structure=True)``, computed once. An unknown ref or a damaged
    version raises (a ModelgitError); a structural diff that fails otherwise leaves the
    rest of the page standing, with the reason (``Diff.structure_note``) in ``note``."""
    with no_disk_cache():  # the server reads no file outside the repository
        d = repo.diff(a, b, values=values, structure=True)
    if d.structure is None:
        return DiffView(d, None, d.structure_note or "structural diff unavailable")
    return DiffView(d, d.structure.to_json())


def ref_slug(slug: str, v: Version) -> str:
    """The name of a version in file names: ``SLUG@N`` (``SLUG@fetched-N`` aside)."""
    if v.fetched_number is not None:
        return f"{slug}@fetched-{v.fetched_number}"
    return f"{slug}@{v.number}"


@dataclass
class Snapshot:
    """Everything the pages need, read in one pass (see the module docstring)."""

    graph: LineageGraph
    models: dict[str, ModelView]
    slugs: dict[str, str]
    by_slug: dict[str, str]
    repo_stats: RepoStats
    version_stats: dict[tuple[str, int], VersionStats]
    bases: dict[tuple[str, int], list[tuple[str, int]]]
    tests: list[TestSpec]
    max_depth: int
    location: str
    # diff file name (under diff/) -> (ref a, ref b); per version: its diff links
    diffs: dict[str, tuple[str, str]] = field(default_factory=dict)
    prev_diff: dict[str, str] = field(default_factory=dict)  # ref -> file of prev -> ref
    parent_diffs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def read(cls, repo: Repository) -> Snapshot:
        """Read in one snapshot of the catalog: a model removed or a version committed
        meanwhile is either wholly in it or wholly out."""
        with repo.catalog.snapshot():
            return cls._read(repo)

    @classmethod
    def _read(cls, repo: Repository) -> Snapshot:
        graph = repo.graph
        names = graph.models
        slugs = make_slugs(names)
        vstats = version_stats(repo.catalog)
        repo_stats = stats(repo.catalog, repo.store, vstats)
        per_model = {m.name: m for m in repo_stats.models}
        tags: dict[tuple[str, int], list[str]] = {}
        for t, v in repo.tags().items():
            tags.setdefault((v.model, v.number), []).append(t)
        specs = repo.tests()
        selected = {s.name: set(select_models(graph, s.selector)) for s in specs}
        results: dict[str, list[TestResult]] = {}
        for r in repo.test_results():
            results.setdefault(r.model, []).append(r)
        models: dict[str, ModelView] = {}
        for name in names:
            versions = repo.versions(name)
            models[name] = ModelView(
                name=name,
                slug=slugs[name],
                node=graph.node(name),
                versions=versions,
                parents=[e for p in graph.parents(name) if (e := graph.edge(p, name))],
                children=[e for c in graph.children(name) if (e := graph.edge(name, c))],
                tags={n: ts for (m, n), ts in tags.items() if m == name},
                creator=repo.creator(name),
                stats=per_model.get(name),
                tests=[s for s in specs if name in selected[s.name]],
                results=results.get(name, []),
            )
        snap = cls(
            graph=graph,
            models=models,
            slugs=slugs,
            by_slug={s: n for n, s in slugs.items()},
            repo_stats=repo_stats,
            version_stats={(v.model, v.number): v for v in vstats},
            bases=storage_base_refs(repo.catalog),
            tests=specs,
            max_depth=repo.layout()["max_depth"],
            location=repo.location,
        )
        snap._plan_diffs()
        return snap

    def _plan_diffs(self) -> None:
        """The diffs the static site writes: each version against the one before it, and
        each model's first version against each parent version it was derived from."""
        for m in self.models.values():
            own = [v for v in m.versions if v.fetched_number is None]
            for prev, v in zip(own, own[1:], strict=False):
                self.prev_diff[v.ref] = self._add_diff(prev.model, prev, v)
            if own:
                first = own[0]
                for p in first.parents:
                    if p.kind != "provenance" or p.model not in self.models:
                        continue
                    pv = next((x for x in self.models[p.model].versions if x.ref == p.ref), None)
                    if pv is not None:
                        href = self._add_diff(p.model, pv, first)
                        self.parent_diffs.setdefault(first.ref, []).append((pv.ref, href))

    def _add_diff(self, parent_model: str, a: Version, b: Version) -> str:
        sa = ref_slug(self.slugs[parent_model], a)
        sb = ref_slug(self.slugs[b.model], b)
        file = f"{sa}--{sb}.html"
        self.diffs[file] = (a.ref, b.ref)
        return file

    # -- lookups --------------------------------------------------------------------------
    def model_href(self, name: str, number: int | None = None) -> str:
        """The model page of ``name`` (at version ``number``'s row), from the root."""
        anchor = f"#v{number}" if number is not None else ""
        return f"model/{self.slugs[name]}.html{anchor}"

    def ref_href(self, ref: str) -> str | None:
        """The row of version ``ref`` (``model@N``) on its model page, if it is known."""
        model, _, number = ref.partition("@")
        if model not in self.slugs:
            return None
        return self.model_href(model, int(number) if number.isdigit() else None)


def side_file_text(data: bytes, limit: int = 64 << 10) -> tuple[str | None, bool]:
    """(text, cut) of a side file shown as text, or (None, False) for a binary one."""
    if b"\0" in data[:8192]:
        return None, False
    try:
        text = data[:limit].decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) <= limit or exc.start < limit - 4:  # not a character cut at the limit
            return None, False
        text = data[: exc.start].decode("utf-8")
    return text, len(data) > limit


def read_files(repo: Repository, ref: str) -> dict[str, bytes] | str:
    """A version's side files, or the reason they could not be read."""
    try:
        return repo.files(ref)
    except ModelgitError as exc:
        return str(exc)
