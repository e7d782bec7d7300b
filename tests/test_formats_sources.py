"""What ``add`` reads of what it is given (formats.sources): a model folder's symlinks
and special files, and tensors that hold no data."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import modelgit as mg

SECRET = b"AWS_SECRET_ACCESS_KEY=do-not-store-me\n"


def _folder(root: Path, name: str = "model") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    save_file({"w": torch.arange(12.0).reshape(3, 4)}, str(folder / "model.safetensors"))
    (folder / "tokenizer.json").write_text('{"t": 1}')
    return folder


@pytest.fixture
def repo(tmp_path: Path) -> mg.Repository:
    return mg.init(tmp_path / "repo")


def test_symlink_leaving_the_folder_is_refused(repo: mg.Repository, tmp_path: Path) -> None:
    secret = tmp_path / "secret.env"
    secret.write_bytes(SECRET)
    folder = _folder(tmp_path)
    (folder / "config.json").symlink_to(secret)
    with pytest.raises(mg.UnsupportedInput, match="symlink .*outside the model folder"):
        repo.add("m", folder)
    assert repo.models() == []
    with pytest.raises(mg.UnsupportedInput, match="outside the model folder"):
        repo.import_models(folder)
    assert repo.models() == []
    repo.add("m", folder, follow_symlinks=True)  # asked for: read
    assert repo.files("m")["config.json"] == SECRET
    with pytest.raises(mg.UnsupportedInput, match="outside the model folder"):
        repo.commit("m", folder)
    with pytest.warns(mg.ModelgitWarning, match="changes nothing"):
        repo.commit("m", folder, follow_symlinks=True)


def test_special_files_are_never_read(repo: mg.Repository, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "config.json").symlink_to("/proc/self/environ")
    for follow in (False, True):
        with pytest.raises(mg.UnsupportedInput, match="special file|outside the model folder"):
            repo.add("m", folder, follow_symlinks=follow)
    (folder / "config.json").unlink()
    os.mkfifo(folder / "pipe")  # reading it would block forever
    with pytest.raises(mg.UnsupportedInput, match="not a regular file"):
        repo.add("m", folder, follow_symlinks=True)
    (folder / "pipe").unlink()
    (folder / "null").symlink_to("/dev/null")
    with pytest.raises(mg.UnsupportedInput, match="special file"):
        repo.add("m", folder, follow_symlinks=True)
    assert repo.models() == [] and repo.fsck().ok


def test_weights_behind_an_outside_symlink_are_refused(repo: mg.Repository, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.safetensors"
    save_file({"w": torch.ones(3)}, str(elsewhere))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(elsewhere)
    with pytest.raises(mg.UnsupportedInput, match="outside the model folder"):
        repo.add("m", folder)
    repo.add("m", folder, follow_symlinks=True)
    assert torch.equal(repo.load("m")["w"], torch.ones(3))


def test_symlinked_folder_leaving_is_refused(repo: mg.Repository, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_bytes(SECRET)
    folder = _folder(tmp_path)
    (folder / "extra").symlink_to(outside, target_is_directory=True)
    with pytest.raises(mg.UnsupportedInput, match="outside the model folder"):
        repo.add("m", folder)
    repo.add("m", folder, follow_symlinks=True)
    assert repo.files("m")["extra/id_rsa"] == SECRET


def test_symlinks_inside_the_folder_are_fine(repo: mg.Repository, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "sub").mkdir()
    (folder / "sub" / "real.json").write_text('{"a": 1}')
    (folder / "config.json").symlink_to("sub/real.json")
    (folder / "same").symlink_to(folder / "sub", target_is_directory=True)
    repo.add("m", folder)
    files = repo.files("m")
    assert files["config.json"] == b'{"a": 1}' and "same/real.json" not in files


def test_hub_cache_snapshot_links_to_its_blobs(repo: mg.Repository, tmp_path: Path) -> None:
    """A Hugging Face hub cache entry: snapshots/<rev>/* are symlinks into ../../blobs."""
    entry = tmp_path / "hub" / "models--org--tiny"
    blobs = entry / "blobs"
    blobs.mkdir(parents=True)
    save_file({"w": torch.arange(6.0)}, str(blobs / "aa11"))
    (blobs / "bb22").write_text('{"model_type": "bert"}')
    snap = entry / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to("../../blobs/aa11")
    (snap / "config.json").symlink_to("../../blobs/bb22")
    repo.add("tiny", snap)
    assert repo.files("tiny")["config.json"] == b'{"model_type": "bert"}'
    assert torch.equal(repo.load("tiny")["w"], torch.arange(6.0))


def test_cli_follow_symlinks(tmp_path: Path) -> None:
    secret = tmp_path / "secret.env"
    secret.write_bytes(SECRET)
    folder = _folder(tmp_path)
    (folder / "config.json").symlink_to(secret)
    path = tmp_path / "repo"
    mg.init(path).close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "modelgit", "--repo", str(path), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    refused = cli("add", "m", str(folder))
    assert refused.returncode != 0 and "outside the model folder" in refused.stderr
    assert "internal error" not in refused.stderr
    assert cli("add", "m", str(folder), "--follow-symlinks").returncode == 0
    with mg.open(path) as repo:
        assert repo.files("m")["config.json"] == SECRET


@pytest.mark.parametrize(
    "tensor, why",
    [
        (lambda: torch.empty(3, device="meta"), "meta device"),
        (lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]), "nested"),
        (lambda: torch.ones(4).to_sparse(), "layout"),
    ],
    ids=["meta", "nested", "sparse"],
)
def test_tensors_without_plain_data_are_refused(
    repo: mg.Repository, tensor: object, why: str
) -> None:
    with warnings.catch_warnings():  # nested tensors warn that they are a prototype
        warnings.simplefilter("ignore")
        t = tensor()  # type: ignore[operator]
    with pytest.raises(mg.UnsupportedInput, match=why):
        repo.add("m", {"ok": torch.ones(2), "bad": t})
    assert repo.models() == []


def test_a_meta_module_is_refused(repo: mg.Repository) -> None:
    with torch.device("meta"):
        module = torch.nn.Linear(4, 2)
    with pytest.raises(mg.UnsupportedInput, match="meta device"):
        repo.add("m", module)
