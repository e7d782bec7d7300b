"""Tests registered on the lineage graph: registration, selection, running, results.

A test is a function referenced by import path (``"pkg.module:function"``; stored as
text, never pickled, imported only when a workflow runs). It receives the loaded
model — a state_dict, or the ``nn.Module`` built by a registered model factory with
the state_dict loaded into it — and returns a number (a metric) or a bool (a
verdict). Every result is stored against the exact version it ran on.

Selectors (``models=``), a list whose terms are unioned:

- ``None`` or ``"*"``: every model;
- ``"name"``: that model;
- ``"relation:R"``: every model derived from a parent by relation ``R``;
- ``"descendants:X"`` (or ``"descendants of X"``): every model derived from ``X``,
  directly or not (``X`` itself excluded; add ``"X"`` to include it).

Selectors are evaluated when tests run, so models added later are picked up.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..callables import callable_path, resolve_callable
from ..errors import ModelgitWarning, UnsupportedInput, WorkflowError
from ..lineage.api import graph_of
from ..lineage.graph import LineageGraph
from ..names import parse_ref, validate_name
from ..text import one_line, table

if TYPE_CHECKING:
    import torch

    from ..versions import VersionStore

__all__ = [
    "TestSpec",
    "TestResult",
    "TestTable",
    "parse_selector",
    "describe_selector",
    "select_models",
    "verdict",
]

_CALLABLE_SYNTAX = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"


def check_path(fn: str | Callable[..., Any], what: str) -> str:
    """The import path to store for ``fn``; a string is only checked, not imported."""
    if isinstance(fn, str):
        if not re.match(_CALLABLE_SYNTAX, fn):
            raise UnsupportedInput(
                f"{what} {fn!r} is not an import path: write 'package.module:function'"
            )
        return fn
    if callable(fn):
        return callable_path(fn)
    raise UnsupportedInput(f"{what} must be an import path string or a function, not {fn!r}")


# -- selectors ---------------------------------------------------------------------------
def parse_selector(models: str | Sequence[str] | None, known: Iterable[str] = ()) -> list[dict]:
    """Selector terms (JSON-able dicts) from the ``models=`` argument."""
    if models is None:
        return [{"kind": "all"}]
    items = [models] if isinstance(models, str) else list(models)
    if not items:
        raise WorkflowError("models= selects nothing: pass None for every model")
    known = set(known)
    terms: list[dict] = []
    for item in items:
        if not isinstance(item, str):
            raise WorkflowError(f"a model selector must be a string, not {item!r}")
        s = item.strip()
        if s == "*":
            terms.append({"kind": "all"})
        elif s in known:
            terms.append({"kind": "name", "name": s})
        elif s.startswith("relation:"):
            rel = s.partition(":")[2].strip()
            if not rel:
                raise WorkflowError(f"{item!r}: write relation:finetune (or another relation)")
            terms.append({"kind": "relation", "relation": rel})
        elif s.startswith("descendants:") or s.startswith("descendants of "):
            of = s[len("descendants:") :] if s.startswith("descendants:") else s[15:]
            terms.append({"kind": "descendants", "of": validate_name(of.strip())})
        else:
            terms.append({"kind": "name", "name": validate_name(s)})
    return terms


def warn_unknown_names(terms: list[dict], known: Sequence[str]) -> None:
    """A ModelgitWarning for each model a selector names that does not exist (yet): a
    test of a misspelt name would never run, and say nothing."""
    for t in terms:
        name = t.get("name") if t["kind"] == "name" else t.get("of")
        if name is None or name in known:
            continue
        lower = {k.lower(): k for k in known}  # case first: fT for ft
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), 1, 0.6)]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        warnings.warn(
            f"the test selects {name!r}, which is no model here yet{hint}: it runs on it "
            "once it exists",
            ModelgitWarning,
            stacklevel=3,
        )


def describe_selector(terms: list[dict]) -> str:
    parts = []
    for t in terms:
        k = t["kind"]
        if k == "all":
            parts.append("*")
        elif k == "name":
            parts.append(t["name"])
        elif k == "relation":
            parts.append(f"relation:{t['relation']}")
        else:
            parts.append(f"descendants:{t['of']}")
    return ",".join(parts)


def select_models(graph: LineageGraph, terms: list[dict]) -> list[str]:
    """The models a selector names, in topological order (unknown names are skipped)."""
    chosen: set[str] = set()
    for t in terms:
        k = t["kind"]
        if k == "all":
            chosen.update(graph.models)
        elif k == "name":
            if t["name"] in graph:
                chosen.add(t["name"])
        elif k == "relation":
            chosen.update(e.child for e in graph.edges() if e.relation == t["relation"])
        elif k == "descendants":
            if t["of"] in graph:
                chosen.update(graph.descendants(t["of"]))
    return [m for m in graph.topological_order() if m in chosen]


# -- records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TestSpec:
    """A registered test."""

    __test__ = False  # not a pytest class

    name: str
    fn: str
    selector: list[dict] = field(default_factory=lambda: [{"kind": "all"}])
    higher_is_better: bool = True
    threshold: float | None = None
    factory: str | None = None
    created: float = 0.0

    @property
    def models(self) -> str:
        return describe_selector(self.selector)

    @property
    def goal(self) -> str:
        if self.threshold is None:
            return "higher" if self.higher_is_better else "lower"
        return f"{'>=' if self.higher_is_better else '<='} {self.threshold:g}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fn": self.fn,
            "models": self.models,
            "selector": self.selector,
            "higher_is_better": self.higher_is_better,
            "threshold": self.threshold,
            "factory": self.factory,
        }

    @classmethod
    def from_row(cls, row: tuple) -> TestSpec:
        name, fn, selector, hib, threshold, factory, created = row
        return cls(name, fn, json.loads(selector), bool(hib), threshold, factory, created)


TEST_COLUMNS = "name, fn, selector, higher_is_better, threshold, factory, created"


def verdict(value: float | bool | None, higher_is_better: bool, threshold: float | None) -> bool:
    """Whether a result passes: a bool is the verdict; a number passes when there is no
    threshold, or it is >= threshold (higher is better) / <= threshold (lower is better).
    NaN and errors (None) fail."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if math.isnan(value):
        return False
    if threshold is None:
        return True
    return value >= threshold if higher_is_better else value <= threshold


