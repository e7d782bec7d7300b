"""The checkout cache: decoded versions as .safetensors files, mapped again on the next
load, verified on every hit, bounded by a size limit, dropped with what they cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modelgit as mg
from conftest import assert_same_state
from modelgit.storage import reader


def state(seed: int, n: int = 300_000) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {
        "w": torch.randn(n, generator=g),
        "h": torch.randn(1000, generator=g).to(torch.bfloat16),
        "ids": torch.arange(7, dtype=torch.int64),
        "flag": torch.tensor([True, False, True]),
    }
    sd["tied"] = sd["w"]
    return sd


@pytest.fixture
def cached(tmp_path: Path) -> mg.Repository:
    mg.init(tmp_path / "r").close()
    repo = mg.open(tmp_path / "r", checkout_cache="1GiB")
    yield repo
    repo.close()


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = reader.decode_rows_into

    def counted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(reader, "decode_rows_into", counted)
    return calls


def test_off_by_default(repo: mg.Repository) -> None:
    repo.add("m", state(1))
    repo.load("m")
    assert not repo.checkout_cache.enabled and repo.checkout_cache.entries() == []


def test_second_load_maps_the_file(cached: mg.Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = state(2)
    v = cached.add("m", sd)
    assert_same_state(cached.load("m"), sd)  # decoded, then written
    (entry,) = cached.checkout_cache.entries()
    assert entry.content_id == v.content_id and entry.size > sd["w"].nbytes
    calls = _decodes(monkeypatch)
    got = cached.load("m")
    assert calls == []  # mapped, not decoded
    assert_same_state(got, sd)
    assert got["tied"] is got["w"]
    got["w"][0] = 123.0  # writable, copy-on-write: the entry is untouched
    assert_same_state(cached.load("m"), sd)
    assert_same_state(cached.load("m", keys=["h"]), {"h": sd["h"]})


def test_a_damaged_entry_is_never_served(cached: mg.Repository) -> None:
    sd = state(3)
    cached.add("m", sd)
    cached.load("m")
    (entry,) = cached.checkout_cache.entries()
    os.chmod(entry.path, 0o644)
    data = bytearray(entry.path.read_bytes())
    data[len(data) // 2] ^= 1
    entry.path.write_bytes(bytes(data))
    assert_same_state(cached.load("m"), sd)  # the damage is seen, the version decoded
    assert_same_state(cached.load("m"), sd)  # and cached again
    entry.path.write_bytes(b"not a safetensors file")
    assert_same_state(cached.load("m"), sd)


def test_least_recently_used_entries_go_first(cached: mg.Repository) -> None:
    for i in range(3):
        cached.add(f"m{i}", state(10 + i))
    one = state(10)["w"].nbytes + 5000
    cached.checkout_cache.limit = 2 * one
    for i in range(3):
        cached.load(f"m{i}")
    kept = {e.content_id for e in cached.checkout_cache.entries()}
    assert kept == {cached.version("m1").content_id, cached.version("m2").content_id}
    cached.checkout_cache.limit = one // 2  # larger than the limit: never cached
    cached.checkout_cache.clear()
    cached.load("m0")
    assert cached.checkout_cache.entries() == []


def test_remove_and_gc_drop_stale_entries(cached: mg.Repository) -> None:
    cached.add("a", state(20))
    cached.add("b", state(21))
    cached.load("a")
    cached.load("b")
    assert len(cached.checkout_cache.entries()) == 2
    cached.remove("a")
    assert [e.content_id for e in cached.checkout_cache.entries()] == [
        cached.version("b").content_id
    ]
    cached.gc()
    assert len(cached.checkout_cache.entries()) == 1


def test_export_link_shares_the_entry(cached: mg.Repository, tmp_path: Path) -> None:
    sd = state(30)
    cached.add("m", sd)
    out = cached.export("m", tmp_path / "out.safetensors", link=True)
    (entry,) = cached.checkout_cache.entries()
    assert os.stat(out).st_ino == os.stat(entry.path).st_ino
    assert not os.access(out, os.W_OK) or os.geteuid() == 0
    got = load_file(str(out))
    for k in ("w", "h", "ids", "flag"):
        assert torch.equal(got[k], sd[k])
    folder = cached.export("m", tmp_path / "folder", link=True)
    assert os.stat(folder / "model.safetensors").st_ino == os.stat(entry.path).st_ino
    with pytest.raises(mg.UnsupportedInput, match="one file"):
        cached.export("m", tmp_path / "x", link=True, max_shard_size="1MB")


def test_load_into_copies_from_the_entry(cached: mg.Repository) -> None:
    m = torch.nn.Linear(300, 1000)
    cached.add("lin", m)
    cached.load("lin")
    other = torch.nn.Linear(300, 1000)
    cached.load_into(other, "lin")
    assert torch.equal(other.weight, m.weight) and torch.equal(other.bias, m.bias)


def test_environment_turns_it_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGIT_CHECKOUT_CACHE", "64MiB")
    with mg.init(tmp_path / "r") as repo:
        repo.add("m", state(40, n=1000))
        repo.load("m")
        assert repo.checkout_cache.limit == 64 << 20 and len(repo.checkout_cache.entries()) == 1
    monkeypatch.setenv("MODELGIT_CHECKOUT_CACHE", "lots")
    with pytest.raises(mg.UnsupportedInput, match="checkout cache size"):
        mg.open(tmp_path / "r").checkout_cache.limit  # noqa: B018
