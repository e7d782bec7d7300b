"""The read path's economy: every record read once per load (a base that several chunks
need, a chunk that several tensors hold), deltas decoded in place, and the result
still verified bit for bit."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

import modelgit as mg
from conftest import assert_same_state
from modelgit.errors import CorruptObject


def _count_reads(repo: mg.Repository, monkeypatch: pytest.MonkeyPatch) -> Counter:
    reads: Counter = Counter()
    real = repo.store.read_record

    def counted(row, scratch=None):  # noqa: ANN001, ANN202
        reads[row.id] += 1
        return real(row, scratch)

    monkeypatch.setattr(repo.store, "read_record", counted)
    return reads


def test_a_shared_base_is_read_once(repo: mg.Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    w = torch.randn(1000)
    repo.add("base", {"a": w.clone(), "b": w.clone()})  # one chunk, held twice
    child = {"a": w + 1e-3 * torch.randn(1000), "b": w + 1e-3 * torch.randn(1000)}
    repo.add("child", child, parents="base")
    assert repo.last_write is not None and repo.last_write.delta == 2
    repo.store.cache.clear()
    reads = _count_reads(repo, monkeypatch)
    assert_same_state(repo.load("child"), child)
    assert sorted(reads.values()) == [1, 1, 1]  # the base once, each child chunk once


def test_a_chunk_two_tensors_hold_is_decoded_once(
    repo: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = torch.randn(5000)
    sd = {"a": w.clone(), "b": w.clone(), "c": torch.randn(10)}
    repo.add("m", sd)
    reads = _count_reads(repo, monkeypatch)
    got = repo.load("m")
    assert_same_state(got, sd)
    assert got["a"].data_ptr() != got["b"].data_ptr()  # copies, not ties
    assert sorted(reads.values()) == [1, 1]


def test_a_deep_chain_decodes_in_place_and_verifies(repo: mg.Repository) -> None:
    repo.max_depth = 8
    sd = {"w": torch.randn(300_000)}
    states = [sd]
    repo.add("m", sd)
    for _ in range(5):
        sd = {"w": sd["w"] + 1e-4 * torch.randn(300_000)}
        states.append(sd)
        repo.commit("m", sd)
    for i, want in enumerate(states, 1):
        repo.store.cache.clear()
        assert_same_state(repo.load(f"m@{i}"), want)


def test_damage_in_a_base_is_caught_by_the_child(repo: mg.Repository) -> None:
    """Bases decoded along the way are not hashed on their own: the child's id check
    covers them (and the record checksum catches damaged bytes first)."""
    base = {"w": torch.randn(4096)}
    repo.add("base", base)
    repo.add("ft", {"w": base["w"] + 1e-3 * torch.randn(4096)}, parents="base")
    (brow,) = repo.store.rows(repo.tensor_rows(repo.resolve("base")[0])[0].chunk_ids).values()
    pack = repo.root / "packs" / brow.pack
    data = bytearray(pack.read_bytes())
    data[brow.offset + brow.length // 2] ^= 0x10
    pack.write_bytes(bytes(data))
    repo.store.cache.clear()
    with pytest.raises(CorruptObject):
        repo.load("ft")
