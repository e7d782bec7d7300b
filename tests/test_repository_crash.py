"""Crash safety with real processes: a writer is killed with SIGKILL at random points.

A "zygote" process imports torch and modelgit once, then forks one writer per round
(so a round costs milliseconds, not an interpreter start). Each writer adds and commits
models (and now and then adds, removes and garbage-collects a scratch model) in an
endless loop until the test kills it after a random delay. After every kill the
repository must open, pass a full fsck, and hold every version committed so far,
bit-exact against a deterministic regeneration from (model name, version number).

Reproduce a failure with MODELGIT_CRASH_SEED=<seed printed in the failure>.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import traceback
import zlib
from pathlib import Path

import torch

import modelgit as mg

ROUNDS = 24  # kills at least; more (up to MAX_ROUNDS) until MIN_VERSIONS were committed
MAX_ROUNDS = 60
MIN_VERSIONS = 20
MODELS = [f"m{i}" for i in range(6)]
SCRATCH = "scratch"


def model_state(name: str, number: int) -> dict[str, torch.Tensor]:
    """The weights of version ``number`` of ``name``: a deterministic function of both.

    Models of a family (same index parity) share a base, so a child stored with a parent
    goes through the delta path; every model shares one tensor, so dedup is exercised.
    """
    family = zlib.crc32(name.encode()) % 2 if name != SCRATCH else 7
    g = torch.Generator().manual_seed(1000 + family)
    base = torch.randn(50_000, generator=g) * 0.02
    g = torch.Generator().manual_seed(zlib.crc32(f"{name}@{number}".encode()))
    idx = torch.randint(0, base.numel(), (3000,), generator=g)
    w = base.clone()
    w[idx] += 1e-3 * torch.randn(3000, generator=g)
    shared = torch.Generator().manual_seed(5)
    return {
        "w": w,
        "w_bf16": w[:20_000].to(torch.bfloat16),
        "shared": torch.randn(10_000, generator=shared),
        "bytes": torch.randint(0, 256, (4096,), generator=g, dtype=torch.uint8),
        "step": torch.tensor(number, dtype=torch.int64),
        "tied": w,  # shares storage with "w"
    }


def writer_loop(root: Path, seed: int) -> None:
    """Write forever (until killed)."""
    rng = random.Random(seed)
    repo = mg.open(root)
    repo.chunk_elems = 4096  # many chunks: many points to be killed at
    while True:
        if rng.random() < 0.1:
            if SCRATCH in repo:
                repo.remove(SCRATCH)
            repo.add(SCRATCH, model_state(SCRATCH, 1))
            repo.remove(SCRATCH)
            repo.gc()
            continue
        name = rng.choice(MODELS)
        if name in repo:
            repo.commit(name, model_state(name, len(repo.versions(name)) + 1))
        else:
            existing = [m for m in MODELS if m in repo]
            parent = rng.choice(existing) if existing and rng.random() < 0.7 else None
            repo.add(name, model_state(name, 1), parents=parent)


def zygote(root: Path) -> None:
    """Read seeds on stdin; fork a writer for each, print its pid, reap it, print status."""
    for line in sys.stdin:
        seed = int(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                writer_loop(root, seed)
            except BaseException:
                (root.parent / f"writer-{seed}.err").write_text(traceback.format_exc())
            finally:
                os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(status, flush=True)


def check_repository(root: Path, seen: dict[str, set[int]]) -> dict[str, set[int]]:
    """Full fsck and bit-exact loads; every version seen before must still be there."""
    with mg.open(root) as repo:
        report = repo.fsck()
        assert report.ok, report.problems
        now: dict[str, set[int]] = {}
        for name in repo.models():
            numbers = [v.number for v in repo.versions(name)]
            assert numbers == list(range(1, len(numbers) + 1)), (name, numbers)
            now[name] = set(numbers)
        for name, numbers in seen.items():
            if name != SCRATCH:
                assert numbers <= now.get(name, set()), f"{name}: lost versions"
        for name, numbers in now.items():
            for n in sorted(numbers - seen.get(name, set())):  # new since the last check
                want = model_state(name, n)
                got = repo.load(name, version=n)
                assert list(got) == list(want)
                for k in want:
                    assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), (
                        f"{name}@{n} {k}"
                    )
                got_w = got["w"].untyped_storage().data_ptr()
                assert got_w == got["tied"].untyped_storage().data_ptr()
        return now


def _counts(seen: dict[str, set[int]]) -> dict[str, int]:
    return {k: len(v) for k, v in sorted(seen.items())}


def _error_text(root: Path, seed: int) -> str:
    err = root.parent / f"writer-{seed}.err"
    return err.read_text() if err.exists() else ""


def test_kill_minus_nine_writer_at_random_points(tmp_path: Path) -> None:
    seed = int(os.environ.get("MODELGIT_CRASH_SEED", "20240607"))
    rng = random.Random(seed)
    root = tmp_path / "repo"
    mg.init(root).close()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--zygote", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen: dict[str, set[int]] = {}
    kills = 0
    start = time.monotonic()
    try:
        for round_ in range(MAX_ROUNDS):
            if round_ >= ROUNDS and sum(len(v) for v in seen.values()) >= MIN_VERSIONS:
                break
            proc.stdin.write(f"{seed * 1000 + round_}\n")
            proc.stdin.flush()
            pid = int(proc.stdout.readline())
            time.sleep(rng.uniform(0.02, 0.5))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = int(proc.stdout.readline())
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                f"seed {seed} round {round_}: the writer failed on its own (status {status}); "
                + _error_text(root, seed * 1000 + round_)
            )
            kills += 1
            seen = check_repository(root, seen)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    print(
        f"seed {seed}: {kills} kills, versions per model: {_counts(seen)}, "
        f"{time.monotonic() - start:.1f} s"
    )
    assert kills >= 20
    total = sum(len(v) for k, v in seen.items() if k != SCRATCH)
    assert total >= MIN_VERSIONS, f"only {total} versions were committed: raise the delays"
    # the garbage of the killed writers is reclaimable, and gc keeps every version
    with mg.open(root) as repo:
        repo.gc()
        report = repo.fsck()
        assert report.ok and report.garbage_bytes == 0, report.problems
    check_repository(root, {})  # reload every version after gc
    assert time.monotonic() - start < 120


if __name__ == "__main__" and sys.argv[1:2] == ["--zygote"]:
    zygote(Path(sys.argv[2]))
