"""The checkout cache: decoded versions as .safetensors files, mapped again on the next
load, hashed at their first hit and sealed, hashed again whenever the file or the boot
changed, bounded by a size limit, dropped with what they cache."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modelgit as mg
from conftest import assert_same_state
from modelgit.catalog import checks
from modelgit.storage import reader
from modelgit.versions import checkout, seals


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


def _calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    """Counts the calls of ``module.name`` from now on."""
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(module, name, counted)
    return calls


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return _calls(monkeypatch, reader, "decode_rows_into")


def _hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the tensors of cache entries hashed against their chunk ids."""
    return _calls(monkeypatch, checkout, "_chunks_verify")


def _past_granule(path: Path) -> None:
    """Wait until a file written now gets a later time than ``path``'s change time (the
    file system's timestamp granule): a check after that can seal the entry."""
    probe = path.with_name("probe.tmp")
    for _ in range(1000):
        probe.write_bytes(b"")
        if probe.stat().st_mtime_ns > path.stat().st_ctime_ns:
            probe.unlink()
            return
        time.sleep(0.001)
    raise AssertionError("the file system's clock did not move")


def _seal_of(repo: mg.Repository, content_id: str) -> dict:
    seal = repo.checkout_cache.read_seal(content_id)
    assert seal is not None
    return seal


def _sealed(repo: mg.Repository, ref: str) -> checkout.CacheEntry:
    """Load ``ref`` until its entry is written and sealed; returns the entry."""
    repo.load(ref)  # decoded, written, hashed and sealed
    (entry,) = [e for e in repo.checkout_cache.entries()
                if e.content_id == repo.version(ref).content_id]  # fmt: skip
    assert repo.checkout_cache.seal_path(entry.content_id).exists()
    return entry


def _sealed_model(
    repo: mg.Repository, seed: int, n: int = 300_000
) -> tuple[dict[str, torch.Tensor], checkout.CacheEntry]:
    """Model "m" added from ``state(seed, n)``, loaded and sealed: its state and entry."""
    sd = state(seed, n)
    repo.add("m", sd)
    return sd, _sealed(repo, "m")


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


def test_export_link_with_the_cache_off_keeps_no_entry(tmp_path: Path) -> None:
    """The link holds the bytes; a cache that is off keeps nothing of it, and one that
    is on keeps its entries within its limit (the linked version's own first)."""
    with mg.init(tmp_path / "r") as repo:
        assert not repo.checkout_cache.enabled
        sd = state(31)
        repo.add("m", sd)
        out = repo.export("m", tmp_path / "off.safetensors", link=True)
        assert repo.checkout_cache.entries() == [] and repo.checkout_cache.size() == 0
        got = load_file(str(out))
        assert torch.equal(got["w"], sd["w"])  # the export outlives the cache's name
        repo.add("n", state(32))
        one = os.stat(out).st_size
        repo.checkout_cache.limit = one + one // 2  # room for one entry
        repo.export("m", tmp_path / "m.safetensors", link=True)
        repo.export("n", tmp_path / "n.safetensors", link=True)
        (entry,) = repo.checkout_cache.entries()
        assert os.stat(entry.path).st_ino == os.stat(tmp_path / "n.safetensors").st_ino
        assert torch.equal(load_file(str(tmp_path / "m.safetensors"))["w"], sd["w"])


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


