"""ChunkStore: reads that race gc follow a chunk to its new place, on the CPU path and
on the host stage of the GPU path (which runs on the CPU, so it is tested here)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import modelgit as mg
from modelgit.errors import CorruptObject
from modelgit.storage.reader_cuda import host_stage


def _moved(repo: mg.Repository) -> tuple[list, list]:
    """Rows of a live model's chunks read before a gc that rewrites their pack, and the
    rows after it."""
    repo.add("keep", {"w": torch.randn(300_000), "b": torch.randn(7)})
    repo.add("drop", {"w": torch.randn(300_000)})
    ids = [c for r in repo.tensor_rows(repo.resolve("keep")[0]) for c in r.chunk_ids]
    before = [repo.store.rows(ids)[c] for c in ids]
    repo.remove("drop")
    assert repo.gc().packs_rewritten == 1  # the pack held garbage: live records moved
    after = [repo.store.rows(ids)[c] for c in ids]
    assert all((a.pack, a.offset) != (b.pack, b.offset) for a, b in zip(before, after, strict=True))
    return before, after


def test_cpu_read_follows_a_chunk_gc_moved(repo: mg.Repository) -> None:
    stale, fresh = _moved(repo)
    repo.store.cache.clear()
    for old, new in zip(stale, fresh, strict=True):
        with pytest.raises(CorruptObject):  # its old place is gone
            repo.store.reader.read(old.pack, old.offset, old.length)
        got, want = bytearray(old.raw_length), bytearray(new.raw_length)
        repo.store.get_into(old, memoryview(got))
        repo.store.get_into(new, memoryview(want))
        assert got == want


def test_gpu_host_stage_follows_a_chunk_gc_moved(repo: mg.Repository) -> None:
    """Before the layers redesign the GPU path read ``store.reader`` directly and raised
    CorruptObject here, where a CPU load succeeded."""
    stale, fresh = _moved(repo)
    for old, new in zip(stale, fresh, strict=True):
        a, b = bytearray(old.raw_length), bytearray(new.raw_length)
        parts_a = host_stage(repo.store, old, memoryview(a))
        parts_b = host_stage(repo.store, new, memoryview(b))
        assert a == b
        assert (parts_a is None) == (parts_b is None)


def test_read_record_checks_the_header_against_the_row(repo: mg.Repository) -> None:
    repo.add("m", {"w": torch.randn(1000)})
    (row,) = repo.store.rows(repo.tensor_rows(repo.resolve("m")[0])[0].chunk_ids).values()
    _, rec = repo.store.read_record(row)
    assert rec.chunk_id == row.id
    with pytest.raises(CorruptObject, match="record header does not match"):
        repo.store.read_record(replace(row, raw_length=row.raw_length + 4))
