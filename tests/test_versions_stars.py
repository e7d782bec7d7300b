"""repack's star pass (modelgit.versions.stars): delta chains re-coded as stars around
their medoid, bit-exact loads, true recorded depths below them, the byte bound, and
the pass killed with SIGKILL while another process loads."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import modelgit as mg
from conftest import assert_same_state
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
        report = repo.repack()
        assert report.stars > 0
        assert (report.deepest_before, report.deepest_after) == (4, 1)
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


STARS = """
import sys, modelgit as mg
with mg.open(sys.argv[1]) as repo:
    print("start", flush=True)
    repo.repack(gc=False)
    print("done", flush=True)
"""


def test_star_pass_killed_then_rerun_and_readers_meanwhile(tmp_path: Path) -> None:
    """The first pass settled beforehand (``stars=False``), so the killed repacks spend
    their time in the star pass; every load stays bit-exact, fsck stays clean, and a
    final repack completes the stars."""
    chain = training(n=14, size=300_000, seed=2)
    root = tmp_path / "r"
    with committed(root, chain) as repo:
        repo.repack(stars=False)
    rng = random.Random(os.environ.get("MODELGIT_CRASH_SEED", "7"))
    interrupted = 0
    with mg.open(root) as reader:
        for _ in range(3):
            proc = subprocess.Popen([sys.executable, "-c", STARS, str(root)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True)  # fmt: skip
            assert proc.stdout is not None and proc.stdout.readline() == "start\n"
            deadline = time.monotonic() + rng.uniform(0.05, 0.4)
            while time.monotonic() < deadline:
                i = rng.randrange(len(chain))
                assert_same_state(reader.load(f"run@{i + 1}"), chain[i])
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            interrupted += proc.stdout.read() != "done\n"
            proc.stdout.close()
            with mg.open(root) as check:
                assert check.fsck().ok
                assert_true_depths(check)
    assert interrupted >= 1, "the repacks ended before the kills"
    with mg.open(root) as repo:
        repo.repack()
        assert max(d for d, _, _ in chunk_rows(repo).values()) == 1
        assert repo.repack().rewritten == 0
        for i, sd in enumerate(chain, 1):
            assert_same_state(repo.load(f"run@{i}"), sd)
        assert repo.fsck().ok
