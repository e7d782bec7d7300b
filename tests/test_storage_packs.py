"""PackWriter / PackReader: records round-trip; background writeback of large appends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelgit.errors import CorruptObject
from modelgit.storage import packs
from modelgit.storage.packs import PackReader, PackWriter, Record


def _record(i: int, n: int) -> Record:
    return Record(0, i.to_bytes(16, "big"), n, b"", bytes([i % 251]) * n)


def test_background_flush_then_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packs, "FLUSH_EVERY", 10_000)
    calls: list[int] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(packs.os, "fdatasync", spy)
    w = PackWriter(tmp_path)
    where = [w.append(_record(i, 4000)) for i in range(10)]
    w.sync()
    assert calls, "appends past FLUSH_EVERY start a background writeback"
    assert w._flusher is None and w._unflushed == 0
    w.close()
    r = PackReader(tmp_path)
    for i, (pack, offset, length) in enumerate(where):
        rec = r.read(pack, offset, length)
        assert rec.chunk_id == i.to_bytes(16, "big") and bytes(rec.payload) == bytes([i]) * 4000
    r.close()


def test_background_flush_error_is_raised_by_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "FLUSH_EVERY", 1_000)

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(packs.os, "fdatasync", broken)
    w = PackWriter(tmp_path)
    w.append(_record(1, 2000))
    with pytest.raises(OSError, match="Input/output"):
        w.sync()
    monkeypatch.setattr(packs.os, "fdatasync", os.fdatasync)
    w.sync()  # the error is reported once; the next sync fsyncs normally
    w.close()
    assert w._file is None


def test_reader_keeps_a_bounded_number_of_packs_open(tmp_path: Path) -> None:
    """An LRU of descriptors: 40 packs read through a reader of 8 never hold more than
    8 files open, and every record still reads back (also from many threads)."""
    from concurrent.futures import ThreadPoolExecutor

    where = []
    for i in range(40):
        w = PackWriter(tmp_path)
        rec = Record(1, bytes([i]) * 16, 3, b"", bytes([i, i, i]))
        name, off, length = w.append(rec)
        w.close()
        where.append((name, off, length, rec))
    before = len(os.listdir("/proc/self/fd"))
    reader = PackReader(tmp_path, max_open=8)
    for _ in range(3):
        for name, off, length, rec in where:
            assert reader.read(name, off, length).payload == rec.payload
            assert reader.open_packs <= 8
    assert len(os.listdir("/proc/self/fd")) - before <= 8

    def read(k: int) -> bytes:
        name, off, length, _ = where[k % len(where)]
        return bytes(reader.read(name, off, length).payload)

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(read, range(400)))
    assert got == [bytes(where[k % 40][3].payload) for k in range(400)]
    assert reader.open_packs <= 8
    reader.close()
    assert reader.open_packs == 0


def test_reader_follows_a_growing_pack_and_catches_a_truncated_one(tmp_path: Path) -> None:
    """The reader keeps each open pack's size from its last fstat: a record appended
    after the reader first read the pack still reads (the size is looked up again), a
    span past the end is refused before anything is allocated, and a pack truncated
    after its size was kept is caught by the short read."""
    w = PackWriter(tmp_path)
    first = w.append(_record(1, 3000))
    w.sync()
    reader = PackReader(tmp_path)
    assert bytes(reader.read(*first).payload) == bytes([1]) * 3000
    second = w.append(_record(2, 5000))  # the pack grew since the reader's fstat
    w.sync()
    scratch = bytearray()
    got = reader.read_scratch(*second, scratch)
    assert bytes(got.payload) == bytes([2]) * 5000
    name, offset, length = second
    with pytest.raises(CorruptObject, match="pack is truncated"):
        reader.read(name, offset, length + 10_000_000)  # past the end: no 10 MB buffer
    with pytest.raises(CorruptObject, match="impossible offset"):
        reader.read(name, 3, length)
    w.close()
    os.truncate(tmp_path / name, offset + length - 100)  # the reader's size is stale now
    for read in (reader.read, lambda *a: reader.read_scratch(*a, bytearray())):
        with pytest.raises(CorruptObject, match=f"{name}:{offset}: pack is truncated"):
            read(name, offset, length)
    assert bytes(reader.read(*first).payload) == bytes([1]) * 3000  # the rest still reads
    reader.close()


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda b: b[:20], "truncated"),
        (lambda b: b"XXXX" + b[4:], "bad record magic"),
        (lambda b: b[:4] + b"\x09" + b[5:], "version 9 is not supported"),
        (lambda b: b + b"\0", "lengths in the header do not match"),
        (lambda b: b[:60] + bytes([b[60] ^ 1]) + b[61:], "checksum mismatch"),
    ],
)
def test_decode_record_names_the_damage(damage, message: str) -> None:
    rec = _record(3, 100)
    whole = b"".join(bytes(p) for p in packs.encode_record(rec))
    assert packs.decode_record(whole).payload == rec.payload
    with pytest.raises(CorruptObject, match=f"pack-x:48: .*{message}"):
        packs.decode_record(damage(whole), "pack-x", 48)
    with pytest.raises(CorruptObject, match=f"^somewhere: .*{message}"):
        packs.decode_record(damage(whole), "somewhere")
