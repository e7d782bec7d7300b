"""Row checks (catalog.checks): damage to what the catalog says about a version, a tag or
an edge is a CorruptObject where the row is used and an fsck problem, never data; reads
see one snapshot (a remove or a commit landing meanwhile is no damage); fsck reports
damaged values instead of raising."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import torch

import modelgit as mg
from modelgit.catalog import checks
from modelgit.cli import main as cli_main


def _weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "layers.0.weight": torch.randn(64, 64, generator=g),
        "layers.0.bias": torch.randn(64, generator=g),
        "head.weight": torch.randn(4, 64, generator=g),
    }


@pytest.fixture
def repo(tmp_path: Path) -> mg.Repository:
    folder = tmp_path / "hf"
    folder.mkdir()
    from safetensors.torch import save_file

    save_file(_weights(0), str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"hidden": 64, "model_max_length": 512}')
    r = mg.init(tmp_path / "repo")
    r.add("base", folder)
    r.add("ft", _weights(1), parents="base")
    r.commit("ft", _weights(2))
    r.tag("ft@1", "prod")
    return r


def _sql(repo: mg.Repository, sql: str, args: tuple = ()) -> None:
    """Damage the catalog behind modelgit's back (as a flipped byte would)."""
    db = sqlite3.connect(repo.root / "catalog.db")
    db.execute(sql, args)
    db.commit()
    db.close()


