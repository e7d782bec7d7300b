"""repo.set_creator / repo.cascade and `modelgit cascade`: re-deriving downstream models."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import modelgit as mg
import wf_funcs
from modelgit.cli import main
from modelgit.errors import WorkflowError
from wf_funcs import tiny

TESTS = Path(__file__).resolve().parent


_reset = wf_funcs.reset_state  # autouse: every test starts with a clean registry


@pytest.fixture
def family(repo: mg.Repository) -> mg.Repository:
    """base -> a -> b -> d;  base -> c;  (a, c) -> m (merge);  base -> manual (no creator)."""
    repo.add("base", tiny(1.0))
    repo.add("a", tiny(1.5), parents="base")
    repo.set_creator("a", "wf_funcs:finetune", {"shift": 0.5})
    repo.add("b", tiny(2.5), parents="a")
    repo.set_creator("b", "wf_funcs:flaky", {"marker": "b"})
    repo.add("d", tiny(3.5), parents="b")
    repo.set_creator("d", "wf_funcs:flaky", {"marker": "d"})
    repo.add("c", tiny(3.0), parents="base")
    repo.set_creator("c", wf_funcs.flaky, {"marker": "c", "shift": 2.0})
    repo.add("m", tiny(2.25), parents=["a", "c"], relation="merge")
    repo.set_creator("m", "wf_funcs:average")
    repo.add("manual", tiny(7.0), parents="base")
    return repo


def w(repo: mg.Repository, ref: str) -> float:
    return float(repo.load(ref)["weight"][0, 0])


def provenance(repo: mg.Repository, ref: str) -> list[str]:
    return [p.ref for p in repo.version(ref).parents if p.kind == "provenance"]


def counts(repo: mg.Repository) -> dict[str, int]:
    return {m: len(repo.versions(m)) for m in repo.models()}


def test_cascade_rederives_downstream_in_topological_order(family: mg.Repository) -> None:
    assert family.cascade("base").updated == []  # nothing changed yet: all up to date
    family.commit("base", tiny(10.0), message="retrained")
    report = family.cascade("base")
    assert report.ok
    assert report.updated == ["a", "b", "d", "c", "m"]
    assert report.step("manual").status == "no-creator"
    assert wf_funcs.CALLS == ["finetune", "flaky:b", "flaky:d", "flaky:c", "average"]
    assert w(family, "a") == 10.5 and w(family, "b") == 11.5 and w(family, "d") == 12.5
    assert w(family, "c") == 12.0 and w(family, "m") == (10.5 + 12.0) / 2
    # each new version points at the new parent versions, and continues its own chain
    assert provenance(family, "a@2") == ["base@2"]
    assert provenance(family, "b@2") == ["a@2"]
    assert provenance(family, "d@2") == ["b@2"]
    assert provenance(family, "m@2") == ["a@2", "c@2"]
    v = family.version("m@2")
    assert [(p.ref, p.kind) for p in v.parents if p.kind == "version"] == [("m@1", "version")]
    assert [p.relation for p in v.parents if p.kind == "provenance"] == ["merge", "merge"]
    assert v.message == "cascade from base@2"
    assert v.metadata["cascade"] == {"from": "base@2", "creator": "wf_funcs:average", "args": {}}
    assert family.version("manual").number == 1  # no creator: left alone
    # bit-exact round trip of the derived weights
    assert torch.equal(family.load("d")["bias"], torch.tensor([2.5]))
    assert "re-derived" in str(report) and "5 updated" in str(report)
    # done: a second cascade changes nothing
    before = counts(family)
    again = family.cascade("base")
    assert again.updated == [] and counts(family) == before
    assert {s.status for s in again.steps} == {"up-to-date", "no-creator"}


def test_cascade_from_the_middle(family: mg.Repository) -> None:
    family.commit("a", tiny(0.0))
    report = family.cascade("a")
    assert report.updated == ["b", "d", "m"]  # c and manual are not below a
    assert provenance(family, "m@2") == ["a@2", "c@1"]
    assert w(family, "m") == (0.0 + 3.0) / 2


def test_dry_run_prints_the_plan_and_changes_nothing(family: mg.Repository) -> None:
    family.commit("base", tiny(10.0))
    before = counts(family)
    plan = family.cascade("base", dry_run=True)
    assert counts(family) == before and wf_funcs.CALLS == []
    assert plan.dry_run and plan.updated == ["a", "b", "d", "c", "m"]
    assert plan.step("a").parents == ["base@2"] and plan.step("a").version == "a@2"
    assert plan.step("m").parents == ["a@2", "c@2"]
    assert plan.step("manual").status == "no-creator"
    text = str(plan)
    assert "dry run" in text and "re-derive from a@2, c@2 with wf_funcs:average -> m@2" in text


def test_failure_in_the_middle_then_fix_and_resume(family: mg.Repository) -> None:
    family.commit("base", tiny(10.0))
    wf_funcs.FAIL.add("b")
    report = family.cascade("base")
    assert not report.ok
    assert report.step("a").status == "updated"
    assert report.step("b").status == "failed" and "training b diverged" in report.step("b").error
    assert report.step("d").status == "blocked"  # the failed model's subtree stops
    assert report.step("c").status == "updated" and report.step("m").status == "updated"
    assert report.failed == ["b"] and report.blocked == ["d"]
    assert counts(family) == {"base": 2, "a": 2, "b": 1, "d": 1, "c": 2, "m": 2, "manual": 1}
    assert family.fsck().ok  # consistent: everything committed so far is intact
    assert "fix and run the cascade again" in str(report)

    # fix the creator and resume: only what is left is done
    wf_funcs.FAIL.clear()
    wf_funcs.CALLS.clear()
    resumed = family.cascade("base")
    assert resumed.ok and resumed.updated == ["b", "d"]
    assert wf_funcs.CALLS == ["flaky:b", "flaky:d"]
    assert provenance(family, "b@2") == ["a@2"] and provenance(family, "d@2") == ["b@2"]
    assert counts(family) == {"base": 2, "a": 2, "b": 2, "d": 2, "c": 2, "m": 2, "manual": 1}


def test_interrupted_cascade_resumes(family: mg.Repository) -> None:
    """A crash-like interruption (KeyboardInterrupt escapes the cascade) mid-way."""
    family.commit("base", tiny(10.0))
    wf_funcs.INTERRUPT.add("c")
    with pytest.raises(KeyboardInterrupt):
        family.cascade("base")
    assert counts(family)["b"] == 2 and counts(family)["d"] == 2  # done before the crash
    assert counts(family)["c"] == 1 and counts(family)["m"] == 1
    assert family.fsck().ok
    wf_funcs.INTERRUPT.clear()
    wf_funcs.CALLS.clear()
    resumed = family.cascade("base")
    assert resumed.ok and resumed.updated == ["c", "m"]
    assert wf_funcs.CALLS == ["flaky:c", "average"]
    assert provenance(family, "m@2") == ["a@2", "c@2"]


def test_a_failing_test_stops_the_subtree(family: mg.Repository) -> None:
    family.register_test("small", "wf_funcs:mean_w", threshold=11.0, models=["a", "b", "d"])
    family.commit("base", tiny(10.0))
    report = family.cascade("base", run_tests=True)
    assert report.step("a").status == "test-failed"  # a@2 is 10.5 < 11
    assert "test small fails on a@2" in report.step("a").error
    assert report.step("b").status == "blocked" and report.step("d").status == "blocked"
    assert report.step("m").status == "blocked"  # m has a as a parent
    assert report.step("c").status == "updated"
    assert report.updated == ["a", "c"]  # a@2 exists even though its test fails
    assert "re-derived -> a@2, but test small fails" in str(report)
    assert family.test_results(model="a@2").result("small", "a@2").passed is False
    # the failing version stays committed; resuming keeps the subtree stopped
    again = family.cascade("base", run_tests=True)
    assert again.step("a").status == "test-failed" and again.blocked == ["b", "d", "m"]
    assert wf_funcs.CALLS.count("mean_w") == 1  # its stored verdict is reused
    # with a looser bar, the resumed cascade goes on
    family.register_test("small", "wf_funcs:mean_w", threshold=10.0, replace=True)
    done = family.cascade("base", run_tests=True)
    assert done.ok and done.updated == ["b", "d", "m"]


def test_set_creator_checks(family: mg.Repository) -> None:
    with pytest.raises(mg.LineageError, match="no provenance parents"):
        family.set_creator("base", "wf_funcs:finetune")
    with pytest.raises(mg.UnsupportedInput, match="JSON"):
        family.set_creator("a", "wf_funcs:finetune", {"shift": object()})
    with pytest.raises(mg.UnsupportedInput, match="import path"):
        family.set_creator("a", "finetune")
    with pytest.raises(mg.UnknownModel):
        family.set_creator("nobody", "wf_funcs:finetune")
    assert family.creator("a") is not None and family.creator("a").args == {"shift": 0.5}
    family.set_creator("a", None)
    assert family.creator("a") is None
    family.remove("b", force=True)  # removing a model forgets its creator
    assert family.catalog.query("SELECT COUNT(*) FROM creators WHERE model = 'b'") == [(0,)]


def test_edges_made_by_a_forced_removal_are_not_rederived_through(
    family: mg.Repository,
) -> None:
    """rm --force links b to base past the removed a; a cascade from base must not
    rebuild b from base's weights (it was derived from a): blocked, with its subtree,
    until the edge is confirmed (edge rm + edge add), in a dry run too."""
    family.remove("a", force=True)
    assert "base" in family.graph.parents("b")
    family.commit("base", tiny(10.0))
    for dry in (True, False):
        report = family.cascade("base", dry_run=dry)
        assert report.step("b").status == "blocked", report
        assert "was made when a was removed" in report.step("b").error
        assert "modelgit edge rm base b" in report.step("b").error
    assert report.step("d").status == "blocked" and report.step("c").status == "updated"
    assert counts(family)["b"] == 1 and w(family, "b") == 2.5  # untouched
    family.remove_edge("base", "b")
    family.add_edge("base", "b", relation="finetune")  # confirmed: links b@1 to base@2
    family.commit("base", tiny(20.0))
    assert family.cascade("base").step("b").status == "updated"
    assert w(family, "b") == 21.0  # flaky: base@3 (20.0) + 1


def test_bad_creator_results_fail_cleanly(family: mg.Repository) -> None:
    family.set_creator("a", "wf_funcs:mean_w")  # returns a float, not a state_dict
    family.set_creator("c", "wf_funcs_missing:train", {"marker": "c"})
    family.commit("base", tiny(10.0))
    report = family.cascade("base")
    assert report.step("a").status == "failed" and report.step("c").status == "failed"
    assert "wf_funcs_missing" in report.step("c").error
    assert set(report.blocked) == {"b", "d", "m"}
    assert family.fsck().ok
    family.set_creator("a", "wf_funcs:first_row")  # changes the shapes: not committed
    family.set_creator("c", "wf_funcs:finetune")
    n = counts(family)["a"]
    step = family.cascade("base").step("a")
    assert step.status == "failed" and "a cascade keeps each tensor's shape" in step.error
    assert counts(family)["a"] == n


def test_one_cascade_at_a_time(family: mg.Repository) -> None:
    family.commit("base", tiny(10.0))
    fd = os.open(family.root / "locks" / "cascade.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(WorkflowError, match="another cascade"):
            family.cascade("base")
        assert family.cascade("base", dry_run=True).updated  # a plan needs no lock
    finally:
        os.close(fd)
    assert family.cascade("base").ok


def test_add_records_the_creator(repo: mg.Repository) -> None:
    repo.add("base", tiny(1.0))
    repo.add("ft", tiny(1.25), parents="base", creator="wf_funcs:finetune",
             creator_args={"shift": 0.25})  # fmt: skip
    assert repo.creator("ft").fn == "wf_funcs:finetune"
    repo.commit("base", tiny(2.0))
    assert repo.cascade("base").updated == ["ft"] and w(repo, "ft") == 2.25


def test_cli_cascade_dry_run_subprocess(family: mg.Repository) -> None:
    family.commit("base", tiny(10.0))
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("MODELGIT_REPO", None)
    cmd = [sys.executable, "-m", "modelgit", "--repo", str(family.root), "cascade", "base"]
    run = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "cascade from base@2 (dry run)" in run.stdout
    assert "would-update" in run.stdout and "a: re-derive from base@2" in run.stdout
    assert run.stderr == ""
    assert counts(family)["a"] == 1  # nothing changed


def test_cli_cascade_and_creator(family: mg.Repository, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(family.root)

    def cli(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*args, "--repo", root])
        out, err = capsys.readouterr()
        return code, out, err

    family.commit("base", tiny(10.0))
    code, out, _ = cli("cascade", "base", "--dry-run", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["dry_run"]
    assert [s["name"] for s in plan["steps"] if s["status"] == "would-update"] == [
        "a", "b", "d", "c", "m"
    ]  # fmt: skip
    code, out, _ = cli("creator", "a")
    assert code == 0 and "wf_funcs:finetune" in out
    code, out, _ = cli("creator", "manual", "wf_funcs:finetune", "--args", '{"shift": 1}')
    assert code == 0 and family.creator("manual").args == {"shift": 1}
    code, _, err = cli("creator", "manual", "wf_funcs:finetune", "--args", "{oops")
    assert code == 1 and "not JSON" in err
    wf_funcs.FAIL.add("c")
    code, out, _ = cli("cascade", "base")
    assert code == 1  # a model failed
    assert "4 updated, 1 failed, 1 blocked" in out and "training c diverged" in out
    wf_funcs.FAIL.clear()
    code, out, _ = cli("cascade", "base", "--json")
    assert code == 0 and json.loads(out)["ok"]
    assert counts(family) == {"base": 2, "a": 2, "b": 2, "d": 2, "c": 2, "m": 2, "manual": 2}


def test_rename_hook_carries_creators_and_selectors(family: mg.Repository) -> None:
    """schema.rename_model, which Repository.rename calls inside its transaction."""
    from modelgit.catalog.schema import rename_model_rows as rename_model

    family.register_test("t", "wf_funcs:mean_w", models=["a", "descendants:a", "base"])
    family.register_factory("wf_funcs:linear", models="a")
    with family.catalog.transaction() as db:  # what rename does around the hook
        db.execute(
            "INSERT INTO models(name, created) SELECT 'a2', created FROM models WHERE name = 'a'"
        )
        db.execute("UPDATE versions SET model = 'a2' WHERE model = 'a'")
        db.execute("UPDATE edges SET parent = 'a2' WHERE parent = 'a'")
        db.execute("UPDATE edges SET child = 'a2' WHERE child = 'a'")
        rename_model(db, "a", "a2")
        db.execute("DELETE FROM models WHERE name = 'a'")
    assert family.creator("a2") is not None and family.creator("a2").fn == "wf_funcs:finetune"
    assert family.tests()[0].models == "a2,descendants:a2,base"
    assert family.catalog.query("SELECT model FROM factories") == [("a2",)]
