"""repack's cast pass (modelgit.versions.casts): a cast of a delta re-coded against the
standalone chunk its parent's chain ends in, so that it loads one delta deep; bit-exact
loads, true depths, storage bases, the byte bound, --no-casts, and the pass killed with
SIGKILL while another process loads."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import torch

import modelgit as mg
from conftest import assert_same_state, kill_repacks_while_loading
from modelgit.versions.casts import CAST_LIMIT
from modelgit.versions.stars import SMALL_CHUNK
from test_versions_stars import assert_true_depths, chunk_rows


def family(root: Path, spread: float = 1e-2, seed: int = 0) -> tuple[mg.Repository, dict]:
    """A base, a fine-tune, a fine-tune of it (each a delta on the last: one relative
    change of about ``spread`` per weight), and a bf16 cast of the last."""
    g = torch.Generator().manual_seed(seed)
    base = {"w": torch.randn(8 * 16384, generator=g), "b": torch.randn(500, generator=g)}
    a = {k: v * (1 + spread * torch.randn(v.shape, generator=g)) for k, v in base.items()}
    b = {k: v * (1 + spread * torch.randn(v.shape, generator=g)) for k, v in a.items()}
    cast = {k: v.to(torch.bfloat16) for k, v in b.items()}
    repo = mg.init(root)
    repo.chunk_elems = 16384
    repo.add("base", base)
    repo.add("a", a, parents="base")
    repo.add("b", b, parents="a")
    repo.add("b-bf16", cast, parents="b", relation="cast")
    return repo, {"base": base, "a": a, "b": b, "b-bf16": cast}


def chunk_ids(repo: mg.Repository, ref: str) -> list[bytes]:
    vid, _ = repo.resolve(ref)
    return [c for r in repo.tensor_rows(vid) for c in r.chunk_ids]


def depths(repo: mg.Repository, ref: str) -> list[int]:
    return [r.depth for r in repo.store.rows(chunk_ids(repo, ref)).values()]


def test_a_cast_of_a_fine_tune_of_a_fine_tune_loads_one_delta_deep(tmp_path: Path) -> None:
    repo, sds = family(tmp_path / "r")
    with repo:
        assert max(depths(repo, "b-bf16")) == 3  # the cast of a delta of a delta
        before = repo.stats().stored_bytes
        report = repo.repack()
        assert report.casts == len(depths(repo, "b-bf16")) == 9  # w's 8 chunks and b's
        assert max(depths(repo, "b-bf16")) == 1 and report.deepest_after == 1
        for ref, sd in sds.items():
            assert_same_state(repo.load(ref), sd)
        assert_true_depths(repo)
        assert repo.fsck().ok
        # coded against chunks without bases; the version's storage bases say whose
        rows = chunk_rows(repo)
        roots = {b for c in chunk_ids(repo, "b-bf16") for b in rows[c][1]}
        assert roots and all(rows[b][1] == [] for b in roots)
        owners = {ref for ref in ("base@1", "a@1", "b@1") if roots & set(chunk_ids(repo, ref))}
        assert {v.ref for v in repo.storage_bases("b-bf16")} == owners
        # the residual against the centre costs bytes, within the bound
        cast_raw = sum(t.numel() * 2 for t in sds["b-bf16"].values())
        assert repo.stats().stored_bytes - before < CAST_LIMIT * cast_raw
        assert f"{report.casts} cast chunk(s) made one delta deep" in str(report)
        assert report.to_json()["casts"] == report.casts
        again = repo.repack()  # settled: the first pass never makes the cast deeper again
        assert again.rewritten == 0 and again.casts == 0


def test_no_casts_keeps_them_on_their_parent(tmp_path: Path) -> None:
    repo, sds = family(tmp_path / "r")
    repo.close()
    with mg.open(tmp_path / "r") as repo:
        assert repo.repack(casts=False).casts == 0
        assert max(depths(repo, "b-bf16")) == 2  # the parent is one delta deep now
        assert_same_state(repo.load("b-bf16"), sds["b-bf16"])
    out = subprocess.run(
        [sys.executable, "-m", "modelgit", "--repo", str(tmp_path / "r"), "repack",
         "--no-casts", "--json"], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["casts"] == 0
    out = subprocess.run(
        [sys.executable, "-m", "modelgit", "--repo", str(tmp_path / "r"), "repack", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["casts"] > 0
    with mg.open(tmp_path / "r") as repo:
        assert max(depths(repo, "b-bf16")) == 1
        assert_same_state(repo.load("b-bf16"), sds["b-bf16"])


def test_a_cast_far_from_the_centre_stays_on_its_parent(tmp_path: Path) -> None:
    """Fine-tunes that moved every weight by about 40%: in bf16 the residual against
    the centre would take more than CAST_LIMIT of the raw bytes, so the large chunks
    keep their record; the small one (the bias) is re-coded all the same."""
    repo, sds = family(tmp_path / "r", spread=0.4, seed=1)
    with repo:
        vid, _ = repo.resolve("b-bf16")
        rows = {r.name: r for r in repo.tensor_rows(vid)}
        before = chunk_rows(repo)
        large = [c for c in rows["w"].chunk_ids]
        small = rows["b"].chunk_ids
        assert all(before[c][0] == 3 for c in large + small)
        repo.repack()
        after = chunk_rows(repo)
        assert all(after[c][0] == 2 for c in large)  # still on b's chunk, one delta deep
        assert all(after[c][0] == 1 for c in small) and 500 * 2 <= SMALL_CHUNK
        assert_same_state(repo.load("b-bf16"), sds["b-bf16"])
        assert_true_depths(repo)
        again = repo.repack()  # settled: nothing goes back and forth
        assert again.rewritten == 0 and again.casts == 0


def test_small_casts_settle_and_pruned_casts_take_a_mask(tmp_path: Path) -> None:
    """A bias trained from zeros (its residual against the zero centre is as large as
    standalone coding) stays a delta on the centre, so repacks settle; a pruned
    fine-tune's cast, whose record on its parent has no zero mask, is coded against the
    centre with one."""
    g = torch.Generator().manual_seed(4)
    base = {"w": torch.randn(8 * 16384, generator=g), "b": torch.zeros(500)}
    a = {"w": base["w"] * (1 + 1e-2 * torch.randn(base["w"].shape, generator=g)),
         "b": 1e-2 * torch.randn(500, generator=g)}  # fmt: skip
    pruned = {k: torch.where(v.abs() < 0.6, torch.zeros_like(v), v) for k, v in a.items()}
    sds = {"base": base, "a": a, "pruned": pruned}
    sds |= {
        f"{k}-bf16": {n: t.to(torch.bfloat16) for n, t in sds[k].items()} for k in ("a", "pruned")
    }
    with mg.init(tmp_path / "r") as repo:
        repo.chunk_elems = 16384
        repo.add("base", base)
        repo.add("a", a, parents="base")
        repo.add("a-bf16", sds["a-bf16"], parents="a", relation="cast")
        repo.add("pruned", pruned, parents="a", relation="prune")
        repo.add("pruned-bf16", sds["pruned-bf16"], parents="pruned", relation="cast")
        assert max(depths(repo, "pruned-bf16")) >= 2
        first = repo.repack()
        assert first.casts > 0
        assert max(depths(repo, "a-bf16")) == 1 and max(depths(repo, "pruned-bf16")) == 1
        for name, sd in sds.items():
            assert_same_state(repo.load(name), sd)
        assert_true_depths(repo)
        again = repo.repack()
        assert again.rewritten == 0 and again.casts == 0 and again.gc_reclaimed is None


def test_progress_only_moves_forward(tmp_path: Path) -> None:
    """Tensors sharing their chunks (twelve norms of ones) and casts: the repack's
    progress never goes back and ends at its total, with and without the star pass."""
    g = torch.Generator().manual_seed(5)
    sd = {f"norm{i}": torch.ones(16384) for i in range(12)}
    sd["w"] = torch.randn(4 * 16384, generator=g)
    ft = {k: v * (1 + 1e-2 * torch.randn(v.shape, generator=g)) for k, v in sd.items()}
    ft2 = {k: v * (1 + 1e-2 * torch.randn(v.shape, generator=g)) for k, v in ft.items()}
    for stars in (False, True):
        with mg.init(tmp_path / f"r{stars}") as repo:
            repo.chunk_elems = 16384
            repo.add("base", sd)
            repo.add("ft", ft, parents="base")
            repo.add("ft2", ft2, parents="ft")
            repo.add("ft2-bf16", {k: v.to(torch.bfloat16) for k, v in ft2.items()},
                     parents="ft2", relation="cast")  # fmt: skip
            seen: list[tuple[int, int]] = []
            repo.repack(stars=stars, progress=lambda d, t, seen=seen: seen.append((d, t)))
            assert len({t for _, t in seen}) == 1
            assert [d for d, _ in seen] == sorted(d for d, _ in seen)
            assert seen[-1][0] == seen[-1][1] > 0


def test_cast_pass_killed_then_rerun_and_readers_meanwhile(tmp_path: Path) -> None:
    """The first two passes settled beforehand (``casts=False``), so the killed repacks
    spend their time in the cast pass; every load stays bit-exact, fsck stays clean,
    every recorded depth true, and a final repack completes it."""
    root = tmp_path / "r"
    g = torch.Generator().manual_seed(3)
    w = torch.randn(1_200_000, generator=g)
    sds = {}
    with mg.init(root) as repo:
        repo.chunk_elems = 16384
        repo.add("base", {"w": w})
        for i in range(4):  # four fine-tunes of fine-tunes, each with its bf16 cast
            w = w * (1 + 1e-2 * torch.randn(w.shape, generator=g))
            parent = "base" if i == 0 else f"ft{i - 1}"
            repo.add(f"ft{i}", {"w": w}, parents=parent)
            sds[f"ft{i}-bf16"] = {"w": w.to(torch.bfloat16)}
            repo.add(f"ft{i}-bf16", sds[f"ft{i}-bf16"], parents=f"ft{i}", relation="cast")
        repo.repack(casts=False)
    rng = random.Random(os.environ.get("MODELGIT_CRASH_SEED", "7"))
    names = sorted(sds)

    def load_one(reader: mg.Repository) -> None:
        name = rng.choice(names)
        assert_same_state(reader.load(name), sds[name])

    interrupted = kill_repacks_while_loading(
        root, rng, load_one, (0.01, 0.12), check=assert_true_depths
    )
    assert interrupted >= 1, "the repacks ended before the kills"
    with mg.open(root) as repo:
        repo.repack()
        assert all(max(depths(repo, n)) == 1 for n in names)
        assert repo.repack().rewritten == 0
        for name in names:
            assert_same_state(repo.load(name), sds[name])
        assert repo.fsck().ok
