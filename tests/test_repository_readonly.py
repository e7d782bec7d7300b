"""A repository this user can read but not write (a read-only mount): reads work, writes
say so, and nothing suggests restoring a backup. The mount is real: a read-only bind
mount in a user+mount namespace (``unshare -rm``), skipped where the kernel forbids it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import modelgit as mg


def _can_mount_read_only(tmp: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp / "probe"
    probe.mkdir()
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount --bind -o ro {probe} {probe} && touch {probe}/x"],
        capture_output=True,
        text=True,
    )
    return "Read-only file system" in run.stderr


READER = textwrap.dedent(
    """
    import json, sys
    import modelgit as mg
    out = {}
    with mg.open(sys.argv[1]) as repo:
        out["models"] = repo.models()
        out["w"] = repo.load("m")["w"].tolist()
        out["files"] = sorted(repo.files("m"))
        out["log"] = [v.ref for v in repo.versions("m")]
        out["fsck"] = repo.fsck().ok
        repo.export("m", sys.argv[2])
        for what, call in [("add", lambda: repo.add("x", {"w": repo.load("m")["w"]})),
                           ("tag", lambda: repo.tag("m", "prod")),
                           ("gc", repo.gc)]:
            try:
                call()
                out[what] = "written"
            except mg.ReadOnlyRepository as exc:
                out[what] = "refused: " + str(exc)
    print(json.dumps(out))
    """
)


def test_read_only_repository(tmp_path: Path) -> None:
    if not _can_mount_read_only(tmp_path):
        pytest.skip("no read-only bind mounts here (unshare -rm refused)")
    path = tmp_path / "repo"
    folder = tmp_path / "hf"
    folder.mkdir()
    from safetensors.torch import save_file

    save_file({"w": torch.arange(5.0)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    with mg.init(path) as repo:
        repo.add("m", folder)
    out = tmp_path / "out"
    out.mkdir()
    script = f'mount --bind -o ro {path} {path} && exec {sys.executable} -c "$0" {path} {out}/m'
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, READER],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["models"] == ["m"] and got["w"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert got["files"] == ["config.json"] and got["log"] == ["m@1"] and got["fsck"] is True
    for what in ("add", "tag", "gc"):
        assert got[what].startswith("refused: ") and "read-only" in got[what], got
        assert "backup" not in got[what]
    assert (out / "m" / "model.safetensors").exists()

    cli = f"mount --bind -o ro {path} {path} && {sys.executable} -m modelgit --repo {path} $0"
    for args, code in [("ls", 0), ("fsck", 0), ("show m", 0), ("tag prod m", 1), ("gc", 1)]:
        r = subprocess.run(["unshare", "-rm", "sh", "-c", cli.replace("$0", args)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == code, (args, r.stderr)
        assert "backup" not in r.stderr and "internal error" not in r.stderr
        if code:
            assert "read-only" in r.stderr


def test_damaged_catalog_still_says_restore(tmp_path: Path) -> None:
    """The advice to restore a backup stays where SQLite's own check fails."""
    path = tmp_path / "repo"
    with mg.init(path) as repo:
        repo.add("m", {"w": torch.ones(3)})
    db = path / "catalog.db"
    raw = bytearray(db.read_bytes())
    raw[:16] = b"not a database!!"
    db.write_bytes(bytes(raw))
    with pytest.raises(mg.CorruptObject, match="restore catalog.db from a backup"):
        mg.open(path)


def test_open_read_only(tmp_path: Path) -> None:
    """modelgit.open(read_only=True) on a folder this user could write: every read works
    (workflow reads too, in a repository that never had a test registered), every write
    is refused with ReadOnlyRepository, and the catalog and packs stay as they were;
    versions a writer commits meanwhile are seen."""
    path = tmp_path / "repo"
    with mg.init(path) as repo:
        repo.add("m", {"w": torch.arange(5.0)}, metadata={"k": "v"})
    packs = {p.name: p.read_bytes() for p in (path / "packs").iterdir()}
    with mg.open(path, read_only=True) as ro:
        assert ro.models() == ["m"]
        assert ro.load("m")["w"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert ro.tests() == [] and len(ro.test_results()) == 0 and ro.creator("m") is None
        assert len(ro.test_results(model="m")) == 0
        with pytest.raises(mg.UnknownModel):
            ro.test_results(model="nope")
        assert ro.fsck().ok and ro.stats().models[0].name == "m"
        for write in (
            lambda: ro.add("x", {"w": torch.zeros(3)}),
            lambda: ro.commit("m", {"w": torch.zeros(5)}),
            lambda: ro.tag("m", "prod"),
            lambda: ro.register_test("t", "wf_funcs:mean_w"),
            lambda: ro.gc(),
        ):
            with pytest.raises(mg.ReadOnlyRepository, match="opened read-only"):
                write()
        with mg.open(path) as rw:
            rw.commit("m", {"w": torch.ones(5)}, message="by a writer")
        assert [v.number for v in ro.versions("m")] == [1, 2]
        assert ro.load("m")["w"].tolist() == [1.0] * 5
    with mg.open(path) as repo:
        assert repo.tags() == {} and repo.models() == ["m"]
    for name, data in packs.items():
        assert (path / "packs" / name).read_bytes() == data
