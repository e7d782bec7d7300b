"""repo.repack and ``modelgit repack`` (modelgit.versions.repack): re-chosen bases,
bit-exact loads, safety rules, a repack killed with SIGKILL, readers during a repack."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import modelgit as mg
from conftest import assert_same_state, kill_repacks_while_loading
from modelgit.versions.repack import _leads_to


def family(n: int = 6, size: int = 300_000, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """A base, a chain of fine-tunes, a bf16 cast and a weighted merge."""
    g = torch.Generator().manual_seed(seed)
    base = {"w": torch.randn(size, generator=g) * 0.05, "b": torch.randn(500, generator=g),
            "steps": torch.arange(10)}  # fmt: skip
    out = {"base": base}
    prev = base
    for i in range(1, n):
        prev = {k: v + 1e-3 * torch.randn(v.shape, generator=g) if v.is_floating_point()
                else v for k, v in prev.items()}  # fmt: skip
        out[f"ft{i}"] = prev
    out["cast"] = {k: v.to(torch.bfloat16) if v.is_floating_point() else v
                   for k, v in out["ft1"].items()}  # fmt: skip
    if n > 2:
        out["merge"] = {k: 0.3 * out["ft1"][k] + 0.7 * out["ft2"][k] if v.is_floating_point()
                        else v for k, v in base.items()}  # fmt: skip
    return out


def fill(root: Path, models: dict, chunk_elems: int = 0, **kw: object) -> mg.Repository:
    repo = mg.init(root)
    if chunk_elems:
        repo.chunk_elems = chunk_elems  # many chunks: many points to be killed at
    for name, sd in models.items():
        repo.add(name, sd, **kw)
    return repo


def test_repack_reaches_the_declared_footprint(tmp_path: Path) -> None:
    models = family()
    parents = {"ft1": "base", "cast": "ft1", "merge": ["ft1", "ft2"]}
    parents |= {f"ft{i}": f"ft{i - 1}" for i in range(2, 6)}
    with mg.init(tmp_path / "declared") as ref:
        for name, sd in models.items():
            ref.add(name, sd, parents=parents.get(name))
        declared = ref.stats().stored_bytes
    with fill(tmp_path / "flat", models, base="parent") as repo:  # all standalone
        before = repo.stats().stored_bytes
        assert before > 1.3 * declared
        report = repo.repack(casts=False)  # (the cast pass trades bytes for load depth)
        after = repo.stats().stored_bytes
        assert report.rewritten > 0 and report.saved == before - after
        assert report.gc_reclaimed is not None and report.gc_reclaimed > 0
        assert after <= 1.05 * declared
        for name, sd in models.items():
            assert_same_state(repo.load(name), sd)
        assert repo.fsck().ok
        assert {v.model for v in repo.storage_bases("merge")} >= {"ft1", "ft2"}
        # some chunks of the chain base -> ft5 became a star around one version: the
        # base is then a delta against a newer version (a random walk's chain is
        # cheaper than its star elsewhere: those stay chains)
        assert report.stars > 0
        assert any(repo.storage_bases("base"))
        settles(repo, casts=False)


def settles(repo: mg.Repository, casts: bool = True) -> None:
    """Repacking again gains little, and soon nothing: the first pass of the next run
    may code a chunk against the star centres the last run made (a fixed point)."""
    size = repo.stats().stored_bytes
    for _ in range(6):
        again = repo.repack(casts=casts)
        if again.rewritten == 0:
            assert again.gc_reclaimed is None and again.stars == 0
            return
        assert again.saved >= 0 and again.bytes_after >= 0.98 * again.bytes_before
        assert repo.stats().stored_bytes <= size
    raise AssertionError("a repack still rewrote chunks after six runs")


def test_chunks_left_only_as_bases_of_removed_versions_are_freed(tmp_path: Path) -> None:
    """Pruned checkpoints (and a model removed with --force) leave the kept versions
    coded through chunks no version holds: gc must keep those. repack re-codes what
    needs them (against a live relative, or standalone), and gc then frees them."""
    g = torch.Generator().manual_seed(0)
    w = {"a": torch.randn(200, 200, generator=g), "b": torch.randn(300, generator=g)}
    with mg.init(tmp_path / "ck") as repo:
        for step in range(8):
            repo.checkpoint("run", w, step=step)
            last = w
            w = {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in w.items()}
        repo.prune_checkpoints("run", keep_last=1, mode="versions")
        repo.gc()
        held = repo.stats()
        assert held.stored_bytes > 3 * held.models[0].stored_bytes  # the orphans' bytes
        from modelgit.cli.maintain import du_text

        assert "is no version's" in du_text(held) and "modelgit repack" in du_text(held)
        report = repo.repack()
        assert report.rewritten == 2 and report.saved > 0 and report.deepest_after == 0
        after = repo.stats()
        assert after.stored_bytes == after.models[0].stored_bytes < held.stored_bytes / 3
        assert "is no version's" not in du_text(after)
        assert_same_state(repo.load("run"), last)
        assert repo.fsck().ok
    base = {"w": torch.randn(300_000, generator=g)}
    ft = {"w": base["w"] + 1e-3 * torch.randn(300_000, generator=g)}
    ft2 = {"w": ft["w"] + 1e-4 * torch.randn(300_000, generator=g)}
    with mg.init(tmp_path / "rm") as repo:
        repo.add("base", base)
        repo.add("ft", ft, parents="base")
        repo.add("ft2", ft2, parents="ft")
        repo.remove("ft", force=True)  # ft2 stays coded against ft's chunks
        repo.gc()
        before = repo.stats().stored_bytes
        repo.repack()
        assert repo.stats().stored_bytes < before
        assert_same_state(repo.load("ft2"), ft2)
        assert all(v.model == "base" for v in repo.storage_bases("ft2"))
        assert repo.fsck().ok


def test_report_says_grew_where_a_repack_costs_space() -> None:
    from modelgit.versions.repack import RepackReport

    grew = RepackReport(versions=2, chunks=4, bytes_before=1000, bytes_after=1024)
    assert "(grew by 24 B, 2.4%)" in str(grew) and "saved" not in str(grew)
    shrank = RepackReport(versions=2, chunks=4, bytes_before=1000, bytes_after=900)
    assert "(saved 100 B, 10.0%)" in str(shrank) and shrank.to_json()["saved"] == 100


def test_chunks_others_need_do_not_get_deeper(tmp_path: Path) -> None:
    """A chunk that other records are coded against keeps at most its depth: here the
    first version of b is standalone and c is coded against it; a (older, close to b)
    could make b a delta, but that would deepen c's chain behind the catalog's back."""
    g = torch.Generator().manual_seed(1)
    a = {"w": torch.randn(200_000, generator=g)}
    b = {"w": a["w"] + 1e-3 * torch.randn(200_000, generator=g)}
    c = {"w": b["w"] + 1e-3 * torch.randn(200_000, generator=g)}
    with mg.init(tmp_path / "r") as repo:
        repo.add("a", a, base="parent")
        repo.add("b", b, base="parent")  # standalone, though a is close
        repo.add("c", c, parents="b", base="parent")  # coded against b
        rows_b = repo.store.rows(repo.tensor_rows(repo.resolve("b")[0])[0].chunk_ids)
        repo.repack()
        after = repo.store.rows(rows_b)
        assert all(after[c].depth <= rows_b[c].depth for c in rows_b)
        for name, sd in (("a", a), ("b", b), ("c", c)):
            assert_same_state(repo.load(name), sd)
        assert repo.fsck().ok


def test_leads_to_follows_bases(tmp_path: Path) -> None:
    models = family(n=3)
    with fill(tmp_path / "r", models) as repo:
        top = repo.tensor_rows(repo.resolve("ft2")[0])
        w = next(t for t in top if t.name == "w").chunk_ids[0]
        row = repo.store.row(w)
        assert row is not None and row.bases
        assert _leads_to(repo.store, [w], row.bases[0])
        assert not _leads_to(repo.store, row.bases, w)


def test_lossy_versions_are_left_alone(tmp_path: Path) -> None:
    models = family(n=2)
    with mg.init(tmp_path / "r") as repo:
        repo.add("base", models["base"], base="parent")
        repo.add("q", models["ft1"], tolerance=mg.ErrorBound(1e-3), base="parent")
        before = repo.load("q")
        repo.repack()
        assert_same_state(repo.load("q"), before)
        assert repo.fsck().ok


def test_old_repository_without_sketches(tmp_path: Path) -> None:
    """A format-2 repository written before the similarity index: repack computes the
    sketches from the weights, and every version still loads as it did."""
    fixture = Path(__file__).parent / "fixtures" / "format2"
    copy = tmp_path / "old"
    shutil.copytree(fixture, copy)
    (copy / "locks").mkdir(exist_ok=True)
    with mg.open(copy) as repo:
        refs = [v.ref for n in repo.models() for v in repo.versions(n)]
        want = {r: repo.load(r) for r in refs}
        report = repo.repack()
        assert report.versions == len(refs)
        for r in refs:
            assert_same_state(repo.load(r), want[r])
        assert repo.fsck().ok


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MODELGIT_PROGRESS="0")
    return subprocess.run([sys.executable, "-m", "modelgit", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_cli_repack(tmp_path: Path) -> None:
    fill(tmp_path / "r", family(n=3), base="parent").close()
    out = _cli("--repo", str(tmp_path / "r"), "repack", "--no-gc", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["rewritten"] > 0 and data["saved"] > 0 and data["gc_reclaimed"] is None
    text = _cli("--repo", str(tmp_path / "r"), "repack")
    assert text.returncode == 0 and text.stdout.startswith("repacked ")
    assert "repack" in _cli("--help").stdout


def test_repack_killed_then_rerun_and_readers_meanwhile(tmp_path: Path) -> None:
    """Loads in this process while another repacks; the repacker is killed with SIGKILL
    at random points; every load stays bit-exact, and a final repack completes."""
    models = family(n=8, size=400_000, seed=3)
    root = tmp_path / "r"
    fill(root, models, chunk_elems=4096, base="parent").close()
    rng = random.Random(os.environ.get("MODELGIT_CRASH_SEED", "5"))

    def load_one(reader: mg.Repository) -> None:
        name = rng.choice(list(models))
        assert_same_state(reader.load(name), models[name])

    interrupted = kill_repacks_while_loading(root, rng, load_one, (0.02, 0.3))
    assert interrupted >= 2, "the repacks ended before the kills"
    with mg.open(root) as repo:
        repo.repack()
        settles(repo)
        for name, sd in models.items():
            assert_same_state(repo.load(name), sd)
        assert repo.fsck().ok
