"""PackWriter / PackReader: records round-trip; background writeback of large appends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
