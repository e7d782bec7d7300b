"""The update cascade: re-derive every downstream model after an upstream one changed.

A model D whose creation function is set (``repo.set_creator``) is *stale* when, for
some provenance parent P, the newest version of D that records a provenance link to P
links to an older version than P's latest. The cascade visits the descendants of the
changed model in topological order and re-derives each stale D: ``parents`` maps each
parent's name to its latest state_dict, ``fn(parents, **args)`` returns D's new
weights, and they are committed as D's next version with provenance links to exactly
those parent versions (one catalog transaction, like every commit).

Resuming: a model already re-derived has links to its parents' latest versions and is
not stale any more, so running the cascade again after a failure or a crash only does
what is left. A failing creation function (or, with ``run_tests=True``, a failing
test) stops that model's subtree; other branches go on; everything committed stays.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..callables import resolve_callable
from ..errors import WorkflowError
from ..lineage.api import graph_of
from ..lineage.graph import LineageGraph
from ..tolerance import tolerance_from_json
from ..versions.remove import relinked_parents
from .tests_registry import (
    TestTable,
    load_tests,
    rejudge,
    run_tests,
    select_models,
    stored_results,
)

if TYPE_CHECKING:
    from ..versions import VersionStore

__all__ = ["CascadeStep", "CascadeReport", "Creator", "run_cascade"]

# what happened to a model (or, in a dry run, what would)
UPDATED = "updated"  # re-derived, a new version committed
UP_TO_DATE = "up-to-date"  # its provenance already points at its parents' latest versions
NO_CREATOR = "no-creator"  # stale, but no creation function: left as it is
FAILED = "failed"  # the creation function (or storing its result) raised
TEST_FAILED = "test-failed"  # re-derived (or up to date) but a test fails: subtree stopped
BLOCKED = "blocked"  # below a failed model: not touched
WOULD_UPDATE = "would-update"  # dry run


@dataclass(frozen=True)
class Creator:
    """The creation function of a model: ``fn(parents, **args)`` -> state_dict."""

    model: str
    fn: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.model, "fn": self.fn, "args": self.args}


@dataclass
class CascadeStep:
    """What the cascade did (or would do) to one model."""

    model: str
    status: str
    parents: list[str] = field(default_factory=list)  # parent refs it was derived from
    version: str | None = None  # the new version (updated) or current latest
    creator: str | None = None
    error: str | None = None
    tests: TestTable | None = None
    rederived: bool = False  # a new version was committed (even if its tests then fail)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.model,
            "status": self.status,
            "rederived": self.rederived,
            "parents": self.parents,
            "version": self.version,
            "creator": self.creator,
            "error": self.error,
            "tests": None if self.tests is None else self.tests.to_json(),
        }


@dataclass
class CascadeReport:
    """The result of ``repo.cascade``: one step per descendant, in topological order."""

    source: str
    dry_run: bool
    steps: list[CascadeStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(s.status in (FAILED, TEST_FAILED, BLOCKED) for s in self.steps)

    def _with(self, *status: str) -> list[str]:
        return [s.model for s in self.steps if s.status in status]

    @property
    def updated(self) -> list[str]:
        """Models that got a new version (in a dry run: would get one)."""
        return [s.model for s in self.steps if s.rederived or s.status == WOULD_UPDATE]

    @property
    def failed(self) -> list[str]:
        return self._with(FAILED, TEST_FAILED)

    @property
    def blocked(self) -> list[str]:
        return self._with(BLOCKED)

    def step(self, model: str) -> CascadeStep:
        for s in self.steps:
            if s.model == model:
                return s
        raise KeyError(f"{model!r} is not downstream of {self.source}")

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "steps": [s.to_json() for s in self.steps],
        }

    def __str__(self) -> str:
        head = f"cascade from {self.source}" + (" (dry run)" if self.dry_run else "")
        if not self.steps:
            return f"{head}: nothing downstream"
        lines = [head + ":"]
        for s in self.steps:
            if s.status in (UPDATED, WOULD_UPDATE):
                verb = "re-derive" if self.dry_run else "re-derived"
                via = f" with {s.creator}" if s.creator else ""
                target = f" -> {s.version}" if s.version else ""
                detail = f"{verb} from {', '.join(s.parents)}{via}{target}"
            elif s.status == UP_TO_DATE:
                detail = f"up to date ({s.version})"
            elif s.status == NO_CREATOR:
                detail = (
                    "stale, but has no creation function: left as is (set one with "
                    "set_creator or modelgit creator)"
                )
            elif s.status == BLOCKED:
                detail = f"skipped: {s.error}"
            elif s.status == TEST_FAILED and s.rederived:
                detail = f"re-derived -> {s.version}, but {s.error}"
            else:
                detail = s.error or s.status
            lines.append(f"  {s.status:<12} {s.model}: {detail}")
            if s.tests is not None and len(s.tests):
                for r in s.tests:
                    lines.append(f"  {'':<12}   test {r.test}: {r.shown_value} {r.status}")
        if not self.dry_run:
            n = len(self.updated)
            lines.append(
                f"{n} updated, {len(self.failed)} failed, {len(self.blocked)} blocked"
                + ("" if self.ok else "; fix and run the cascade again to resume")
            )
        return "\n".join(lines)


@contextmanager
def _cascade_lock(root: Any) -> Iterator[None]:
    fd = os.open(root / "locks" / "cascade.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkflowError(
                "another cascade is running in this repository; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def load_creators(db: Any) -> dict[str, Creator]:
    return {
        m: Creator(m, fn, json.loads(args))
        for m, fn, args in db.execute("SELECT model, fn, args FROM creators")
    }


def linked_parent_versions(
    repo: VersionStore, model: str, parents: list[str]
) -> dict[str, int | None]:
    """For each parent model, the version the newest linking version of ``model`` names."""
    out: dict[str, int | None] = {p: None for p in parents}
    for v in reversed(repo.versions(model)):
        for link in v.parents:
            if link.kind == "provenance" and link.model in out and out[link.model] is None:
                out[link.model] = link.number
        if all(n is not None for n in out.values()):
            break
    return out


def _is_stale(repo: VersionStore, graph: LineageGraph, model: str) -> bool:
    parents = graph.parents(model)
    linked = linked_parent_versions(repo, model, parents)
    return any(linked[p] != graph.node(p).latest for p in parents)


def run_cascade(
    repo: VersionStore, name: str, dry_run: bool = False, run_tests: bool = False
) -> CascadeReport:
    repo.require_model(name)
    graph = graph_of(repo)
    source = f"{name}@{graph.node(name).latest}"
    report = CascadeReport(source, dry_run)
    below = set(graph.descendants(name))
    order = [m for m in graph.topological_order() if m in below]
    creators = load_creators(repo.catalog.connection())
    if dry_run:
        changing: set[str] = set()
        for m in order:
            parents = graph.parents(m)
            stale = any(p in changing for p in parents) or _is_stale(repo, graph, m)
            latest = graph.node(m).latest
            if not stale:
                report.steps.append(CascadeStep(m, UP_TO_DATE, version=f"{m}@{latest}"))
            elif m not in creators:
                report.steps.append(CascadeStep(m, NO_CREATOR, version=f"{m}@{latest}"))
            elif why := _through_removed(repo, m, parents):
                report.steps.append(CascadeStep(m, BLOCKED, error=why))
            else:
                changing.add(m)
                refs = [
                    f"{p}@{graph.node(p).latest + (1 if p in changing else 0)}" for p in parents
                ]
                report.steps.append(
                    CascadeStep(m, WOULD_UPDATE, refs, f"{m}@{latest + 1}", creators[m].fn)
                )
        return report

    with _cascade_lock(repo.root):
        stopped: dict[str, str] = {}  # model -> why its subtree stops
        for m in order:
            graph = graph_of(repo)  # parents may have new versions now
            parents = graph.parents(m)
            bad = [p for p in parents if p in stopped]
            if bad:
                why = f"parent {bad[0]} " + (
                    "was not updated" if stopped[bad[0]] == "fail" else "is blocked"
                )
                report.steps.append(CascadeStep(m, BLOCKED, error=why))
                stopped[m] = "blocked"
                continue
            creator = creators.get(m)
            if not _is_stale(repo, graph, m):
                step = CascadeStep(m, UP_TO_DATE, version=f"{m}@{graph.node(m).latest}")
            elif creator is None:
                step = CascadeStep(m, NO_CREATOR, version=f"{m}@{graph.node(m).latest}")
            elif why := _through_removed(repo, m, parents):
                step = CascadeStep(m, BLOCKED, error=why)
            else:
                step = _rederive(repo, graph, m, parents, creator, source)
            report.steps.append(step)
            if step.status == BLOCKED:
                stopped[m] = "blocked"
                continue
            if step.status == FAILED:
                stopped[m] = "fail"
                continue
            if run_tests and step.status in (UPDATED, UP_TO_DATE):
                step.tests = _test(repo, m, fresh=step.status == UPDATED)
                if not step.tests.ok:
                    failed = step.tests.failed[0]
                    step.status = TEST_FAILED
                    step.error = f"test {failed.test} fails on {failed.ref} ({failed.status})"
                    stopped[m] = "fail"
    return report


def _through_removed(repo: VersionStore, model: str, parents: list[str]) -> str | None:
    """Why ``model`` is not re-derived when a parent's edge was made by a forced removal
    (it re-linked the model past the removed one: no derivation anyone recorded, and a
    creator fed that parent would rebuild the model from the wrong weights); else None."""
    relinked = relinked_parents(repo.removed_ancestors(model))
    through = [p for p in parents if p in relinked]
    if not through:
        return None
    p = through[0]
    return (
        f"its edge from {p} was made when {relinked[p]} was removed (rm --force), so {p} is "
        f"not what it was derived from; re-derive it yourself, or confirm the edge: "
        f"`modelgit edge rm {p} {model}` then `modelgit edge add {p} {model} -r RELATION`"
    )


def _rederive(
    repo: VersionStore,
    graph: LineageGraph,
    model: str,
    parents: list[str],
    creator: Creator,
    source: str,
) -> CascadeStep:
    resolved = [repo.resolve(p) for p in parents]
    refs = [pv.ref for _, pv in resolved]
    step = CascadeStep(model, UPDATED, refs, creator=creator.fn)
    try:
        fn = resolve_callable(creator.fn)
        inputs = {pv.model: repo.load(pv.ref) for _, pv in resolved}
        new = fn(inputs, **creator.args)
        del inputs
        if new is None:
            raise WorkflowError(f"{creator.fn} returned None; it must return a state_dict")
        prev_id, prev = repo.resolve(model)
        _same_shapes(repo, prev.ref, new, creator.fn)
        links = [
            (pid, pv, "provenance", graph.edge(pv.model, model).relation) for pid, pv in resolved
        ]
        links.append((prev_id, prev, "version", "version"))
        tolerance = tolerance_from_json(prev.tolerance) if prev.tolerance else None
        metadata = {"cascade": {"from": source, "creator": creator.fn, "args": creator.args}}
        v = repo.write(
            model, new, links, f"cascade from {source}", metadata, tolerance, new_model=False
        )
    except Exception as exc:
        step.status = FAILED
        step.error = f"{type(exc).__name__}: {exc}"
        return step
    step.version = v.ref
    step.rederived = True
    return step


def _same_shapes(repo: VersionStore, ref: str, new: object, fn: str) -> None:
    """WorkflowError where the creator's result gives a tensor of the model's latest
    version another shape: a re-derivation keeps the architecture (a model that changes
    it is committed by hand)."""
    import torch

    if not isinstance(new, Mapping):
        return  # the write names what is wrong with it
    shapes = {r.name: tuple(r.shape) for r in repo.tensor_rows(repo.resolve(ref)[0])}
    for k, t in new.items():
        if isinstance(t, torch.Tensor) and k in shapes and tuple(t.shape) != shapes[k]:
            raise WorkflowError(
                f"{fn} returned {k!r} of shape {list(t.shape)}, where {ref} has "
                f"{list(shapes[k])}; a cascade keeps each tensor's shape (commit such a "
                "change by hand)"
            )


def _test(repo: VersionStore, model: str, fresh: bool) -> TestTable:
    """Run the tests that select ``model`` on its latest version (for an up-to-date model,
    only those not yet run on it; the stored verdicts of the others count)."""
    vid, v = repo.resolve(model)
    graph = graph_of(repo)
    every = load_tests(repo.catalog.connection())
    specs = [s for s in every if model in select_models(graph, s.selector)]
    if fresh:
        return run_tests(repo, specs, [(vid, v)])
    stored = {r.test: r for r in stored_results(repo, ref=v.ref, latest_only=True)}
    kept, todo = [], []
    for s in specs:
        old = stored.get(s.name)
        again = None if old is None else rejudge(old, s)
        if again is None:
            todo.append(s)
        else:
            kept.append(again)
    ran = run_tests(repo, todo, [(vid, v)]) if todo else TestTable([])
    return TestTable([*kept, *ran.rows])