def to_metric(value: object) -> tuple[str, float | bool]:
    """('bool', verdict) or ('float', metric) from what a test returned."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise UnsupportedInput(
                f"the test returned a tensor of shape {tuple(value.shape)}; "
                "return a float or a bool"
            )
        value = value.item()
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "bool", bool(value)
    if isinstance(value, numbers.Real):
        return "float", float(value)
    raise UnsupportedInput(f"the test returned {type(value).__name__}; return a float or a bool")


@dataclass(frozen=True)
class TestResult:
    """One run of a test on one version."""

    __test__ = False

    test: str
    model: str
    number: int
    kind: str  # "float", "bool" or "error"
    value: float | bool | None
    passed: bool
    higher_is_better: bool
    threshold: float | None
    error: str | None = None
    seconds: float = 0.0
    created: datetime | None = None
    fn: str = ""

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.number}"

    @property
    def goal(self) -> str:
        if self.kind == "bool":
            return "true"
        if self.threshold is None:
            return "higher" if self.higher_is_better else "lower"
        return f"{'>=' if self.higher_is_better else '<='} {self.threshold:g}"

    @property
    def shown_value(self) -> str:
        if self.kind == "error":
            return "-"
        if self.kind == "bool":
            return "true" if self.value else "false"
        return "nan" if self.value is None else f"{self.value:.6g}"

    @property
    def status(self) -> str:
        if self.kind == "error":
            return "error"
        return "pass" if self.passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "ref": self.ref,
            "name": self.model,
            "version": self.number,
            "kind": self.kind,
            "value": self.value,
            "passed": self.passed,
            "higher_is_better": self.higher_is_better,
            "threshold": self.threshold,
            "error": self.error,
            "seconds": self.seconds,
            "created": self.created.isoformat() if self.created else None,
            "fn": self.fn,
        }


class TestTable:
    """Results of tests, one row per (test, version) run; prints as a table."""

    __test__ = False

    def __init__(self, rows: Iterable[TestResult]) -> None:
        self.rows = list(rows)

    def __iter__(self) -> Iterator[TestResult]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> TestResult:
        return self.rows[i]

    def __repr__(self) -> str:
        return f"<TestTable: {len(self.rows)} results, {len(self.failed)} failed>"

    @property
    def ok(self) -> bool:
        """True when every result passed."""
        return all(r.passed for r in self.rows)

    @property
    def failed(self) -> list[TestResult]:
        return [r for r in self.rows if not r.passed]

    def result(self, test: str, ref: str) -> TestResult:
        """The last result of ``test`` on ``ref`` (``name@N``, or ``name``: its latest row)."""
        want = parse_ref(ref)
        for r in reversed(self.rows):
            if r.test == test and r.model == want.name and want.version in (None, r.number):
                return r
        raise KeyError(f"no result of {test!r} on {ref!r} in this table")

    def value(self, test: str, ref: str) -> float | bool | None:
        return self.result(test, ref).value

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.rows]

    def __str__(self) -> str:
        if not self.rows:
            return "no test results"
        lines: list[list[object]] = [["TEST", "MODEL", "VALUE", "GOAL", "RESULT"]]
        for r in self.rows:
            status = r.status if r.error is None else f"{r.status}: {one_line(r.error)[:80]}"
            lines.append([r.test, r.ref, r.shown_value, r.goal, status])
        n_fail = len(self.failed)
        summary = f"{len(self.rows) - n_fail} passed, {n_fail} failed"
        return table(lines, right=(2,)) + "\n" + summary


# -- catalog access ----------------------------------------------------------------------
RESULT_COLUMNS = (
    "r.test, v.model, v.number, r.kind, r.value, r.passed, r.higher_is_better, r.threshold, "
    "r.error, r.seconds, r.created, r.fn"
)


def result_from_row(row: tuple) -> TestResult:
    test, model, number, kind, value, passed, hib, threshold, error, seconds, created, fn = row
    if kind == "bool":
        value = bool(value)
    return TestResult(
        test,
        model,
        number,
        kind,
        value,
        bool(passed),
        bool(hib),
        threshold,
        error,
        seconds,
        datetime.fromtimestamp(created, tz=timezone.utc),
        fn,
    )


def load_tests(db: Any, names: Sequence[str] | None = None) -> list[TestSpec]:
    specs = [
        TestSpec.from_row(r)
        for r in db.execute(f"SELECT {TEST_COLUMNS} FROM tests ORDER BY created, name")
    ]
    if names is None:
        return specs
    by_name = {s.name: s for s in specs}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(by_name) or "none registered"
        raise WorkflowError(f"no test named {missing[0]!r} (tests: {known})")
    return [by_name[n] for n in names]


def store_result(db: Any, vid: int, r: TestResult) -> None:
    value = r.value
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    elif isinstance(value, float) and math.isnan(value):
        value = None
    db.execute(
        "INSERT INTO test_results(test, version, fn, kind, value, passed, higher_is_better,"
        " threshold, error, seconds, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            r.test,
            vid,
            r.fn,
            r.kind,
            value,
            int(r.passed),
            int(r.higher_is_better),
            r.threshold,
            r.error,
            r.seconds,
            r.created.timestamp() if r.created else time.time(),
        ),
    )


# -- running -----------------------------------------------------------------------------
def build_input(sd: dict[str, torch.Tensor], factory: str | None) -> Any:
    """What a test receives: the state_dict, or the factory's module with it loaded."""
    import torch

    if factory is None:
        return dict(sd)
    module = resolve_callable(factory)()
    if not isinstance(module, torch.nn.Module):
        raise UnsupportedInput(
            f"the model factory {factory} returned {type(module).__name__}, not an nn.Module"
        )
    module.load_state_dict(sd)
    module.eval()
    return module


