"""stats, fsck, remove and gc of a repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import modelgit as mg
from conftest import assert_same_state


def weights(seed: int, n: int = 300_000) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(n, generator=g) * 0.02,
        "b": torch.randn(n // 100, generator=g).to(torch.bfloat16),
        "ids": torch.randint(0, 1000, (n // 50,), generator=g),
    }


def finetune(sd: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """A small update of every float tensor (the delta path)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, t in sd.items():
        if t.is_floating_point():
            mask = torch.rand(t.shape, generator=g) < 0.2
            t = torch.where(mask, t + (1e-3 * torch.randn(t.shape, generator=g)).to(t.dtype), t)
        out[k] = t.clone()
    return out


def pack_bytes(repo: mg.Repository) -> int:
    return sum(p.stat().st_size for p in (repo.root / "packs").glob("*.mgp"))


def logical(sd: dict[str, torch.Tensor]) -> int:
    return sum(t.nbytes for t in sd.values())


def a_family(repo: mg.Repository) -> dict[str, torch.Tensor]:
    """base, ft (a fine-tune of it) in two versions, copy (base again); returns base."""
    base = weights(1)
    ft = finetune(base, 2)
    repo.add("base", base)
    repo.add("ft", ft, parents="base")
    repo.commit("ft", finetune(ft, 3))
    repo.add("copy", {k: v.clone() for k, v in base.items()})
    return base


def test_stats_of_an_empty_repository(repo: mg.Repository) -> None:
    s = repo.stats()
    assert (s.logical_bytes, s.stored_bytes, s.chunks, s.models) == (0, 0, 0, [])
    assert repo.fsck().ok
    assert repo.gc().chunks_removed == 0
    assert str(s) and s.to_json()["models"] == []


def test_stats_numbers_are_consistent(repo: mg.Repository) -> None:
    base = a_family(repo)
    s = repo.stats()
    per = {m.name: m for m in s.models}
    assert [m.name for m in s.models] == ["base", "ft", "copy"]
    assert per["base"].versions == 1 and per["ft"].versions == 2 and per["copy"].versions == 1
    assert str(s).splitlines()[-1].split()[:2] == ["total", "4"]  # the versions, summed
    assert per["base"].logical_bytes == logical(base)
    assert per["ft"].logical_bytes == 2 * logical(base)
    assert s.logical_bytes == sum(m.logical_bytes for m in s.models) == 4 * logical(base)
    # what each model introduced adds up to (at most) what the repository stores
    assert sum(m.stored_bytes for m in s.models) <= s.stored_bytes <= s.pack_bytes
    assert s.pack_bytes == pack_bytes(repo)
    # the copy introduces nothing: every byte of it is served by 'base'
    assert per["copy"].stored_bytes == 0
    assert per["copy"].dedup_bytes == per["copy"].logical_bytes
    # the fine-tune is stored smaller than its base, thanks to deltas
    assert 0 < per["ft"].delta_bytes <= per["ft"].logical_bytes
    assert per["ft"].stored_bytes < 2 * per["base"].stored_bytes
    assert s.ratio == pytest.approx(s.logical_bytes / s.stored_bytes)
    assert per["base"].ratio == pytest.approx(logical(base) / per["base"].stored_bytes)
    assert s.chunks > 0
    j = s.to_json()
    assert j["logical_bytes"] == s.logical_bytes and len(j["models"]) == 3
    assert "base" in str(s) and "total" in str(s)


def test_version_stats_add_up_to_the_model_stats(repo: mg.Repository) -> None:
    """Per version: what it introduced, shares and how deep its deltas go; summed per
    model they are ``stats()``'s numbers."""
    from modelgit.storage.maintenance import version_stats

    a_family(repo)
    vs = version_stats(repo.catalog)
    assert [(v.model, v.number) for v in vs] == [("base", 1), ("ft", 1), ("ft", 2), ("copy", 1)]
    per = {m.name: m for m in repo.stats().models}
    for name, m in per.items():
        mine = [v for v in vs if v.model == name]
        assert len(mine) == m.versions
        for field in ("logical_bytes", "stored_bytes", "dedup_bytes", "delta_bytes"):
            assert sum(getattr(v, field) for v in mine) == getattr(m, field), (name, field)
    by = {(v.model, v.number): v for v in vs}
    assert by[("base", 1)].max_depth == 0 and by[("base", 1)].delta_bytes == 0
    assert by[("ft", 1)].max_depth >= 1 and by[("ft", 2)].max_depth >= 1
    assert by[("copy", 1)].stored_bytes == 0 and by[("copy", 1)].max_depth == 0
    assert by[("copy", 1)].chunks == by[("base", 1)].chunks > 0
    assert by[("ft", 2)].to_json()["number"] == 2


