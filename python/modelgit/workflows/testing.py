"""Tests registered on the graph, the update cascade and bisect.

Mixed into :class:`modelgit.Repository`. Test, factory and creation functions are
referenced by import path (``"pkg.module:function"``), stored as text in the catalog,
never pickled, and imported and called in this process only when a workflow runs
(``run_tests``, ``cascade``, ``bisect``). The logic lives in ``tests_registry``,
``cascade`` and ``bisect``; the tables in ``schema``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..catalog.schema import ensure_workflow_tables, has_table
from ..errors import LineageError, ReadOnlyRepository, UnsupportedInput, WorkflowError
from ..lineage.api import graph_of
from ..names import parse_ref, validate_name
from . import bisect as _bisect
from . import cascade as _cascade
from . import tests_registry as _tests
from .bisect import BisectResult
from .cascade import CascadeReport, Creator
from .tests_registry import TestSpec, TestTable

if TYPE_CHECKING:
    from ..versions import VersionStore

    _Base = VersionStore
else:
    _Base = object

__all__ = ["TestingMixin"]


class TestingMixin(_Base):
    """register_test, run_tests, test_results, set_creator, cascade, bisect."""

    __test__ = False  # not a pytest class

    def _workflow_db(self) -> Any:
        """The catalog connection, with the workflow tables created on first use."""
        db = self.catalog.connection()
        if not getattr(self, "_workflow_schema_ready", False):
            if self.catalog.read_only and not has_table(self.catalog, "tests"):
                raise ReadOnlyRepository(
                    f"{self.location} was opened read-only (or this user cannot write it): "
                    "tests and creation functions cannot be registered"
                )
            ensure_workflow_tables(db)
            self._workflow_schema_ready = True
        return db

    def _workflow_table(self, table: str) -> bool:
        """Whether the workflow table ``table`` exists, for reads: they create nothing
        (a repository nobody registered a test in, read-only or not, has none)."""
        return getattr(self, "_workflow_schema_ready", False) or has_table(self.catalog, table)

    # -- tests ----------------------------------------------------------------------
    def register_test(
        self,
        name: str,
        fn: str | Callable[..., Any],
        models: str | Sequence[str] | None = None,
        higher_is_better: bool = True,
        threshold: float | None = None,
        factory: str | Callable[..., Any] | None = None,
        replace: bool = False,
    ) -> TestSpec:
        """Register a test: ``fn`` (``"pkg.module:function"`` or a module-level function)
        is called as ``fn(model)`` and returns a float (a metric) or a bool (a verdict).

        ``model`` is the state_dict, or the module built by ``factory`` (or by the
        factory registered with :meth:`register_factory`) with it loaded. ``models``
        selects what it runs on: ``None`` (all), names, ``"relation:R"``,
        ``"descendants:X"``. A float passes when ``threshold`` is None, or it is
        ``>= threshold`` (``higher_is_better``) / ``<= threshold`` (a loss). The
        function is not imported here, only when tests run.
        """
        validate_name(name, "test name")
        fn_path = _tests.check_path(fn, "test function")
        factory_path = None if factory is None else _tests.check_path(factory, "model factory")
        if not isinstance(higher_is_better, bool):
            raise UnsupportedInput("higher_is_better must be True or False")
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
                raise UnsupportedInput(f"threshold must be a number or None, not {threshold!r}")
            threshold = float(threshold)
            if math.isnan(threshold):
                raise UnsupportedInput("threshold must not be NaN")
        known = self.models()
        selector = _tests.parse_selector(models, known)
        _tests.warn_unknown_names(selector, known)
        self._workflow_db()
        now = time.time()
        with self.catalog.transaction() as db:
            exists = db.execute("SELECT 1 FROM tests WHERE name = ?", (name,)).fetchone()
            if exists and not replace:
                raise WorkflowError(
                    f"a test named {name!r} is registered already; pass replace=True "
                    "(--replace) to change it, or remove_test() it"
                )
            db.execute(
                "INSERT OR REPLACE INTO tests(name, fn, selector, higher_is_better, threshold,"
                " factory, created) VALUES (?,?,?,?,?,?,?)",
                (
                    name,
                    fn_path,
                    json.dumps(selector),
                    int(higher_is_better),
                    threshold,
                    factory_path,
                    now,
                ),
            )
        return TestSpec(name, fn_path, selector, higher_is_better, threshold, factory_path, now)

    def registered_guard(self, name: str, parents: Sequence[str] = ()) -> Callable[..., bool]:
        """A check for ``Auto(guard=True)``: callable(state_dict) -> whether every test
        registered on model ``name`` (for a model not added yet: on its ``parents``)
        that has a verdict (a threshold, or a bool result) still passes."""
        db = self._workflow_db()
        graph = graph_of(self)
        targets = {name} if name in graph else set(parents)
        specs = [
            s
            for s in _tests.load_tests(db)
            if targets & set(_tests.select_models(graph, s.selector))
        ]
        factories = {s.name: _tests.factory_for(db, s, name) for s in specs}

        def guard(sd: Any) -> bool:
            for spec in specs:
                r = _tests.run_one(spec, name, 0, sd, factories[spec.name])
                if r.kind == "error" or r.passed is False:
                    return False
            return True

        return guard

    def tests(self) -> list[TestSpec]:
        """The registered tests, in registration order."""
        if not self._workflow_table("tests"):
            return []
        return _tests.load_tests(self.catalog.connection())

    def remove_test(self, name: str, keep_results: bool = False) -> None:
        """Unregister a test (and delete its stored results unless ``keep_results``)."""
        self._workflow_db()
        with self.catalog.transaction() as db:
            if db.execute("DELETE FROM tests WHERE name = ?", (name,)).rowcount == 0:
                raise WorkflowError(f"no test named {name!r}")
            if not keep_results:
                db.execute("DELETE FROM test_results WHERE test = ?", (name,))

    def register_factory(
        self,
        fn: str | Callable[..., Any] | None,
        models: str | Sequence[str] | None = None,
    ) -> None:
        """Register the function that builds an ``nn.Module`` to load models into before
        tests run: called ``fn()``; the state_dict is loaded with ``load_state_dict``.

        ``models=None`` makes it the default of every model; names make it theirs
        (a test's own ``factory=`` wins over both). ``fn=None`` removes it.
        """
        path = None if fn is None else _tests.check_path(fn, "model factory")
        names = [models] if isinstance(models, str) else list(models or [])
        for m in names:
            self.require_model(m)
        self._workflow_db()
        with self.catalog.transaction() as db:
            if models is None:
                db.execute("DELETE FROM workflow_settings WHERE key = 'default_factory'")
                if path is not None:
                    db.execute(
                        "INSERT INTO workflow_settings(key, value) VALUES ('default_factory', ?)",
                        (path,),
                    )
            for m in names:
                db.execute("DELETE FROM factories WHERE model = ?", (m,))
                if path is not None:
                    db.execute("INSERT INTO factories(model, fn) VALUES (?, ?)", (m, path))

    def run_tests(
        self,
        models: str | Sequence[str] | None = None,
        tests: str | Sequence[str] | None = None,
    ) -> TestTable:
        """Run registered tests and store every result against the version it ran on.

        ``tests``: names (default: all). ``models``: refs (``name`` = latest,
        ``name@N``, a tag) or selectors (``"descendants:X"``, ``"relation:R"``); default:
        the latest version of every model some test selects. A test runs only on the
        models its own selector names. A test that raises gives an ``error`` result
        (failed); nothing is raised. Returns the table of this run's results.
        """
        db = self._workflow_db()
        names = [tests] if isinstance(tests, str) else (None if tests is None else list(tests))
        specs = _tests.load_tests(db, names)
        graph = graph_of(self)
        if models is None:
            wanted: set[str] = set()
            for s in specs:
                wanted.update(_tests.select_models(graph, s.selector))
            targets = [self.resolve(m) for m in graph.topological_order() if m in wanted]
        else:
            items = [models] if isinstance(models, str) else list(models)
            targets = []
            for item in items:
                if ":" in item or item.startswith("descendants of ") or item == "*":
                    terms = _tests.parse_selector([item])
                    targets += [self.resolve(m) for m in _tests.select_models(graph, terms)]
                else:
                    targets.append(self.resolve(item))
            rank = {m: i for i, m in enumerate(graph.topological_order())}
            unique = {vid: (vid, v) for vid, v in targets}
            targets = sorted(unique.values(), key=lambda t: (rank[t[1].model], t[1].number))
        return _tests.run_tests(self, specs, targets)

    def test_results(
        self, test: str | None = None, model: str | None = None, latest: bool = False
    ) -> TestTable:
        """Stored results, oldest first, of every version (earlier ones included).

        ``model``: a model name (all its versions) or a version ref (``name@2``, a tag).
        ``latest=True`` keeps only the newest result per (test, version).
        """
        if not self._workflow_table("test_results"):
            if model is not None and not (parse_ref(model).version is None and model in self):
                self.resolve(model)  # an unknown reference is an error all the same
            return TestTable([])
        return _tests.stored_results(self, test, model, latest_only=latest)

    # -- creation functions ---------------------------------------------------------------
    def set_creator(
        self,
        child: str,
        fn: str | Callable[..., Any] | None,
        args: Mapping[str, Any] | None = None,
    ) -> Creator | None:
        """Record how ``child`` is derived from its provenance parents, for :meth:`cascade`:
        ``fn(parents, **args)`` where ``parents`` maps each parent's name to its
        state_dict; it returns the child's state_dict. ``args`` must be JSON.
        ``fn=None`` removes it.
        """
        self.require_model(child)
        self._workflow_db()
        if fn is None:
            with self.catalog.transaction() as db:
                db.execute("DELETE FROM creators WHERE model = ?", (child,))
            return None
        if not graph_of(self).parents(child):
            raise LineageError(
                f"model {child!r} has no provenance parents for a creation function to "
                "derive it from; add it with parents= (or add_edge) first"
            )
        path, args_json = self._check_creator(fn, args)
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO creators(model, fn, args, created) VALUES (?,?,?,?)",
                (child, path, args_json, time.time()),
            )
        return Creator(child, path, json.loads(args_json))

    @staticmethod
    def _check_creator(
        fn: str | Callable[..., Any], args: Mapping[str, Any] | None = None
    ) -> tuple[str, str]:
        """(import path, JSON of args) of a creation function, or raise; imports nothing.
        ``Repository.add(creator=...)`` calls it before writing anything."""
        path = _tests.check_path(fn, "creation function")
        if args is not None and not isinstance(args, Mapping):
            raise UnsupportedInput(f"creator_args must be a dict, not {type(args).__name__}")
        kwargs = dict(args or {})
        if any(not isinstance(k, str) or not k.isidentifier() for k in kwargs):
            raise UnsupportedInput("creator_args keys must be valid keyword argument names")
        try:
            return path, json.dumps(kwargs, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UnsupportedInput(f"creator_args must be JSON-serialisable: {exc}") from None

    def creator(self, child: str) -> Creator | None:
        """The creation function of a model, or None."""
        self.require_model(child)
        if not self._workflow_table("creators"):
            return None
        return _cascade.load_creators(self.catalog.connection()).get(child)

    # -- cascade and bisect ---------------------------------------------------------------
    def cascade(self, name: str, dry_run: bool = False, run_tests: bool = False) -> CascadeReport:
        """Re-derive every model downstream of ``name`` whose parents have newer versions.

        Models are visited in topological order; each stale one with a creation
        function gets a new version made by ``fn(parents, **args)`` from its parents'
        latest versions, whose provenance links point at them. ``run_tests=True`` runs
        the tests selecting each model after it is updated. A model whose creation
        function raises (or whose tests fail) stops its subtree; the others go on.
        Everything committed stays; calling ``cascade`` again resumes. ``dry_run=True``
        returns the plan and changes nothing. Never raises for a failing model: see
        ``report.ok`` / ``report.failed``.
        """
        self._workflow_db()
        return _cascade.run_cascade(self, name, dry_run=dry_run, run_tests=run_tests)

    def bisect(
        self,
        test: str | Callable[..., Any],
        good: str,
        bad: str,
        *,
        threshold: float | None = None,
        higher_is_better: bool = True,
        verify: bool = True,
        factory: str | Callable[..., Any] | None = None,
    ) -> BisectResult:
        """The first version on the lineage path from ``good`` to ``bad`` that fails
        ``test``, by binary search; ``.first_bad``, ``.runs`` (test runs), ``.path``.

        ``bad`` must descend from ``good`` (swapped or unrelated ends are refused). Both
        ends are tested first: WorkflowError unless ``good`` passes and ``bad`` fails;
        ``verify=False`` trusts them (two test runs fewer).

        ``test``: a registered test's name (its results are stored), or an import path /
        function (then ``threshold``, ``higher_is_better`` and ``factory``, the model
        factory whose module it gets, apply; nothing stored).
        """
        db = self._workflow_db()
        registered = isinstance(test, str) and ":" not in test
        if registered:
            spec = _tests.load_tests(db, [test])[0]  # type: ignore[list-item]
            if threshold is not None or factory is not None:
                raise WorkflowError(f"{test!r} is registered: its own threshold and factory apply")
        else:
            path = _tests.check_path(test, "test function")
            thr = None if threshold is None else float(threshold)
            made = None if factory is None else _tests.check_path(factory, "model factory")
            spec = TestSpec(path, path, [{"kind": "all"}], bool(higher_is_better), thr, made)
        return _bisect.run_bisect(self, spec, good, bad, store=registered, verify=verify)
