"""repack's star pass (modelgit.versions.stars): delta chains re-coded as stars around
their medoid, bit-exact loads, true recorded depths below them, the byte bound, and
the pass killed with SIGKILL while another process loads."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import modelgit as mg
from conftest import assert_same_state, kill_repacks_while_loading
from modelgit.versions.stars import SMALL_CHUNK, STAR_ALLOWANCE


def training(n: int = 16, size: int = 200_000, step: float = 1e-4, decay: bool = False,
             seed: int = 0) -> list[dict[str, torch.Tensor]]:  # fmt: skip
    """Checkpoints of a run: each the last plus a small random step (``decay``: signed
    steps shrinking as 1/k, where a chain stays cheaper than any star)."""
    g = torch.Generator().manual_seed(seed)
    w = {"w": torch.randn(size, generator=g) * 0.05, "b": torch.randn(3000, generator=g) * 0.05}
    out = [w]
    for k in range(1, n):
        if decay:
            w = {key: v + step / k * torch.sign(torch.randn(v.shape, generator=g))
                 for key, v in w.items()}  # fmt: skip
        else:
            w = {key: v + step * torch.randn(v.shape, generator=g) for key, v in w.items()}
        out.append(w)
    return out


def committed(root: Path, chain: list[dict[str, torch.Tensor]]) -> mg.Repository:
    repo = mg.init(root)
    repo.chunk_elems = 16384  # many chunk positions: many groups
    repo.add("run", chain[0])
    for sd in chain[1:]:
        repo.commit("run", sd)
    return repo


def chunk_rows(repo: mg.Repository) -> dict[bytes, tuple[int, list[bytes], int]]:
    out = {}
    for cid, depth, base, codec in repo.catalog.query("SELECT id, depth, base, codec FROM chunks"):
        bases = [bytes(base[i : i + 16]) for i in range(0, len(base or b""), 16)]
        out[bytes(cid)] = (depth, bases, codec)
    return out


def assert_true_depths(repo: mg.Repository) -> None:
    """Every chunk's recorded depth is 1 + its deepest base's (0 without a base)."""
    rows = chunk_rows(repo)
    for cid, (depth, bases, _) in rows.items():
        want = 1 + max((rows[b][0] for b in bases), default=-1)
        assert depth == want, (cid.hex(), depth, want)


def test_a_chain_becomes_a_star_around_its_medoid(tmp_path: Path) -> None:
    chain = training()
    with committed(tmp_path / "r", chain) as repo:
        before = repo.stats().stored_bytes
        assert max(d for d, _, _ in chunk_rows(repo).values()) == 4  # the layout bound
        seen: list[tuple[int, int]] = []
        report = repo.repack(progress=lambda done, total: seen.append((done, total)))
        assert report.stars > 0
        assert (report.deepest_before, report.deepest_after) == (4, 1)
        # one bar over both passes: it never goes back, and ends full
        assert len({t for _, t in seen}) == 1 and seen[-1][0] == seen[-1][1] > 0
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        assert any(0 < d < seen[-1][1] // 2 for d, _ in seen)  # (the first pass counts)
        assert any(seen[-1][1] // 2 < d < seen[-1][1] for d, _ in seen)  # (and the stars)
        assert repo.stats().stored_bytes <= 1.01 * before
        for i, sd in enumerate(chain, 1):
            assert_same_state(repo.load(f"run@{i}"), sd)
        assert_true_depths(repo)
        assert repo.fsck().ok
        # the centre is inside the run: the first checkpoint is coded against a newer one
        centres = {b.number for b in repo.storage_bases("run@1")}
        assert centres and all(2 <= c <= len(chain) - 1 for c in centres)
        assert "made stars" in str(report) and report.to_json()["stars"] == report.stars
        assert repo.repack().rewritten == 0  # a star around its medoid stays


def test_chunks_coded_against_a_star_keep_true_depths(tmp_path: Path) -> None:
    """A bf16 cast and a merge coded against members of the run: their records are not
    rewritten, their recorded depths follow their bases' new depths."""
    chain = training(n=12)
    with committed(tmp_path / "r", chain) as repo:
        cast = {k: v.to(torch.bfloat16) for k, v in chain[8].items()}
        repo.add("cast", cast, parents="run@9")
        other = {k: v + 1e-3 for k, v in chain[10].items()}
        repo.add("other", other, parents="run@11")
        merge = {k: 0.5 * chain[9][k] + 0.5 * other[k] for k in chain[0]}
        repo.add("merge", merge, parents=["run@10", "other"])
        assert repo.repack().stars > 0
        assert_true_depths(repo)
        assert_same_state(repo.load("cast"), cast)
        assert_same_state(repo.load("merge"), merge)
        assert_same_state(repo.load("other"), other)
        for i, sd in enumerate(chain, 1):
            assert_same_state(repo.load(f"run@{i}"), sd)
        assert repo.fsck().ok


