"""Bisect: the first version along a lineage path at which a test fails.

The path runs over the version-level graph (provenance links and version links), from
the good version to the bad one: ``base@1 -> ft@1 -> ft@2 -> ft@3`` when ft@3 is bad
and base@1 good, or simply ``m@2 -> m@3 -> ... -> m@9`` for two versions of one model.
The bad version must descend from the good one: swapped ends (good descends from bad)
and unrelated ends (neither descends from the other) are refused before any test
runs. Both ends are tested first (``verify=False`` trusts them, as ``git bisect``
does): the good end must pass and the bad end fail. A binary search then needs about
log2(len(path)) more test runs. A test that raises on a version counts as failing
there (the model broke the evaluation); a test function that cannot be imported stops
bisect before any run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..callables import resolve_callable
from ..errors import LineageError, WorkflowError
from ..lineage.api import graph_of
from .tests_registry import TestResult, TestSpec, factory_for, run_one, store_result

if TYPE_CHECKING:
    from ..versions import VersionStore

__all__ = ["BisectResult", "version_path", "run_bisect"]


@dataclass
class BisectResult:
    """``first_bad``: the first ref of ``path`` that fails; ``runs``: test runs it took."""

    test: str
    good: str
    bad: str
    first_bad: str
    runs: int
    path: list[str]
    results: dict[str, TestResult] = field(default_factory=dict)

    @property
    def last_good(self) -> str:
        return self.path[self.path.index(self.first_bad) - 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "good": self.good,
            "bad": self.bad,
            "first_bad": self.first_bad,
            "last_good": self.last_good,
            "runs": self.runs,
            "path": self.path,
            "results": {ref: r.to_json() for ref, r in self.results.items()},
        }

    def __str__(self) -> str:
        lines = [f"first bad: {self.first_bad} (last good: {self.last_good})"]
        lines.append(f"{self.runs} test runs over a path of {len(self.path)} versions:")
        for ref in self.path:
            r = self.results.get(ref)
            mark = "" if r is None else f"  {r.shown_value} {r.status}"
            arrow = "  <- first bad" if ref == self.first_bad else ""
            lines.append(f"  {ref}{mark}{arrow}")
        return "\n".join(lines)


def _bfs(adj: dict[str, list[str]], a: str, b: str) -> list[str] | None:
    prev = {a: a}
    queue = deque([a])
    while queue:
        cur = queue.popleft()
        if cur == b:
            out = [b]
            while out[-1] != a:
                out.append(prev[out[-1]])
            return out[::-1]
        for nxt in adj.get(cur, ()):
            if nxt not in prev:
                prev[nxt] = cur
                queue.append(nxt)
    return None


def version_path(repo: VersionStore, good: str, bad: str) -> list[str]:
    """Refs from ``good`` to ``bad`` along the version-level lineage graph."""
    _, gv = repo.resolve(good)
    _, bv = repo.resolve(bad)
    if gv.ref == bv.ref:
        raise WorkflowError(f"good and bad are the same version ({gv.ref})")
    edges = graph_of(repo).edges(kind=None)
    forward: dict[str, list[str]] = {}
    for e in edges:
        forward.setdefault(e.parent, []).append(e.child)
    path = _bfs(forward, gv.ref, bv.ref)
    if path is not None:
        return path
    if _bfs(forward, bv.ref, gv.ref) is not None:
        raise WorkflowError(
            f"the ends are swapped: the good end {gv.ref} descends from the bad end {bv.ref}; "
            f"bisect runs from an ancestor that passes to a descendant that fails "
            f"(good {bv.ref}, bad {gv.ref}?)"
        )
    raise LineageError(
        f"{gv.ref} and {bv.ref} are unrelated: neither descends from the other, so no "
        "lineage path runs from the good end to the bad one"
    )


def run_bisect(
    repo: VersionStore,
    spec: TestSpec,
    good: str,
    bad: str,
    store: bool,
    verify: bool = True,
) -> BisectResult:
    path = version_path(repo, good, bad)
    resolve_callable(spec.fn)  # a test that cannot be imported stops here, not as "bad"
    results: dict[str, TestResult] = {}
    db = repo.catalog.connection()

    def passes(ref: str) -> bool:
        if ref not in results:
            vid, v = repo.resolve(ref)
            sd = repo.load(ref)
            r = run_one(spec, v.model, v.number, sd, factory_for(db, spec, v.model))
            del sd
            if store:
                with repo.catalog.transaction() as tx:
                    store_result(tx, vid, r)
            results[ref] = r
        return results[ref].passed

    if verify:
        if not passes(path[0]):
            r = results[path[0]]
            raise WorkflowError(
                f"the good end {path[0]} fails {spec.name} ({r.error or r.shown_value})"
            )
        if passes(path[-1]):
            raise WorkflowError(f"the bad end {path[-1]} passes {spec.name}")
    lo, hi = 0, len(path) - 1  # invariant: path[lo] passes, path[hi] fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(path[mid]):
            lo = mid
        else:
            hi = mid
    return BisectResult(spec.name, path[0], path[-1], path[hi], len(results), path, results)