def run_one(
    spec: TestSpec, model: str, number: int, sd: dict[str, torch.Tensor], factory: str | None
) -> TestResult:
    """Run one test on one loaded version; an exception becomes an 'error' result."""
    start = time.perf_counter()
    try:
        fn = resolve_callable(spec.fn)
        kind, value = to_metric(fn(build_input(sd, factory)))
        if kind == "float" and math.isnan(value):
            error: str | None = "the test returned NaN"
        else:
            error = None
        passed = verdict(value, spec.higher_is_better, spec.threshold)
    except Exception as exc:
        kind, value, passed, error = "error", None, False, f"{type(exc).__name__}: {exc}"
    return TestResult(
        spec.name,
        model,
        number,
        kind,
        value,
        passed,
        spec.higher_is_better,
        spec.threshold,
        error,
        time.perf_counter() - start,
        datetime.now(tz=timezone.utc),
        spec.fn,
    )


def factory_for(db: Any, spec: TestSpec, model: str) -> str | None:
    """The factory a test uses on a model: its own, the model's, or the default one."""
    if spec.factory is not None:
        return spec.factory
    row = db.execute("SELECT fn FROM factories WHERE model = ?", (model,)).fetchone()
    if row is not None:
        return row[0]
    row = db.execute("SELECT value FROM workflow_settings WHERE key = 'default_factory'").fetchone()
    return None if row is None else row[0]