def test_remove_then_gc_reclaims_and_keeps_reachable(repo: mg.Repository) -> None:
    base = weights(1)
    ft1 = finetune(base, 2)
    other = weights(9)
    repo.add("base", base)
    repo.add("ft", ft1, parents="base")  # stored as deltas against base's chunks
    ft2 = finetune(ft1, 3)
    repo.commit("ft", ft2)
    repo.add("other", other)
    before = repo.stats()
    other_stored = {m.name: m for m in before.models}["other"].stored_bytes
    assert other_stored > 0

    repo.remove("other")
    assert repo.models() == ["base", "ft"]
    with pytest.raises(mg.UnknownModel):
        repo.load("other")
    assert repo.fsck().garbage_bytes >= other_stored
    report = repo.gc()
    assert report.chunks_removed > 0
    assert report.bytes_freed >= other_stored
    after = repo.stats()
    assert after.stored_bytes == before.stored_bytes - other_stored
    assert after.pack_bytes == pack_bytes(repo) < before.pack_bytes
    f = repo.fsck()
    assert f.ok and f.garbage_bytes == 0, f.problems

    # removing the base keeps the chunks the fine-tune's deltas need
    repo.remove("base", force=True)
    repo.gc()
    assert repo.models() == ["ft"]
    assert_same_state(repo.load("ft@1"), ft1)
    assert_same_state(repo.load("ft@2"), ft2)
    f = repo.fsck()
    assert f.ok and f.garbage_bytes == 0, f.problems
    with mg.open(repo.root) as again:  # and from a fresh handle, no cache
        assert_same_state(again.load("ft@1"), ft1)
        assert_same_state(again.load("ft"), ft2)
    # a removed name can be used again
    repo.add("base", base)
    assert_same_state(repo.load("base"), base)
    assert [v.number for v in repo.versions("base")] == [1]


def test_gc_never_touches_reachable_chunks(repo: mg.Repository) -> None:
    states = {}
    sd = weights(5)
    for i in range(4):
        name = f"m{i}"
        states[name] = sd
        repo.add(name, sd, parents=f"m{i - 1}" if i else None)
        sd = finetune(sd, 10 + i)
    repo.add("doomed", finetune(states["m1"], 99), parents="m1")
    repo.remove("doomed")
    repo.gc()
    assert repo.gc().chunks_removed == 0  # idempotent
    for name, want in states.items():
        assert_same_state(repo.load(name), want)
    assert repo.fsck().ok


def test_removing_a_middle_version_of_a_lineage(repo: mg.Repository) -> None:
    """Remove a parent model in the middle of a provenance chain."""
    a = weights(1)
    b = finetune(a, 2)
    c = finetune(b, 3)
    repo.add("a", a)
    repo.add("b", b, parents="a")
    repo.add("c", c, parents="b")
    repo.remove("b", force=True)
    repo.gc()
    assert_same_state(repo.load("a"), a)
    assert_same_state(repo.load("c"), c)
    assert repo.fsck().ok


def test_gc_reclaims_torn_tails_and_orphan_packs(repo: mg.Repository) -> None:
    repo.add("m", weights(1))
    (pack,) = list((repo.root / "packs").glob("*.mgp"))
    with open(pack, "ab") as f:
        f.write(os.urandom(1000))  # a writer died in the middle of a record
    orphan = repo.root / "packs" / ("pack-" + "ab" * 16 + ".mgp")
    orphan.write_bytes(b"MGITPACK" + bytes(8) + os.urandom(500))
    f = repo.fsck()
    assert f.ok, f.problems
    assert f.garbage_bytes >= 1500
    report = repo.gc()
    assert report.bytes_freed >= 1500
    assert not orphan.exists()
    f = repo.fsck()
    assert f.ok and f.garbage_bytes == 0
    assert_same_state(repo.load("m"), weights(1))


def test_fsck_reports_and_to_json(repo: mg.Repository) -> None:
    repo.add("m", weights(1))
    repo.commit("m", weights(2))
    f = repo.fsck()
    assert f.ok and f.problems == []
    assert f.versions_checked == 2 and f.chunks_checked == repo.stats().chunks
    assert "ok" in str(f)
    assert f.to_json()["ok"] is True
    quick = repo.fsck(full=False)
    assert quick.ok and quick.chunks_checked == 0


