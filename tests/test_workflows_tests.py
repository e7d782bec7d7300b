"""repo.register_test / run_tests / test_results / register_factory and `modelgit test`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import modelgit as mg
import wf_funcs
from modelgit.cli import main
from modelgit.errors import WorkflowError
from wf_funcs import tiny

_reset = wf_funcs.reset_state  # autouse: every test starts with a clean registry


@pytest.fixture
def family(repo: mg.Repository) -> mg.Repository:
    """base -> ft (finetune) -> ft2 (finetune); base -> small (distill)."""
    repo.add("base", tiny(1.0))
    repo.add("ft", tiny(0.8), parents="base")
    repo.add("ft2", tiny(0.6), parents="ft")
    repo.add("small", tiny(0.3, b=-1), parents="base", relation="distill")
    return repo


def test_register_and_run_on_every_model(family: mg.Repository) -> None:
    spec = family.register_test("quality", "wf_funcs:mean_w", threshold=0.5)
    assert spec.fn == "wf_funcs:mean_w" and spec.models == "*" and spec.goal == ">= 0.5"
    assert [t.name for t in family.tests()] == ["quality"]
    table = family.run_tests()
    assert [(r.ref, r.passed) for r in table] == [
        ("base@1", True),
        ("ft@1", True),
        ("ft2@1", True),
        ("small@1", False),
    ]
    assert table.value("quality", "ft@1") == pytest.approx(0.8)
    assert not table.ok and [r.ref for r in table.failed] == ["small@1"]
    text = str(table)
    assert "quality" in text and "FAIL" in text and "3 passed, 1 failed" in text
    assert json.loads(json.dumps(table.to_json()))[0]["ref"] == "base@1"


def test_functions_are_stored_by_path_and_imported_only_when_run(family: mg.Repository) -> None:
    # a module that does not exist registers fine: nothing is imported at registration
    family.register_test("later", "not_yet_written_module:evaluate")
    rows = family.catalog.query("SELECT fn FROM tests")
    assert rows == [("not_yet_written_module:evaluate",)]
    family.register_test("q", wf_funcs.mean_w)  # a function is stored by its import path
    assert family.tests()[1].fn == "wf_funcs:mean_w"
    assert wf_funcs.CALLS == []
    table = family.run_tests(tests="later", models="base")
    (r,) = table
    assert r.kind == "error" and not r.passed and "not_yet_written_module" in r.error
    with pytest.raises(mg.UnsupportedInput, match="import path"):
        family.register_test("bad", "not a path")
    with pytest.raises(mg.UnsupportedInput):
        family.register_test("lam", lambda sd: 1.0)


def test_selectors(family: mg.Repository) -> None:
    family.register_test("named", "wf_funcs:mean_w", models=["ft", "small"])
    family.register_test("rel", "wf_funcs:mean_w", models="relation:distill")
    family.register_test("desc", "wf_funcs:mean_w", models="descendants:ft")
    family.register_test("desc2", "wf_funcs:mean_w", models=["descendants of base"])
    table = family.run_tests()
    by_test: dict[str, list[str]] = {}
    for r in table:
        by_test.setdefault(r.test, []).append(r.model)
    assert sorted(by_test["named"]) == ["ft", "small"]
    assert by_test["rel"] == ["small"]
    assert by_test["desc"] == ["ft2"]
    assert sorted(by_test["desc2"]) == ["ft", "ft2", "small"]
    # a selector is evaluated when tests run: a new descendant is picked up
    family.add("ft3", tiny(0.9), parents="ft2")
    assert {r.model for r in family.run_tests(tests="desc")} == {"ft2", "ft3"}
    # models= restricts the run; a test runs only where its selector applies
    assert [r.model for r in family.run_tests(models=["small"])] == ["small", "small", "small"]
    assert [r.model for r in family.run_tests(models="descendants:ft2", tests="desc")] == ["ft3"]


def test_loss_like_metric_lower_is_better(family: mg.Repository) -> None:
    family.register_test("loss", "wf_funcs:loss", higher_is_better=False, threshold=0.25)
    table = family.run_tests()
    assert {r.model: r.passed for r in table} == {
        "base": True,  # 0.0
        "ft": True,  # 0.2
        "ft2": False,  # 0.4
        "small": False,  # 0.7
    }
    assert table.result("loss", "ft").goal == "<= 0.25"
    # without a threshold any number passes
    family.register_test("loss", "wf_funcs:loss", higher_is_better=False, replace=True)
    assert family.run_tests().ok


def test_bool_verdicts_errors_and_odd_returns(family: mg.Repository) -> None:
    family.register_test("bias", "wf_funcs:bias_nonnegative", threshold=100.0)  # ignored
    family.register_test("boom", "wf_funcs:broken", models="base")
    family.register_test("nan", "wf_funcs:not_a_number", models="base")
    family.register_test("text", "wf_funcs:returns_text", models="base")
    family.register_test("tensor", "wf_funcs:tensor_metric", models="base", threshold=3.5)
    table = family.run_tests()
    assert table.result("bias", "base").value is True
    assert table.result("bias", "small").value is False and not table.result("bias", "small").passed
    boom = table.result("boom", "base")
    assert boom.kind == "error" and "evaluation data is missing" in boom.error
    nan = table.result("nan", "base")
    assert not nan.passed and "NaN" in nan.error
    assert table.result("text", "base").kind == "error"
    assert table.result("tensor", "base").value == pytest.approx(4.0)
    assert table.result("tensor", "base").passed
    # stored as they ran
    stored = family.test_results(model="base@1")
    assert {r.test: r.kind for r in stored} == {
        "bias": "bool",
        "boom": "error",
        "nan": "float",
        "text": "error",
        "tensor": "float",
    }


def test_results_of_earlier_versions_stay_queryable(family: mg.Repository) -> None:
    family.register_test("quality", "wf_funcs:mean_w", models="ft", threshold=0.5)
    family.run_tests()
    family.commit("ft", tiny(0.4), message="worse")
    latest = family.run_tests()
    assert [(r.ref, r.passed) for r in latest] == [("ft@2", False)]
    history = family.test_results(test="quality", model="ft")
    assert [(r.ref, r.passed) for r in history] == [("ft@1", True), ("ft@2", False)]
    assert family.test_results(model="ft@1").value("quality", "ft@1") == pytest.approx(0.8)
    # an old version can be re-tested explicitly
    again = family.run_tests(models="ft@1")
    assert [r.ref for r in again] == ["ft@1"]
    assert len(family.test_results(model="ft@1")) == 2
    assert len(family.test_results(model="ft@1", latest=True)) == 1
    # removing a model removes its results; removing a test removes its results
    family.remove("ft2")
    family.remove_test("quality")
    assert len(family.test_results()) == 0
    with pytest.raises(WorkflowError, match="no test"):
        family.remove_test("quality")


def test_factories(family: mg.Repository) -> None:
    family.register_test("out", "wf_funcs:module_output", models="base", factory="wf_funcs:linear")
    (r,) = family.run_tests()
    assert r.value == pytest.approx(4.0) and r.passed  # 4 weights of 1.0, bias 0
    family.register_test("out2", "wf_funcs:module_output", models=["ft"])
    assert family.run_tests(tests="out2")[0].kind == "error"  # gets a dict: no factory
    family.register_factory("wf_funcs:linear")  # the default of every model
    assert family.run_tests(tests="out2")[0].value == pytest.approx(3.2)
    family.register_factory(None)
    family.register_factory(wf_funcs.linear, models="ft")  # one model's
    assert family.run_tests(tests="out2")[0].passed
    family.register_factory(None, models="ft")
    assert not family.run_tests(tests="out2")[0].passed


def test_register_errors(family: mg.Repository) -> None:
    family.register_test("q", "wf_funcs:mean_w")
    with pytest.raises(WorkflowError, match="replace=True"):
        family.register_test("q", "wf_funcs:loss")
    family.register_test("q", "wf_funcs:loss", replace=True)
    assert family.tests()[0].fn == "wf_funcs:loss"
    with pytest.raises(mg.InvalidName):
        family.register_test("a/b", "wf_funcs:loss")
    with pytest.raises(mg.UnsupportedInput):
        family.register_test("t", "wf_funcs:loss", threshold="high")  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match="no test named"):
        family.run_tests(tests="missing")
    with pytest.raises(mg.UnknownModel):
        family.run_tests(models="nobody")


def test_cli_test_commands(family: mg.Repository, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(family.root)

    def cli(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*args, "--repo", root])
        out, err = capsys.readouterr()
        return code, out, err

    assert cli("test")[0] == 1  # nothing registered: a one-line error
    code, out, _ = cli(
        "test", "register", "loss", "wf_funcs:loss", "--lower-is-better", "--threshold", "0.25"
    )
    assert code == 0 and "registered test loss" in out and "<= 0.25" in out
    code, out, _ = cli("test", "register", "acc", "wf_funcs:mean_w", "--models", "ft", "ft2")
    assert code == 0
    code, out, _ = cli("test", "ls", "--json")
    assert [t["name"] for t in json.loads(out)] == ["loss", "acc"]
    code, out, _ = cli("test")
    assert code == 1 and "FAIL" in out and "small@1" in out  # a failing test: exit status 1
    code, out, _ = cli("test", "--models", "base", "ft", "--tests", "loss", "--json")
    assert code == 0 and [r["ref"] for r in json.loads(out)] == ["base@1", "ft@1"]
    code, out, _ = cli("test", "log", "ft", "--test", "loss", "--json")
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = cli("test", "rm", "acc", "--keep-results")
    assert code == 0 and [t.name for t in family.tests()] == ["loss"] and "kept" in out
    assert family.test_results(test="acc")  # still there, as the Python API allows
    code, _, err = cli("test", "register", "loss", "wf_funcs:loss")
    assert code == 1 and err.count("\n") == 1 and "--replace" in err
    # a misspelt model: warned at registration; run by name, it runs on nothing: exit 1
    code, _, err = cli("test", "register", "typo", "wf_funcs:mean_w", "--models", "fT")
    assert code == 0 and "'fT', which is no model here yet (did you mean 'ft'?)" in err
    code, out, _ = cli("test", "--tests", "typo")
    assert code == 1 and "no test applies (typo selects fT)" in out


def test_workflow_tables_are_created_lazily(tmp_path: Path) -> None:
    with mg.init(tmp_path / "r") as r:
        tables = {n for (n,) in r.catalog.query("SELECT name FROM sqlite_master")}
        assert "tests" not in tables
        r.add("m", tiny(1.0))
        r.register_test("q", "wf_funcs:mean_w")
    with mg.open(tmp_path / "r") as r:
        assert [t.name for t in r.tests()] == ["q"]
        assert r.fsck().ok
