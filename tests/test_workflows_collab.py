"""push / pull / merge between repositories (modelgit.workflows.collab)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import modelgit as mg
from conftest import assert_same_tensor
from modelgit.cli import main
from modelgit.errors import LineageError, ModelgitError, UnsupportedInput
from modelgit.workflows import transfer as transfer_mod


def sd(seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(200, 700, generator=g) * scale,
        "b": torch.randn(16, generator=g),
        "steps": torch.tensor([seed], dtype=torch.int64),
    }


def bump(d: dict[str, torch.Tensor], delta: float) -> dict[str, torch.Tensor]:
    return {k: (v + delta if v.dtype.is_floating_point else v) for k, v in d.items()}


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[mg.Repository, mg.Repository]]:
    a, b = mg.init(tmp_path / "a"), mg.init(tmp_path / "b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def ok(*repos: mg.Repository) -> None:
    for r in repos:
        report = r.fsck()
        assert report.ok, str(report)


def test_pull_copies_everything_then_nothing(pair):
    a, b = pair
    a.add("base", sd(0))
    a.add("ft", bump(sd(0), 0.01), parents="base", message="tuned")
    a.commit("ft", bump(sd(0), 0.02))
    a.tag("ft@1", "prod")
    r = b.pull(a.root)
    assert r.models_added == ["base", "ft"]
    assert sorted(r.versions_added) == ["base@1", "ft@1", "ft@2"]
    assert r.chunks > 0 and r.bytes > 0 and r.tags_added == ["prod"]
    assert json.loads(json.dumps(r.to_json()))["chunks"] == r.chunks
    assert "base" in str(r)
    for ref in ("base", "ft@1", "ft@2", "prod"):
        got, want = b.load(ref), a.load(ref)
        for k in want:
            assert_same_tensor(got[k], want[k], k)
    assert [v.id for v in b.versions("ft")] == [v.id for v in a.versions("ft")]
    assert b.version("ft@1").message == "tuned"
    assert b.graph.parents("ft") == ["base"]
    ok(a, b)
    again = b.pull(a.root)
    assert again.up_to_date and again.chunks == 0 and again.bytes == 0
    assert "up to date" in str(again)


def test_second_push_moves_only_the_new_version(pair):
    a, b = pair
    a.add("m", sd(1))
    first = a.push(b.root)
    a.commit("m", bump(sd(1), 0.5))
    second = a.push(b.root)
    assert second.fast_forwarded == ["m"] and second.versions_added == ["m@2"]
    assert 0 < second.bytes <= first.bytes * 1.2
    third = a.push(b.root)
    assert third.up_to_date and third.bytes == 0
    assert torch.equal(b.load("m")["w"], a.load("m")["w"])
    ok(a, b)


def test_shared_chunks_are_not_copied(pair):
    a, b = pair
    a.add("m", sd(2))
    b.pull(a.root)
    a.add("copy", sd(2))  # same tensors: dedup, nothing new to move
    r = a.push(b.root)
    assert r.versions_added == ["copy@1"] and r.chunks == 0 and r.bytes == 0
    ok(a, b)


def test_delta_bases_travel_with_their_chunks(pair):
    a, b = pair
    a.add("base", sd(3))
    a.add("ft", bump(sd(3), 1e-3), parents="base")
    a.remove("base", force=True)  # ft's chunks stay deltas against base's chunks
    r = b.pull(a.root)
    assert r.models_added == ["ft"]
    assert torch.equal(b.load("ft")["w"], a.load("ft")["w"])
    ok(a, b)


def test_divergence_is_detected_and_nothing_is_overwritten(pair):
    a, b = pair
    a.add("m", sd(4))
    b.pull(a.root)
    a.commit("m", bump(sd(4), 0.1), message="theirs")
    b.commit("m", bump(sd(4), -0.1), message="ours")
    ours_before = b.load("m")
    r = b.pull(a.root)
    assert [d.name for d in r.diverged] == ["m"]
    d = r.diverged[0]
    assert d.ours == "m@2" and d.theirs == a.version("m").id and d.fetched == [d.theirs]
    assert "diverged" in str(r) and r.to_json()["diverged"][0]["name"] == "m"
    assert ": 0 version(s) and 1 fetched aside," in str(r)  # not "0 versions" alone
    assert r.versions_fetched == ["m@fetched:2"] and r.to_json()["versions_fetched"]
    assert torch.equal(b.load("m")["w"], ours_before["w"])  # latest is still ours
    assert b.version("m").message == "ours"
    fetched = b.fetched("m")
    assert [v.id for v in fetched] == [d.theirs] and fetched[0].number <= 0
    ok(a, b)
    again = b.pull(a.root)  # pulling again fetches nothing new
    assert again.chunks == 0 and [x.name for x in again.diverged] == ["m"]
    assert again.versions_fetched == [] and "fetched aside" not in str(again)
    ok(b)


def test_a_diverged_push_uploads_nothing_unless_allowed(pair, capsys):
    a, b = pair
    a.add("m", sd(4))
    a.push(b.root)
    a.commit("m", bump(sd(4), 0.1), message="ours")
    a.add("other", sd(9))  # would travel too: a refused push moves nothing at all
    b.commit("m", bump(sd(4), -0.1), message="theirs, pushed by a colleague")
    packs = sorted(p.name for p in (b.root / "packs").rglob("*") if p.is_file())
    with pytest.raises(mg.DivergedHistory, match="nothing was uploaded") as info:
        a.push(b.root)
    assert "m (there m@2" in str(info.value) and "--allow-diverged" in str(info.value)
    assert [d.name for d in info.value.diverged] == ["m"]
    assert "other" not in b and b.fetched() == [] and len(b.versions("m")) == 2
    assert sorted(p.name for p in (b.root / "packs").rglob("*") if p.is_file()) == packs
    ok(a, b)
    # the command line: exit 1, the same message, nothing moved
    code = main(["push", str(b.root), "--repo", str(a.root)])
    assert code == 1 and "modelgit: error: push refused" in capsys.readouterr().err
    assert "other" not in b
    # allowed: theirs stay, ours arrive aside for a merge there
    r = a.push(b.root, allow_diverged=True)
    assert [d.name for d in r.diverged] == ["m"] and "other" in b
    assert b.version("m").message.startswith("theirs")
    assert [v.id for v in b.fetched("m")] == [a.version("m").id]
    ok(a, b)
    # a pull is never refused: it keeps ours and fetches theirs aside
    a.commit("m", bump(sd(4), 0.3))
    assert [d.name for d in b.pull(a.root).diverged] == ["m"]
    assert main(["push", str(b.root), "--allow-diverged", "--repo", str(a.root)]) == 0
    ok(a, b)


def diverge(a: mg.Repository, b: mg.Repository) -> str:
    a.add("m", sd(5))
    b.pull(a.root)
    a.commit("m", bump(sd(5), 0.25))
    b.commit("m", bump(sd(5), 0.5))
    return b.pull(a.root).diverged[0].theirs


@pytest.mark.parametrize("strategy", ["ours", "theirs", "average", "task-arithmetic"])
def test_merge_strategies(pair, strategy):
    a, b = pair
    theirs_uid = diverge(a, b)
    base = b.load("m@1")
    ours = b.load("m@2")
    theirs = a.load("m@2")
    v = b.merge("m", theirs_uid, strategy=strategy)
    got = b.load("m")
    want = {
        "ours": ours["w"],
        "theirs": theirs["w"],
        "average": (ours["w"] + theirs["w"]) / 2,
        "task-arithmetic": ours["w"] + theirs["w"] - base["w"],
    }[strategy]
    torch.testing.assert_close(got["w"], want)
    assert torch.equal(got["steps"], (theirs if strategy == "theirs" else ours)["steps"])
    # history: ours @2, merge @3 with both parents; theirs keeps its number, fetched aside
    refs = [(x.ref, x.id) for x in b.versions("m")]
    assert [r for r, _ in refs] == ["m@1", "m@2", "m@3", "m@fetched:2"]
    assert refs[3][1] == theirs_uid and v.number == 3 and b.version("m").id == v.id
    assert b.version("m@fetched:2").id == theirs_uid == b.version(theirs_uid).id
    assert [(p.ref, p.kind, p.relation) for p in v.parents] == [
        ("m@2", "version", "version"),
        ("m@fetched:2", "version", "merge"),
    ]
    assert v.metadata["merge"]["strategy"] == strategy
    assert v.metadata["merge"]["base"] == a.version("m@1").id
    assert b.fetched() == []
    ok(a, b)
    # the merge goes back as a fast-forward
    r = b.push(a.root)
    assert r.fast_forwarded == ["m"] and not r.diverged
    assert a.version("m").id == v.id and a.version("m@3").id == v.id
    assert a.version("m@2").id == theirs_uid  # a's m@2 still names what it named
    assert a.version("m@fetched:2").id == b.version("m@2").id  # ours, aside in a
    assert torch.equal(a.load("m")["w"], got["w"])
    assert {p.relation for p in a.version("m").parents} == {"version", "merge"}
    ok(a, b)


def halves(ours, theirs, base):
    return {k: (ours[k] if k != "w" else ours[k] * 0.25 + theirs[k] * 0.75) for k in ours}


def test_merge_with_a_callable_and_default_head(pair):
    a, b = pair
    diverge(a, b)
    seen = {}

    def fn(ours, theirs, base):
        seen["base"] = base is not None
        return halves(ours, theirs, base)

    ours, theirs = b.load("m"), a.load("m")
    v = b.merge("m", strategy=fn)  # None: the single fetched head
    assert seen["base"]
    torch.testing.assert_close(b.load("m")["w"], ours["w"] * 0.25 + theirs["w"] * 0.75)
    assert v.metadata["merge"]["strategy"].endswith("fn")
    ok(b)


def test_merge_errors(pair):
    a, b = pair
    a.add("m", sd(6))
    b.pull(a.root)
    with pytest.raises(LineageError):
        b.merge("m")  # nothing fetched
    with pytest.raises(LineageError):
        b.merge("m", a.version("m").id)  # already part of our history
    uid = diverge_again(a, b)
    with pytest.raises(UnsupportedInput):
        b.merge("m", uid, strategy="median")
    with pytest.raises(UnsupportedInput):
        b.merge("m", uid, strategy=lambda o, t, base: 3)
    with pytest.raises(UnsupportedInput, match=r"returned 'w' of shape \[1, "):
        b.merge("m", uid, strategy=lambda o, t, base: {k: v[:1] for k, v in o.items()})

    def boom(ours, theirs, base):
        raise RuntimeError("no luck")

    with pytest.raises(mg.WorkflowError, match="merge strategy .*boom failed: RuntimeError"):
        b.merge("m", uid, strategy=boom)
    n = len(b.versions("m"))
    assert b.fetched("m") and len(b.versions("m")) == n  # still waiting, nothing committed
    ok(b)


def test_cli_merge_strategy_from_this_folder(pair, tmp_path, monkeypatch, capsys):
    """`modelgit merge -s mod:fn` imports mod from the current folder, as test and
    cascade do; the strategy's own failure is an error of use (exit 1), no internal one."""
    from modelgit.cli import main

    a, b = pair
    a.add("m", sd(6))
    b.pull(a.root)
    diverge_again(a, b)
    (tmp_path / "mstrat.py").write_text(
        "def boom(ours, theirs, base):\n    raise ValueError('bad')\n"
        "def mine(ours, theirs, base):\n    return dict(theirs)\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["--repo", str(b.root), "merge", "m", "-s", "mstrat:boom"]) == 1
    assert "merge strategy mstrat:boom failed: ValueError: bad" in capsys.readouterr().err
    assert main(["--repo", str(b.root), "merge", "m", "-s", "mstrat:mine"]) == 0
    assert torch.equal(b.load("m")["w"], a.load("m")["w"])


def diverge_again(a: mg.Repository, b: mg.Repository) -> str:
    a.commit("m", bump(a.load("m"), 0.1))
    b.commit("m", bump(b.load("m"), 0.2))
    return b.pull(a.root).diverged[0].theirs


def test_unrelated_models_of_one_name(pair):
    a, b = pair
    a.add("m", sd(7))
    b.add("m", sd(8))
    r = b.pull(a.root)
    assert [d.name for d in r.diverged] == ["m"]
    with pytest.raises(LineageError):
        b.merge("m", strategy="task-arithmetic")  # no common ancestor
    v = b.merge("m", strategy="average")
    assert v.metadata["merge"]["base"] is None
    ok(b)


def test_pushing_into_itself_and_into_nothing(pair, tmp_path):
    a, _ = pair
    with pytest.raises(ModelgitError):
        a.push(a.root)
    with pytest.raises(mg.NotARepository):
        a.push(tmp_path / "nowhere")


def test_failure_before_commit_leaves_the_receiver_consistent(pair, monkeypatch):
    a, b = pair
    a.add("m", sd(9))

    def boom() -> None:
        raise RuntimeError("crash before the catalog commit")

    monkeypatch.setattr(transfer_mod, "_before_commit", boom)
    with pytest.raises(RuntimeError):
        b.pull(a.root)
    assert b.models() == []
    report = b.fsck()
    assert report.ok and report.garbage_bytes > 0  # the copied records are garbage
    b.gc()
    monkeypatch.setattr(transfer_mod, "_before_commit", None)
    r = b.pull(a.root)
    assert r.versions_added == ["m@1"]
    ok(a, b)


CRASHER = """
import os, signal, sys
import modelgit as mg
from modelgit.workflows import transfer
transfer._before_commit = lambda: os.kill(os.getpid(), signal.SIGKILL)
mg.open(sys.argv[1]).pull(sys.argv[2])
"""


def test_kill_during_transfer(pair):
    a, b = pair
    a.add("m", sd(10))
    b.add("own", sd(11))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASHER), str(b.root), str(a.root)],
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with mg.open(b.root) as fresh:
        assert fresh.models() == ["own"]
        assert fresh.fsck().ok
        r = fresh.pull(a.root)
        assert r.versions_added == ["m@1"]
        assert torch.equal(fresh.load("m")["w"], sd(10)["w"])
        assert fresh.fsck().ok


