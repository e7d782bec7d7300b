"""A full disk (ENOSPC) during add: a clear "No space left on device", nothing lost, and
the same Repository object adds again once space is freed. The disk is a real 8 MiB
tmpfs mounted in a user+mount namespace (``unshare -rm``), skipped where not allowed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys, torch
    import modelgit as mg
    disk = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    keep = {"w": torch.randn(50_000, generator=g)}
    big = {"w": torch.randn(1_000_000, generator=g)}  # 4 MB
    repo = mg.init(disk + "/repo")
    repo.add("keep", keep)
    with open(disk + "/filler", "wb") as f:  # leave about 2.5 MB free
        f.write(b"\\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 2_500_000))
    try:
        repo.add("big", big)
        print("FIRST stored")
    except OSError as exc:
        print("FIRST", exc.errno, exc.strerror)
    torch.save(big, disk + "/../big.pt")
    cli = subprocess.run([sys.executable, "-m", "modelgit", "--repo", disk + "/repo", "add",
                          "big", disk + "/../big.pt"], capture_output=True, text=True)
    print("CLI", cli.returncode, cli.stderr.strip())
    print("INTACT", repo.models(), repo.fsck().ok, torch.equal(repo.load("keep")["w"], keep["w"]))
    os.unlink(disk + "/filler")
    repo.add("big", big)  # the same object, space freed
    print("SECOND", torch.equal(repo.load("big")["w"], big["w"]), repo.fsck().ok)
    print("GC", repo.gc().bytes_freed > 0, repo.fsck().ok)
    """
)


def test_disk_full_during_add(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f'mount -t tmpfs -o size=8m tmpfs {disk} && exec {sys.executable} -c "$0" {disk}'
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if "mount" in run.stderr and run.returncode != 0 and "FIRST" not in run.stdout:
        pytest.skip(f"no tmpfs mounts here: {run.stderr.strip()[-200:]}")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    assert lines["FIRST"] == "28 No space left on device"
    code, message = lines["CLI"].split(" ", 1)
    assert code == "1" and "No space left on device" in message and "internal" not in message
    assert lines["INTACT"] == "['keep'] True True"
    assert lines["SECOND"] == "True True"
    assert lines["GC"] == "True True"
