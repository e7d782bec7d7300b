"""Several processes on one repository: concurrent writers, readers during commits and gc.

Worker processes come from a multiprocessing fork server that imports torch and modelgit
once, so each costs milliseconds rather than an interpreter start.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
import torch

import modelgit as mg

CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["torch", "modelgit"])


def weights(tag: str, number: int) -> dict[str, torch.Tensor]:
    """Deterministic weights of (tag, number); 'shared' is the same for every tag."""
    import zlib

    g = torch.Generator().manual_seed(zlib.crc32(f"{tag}@{number}".encode()))
    s = torch.Generator().manual_seed(1)
    w = torch.randn(300_000, generator=g) * 0.02  # 1.2 MB: more than one chunk
    return {
        "shared": torch.randn(100_000, generator=s),
        "w": w,
        "w_half": w[:100_000].to(torch.float16),
        "step": torch.tensor(number),
    }


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a
    )


def spawn(target, *args: object) -> multiprocessing.process.BaseProcess:  # noqa: ANN001
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def wait_ok(proc: multiprocessing.process.BaseProcess, timeout: float = 90) -> None:
    proc.join(timeout)
    assert proc.exitcode == 0, f"worker failed (exit code {proc.exitcode}); see its stderr"


def wait_for(path: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(path)
        time.sleep(0.005)


# --- worker entry points (run in forked processes) ----------------------------------------


def add_worker(root: Path, prefix: str, count: int, go: Path) -> None:
    ready = go.with_name(f"ready-{prefix}")
    ready.touch()
    wait_for(go)
    with mg.open(root) as repo:
        try:
            repo.add("contested", weights(f"contested-{prefix}", 1))
            go.with_name(f"result-{prefix}").write_text("won")
        except mg.ModelExists:
            go.with_name(f"result-{prefix}").write_text("lost")
        for i in range(count):
            repo.add(f"{prefix}{i}", weights(f"{prefix}{i}", 1))
            repo.commit(f"{prefix}{i}", weights(f"{prefix}{i}", 2))


def commit_worker(root: Path, count: int, with_gc: bool) -> None:
    with mg.open(root) as repo:
        repo.add("w", weights("w", 1))
        for n in range(2, count + 1):
            if with_gc:  # garbage next to live chunks, so gc rewrites the packs
                repo.add("scratch", weights("scratch", n))
                repo.commit("w", weights("w", n))
                repo.remove("scratch")
                repo.gc()
            else:
                repo.commit("w", weights("w", n))


# --- tests -----------------------------------------------------------------------------


def test_two_processes_add_different_models_at_once(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    mg.init(root).close()
    go = tmp_path / "go"
    procs = [spawn(add_worker, root, p, 3, go) for p in ("a", "b")]
    for p in ("a", "b"):
        wait_for(tmp_path / f"ready-{p}")
    go.touch()  # both start together
    for proc in procs:
        wait_ok(proc)
    outs = [(tmp_path / f"result-{p}").read_text() for p in ("a", "b")]
    assert sorted(outs) == ["lost", "won"]  # exactly one gets the name
    with mg.open(root) as repo:
        report = repo.fsck()
        assert report.ok, report.problems
        assert sorted(repo.models()) == sorted(
            ["contested"] + [f"{p}{i}" for p in "ab" for i in range(3)]
        )
        for p in "ab":
            for i in range(3):
                assert [v.number for v in repo.versions(f"{p}{i}")] == [1, 2]
                for n in (1, 2):
                    assert same(repo.load(f"{p}{i}", version=n), weights(f"{p}{i}", n))
        winner = "a" if outs[0] == "won" else "b"
        assert same(repo.load("contested"), weights(f"contested-{winner}", 1))
        # the tensor both wrote at the same time is stored once after gc
        repo.gc()
        per = {m.name: m for m in repo.stats().models}
        shared_bytes = weights("x", 1)["shared"].nbytes
        assert sum(m.dedup_bytes for m in per.values()) >= shared_bytes * (2 * 3 * 2)
        assert repo.fsck().ok


def poll_while_writing(root: Path, proc: multiprocessing.process.BaseProcess) -> tuple[int, int]:
    """Load the latest 'w' until the writer exits; every load must be one whole version."""
    loads = 0
    last = 0
    with mg.open(root) as repo:
        while True:
            done = not proc.is_alive()
            try:
                sd = repo.load("w")
            except mg.UnknownModel:
                assert not done, "the writer finished but 'w' is not there"
                continue
            n = int(sd["step"])
            assert n >= last, f"went back from version {last} to {n}"
            assert same(sd, weights("w", n)), f"version {n} came back mixed or partial"
            last = n
            loads += 1
            if done:
                return loads, last


def test_reader_never_sees_half_a_version(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    mg.init(root).close()
    proc = spawn(commit_worker, root, 15, False)
    loads, last = poll_while_writing(root, proc)
    wait_ok(proc)
    assert last == 15
    assert loads >= 5


def test_reader_during_gc(tmp_path: Path) -> None:
    """gc rewrites and deletes packs; a concurrent reader must still get whole versions."""
    root = tmp_path / "repo"
    mg.init(root).close()
    proc = spawn(commit_worker, root, 10, True)
    loads, last = poll_while_writing(root, proc)
    wait_ok(proc)
    assert last == 10
    with mg.open(root) as repo:
        assert repo.fsck().ok


def test_concurrent_gc_and_writer_keep_new_versions(tmp_path: Path) -> None:
    """gc in one process while another commits: nothing the writer published is lost."""
    root = tmp_path / "repo"
    mg.init(root).close()
    proc = spawn(commit_worker, root, 10, False)
    with mg.open(root) as repo:
        while proc.is_alive():
            repo.gc()
    wait_ok(proc)
    with mg.open(root) as repo:
        report = repo.fsck()
        assert report.ok, report.problems
        for n in range(1, 11):
            assert same(repo.load("w", version=n), weights("w", n))


def test_load_racing_gc_in_another_handle(tmp_path: Path) -> None:
    """A deterministic interleaving of the race above: the reader has looked up where the
    chunks are, then gc (another handle, as another process would) moves them and deletes
    the old pack, then the reader reads. The load must still succeed (or be retried
    internally); a healthy repository must never be reported corrupt."""
    root = tmp_path / "repo"
    with mg.init(root) as writer, mg.open(root) as reader:
        writer.add("keep", weights("keep", 1))
        writer.add("junk", weights("junk", 1))  # same pack as 'keep'
        writer.remove("junk")
        real_rows = reader.store.rows

        def rows_then_gc(ids):  # noqa: ANN001, ANN202
            found = real_rows(ids)
            writer.gc()  # rewrites the pack (it holds garbage) and deletes the old one
            return found

        reader.store.rows = rows_then_gc  # type: ignore[method-assign]
        try:
            got = reader.load("keep")
        finally:
            reader.store.rows = real_rows  # type: ignore[method-assign]
        assert same(got, weights("keep", 1))
        assert reader.fsck().ok


def test_parent_removed_during_add_is_a_clear_error(tmp_path: Path) -> None:
    """Another repository object (as another process would) removes the parent while
    the child is written: a clear
    UnknownModel (not "catalog damaged"), nothing stored, and the repository fine."""
    path = tmp_path / "repo"
    repo = mg.init(path)
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(300_000, generator=g)}
    repo.add("base", base)
    other = mg.open(path)
    removed: list[str] = []

    def meanwhile(done: int, total: int) -> None:
        if done and not removed:
            other.remove("base")
            removed.append("base")

    child = {"w": base["w"] + 1e-3}
    with pytest.raises(mg.UnknownModel, match="was removed while 'child' was being written"):
        repo.add("child", child, parents="base", progress=meanwhile)
    assert removed and repo.models() == [] and repo.fsck().ok
    repo.add("child", child)  # again, without the parent: fine
    assert torch.equal(repo.load("child")["w"], child["w"])
    repo.add("next", child)
    removed.clear()

    def drop_model(done: int, total: int) -> None:
        if done and not removed:
            other.remove("next")
            removed.append("next")

    with pytest.raises(mg.UnknownModel, match="previous version next@1 was removed"):
        repo.commit("next", {"w": child["w"] * 2}, progress=drop_model)
    assert repo.fsck().ok
    other.close()
    repo.close()