def test_cli_push_pull_merge(pair, capsys):
    from modelgit.cli import main

    a, b = pair
    a.add("m", sd(12))
    assert main(["--repo", str(b.root), "pull", str(a.root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["versions_added"] == ["m@1"]
    a.commit("m", bump(sd(12), 1.0))
    b.commit("m", bump(sd(12), 2.0))
    assert main(["--repo", str(a.root), "push", str(b.root)]) == 1
    assert "push refused" in capsys.readouterr().err
    assert main(["--repo", str(a.root), "push", str(b.root), "--allow-diverged"]) == 0
    assert "diverged" in capsys.readouterr().out
    uid = a.version("m").id
    assert main(["--repo", str(b.root), "merge", "m", uid, "--strategy", "theirs"]) == 0
    assert "merged into m@3" in capsys.readouterr().out  # (a's m@2 stays m@fetched:2)
    assert main(["--repo", str(b.root), "show", "m@3"]) == 0
    shown = capsys.readouterr().out
    assert "merge of m@2, m@fetched:2" in shown  # both histories it joins, in text too
    assert "merge={" in shown and "'" not in shown.split("metadata:")[1].splitlines()[0]
    assert torch.equal(b.load("m")["w"], a.load("m")["w"])
    assert main(["--repo", str(b.root), "merge", "m", "--strategy", "nope"]) == 1
    ok(a, b)


def _refs(repo: mg.Repository) -> dict[str, str]:
    """Every reference a repository answers to, with the version id it names."""
    return {v.ref: v.id for name in repo.models() for v in repo.versions(name)}


def test_three_repositories_numbers_never_change_meaning(tmp_path):
    """Two clones and a team repository: Alice and Bob both commit base@2, Alice pushes,
    Bob pulls, merges and pushes, Alice pulls. At no step does any repository's name@N
    come to name other weights; ids name the same version everywhere; the merge has
    the same number in all three."""
    team = mg.init(tmp_path / "team")
    alice = mg.init(tmp_path / "alice")
    bob = mg.init(tmp_path / "bob")
    seen = {r: {} for r in ("team", "alice", "bob")}
    repos = {"team": team, "alice": alice, "bob": bob}

    def step(action) -> None:
        action()
        for name, repo in repos.items():
            now = _refs(repo)
            for ref, uid in seen[name].items():
                assert now.get(ref) == uid, f"{name}: {ref} was {uid}, now {now.get(ref)}"
            seen[name] = now
            assert repo.fsck().ok

    step(lambda: alice.add("base", sd(20)))
    step(lambda: alice.push(team.root))
    step(lambda: bob.pull(team.root))
    step(lambda: alice.commit("base", bump(sd(20), 0.5), message="alice"))
    step(lambda: bob.commit("base", bump(sd(20), -0.5), message="bob"))
    a2, b2 = alice.version("base@2").id, bob.version("base@2").id
    step(lambda: alice.push(team.root))
    assert team.version("base@2").id == a2
    step(lambda: bob.pull(team.root))  # diverged: Alice's base@2 fetched aside
    assert bob.version("base@2").id == b2 and bob.version("base@fetched:2").id == a2
    merged = {}
    step(lambda: merged.setdefault("v", bob.merge("base", strategy="average")))
    assert merged["v"].ref == "base@3"
    step(lambda: bob.push(team.root))  # Bob's base@2 goes aside in the team repository
    step(lambda: alice.pull(team.root))
    for repo in repos.values():
        assert repo.version("base@1").id == alice.version("base@1").id
        assert repo.version("base@3").id == merged["v"].id == repo.version("base").id
        assert repo.version(a2).id == a2 and repo.version(b2).id == b2  # ids work everywhere
        assert {p.relation for p in repo.version("base@3").parents} == {"version", "merge"}
    assert team.version("base@2").id == alice.version("base@2").id == a2
    assert team.version("base@fetched:2").id == alice.version("base@fetched:2").id == b2
    assert torch.equal(alice.load("base")["w"], bob.load("base")["w"])


def test_named_remotes(pair, tmp_path, capsys):
    from modelgit.cli import main

    a, b = pair
    a.add("m", sd(30))
    b.add_remote("origin", a.root)
    assert b.remotes() == {"origin": str(a.root.resolve())}
    assert b.pull("origin").versions_added == ["m@1"]
    b.commit("m", bump(sd(30), 1.0))
    assert b.push("origin").fast_forwarded == ["m"]
    assert a.version("m").id == b.version("m").id
    with pytest.raises(mg.ModelExists, match="exists already"):
        b.add_remote("origin", tmp_path)
    b.add_remote("origin", a.root)  # the same URL again: fine
    with pytest.raises(mg.InvalidName):
        b.add_remote("bad/name", a.root)
    capsys.readouterr()
    assert main(["--repo", str(b.root), "remote", "add", "team", str(a.root)]) == 0
    assert main(["--repo", str(b.root), "remote", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in listed} == {"origin", "team"}
    assert main(["--repo", str(b.root), "pull", "team"]) == 0
    assert main(["--repo", str(b.root), "remote", "add", "team", str(tmp_path)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["--repo", str(b.root), "remote", "rm", "team"]) == 0
    assert main(["--repo", str(b.root), "remote", "rm", "team"]) == 1
    b.remove_remote("origin")
    assert b.remotes() == {}
    ok(a, b)