def test_a_star_that_costs_more_is_not_made(tmp_path: Path) -> None:
    """Steps shrinking as 1/k: each checkpoint is much closer to the last than to any
    centre, so every star of the large chunks would take more than STAR_SLACK more
    space: they stay chains. The small tensor's chain (12 KB chunks) becomes a star
    within STAR_ALLOWANCE."""
    with committed(tmp_path / "r", training(n=10, step=3e-4, decay=True)) as repo:
        size = dict(repo.catalog.query("SELECT id, raw_length FROM chunks"))
        before = chunk_rows(repo)
        report = repo.repack()
        assert report.deepest_after == 4 and 0 < report.stars
        after = chunk_rows(repo)
        large = [c for c in before if size[c] > SMALL_CHUNK]
        assert large and all(after[c] == before[c] for c in large)
        assert all(after[c][0] <= 1 for c in before if size[c] <= SMALL_CHUNK)
        assert report.bytes_after <= report.bytes_before + STAR_ALLOWANCE


def test_no_stars(tmp_path: Path) -> None:
    committed(tmp_path / "r", training(n=8)).close()
    with mg.open(tmp_path / "r") as repo:
        assert repo.repack(stars=False).stars == 0
    out = subprocess.run(
        [sys.executable, "-m", "modelgit", "--repo", str(tmp_path / "r"), "repack",
         "--no-stars", "--json"], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["stars"] == 0 and data["deepest_after"] == data["deepest_before"] == 4


def test_star_pass_killed_then_rerun_and_readers_meanwhile(tmp_path: Path) -> None:
    """The first pass settled beforehand (``stars=False``), so the killed repacks spend
    their time in the star pass; every load stays bit-exact, fsck stays clean, every
    recorded depth true, and a final repack completes the stars."""
    chain = training(n=14, size=300_000, seed=2)
    root = tmp_path / "r"
    with committed(root, chain) as repo:
        repo.repack(stars=False)
    rng = random.Random(os.environ.get("MODELGIT_CRASH_SEED", "7"))

    def load_one(reader: mg.Repository) -> None:
        i = rng.randrange(len(chain))
        assert_same_state(reader.load(f"run@{i + 1}"), chain[i])

    interrupted = kill_repacks_while_loading(
        root, rng, load_one, (0.02, 0.15), check=assert_true_depths
    )
    assert interrupted >= 1, "the repacks ended before the kills"
    with mg.open(root) as repo:
        repo.repack()
        assert max(d for d, _, _ in chunk_rows(repo).values()) == 1
        assert repo.repack().rewritten == 0
        for i, sd in enumerate(chain, 1):
            assert_same_state(repo.load(f"run@{i}"), sd)
        assert repo.fsck().ok


def test_a_merge_below_two_stars_keeps_true_depths(tmp_path: Path) -> None:
    """A merge of the roots of two chains, fine-tunes of the merge, and a long chain:
    stars made one after the other move the recorded depths of what lies below them
    (the merge, its fine-tunes), each from the rows as they are then."""
    g = torch.Generator().manual_seed(0)
    n = 40_000

    def noisy(centre: torch.Tensor, s: float = 1e-4) -> dict[str, torch.Tensor]:
        return {"w": centre + s * torch.randn(n, generator=g)}

    c, cb = torch.randn(n, generator=g) * 0.05, torch.randn(n, generator=g) * 0.05
    models = {"A0": noisy(c, 2e-3), "B0": noisy(cb)}
    models["M"] = {"w": 0.5 * models["A0"]["w"] + 0.5 * models["B0"]["w"]}
    cm = models["M"]["w"] + 3e-3 * torch.randn(n, generator=g)
    models |= {"M1": noisy(cm), "M2": noisy(cm)}
    models |= {f"A{i}": noisy(c) for i in range(1, 8)}
    parents = {"M": ["A0", "B0"], "M1": "M", "M2": "M1"} | {
        f"A{i}": f"A{i - 1}" for i in range(1, 8)
    }
    with mg.init(tmp_path / "r") as repo:
        repo.chunk_elems = 4096
        for name, sd in models.items():
            repo.add(name, sd, parents=parents.get(name))
        assert repo.repack(gc=False).stars > 0
        assert_true_depths(repo)
        models["T"] = noisy(models["M"]["w"], 1e-5)
        repo.add("T", models["T"], parents="M")  # coded against the merge's chunks
        assert_true_depths(repo)
        for name, sd in models.items():
            assert_same_state(repo.load(name), sd)
        assert repo.fsck().ok


def test_pull_after_a_repack_records_local_depths(tmp_path: Path) -> None:
    """B pulls A's run, A repacks (stars) and commits more, B pulls again: the new
    records are coded against A's star centres, which B holds in its own (chain)
    encoding; their depth is B's, not A's."""
    chain = training(n=14, size=20_000)
    with mg.init(tmp_path / "A") as a, mg.init(tmp_path / "B") as b:
        a.chunk_elems = b.chunk_elems = 4096
        a.add("run", chain[0])
        for sd in chain[1:10]:
            a.commit("run", sd)
        b.pull(a)
        assert a.repack().stars > 0
        for sd in chain[10:12]:
            a.commit("run", sd)
        b.pull(a)
        assert_true_depths(b)
        for sd in chain[12:]:
            b.commit("run", sd)
        assert_true_depths(b)
        for i, sd in enumerate(chain, 1):
            assert_same_state(b.load(f"run@{i}"), sd)
        assert b.fsck().ok


def test_a_long_group_is_cut_into_stars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group longer than STAR_MAX is cut into slices of the versions in the order they
    were written; the first becomes a star around its medoid, and a later one may take
    that centre (stored standalone already) instead of storing one of its own."""
    from modelgit.versions import stars

    monkeypatch.setattr(stars, "STAR_MAX", 6)
    g = torch.Generator().manual_seed(4)
    centre = torch.randn(40_000, generator=g) * 0.05
    # versions scattered around one point (not a walk): any centre is as good as another
    run = [{"w": centre + 1e-4 * torch.randn(40_000, generator=g)} for _ in range(18)]
    with committed(tmp_path / "r", run) as repo:
        report = repo.repack()
        assert report.stars >= 9 and report.deepest_after == 1  # 3 chunks x 3 slices
        assert_true_depths(repo)
        rows = chunk_rows(repo)
        standalone = [c for c, (d, _, _) in rows.items() if d == 0]
        assert len(standalone) == 3  # one centre per chunk position, shared by its slices
        for i, sd in enumerate(run, 1):
            assert_same_state(repo.load(f"run@{i}"), sd)


def test_a_larger_star_slack_makes_the_stars_the_default_declines(tmp_path: Path) -> None:
    """``star_slack`` trades space for load depth: the shrinking steps' chains, which the
    default 1% keeps (test above), become stars within a larger share; every version
    still loads bit for bit. Bad shares are refused before anything is touched."""
    chain = training(n=10, step=3e-4, decay=True)
    with committed(tmp_path / "r", chain) as repo:
        for bad in (-0.01, 1.5, float("nan"), "5%", True):
            with pytest.raises(ValueError, match="star_slack"):
                repo.repack(star_slack=bad)  # type: ignore[arg-type]
        before = repo.stats().stored_bytes
        report = repo.repack(star_slack=0.5)
        assert report.deepest_before == 4 and report.deepest_after == 1
        assert report.bytes_after <= 1.5 * report.bytes_before
        assert before < repo.stats().stored_bytes <= 1.5 * before
        assert_true_depths(repo)
        for i, sd in enumerate(chain, 1):
            assert_same_state(repo.load(f"run@{i}"), sd)
    committed(tmp_path / "cli", chain).close()
    base = [sys.executable, "-m", "modelgit", "--repo", str(tmp_path / "cli"), "repack"]
    bad = subprocess.run([*base, "--star-slack", "lots"], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a share" in bad.stderr
    bad = subprocess.run([*base, "--star-slack", "150%"], capture_output=True, text=True)
    assert bad.returncode == 2 and "between 0 and 100%" in bad.stderr
    out = subprocess.run([*base, "--star-slack", "50%", "--json"], capture_output=True,
                         text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["deepest_after"] == 1
