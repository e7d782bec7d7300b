"""repo.export: single files, sharded folders with an index, stale files, bad requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import modelgit as mg
from conftest import assert_same_state, damage_a_pack
from modelgit.errors import UnsupportedInput
from modelgit.versions.export import plan_shards


def _model() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    sd = {f"layer{i}.weight": torch.randn(64, 64, generator=g) for i in range(6)}  # 16 KiB each
    sd["big"] = torch.randn(100, 100, generator=g)  # 40 KB: larger than a shard below
    sd["half"] = torch.randn(32, 32, generator=g).to(torch.bfloat16)
    sd["scalar"] = torch.tensor(7, dtype=torch.int64)
    sd["empty"] = torch.empty(0, 3)
    return sd


def _read_folder(folder: Path) -> dict[str, torch.Tensor]:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(set(index["weight_map"].values())):
        part = load_file(str(folder / shard))
        for k in part:
            assert index["weight_map"][k] == shard
        out.update(part)
    return out


def test_sharded_export_with_index(repo: mg.Repository, tmp_path: Path) -> None:
    sd = _model()
    repo.add("m", sd)
    out = tmp_path / "out"
    repo.export("m", out, max_shard_size="33KiB")
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert not (out / "model.safetensors").exists()
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in sd.values())
    assert set(index["weight_map"]) == set(sd)
    got = _read_folder(out)
    assert_same_state({k: got[k] for k in sd}, sd)
    for shard in shards:  # no shard exceeds the limit unless it holds one big tensor
        part = load_file(str(out / shard))
        size = sum(t.numel() * t.element_size() for t in part.values())
        assert size <= 33 * 1024 or len(part) == 1
    # the sharded folder is accepted as input again and dedups completely
    before = repo.stats().pack_bytes
    repo.add("again", out)
    assert repo.stats().pack_bytes == before
    assert_same_state(repo.load("again"), repo.load("m"))


def test_reexport_replaces_stale_weights(repo: mg.Repository, tmp_path: Path) -> None:
    sd = _model()
    repo.add("m", sd)
    out = tmp_path / "out"
    repo.export("m", out, max_shard_size=20_000)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(mg.TargetExists, match="not empty; pass --force"):
        repo.export("m", out)
    repo.export("m", out, force=True)  # fits in one file now: old shards and index go
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "notes.txt"]
    assert_same_state(load_file(str(out / "model.safetensors")), sd)
    repo.export("m", out, max_shard_size=20_000, force=True)  # and back: the single file goes
    assert not (out / "model.safetensors").exists()
    assert (out / "notes.txt").read_text() == "mine"
    got = _read_folder(out)
    assert_same_state({k: got[k] for k in sd}, sd)


def test_plan_shards_order_and_limits() -> None:
    class R:
        def __init__(self, n: int) -> None:
            self.nbytes = n

    rows = [R(n) for n in (10, 10, 25, 5, 5, 5, 0)]
    plan = plan_shards(rows, 20)  # type: ignore[arg-type]
    assert [[r.nbytes for r in s] for s in plan] == [[10, 10], [25], [5, 5, 5, 0]]
    assert [r for s in plan for r in s] == rows


def test_bad_shard_requests(repo: mg.Repository, tmp_path: Path) -> None:
    repo.add("m", _model())
    with pytest.raises(UnsupportedInput, match="folder"):
        repo.export("m", tmp_path / "x.safetensors", max_shard_size="1MB")
    with pytest.raises(mg.InvalidArgument, match="not a size"):
        repo.export("m", tmp_path / "d", max_shard_size="lots")
    with pytest.raises(mg.InvalidArgument, match="positive"):
        repo.export("m", tmp_path / "d", max_shard_size=0)
    assert not list(tmp_path.glob("**/*.tmp"))


def test_export_of_a_corrupt_chunk_leaves_no_file(repo: mg.Repository, tmp_path: Path) -> None:
    repo.add("m", {"w": torch.randn(512, 512)})
    damage_a_pack(repo, 0xFF)
    with pytest.raises(mg.errors.CorruptObject):
        repo.export("m", tmp_path / "m.safetensors")
    assert not list(tmp_path.glob("m.safetensors*"))


def test_export_refuses_to_overwrite_without_force(repo: mg.Repository, tmp_path: Path) -> None:
    repo.add("m", {"w": torch.ones(3)})
    repo.commit("m", {"w": torch.zeros(3)})
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"precious")
    with pytest.raises(mg.TargetExists, match="exists; pass --force"):
        repo.export("m@1", target)
    with pytest.raises(mg.TargetExists):
        repo.export("m@1", target, link=True)
    assert target.read_bytes() == b"precious"
    repo.export("m@1", target, force=True)
    assert torch.equal(load_file(str(target))["w"], torch.ones(3))
    with pytest.raises(mg.TargetExists):
        repo.export("m@2", target)
    assert torch.equal(load_file(str(target))["w"], torch.ones(3))
    empty = tmp_path / "empty"
    empty.mkdir()
    repo.export("m", empty)  # an empty folder is fine
    assert repo.fsck().ok


def test_export_refuses_pickle_targets(repo: mg.Repository, tmp_path: Path) -> None:
    repo.add("m", {"w": torch.ones(3)})
    for name in ("m.pt", "m.bin", "m.pth", "M.BIN"):
        with pytest.raises(UnsupportedInput, match=r"not \.(pt|bin|pth|BIN).*\.safetensors"):
            repo.export("m", tmp_path / name, force=True)
        assert not (tmp_path / name).exists()


def test_reexport_removes_stale_side_files(repo: mg.Repository, tmp_path: Path) -> None:
    model = tmp_path / "hf"
    (model / "tok").mkdir(parents=True)
    save_file({"w": torch.ones(4)}, str(model / "model.safetensors"))
    (model / "config.json").write_text('{"a": 1}')
    (model / "tok" / "vocab.txt").write_text("a b")
    (model / "generation_config.json").write_text("{}")
    repo.add("m", model)
    for extra in ("generation_config.json", "tok/vocab.txt"):
        (model / extra).unlink()
    (model / "tok").rmdir()
    (model / "config.json").write_text('{"a": 2}')
    repo.commit("m", model)
    out = tmp_path / "out"
    repo.export("m@1", out)
    assert (out / "tok" / "vocab.txt").exists() and (out / "generation_config.json").exists()
    (out / "README.md").write_text("my notes")  # not an export's: never removed
    repo.export("m@2", out, force=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        ".modelgit-export.json", "README.md", "config.json", "model.safetensors"
    ]  # fmt: skip
    assert (out / "config.json").read_text() == '{"a": 2}'
    assert (out / "README.md").read_text() == "my notes"
    # the folder adds back as the version it holds (the hidden manifest is no side file)
    repo.add("again", out)
    assert set(repo.files("again")) == {"config.json", "README.md"}
    assert repo.fsck().ok


def test_cli_export_force_and_pickle(repo: mg.Repository, tmp_path: Path, capsys) -> None:
    from modelgit.cli import main

    repo.add("m", {"w": torch.ones(3)})
    where = ["--repo", str(repo.root)]
    target = str(tmp_path / "m.safetensors")
    assert main(["export", "m", target, *where]) == 0
    assert main(["export", "m", target, *where]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["export", "m", target, "--force", *where]) == 0
    assert main(["export", "m", str(tmp_path / "m.pt"), *where]) == 1
    err = capsys.readouterr().err
    assert "modelgit: error:" in err and ".safetensors" in err and "folder" in err