DAMAGE = {
    "side file byte": (
        "UPDATE files SET data = CAST(REPLACE(CAST(data AS TEXT), '512', '612') AS BLOB)",
        "base",
    ),  # fmt: skip
    "tensor name": (
        "UPDATE tensors SET name = 'layers.0.weigh' WHERE name = 'layers.0.weight' "
        "AND version = (SELECT id FROM versions WHERE model = 'base')",
        "base",
    ),  # fmt: skip
    "tensor row lost": (
        "DELETE FROM tensors WHERE name = 'head.weight' AND version = "
        "(SELECT id FROM versions WHERE model = 'ft' AND number = 2)",
        "ft",
    ),  # fmt: skip
    "tensor shape": ("UPDATE tensors SET shape = '[64, 64]' WHERE name = 'layers.0.bias'", "base"),
    "version number": ("UPDATE versions SET number = 3 WHERE model = 'ft' AND number = 2", "ft@3"),
    "version message": ("UPDATE versions SET message = 'x' WHERE model = 'base'", "base"),
    "tag target": (
        "UPDATE tags SET version = (SELECT id FROM versions WHERE model = 'ft' "
        "AND number = 2) WHERE name = 'prod'",
        "prod",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_rows_are_corrupt_objects(repo: mg.Repository, case: str) -> None:
    sql, ref = DAMAGE[case]
    _sql(repo, sql)
    with pytest.raises(mg.CorruptObject):
        repo.load(ref)
    with pytest.raises(mg.CorruptObject):
        repo.export(ref, repo.root.parent / "out")
    assert not (repo.root.parent / "out").exists()
    with pytest.raises(mg.CorruptObject):
        repo.files(ref)
    report = repo.fsck(full=False)
    assert not report.ok and any("digest" in p for p in report.problems), report.problems


def test_damaged_edge_shows_in_fsck(repo: mg.Repository) -> None:
    _sql(repo, "UPDATE edges SET relation = 'distill' WHERE child = 'ft'")
    report = repo.fsck(full=False)
    assert not report.ok and any("edge base -> ft" in p for p in report.problems)


def test_missing_digest_is_damage(repo: mg.Repository) -> None:
    _sql(repo, "DELETE FROM row_checks WHERE kind = 'version'")
    with pytest.raises(mg.CorruptObject, match="integrity record is missing"):
        repo.load("base")
    _sql(repo, "DELETE FROM meta WHERE key = 'row_checks'")  # a damaged mark: still required
    with pytest.raises(mg.CorruptObject, match="integrity record is missing"):
        repo.load("ft")


def test_digests_follow_every_change(repo: mg.Repository, tmp_path: Path) -> None:
    """Every operation that changes checked rows keeps the digests right."""
    repo.rename("ft", "tuned")
    repo.tag("tuned@2", "next")
    repo.untag("prod")
    repo.add("other", _weights(3))
    repo.add_edge("other", "tuned", "merge")
    repo.remove_edge("other", "tuned")
    repo.add("guess", _weights(4))
    repo.remove("other")
    clone = mg.init(tmp_path / "clone")
    repo.push(clone)
    clone.commit("tuned", _weights(5))
    repo.pull(clone)
    for r in (repo, clone):
        report = r.fsck()
        assert report.ok, report.problems
        for name in r.models():
            for v in r.versions(name):
                r.load(v.ref)
    assert torch.equal(repo.load("next")["head.weight"], _weights(2)["head.weight"])


def test_older_repository_without_digests(tmp_path: Path) -> None:
    """A format-3 repository has no digests: it reads as before, and its first write
    gives every row one (format 4 and later)."""
    r = mg.init(tmp_path / "r")
    r.add("a", _weights(0))
    r.tag("a", "t")
    r.close()
    db = sqlite3.connect(tmp_path / "r" / "catalog.db")
    db.execute("DROP TABLE row_checks")
    db.execute("DELETE FROM meta WHERE key = 'row_checks'")
    db.commit()
    db.close()
    (tmp_path / "r" / "MODELGIT").write_text("modelgit repository\nformat 3\n")
    with mg.open(tmp_path / "r") as repo:
        assert torch.equal(repo.load("t")["head.weight"], _weights(0)["head.weight"])
        assert repo.fsck().ok
        repo.add("b", _weights(1))
        assert repo.format >= 4 and checks.is_required(repo.catalog)
        assert repo.fsck().ok
    _sql_path = tmp_path / "r" / "catalog.db"
    db = sqlite3.connect(_sql_path)
    db.execute("UPDATE tensors SET name = 'x' WHERE name = 'head.weight'")
    db.commit()
    db.close()
    with mg.open(tmp_path / "r") as repo:
        with pytest.raises(mg.CorruptObject):
            repo.load("a")


def test_remove_landing_during_a_load_gives_the_whole_model(
    repo: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remove committed between a load's version lookup and its tensor reads: the load
    reads its snapshot and returns the whole model (was: {})."""
    other = mg.open(repo.root)
    verify = checks.verify_version
    landed: list[bool] = []

    def remove_first(catalog: object, vid: int, what: str) -> None:
        if not landed:
            other.remove("ft")
            landed.append(True)
        verify(catalog, vid, what)

    monkeypatch.setattr(checks, "verify_version", remove_first)
    sd = repo.load("ft")
    assert landed and set(sd) == set(_weights(2))
    assert torch.equal(sd["layers.0.weight"], _weights(2)["layers.0.weight"])
    with pytest.raises(mg.UnknownModel):
        repo.load("ft")
    other.close()


def test_commit_landing_during_fsck_is_no_problem(
    repo: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = mg.open(repo.root)
    problems = checks.problems
    landed: list[bool] = []

    def commit_first(catalog: object) -> list[str]:
        if not landed:
            other.commit("ft", _weights(7))
            other.add("late", _weights(8), parents="ft")
            landed.append(True)
        return problems(catalog)

    monkeypatch.setattr(checks, "problems", commit_first)
    report = repo.fsck()
    assert landed and report.ok, report.problems
    assert report.versions_checked == 3  # the snapshot's: base@1, ft@1, ft@2, and no more
    monkeypatch.undo()
    assert repo.fsck().ok and repo.fsck().versions_checked == 5
    other.close()


FSCK_DAMAGE = {
    "chunk_bytes = 0": "UPDATE tensors SET chunk_bytes = 0",
    "chunk_bytes off by one": "UPDATE tensors SET chunk_bytes = chunk_bytes + 1",
    "huge raw_length": "UPDATE chunks SET raw_length = 9223372036854775807",
    "huge record length": "UPDATE chunks SET length = 4611686018427387904",
    "negative offset": "UPDATE chunks SET offset = -5",
    "shape not JSON": "UPDATE tensors SET shape = '[64,'",
    "metadata not JSON": "UPDATE versions SET metadata = '{bad'",
    "base list not ids": "UPDATE chunks SET base = X'0102'",
    "text where a blob was": "UPDATE tensors SET chunks = 'abc'",
}


@pytest.mark.parametrize("case", sorted(FSCK_DAMAGE))
def test_fsck_reports_damaged_values(repo: mg.Repository, case: str) -> None:
    _sql(repo, FSCK_DAMAGE[case])
    report = repo.fsck()
    assert not report.ok and report.problems
    for ref in ("base", "ft@1", "ft@2", "prod"):
        try:
            repo.load(ref)
        except mg.ModelgitError:
            pass  # a clear error; what must never happen is another exception or wrong data
    assert cli_main(["--repo", str(repo.root), "fsck"]) == 1