def test_fsck_reports_a_missing_pack_once_with_the_versions_it_takes(tmp_path: Path) -> None:
    """A deleted pack is one problem naming the versions it makes unreadable (those coded
    against its chunks too), not a line per chunk; the text lists at most 50 problems."""
    from modelgit.storage.maintenance import SHOWN_PROBLEMS, FsckReport

    g = torch.Generator().manual_seed(0)
    a = {f"l{i}": torch.randn(300, 300, generator=g) for i in range(8)}
    with mg.init(tmp_path / "r") as repo:
        repo.add("a", a)
        first = set((tmp_path / "r" / "packs").iterdir())
    with mg.open(tmp_path / "r") as repo:  # a second pack: b coded against a, and c
        repo.add("b", {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in a.items()},
                 parents="a")  # fmt: skip
        c = {"x": torch.randn(1000, generator=g)}
        repo.add("c", c)
        assert [v.model for v in repo.storage_bases("b")] == ["a"]
        assert len(set((tmp_path / "r" / "packs").iterdir()) - first) == 1
        (pack,) = first
        pack.unlink()
        for full in (False, True):
            f = repo.fsck(full=full)
            assert not f.ok and len(f.problems) == 1, f.problems
            assert (
                pack.name in f.problems[0]
                and "2 version(s) cannot be read (a@1, b@1)" in (f.problems[0])
            )
        assert_same_state(repo.load("c"), c)  # the other pack's version still loads
    many = FsckReport(False, [f"problem {i}" for i in range(SHOWN_PROBLEMS + 7)])
    assert str(many).count("  - problem") == SHOWN_PROBLEMS and "and 7 more" in str(many)


def test_gc_then_write_more(repo: mg.Repository) -> None:
    """The same handle keeps working after gc rewrote the pack it was appending to."""
    repo.add("a", weights(1))
    repo.add("b", weights(2))
    repo.remove("a")
    repo.gc()
    repo.add("c", weights(3))
    repo.commit("b", finetune(weights(2), 4))
    for name, want in (("b@1", weights(2)), ("c", weights(3)), ("b", finetune(weights(2), 4))):
        assert_same_state(repo.load(name), want)
    assert repo.fsck().ok


def test_two_handles_gc_in_one(tmp_path: Path) -> None:
    """gc through one handle while another handle (same process) keeps writing."""
    with mg.init(tmp_path / "r") as r1, mg.open(tmp_path / "r") as r2:
        r1.add("a", weights(1))
        r1.add("junk", weights(2))
        r1.remove("junk")
        r2.gc()
        r1.add("b", weights(3))
        r2.gc()
        assert_same_state(r2.load("a"), weights(1))
        assert_same_state(r2.load("b"), weights(3))
        assert_same_state(r1.load("b"), weights(3))
        assert r2.fsck().ok


def _one_pack_per_write(path: Path, count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` adds, each by a repository object of its own (as the CLI does): one
    pack each."""
    models = []
    for i in range(count):
        sd = {"w": torch.full((64,), float(i)), "i": torch.tensor([i])}
        with mg.open(path) as repo:
            repo.add(f"m{i}", sd)
        models.append(sd)
    return models


def test_gc_merges_small_packs(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    mg.init(path).close()
    models = _one_pack_per_write(path, 30)
    assert len(list((path / "packs").glob("*.mgp"))) == 30
    with mg.open(path) as repo:
        report = repo.gc()
        assert report.packs_rewritten == 30 and report.chunks_removed == 0
        assert len(list((path / "packs").glob("*.mgp"))) == 1
        assert repo.fsck().ok
        for i, sd in enumerate(models):
            assert_same_state(repo.load(f"m{i}"), sd)
        assert repo.gc().packs_rewritten == 0  # one pack left: nothing to merge


OPEN_FILE_LIMIT = """
import resource, sys
import modelgit as mg
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
with mg.open(sys.argv[1]) as repo:
    assert repo.fsck().ok, repo.fsck().problems
    for name in repo.models():
        repo.load(name)
    print("LOADED", len(repo.models()))
    print("GC", repo.gc().packs_rewritten)
    assert repo.fsck().ok
    for name in repo.models():
        repo.load(name)
    print("OK")
"""


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_many_packs_within_a_small_open_file_limit(tmp_path: Path) -> None:
    """300 packs (300 CLI-like writes) under ``ulimit -n 256``: fsck, loads and gc work
    (each used to keep every pack open)."""
    import subprocess
    import sys

    path = tmp_path / "repo"
    mg.init(path).close()
    _one_pack_per_write(path, 300)
    run = subprocess.run(
        [sys.executable, "-c", OPEN_FILE_LIMIT, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "LOADED 300" in run.stdout and "GC 300" in run.stdout and "OK" in run.stdout
