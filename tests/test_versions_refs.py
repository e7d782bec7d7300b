"""References (versions.refs): names, name@N, tags, and version ids (the full id ``log``
prints, or a unique prefix of at least 6 hex digits), in Python and on the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import torch

import modelgit as mg
from modelgit.cli import main as cli_main


@pytest.fixture
def repo(tmp_path: Path) -> mg.Repository:
    r = mg.init(tmp_path / "repo")
    r.add("base", {"w": torch.arange(4.0)})
    r.commit("base", {"w": torch.arange(4.0) + 1})
    return r


def test_version_id_is_a_reference(repo: mg.Repository) -> None:
    v1, v2 = repo.versions("base")
    assert len(v1.id) == 16
    assert torch.equal(repo.load(v1.id)["w"], torch.arange(4.0))
    assert repo.version(v2.id[:6]).ref == "base@2"
    assert repo.version(v1.id[:10]) == v1
    with pytest.raises(mg.UnknownModel):
        repo.load("abcdef" if not v1.id.startswith("abcdef") else "fedcba")
    with pytest.raises(mg.UnknownModel):
        repo.load(f"{v1.id}@1")  # an id names one version already: it takes no @N


def test_removed_versions_are_named_as_such(repo: mg.Repository) -> None:
    """A number the model lacks lists the numbers it has; a whole id that names nothing
    is a version removed (or never here), not an unknown model name."""
    repo.add("other", {"w": torch.zeros(2)})
    gone = repo.versions("other")[0].id
    repo.remove("other")
    with pytest.raises(mg.UnknownVersion, match=r"no version 7 \(its versions: @1, @2\)"):
        repo.version("base@7")
    with pytest.raises(mg.UnknownVersion, match=f"no version with id {gone}.*removed"):
        repo.version(gone)


def test_ambiguous_prefix_is_refused(repo: mg.Repository) -> None:
    v1, v2 = repo.versions("base")
    db = sqlite3.connect(repo.root / "catalog.db")
    db.execute("UPDATE versions SET uid = ? WHERE uid = ?", (v1.id[:7] + "f" * 9, v2.id))
    db.commit()
    db.close()
    with pytest.raises(mg.InvalidName, match="several version ids"):
        repo.version(v1.id[:6])


def test_a_model_named_like_an_id_comes_first(repo: mg.Repository) -> None:
    prefix = repo.versions("base")[0].id[:6]
    repo.add(prefix, {"w": torch.zeros(2)})
    assert repo.version(prefix).ref == f"{prefix}@1"


def test_cli_accepts_version_ids(
    repo: mg.Repository, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = repo.versions("base")[0]
    capsys.readouterr()
    assert cli_main(["--repo", str(repo.root), "show", v1.id]) == 0
    assert "base@1" in capsys.readouterr().out
    out = tmp_path / "x.safetensors"
    assert cli_main(["--repo", str(repo.root), "export", v1.id[:8], str(out)]) == 0
    assert out.exists()
