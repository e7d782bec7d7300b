"""repo.bisect and `modelgit bisect`: the first version along a lineage path that fails."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest

import modelgit as mg
import wf_funcs
from modelgit.cli import main
from modelgit.errors import WorkflowError
from wf_funcs import tiny


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    wf_funcs.CALLS.clear()
    yield


@pytest.fixture
def chain(repo: mg.Repository) -> mg.Repository:
    """m@1..m@16 with mean weight 16, 15, ..., 1: versions 1-9 pass `mean_w >= 8`."""
    repo.add("m", tiny(16.0))
    for i in range(2, 17):
        repo.commit("m", tiny(17.0 - i))
    repo.register_test("big", "wf_funcs:mean_w", threshold=8.0)
    return repo


def test_bisect_a_version_chain(chain: mg.Repository) -> None:
    result = chain.bisect("big", "m@1", "m@16")
    assert result.first_bad == "m@10" and result.last_good == "m@9"
    assert result.path == [f"m@{i}" for i in range(1, 17)]
    # both ends are checked first, then a binary search
    assert result.runs == len(wf_funcs.CALLS) <= math.ceil(math.log2(16)) + 2
    assert {"m@1", "m@16"} <= set(result.results) <= set(result.path)
    # a registered test's runs are stored against the versions they ran on
    stored = chain.test_results(test="big")
    assert {r.ref for r in stored} == set(result.results)
    assert chain.test_results(model="m@10").result("big", "m@10").passed is False
    assert "first bad: m@10" in str(result)
    # any sub-range
    assert chain.bisect("big", "m@3", "m@11").first_bad == "m@10"
    assert chain.bisect("big", "m@9", "m@10").runs == 2  # adjacent: only the ends
    assert chain.bisect("big", "m@9", "m@10", verify=False).runs == 0  # trusted: nothing


def test_bisect_along_provenance_and_versions(repo: mg.Repository) -> None:
    """base@1 -> ft@1 -> ft@2 -> ft@3 -> ft@4 (provenance, then versions)."""
    repo.add("base", tiny(1.0, b=1))
    repo.add("ft", tiny(1.0, b=1), parents="base")
    repo.commit("ft", tiny(1.0, b=2))
    repo.commit("ft", tiny(1.0, b=-1))  # the regression
    repo.commit("ft", tiny(1.0, b=-2))
    repo.add("leaf", tiny(1.0, b=-3), parents="ft@4")
    repo.register_test("bias", "wf_funcs:bias_nonnegative")
    result = repo.bisect("bias", "base", "leaf")
    assert result.path == ["base@1", "ft@1", "ft@2", "ft@3", "ft@4", "leaf@1"]
    assert result.first_bad == "ft@3"
    assert result.runs <= 5


def test_bisect_with_an_import_path_and_a_loss(chain: mg.Repository) -> None:
    # drift = |w - 16|: 0, 1, ..., 15 along the chain -- lower is better
    result = chain.bisect("wf_funcs:drift", "m@1", "m@16", threshold=4.5, higher_is_better=False)
    assert result.path[0] == "m@1" and result.path[-1] == "m@16"
    assert result.first_bad == "m@6"  # drift 5 > 4.5; m@5 has drift 4
    assert len(chain.test_results()) == 0  # an unregistered test stores nothing
    with pytest.raises(WorkflowError, match="its own threshold"):
        chain.bisect("big", "m@1", "m@16", threshold=3.0)
    # a test of the built module: the factory makes it (4 * w here)
    result = chain.bisect("wf_funcs:module_output", "m@1", "m@16", threshold=32.0,
                          factory="wf_funcs:linear")  # fmt: skip
    assert result.first_bad == "m@10"  # w = 7 there; m@9 has w = 8
    with pytest.raises(WorkflowError, match="its own threshold and factory"):
        chain.bisect("big", "m@1", "m@16", factory="wf_funcs:linear")


def test_bisect_checks(chain: mg.Repository) -> None:
    with pytest.raises(WorkflowError, match="the good end m@12 fails"):
        chain.bisect("big", "m@12", "m@16", verify=True)
    with pytest.raises(WorkflowError, match="the bad end m@2 passes"):
        chain.bisect("big", "m@1", "m@2", verify=True)
    with pytest.raises(WorkflowError, match="same version"):
        chain.bisect("big", "m@3", "m@3")
    chain.add("stranger", tiny(0.0))
    with pytest.raises(mg.LineageError, match="unrelated"):
        chain.bisect("big", "m@1", "stranger")
    with pytest.raises(WorkflowError, match="no test named"):
        chain.bisect("nope", "m@1", "m@16")
    with pytest.raises(mg.UnknownVersion):
        chain.bisect("big", "m@1", "m@99")
    wf_funcs.CALLS.clear()
    with pytest.raises(mg.UnsupportedInput, match="cannot import"):
        chain.bisect("no_such_module:fn", "m@1", "m@16")
    chain.register_test("gone", "no_such_module:fn")
    with pytest.raises(mg.UnsupportedInput, match="cannot import"):
        chain.bisect("gone", "m@1", "m@16")
    assert wf_funcs.CALLS == [] and len(chain.test_results(test="gone")) == 0


def test_cli_bisect(chain: mg.Repository, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bisect", "big", "m@1", "m@16", "--json", "--repo", str(chain.root)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["first_bad"] == "m@10" and out["runs"] <= 6
    assert len(out["path"]) == 16
    code = main(["bisect", "big", "m@1", "m@16", "--repo", str(chain.root)])
    assert code == 0 and "first bad: m@10" in capsys.readouterr().out


def test_bisect_checks_both_ends_by_default(chain: mg.Repository) -> None:
    # m@12 fails: by default bisect says so instead of trusting it (and reporting m@13)
    with pytest.raises(WorkflowError, match="the good end m@12 fails"):
        chain.bisect("big", "m@12", "m@16")
    with pytest.raises(WorkflowError, match="the bad end m@5 passes"):
        chain.bisect("big", "m@1", "m@5")
    # verify=False trusts the ends, as git bisect does
    assert chain.bisect("big", "m@12", "m@16", verify=False).first_bad == "m@13"
    wf_funcs.CALLS.clear()
    assert chain.bisect("big", "m@1", "m@5", verify=False).first_bad == "m@5"
    assert "m@1" not in chain.bisect("big", "m@1", "m@16", verify=False).results


def test_bisect_refuses_swapped_and_unrelated_ends(repo: mg.Repository) -> None:
    repo.add("base", tiny(1.0, b=1))
    repo.add("left", tiny(1.0, b=-1), parents="base")
    repo.add("right", tiny(1.0, b=1), parents="base")
    repo.commit("right", tiny(1.0, b=-1))
    repo.register_test("bias", "wf_funcs:bias_nonnegative")
    with pytest.raises(WorkflowError, match="swapped: the good end right@2 descends from"):
        repo.bisect("bias", "right@2", "base")
    with pytest.raises(WorkflowError, match="swapped"):
        repo.bisect("bias", "right@2", "right@1", verify=False)
    # siblings: joined only through their common ancestor, not an ancestry
    with pytest.raises(mg.LineageError, match="left@1 and right@2 are unrelated"):
        repo.bisect("bias", "left", "right")
    assert len(repo.test_results()) == 0  # refused before any run
    assert repo.bisect("bias", "base", "right").first_bad == "right@2"


def test_cli_bisect_verify_and_refusals(
    chain: mg.Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--repo", str(chain.root)]
    assert main(["bisect", "big", "m@12", "m@16", *where]) == 1
    assert "the good end m@12 fails" in capsys.readouterr().err
    assert main(["bisect", "big", "m@12", "m@16", "--no-verify", "--json", *where]) == 0
    assert json.loads(capsys.readouterr().out)["first_bad"] == "m@13"
    assert main(["bisect", "big", "m@16", "m@1", *where]) == 1
    err = capsys.readouterr().err
    assert "modelgit: error: the ends are swapped" in err and "good m@1, bad m@16" in err