def run_tests(
    repo: VersionStore,
    specs: Sequence[TestSpec],
    targets: Sequence[tuple[int, Any]],
    store: bool = True,
) -> TestTable:
    """Run each test on each target version it selects; store every result.

    ``targets``: (version id, Version) pairs. Each version is loaded once. Results are
    stored one by one, so an interrupted run keeps those it finished.
    """
    graph = graph_of(repo)
    selected = {s.name: set(select_models(graph, s.selector)) for s in specs}
    rows: list[TestResult] = []
    db = repo.catalog.connection()
    for vid, version in targets:
        applicable = [s for s in specs if version.model in selected[s.name]]
        if not applicable:
            continue
        sd = repo.load(version.ref)
        for spec in applicable:
            factory = factory_for(db, spec, version.model)
            result = run_one(spec, version.model, version.number, sd, factory)
            if store:
                with repo.catalog.transaction() as tx:
                    store_result(tx, vid, result)
            rows.append(result)
        del sd
    return TestTable(rows)


def stored_results(
    repo: VersionStore, test: str | None = None, ref: str | None = None, latest_only: bool = False
) -> TestTable:
    """Stored results, oldest first; ``ref``: a model (all its versions) or ``name@N``."""
    where, args = [], []
    if test is not None:
        where.append("r.test = ?")
        args.append(test)
    if ref is not None:
        r = parse_ref(ref)
        if r.version is None and r.name in repo:
            where.append("v.model = ?")
            args.append(r.name)
        else:
            vid, _ = repo.resolve(ref)
            where.append("v.id = ?")
            args.append(vid)
    sql = (
        f"SELECT {RESULT_COLUMNS} FROM test_results r JOIN versions v ON v.id = r.version"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY r.created, r.id"
    )
    rows = [result_from_row(r) for r in repo.catalog.query(sql, tuple(args))]
    if latest_only:
        last: dict[tuple[str, str], TestResult] = {}
        for r in rows:
            last[(r.test, r.ref)] = r
        rows = list(last.values())
    return TestTable(rows)


def rejudge(stored: TestResult, spec: TestSpec) -> TestResult | None:
    """A stored result judged by the test's current goal, or None if it must run again
    (the function changed, or it ended in an error)."""
    if stored.fn != spec.fn or stored.kind == "error":
        return None
    return dataclasses.replace(
        stored,
        passed=verdict(stored.value, spec.higher_is_better, spec.threshold),
        higher_is_better=spec.higher_is_better,
        threshold=spec.threshold,
    )