def test_a_sealed_entry_is_served_without_hashing(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd = state(50)
    cached.add("m", sd)
    hashes = _hashes(monkeypatch)
    entry = _sealed(cached, "m")  # the entry is hashed once it is written
    assert len(hashes) == 4  # w, h, ids, flag (the tie has no bytes of its own)
    seal_path = cached.checkout_cache.seal_path(entry.content_id)
    seal = _seal_of(cached, entry.content_id)
    assert [t[0] for t in seal["tensors"]] == ["w", "h", "ids", "flag", "tied"]
    assert list(seal["versions"]) == [cached.version("m").id]
    assert seal["tensors"][0][1:3] == ["float32", [300_000]] and seal["tensors"][4] == ["tied", "w"]
    seal_path.unlink()
    hashes.clear()
    assert_same_state(cached.load("m"), sd)  # a hit without a seal hashes and seals
    assert len(hashes) == 4 and _seal_of(cached, entry.content_id) == seal
    hashes.clear()
    calls = _decodes(monkeypatch)
    got = cached.load("m")
    assert hashes == [] and calls == []  # trusted: mapped, neither hashed nor decoded
    assert_same_state(got, sd)
    assert list(got) == list(sd) and got["tied"] is got["w"]
    assert_same_state(cached.load("m", keys=["h", "tied"]), {"h": sd["h"], "tied": sd["w"]})
    with pytest.raises(KeyError, match="no tensor named 'nope'"):
        cached.load("m", keys=["nope"])
    other = {k: torch.zeros_like(v) for k, v in sd.items() if k != "tied"}
    module = torch.nn.Module()
    for k, v in other.items():
        module.register_buffer(k, v)
    cached.load_into(module, "m", strict=False)
    assert hashes == [] and torch.equal(module.w, sd["w"]) and torch.equal(module.flag, sd["flag"])


def test_a_sealed_entry_changed_on_disk_is_hashed_again(cached: mg.Repository) -> None:
    sd, entry = _sealed_model(cached, 51)
    before = entry.path.stat()
    os.chmod(entry.path, 0o644)
    with open(entry.path, "r+b") as f:  # same size, same modification time: only the
        f.seek(before.st_size // 2)  # change time, which no user can set, tells
        byte = f.read(1)
        f.seek(before.st_size // 2)
        f.write(bytes([byte[0] ^ 1]))
    os.utime(entry.path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert entry.path.stat().st_mtime_ns == before.st_mtime_ns
    assert_same_state(cached.load("m"), sd)  # hashed, the damage seen, decoded again
    (again,) = cached.checkout_cache.entries()  # written again from the decode, sealed
    seal = _seal_of(cached, entry.content_id)
    assert seal["stat"] == seals.stat_key(again.path.stat()) != seals.stat_key(before)
    written = load_file(str(again.path))  # widest dtypes first
    assert_same_state(
        {k: written[k] for k in sd if k != "tied"}, {k: v for k, v in sd.items() if k != "tied"}
    )


def test_a_reboot_or_a_damaged_seal_means_hashing_again(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd, entry = _sealed_model(cached, 52)
    seal = cached.checkout_cache.seal_path(entry.content_id)
    good = _seal_of(cached, entry.content_id)
    hashes = _hashes(monkeypatch)
    monkeypatch.setattr(seals, "boot_id", lambda: "another-boot")
    assert_same_state(cached.load("m"), sd)
    assert len(hashes) == 4  # hashed again, and sealed for this boot
    assert _seal_of(cached, entry.content_id)["boot"] == "another-boot"
    monkeypatch.undo()
    hashes = _hashes(monkeypatch)
    raw = seal.read_bytes()
    damaged: list[bytes | dict] = [  # not what was written: the checksum tells
        b"",
        b"{not json",
        raw[:-1],
        raw.replace(b'"w"', b'"W"'),
        b"0" * 32 + b"\n[]",
    ]
    for change in (  # a seal that does not fit its entry (written with a valid checksum)
        lambda t: t[0].__setitem__(4, t[0][4] + 4),  # a span past its tensor
        lambda t: t[0].__setitem__(2, [-1]),  # a hostile shape
        lambda t: t[1].__setitem__(1, "complex999"),  # an unknown dtype
        lambda t: t[4].__setitem__(1, "nope"),  # a tie to nothing
        lambda t: t[0].__setitem__(3, 10**12),  # past the end of the file
        lambda t: t.__setitem__(0, 5),  # not a list
        lambda t: t.__setitem__(0, []),  # an empty one
        lambda t: t.__setitem__(0, ""),  # a string
        lambda t: t.__setitem__(0, {"a": 1}),  # a mapping
    ):
        info = json.loads(json.dumps(good))
        change(info["tensors"])
        damaged.append(info)
    damaged += [{"boot": 1}, {**good, "tensors": None}, []]
    for bad in damaged:
        if isinstance(bad, bytes):
            seal.write_bytes(bad)
        else:
            seals.write_seal(seal, bad)  # type: ignore[arg-type]
        assert_same_state(cached.load("m"), sd)
    assert len(hashes) == len(damaged) * 4  # each hashed, none served from the bad seal
    assert _seal_of(cached, entry.content_id) == good  # sealed again as it was
    seals.write_seal(seal, {**good, "versions": []})  # vouches for no version: a hit
    assert_same_state(cached.load("m"), sd)  # reads the catalog rows, but the seal still
    assert len(hashes) == len(damaged) * 4  # fits the entry and the rows: no hashing


def test_no_seal_when_the_entry_may_change_unseen(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry whose times are not older than the check (the same timestamp granule,
    here a time in the future) is not sealed: a change could keep its times."""
    sd = state(53)
    cached.add("m", sd)
    cached.load("m")
    (entry,) = cached.checkout_cache.entries()
    future = time.time_ns() + 3600 * 10**9
    os.utime(entry.path, ns=(future, future))
    assert_same_state(cached.load("m"), sd)
    assert not cached.checkout_cache.seal_path(entry.content_id).exists()
    monkeypatch.setattr(seals, "boot_id", lambda: None)  # no boot id: never sealed
    os.utime(entry.path, ns=(10**18, 10**18))
    _past_granule(entry.path)
    assert_same_state(cached.load("m"), sd)
    assert not cached.checkout_cache.seal_path(entry.content_id).exists()


def test_seals_go_with_their_entries(cached: mg.Repository) -> None:
    cached.add("a", state(54, n=1000))
    cached.add("b", state(55, n=1000))
    a, b = _sealed(cached, "a"), _sealed(cached, "b")
    cache = cached.checkout_cache
    cached.remove("a")
    assert not cache.seal_path(a.content_id).exists() and cache.seal_path(b.content_id).exists()
    b.path.unlink()  # deleted by hand: clear still removes the seal
    cache.clear()
    assert list(cache.folder.iterdir()) == []


def test_verify_hashes_every_entry(cached: mg.Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        cached.add(f"m{i}", state(60 + i, n=1000))
        cached.load(f"m{i}")
    entries = {e.content_id: e for e in cached.checkout_cache.entries()}
    damaged = entries[cached.version("m1").content_id].path
    os.chmod(damaged, 0o644)
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    order = [e.content_id for e in cached.checkout_cache.entries()]
    hashes = _hashes(monkeypatch)
    assert cached.verify_checkout_cache() == (2, 1)
    assert len(hashes) >= 2 * 4
    kept = cached.checkout_cache.entries()
    assert [e.content_id for e in kept] == [c for c in order if entries[c].path != damaged]
    assert_same_state(cached.load("m1"), state(61, n=1000))


def test_versions_with_equal_contents_keep_their_own_order_and_ties(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A content id covers each tensor's name, dtype, shape and bytes, not the order or
    which tensors share storage: an entry sealed for one version is not served, as
    sealed, to a version that orders or ties its tensors otherwise."""
    g = torch.Generator().manual_seed(80)
    w = torch.randn(1000, generator=g)
    tied = {"w": w, "b": torch.randn(10, generator=g), "head": w}
    untied = {"head": w.clone(), "w": w.clone(), "b": tied["b"].clone()}
    a = cached.add("tied", tied)
    b = cached.add("untied", untied)
    assert a.content_id == b.content_id
    _sealed(cached, "tied")
    hashes = _hashes(monkeypatch)
    got = cached.load("untied")
    assert list(got) == ["head", "w", "b"] and got["head"] is not got["w"]
    assert_same_state(got, untied)
    # not served from the seal of "tied": the entry (no "head" of its own) failed its
    # check, so "untied" was decoded and its own entry written, hashed and sealed
    assert len(hashes) == 3
    hashes.clear()
    got = cached.load("tied")
    assert list(got) == ["w", "b", "head"] and got["head"] is got["w"]
    assert_same_state(got, tied)
    assert len(hashes) == 2  # the same again the other way


def test_a_damaged_catalog_row_is_never_served_from_a_seal(cached: mg.Repository) -> None:
    """A hit by reference reads only the version's row: the seal's proof of the other
    rows must reproduce the version's digest with it. A content id damaged to point at
    another version's sealed entry is CorruptObject, as without the cache."""
    a, b = {"w": torch.arange(1000.0)}, {"w": -torch.arange(1000.0)}
    cached.add("m", a)
    cached.commit("m", b)
    one = _sealed(cached, "m@1")
    with sqlite3.connect(Path(cached.location) / "catalog.db") as db:
        db.execute(
            "UPDATE versions SET content_id = ? WHERE model = 'm' AND number = 2",
            (one.content_id,),
        )
    with pytest.raises(mg.CorruptObject, match="do not match their digest"):
        cached.load("m@2")
    uid = cached.version("m@1").id  # damage that gives m@2 the uid the seal vouches for
    with sqlite3.connect(Path(cached.location) / "catalog.db") as db:
        db.execute(
            "UPDATE versions SET uid = ? WHERE model = 'm' AND number = 1", ("f" * len(uid),)
        )
        db.execute("UPDATE versions SET uid = ? WHERE model = 'm' AND number = 2", (uid,))
    with pytest.raises(mg.CorruptObject, match="do not match their digest"):
        cached.load("m@2")


def test_a_seal_vouches_for_each_version_it_served(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd = state(81, n=1000)
    cached.add("a", sd)
    cached.add("b", sd)  # another model, the same tensors
    assert cached.version("a").content_id == cached.version("b").content_id
    entry = _sealed(cached, "a")
    digests: list[int] = []
    real = checks.version_digest
    monkeypatch.setattr(checks, "version_digest", lambda *a: digests.append(1) or real(*a))
    cached.load("a")
    assert digests == []  # a's hit: its row checked with the seal's proof, no full read
    cached.load("b")
    assert digests == [1]  # the seal did not vouch for b: read and verified in full
    assert set(_seal_of(cached, entry.content_id)["versions"]) == {
        cached.version("a").id,
        cached.version("b").id,
    }
    cached.load("b")
    assert digests == [1]  # now it does


def test_an_entry_replaced_after_its_seal_is_not_trusted(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd, entry = _sealed_model(cached, 82, n=1000)
    seal = _seal_of(cached, entry.content_id)
    other = entry.path.with_name("other.tmp")
    other.write_bytes(entry.path.read_bytes())  # the same bytes, another file
    os.replace(other, entry.path)
    assert cached.checkout_cache.trusted(entry.content_id, seal=seal) is None
    hashes = _hashes(monkeypatch)
    assert_same_state(cached.load("m"), sd)
    assert len(hashes) == 4


def test_verify_keeps_an_entry_any_version_with_its_content_has(cached: mg.Repository) -> None:
    g = torch.Generator().manual_seed(83)
    w = torch.randn(1000, generator=g)
    cached.add("tied", {"w": w, "head": w})
    cached.add("untied", {"w": w.clone(), "head": w.clone()})
    cached.load("untied")  # the entry holds both tensors: "tied"'s rows do not fit it
    assert cached.verify_checkout_cache() == (1, 0)
    assert len(cached.checkout_cache.entries()) == 1


def test_an_interrupted_check_leaves_no_temporary(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd, entry = _sealed_model(cached, 84, n=1000)
    cached.checkout_cache.seal_path(entry.content_id).unlink()

    def interrupted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(checkout, "_mapped", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cached.load("m")
    assert sorted(p.name for p in cached.checkout_cache.folder.iterdir()) == [entry.path.name]
    (cached.checkout_cache.folder / "x.seal.1.2.tmp").write_bytes(b"")  # a crash's
    cached.checkout_cache.clear()
    assert list(cached.checkout_cache.folder.iterdir()) == []


def test_a_seal_changed_meanwhile_vouches_for_nothing_new(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Between a hit served by one seal and the seal's vouching for the version, another
    process may seal the entry again for a version with other ties (equal contents): the
    new seal must not vouch for this version, or its loads by reference would get the
    other ties."""
    other = mg.open(cached.location, checkout_cache="1GiB")  # stands for a second process
    g = torch.Generator().manual_seed(85)
    w, b = torch.randn(1000, generator=g), torch.randn(10, generator=g)
    for name in ("u1", "u2"):
        cached.add(name, {"head": w.clone(), "w": w.clone(), "b": b.clone()})
    cached.add("t", {"w": w, "b": b, "head": w})
    cached.load("u1")
    real = checkout.CheckoutCache._vouch

    def racing(self, *a):  # noqa: ANN001, ANN002, ANN202
        monkeypatch.setattr(checkout.CheckoutCache, "_vouch", real)
        other.load("t")  # drops the entry, writes and seals t's
        return real(self, *a)

    monkeypatch.setattr(checkout.CheckoutCache, "_vouch", racing)
    got = cached.load("u2")  # served by u1's seal (its layout), then the race
    assert list(got) == ["head", "w", "b"] and got["head"] is not got["w"]
    seal = _seal_of(cached, cached.version("u2").content_id)
    assert list(seal["versions"]) == [cached.version("t").id]
    got = cached.load("u2")
    assert list(got) == ["head", "w", "b"] and got["head"] is not got["w"]
    other.close()


def test_an_interrupted_write_leaves_no_temporary(
    cached: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached.add("m", state(86, n=1000))

    def interrupted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(checkout.os, "chmod", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cached.load("m")
    folder = cached.checkout_cache.folder
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.parametrize("bad", ["ZZ", "../x", ""])
def test_a_content_id_that_is_no_id_is_corrupt_object_with_the_cache_on(
    cached: mg.Repository, bad: str
) -> None:
    cached.add("m", {"w": torch.arange(1000.0)})
    cached.load("m")
    with sqlite3.connect(Path(cached.location) / "catalog.db") as db:
        db.execute("UPDATE versions SET content_id = ? WHERE model = 'm'", (bad,))
    with pytest.raises(mg.CorruptObject):
        cached.load("m")
    with pytest.raises(mg.CorruptObject):
        cached.load_into(torch.nn.Module(), "m", strict=False)
