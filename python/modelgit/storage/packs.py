"""Append-only pack files of chunk records (see docs/FORMAT.md, "Pack files").

A pack starts with a 16-byte header; each record is a 48-byte header, codec
parameters, the payload and an XXH3-64 checksum of everything before it. Records are
immutable once written. A pack is appended to by exactly one writer (its name is a
fresh random id), so packs need no locks; a crashed writer leaves at most a torn tail
that no catalog row points to.
"""

from __future__ import annotations

import os
import struct
import threading
import uuid
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import xxhash

from ..errors import CorruptObject

__all__ = [
    "PACK_MAGIC",
    "PACK_VERSION",
    "RECORD_MAGIC",
    "Record",
    "PackWriter",
    "PackReader",
    "encode_record",
    "record_length",
    "decode_record",
    "fsync_dir",
]

PACK_MAGIC = b"MGITPACK"
PACK_VERSION = 1
PACK_HEADER = struct.Struct("<8sHHI")  # magic, version, reserved, reserved
RECORD_MAGIC = b"MGCK"
RECORD_VERSION = 1
RECORD_HEADER = struct.Struct("<4sBBH16sQIQI")  # 48 bytes
CHECKSUM = struct.Struct("<Q")
MAX_PACK_BYTES = 1 << 30
FLUSH_EVERY = 16 << 20  # appended bytes after which their writeback starts in the background
MAX_OPEN_PACKS = 64  # pack files a reader keeps open at most


@dataclass(frozen=True)
class Record:
    codec: int
    chunk_id: bytes  # 16 bytes: XXH3-128 of the decoded bytes
    raw_length: int
    params: bytes
    payload: bytes | memoryview


def record_length(params: bytes, payload: bytes | memoryview) -> int:
    """The bytes a record of these codec parameters and payload takes in a pack."""
    return RECORD_HEADER.size + len(params) + len(payload) + CHECKSUM.size


def encode_record(rec: Record) -> list[bytes | memoryview]:
    """The pieces of one record, ready to be written in order (no payload copy)."""
    head = RECORD_HEADER.pack(
        RECORD_MAGIC,
        RECORD_VERSION,
        rec.codec,
        0,
        rec.chunk_id,
        rec.raw_length,
        len(rec.params),
        len(rec.payload),
        0,
    )
    h = xxhash.xxh3_64()
    h.update(head)
    h.update(rec.params)
    h.update(rec.payload)
    return [head, rec.params, rec.payload, CHECKSUM.pack(h.intdigest())]


def _where(pack: str, offset: int) -> str:
    return f"chunk record at {pack}:{offset}"


def decode_record(
    buf: bytes | memoryview, where: str = "record", offset: int | None = None
) -> Record:
    """Parse and verify one whole record; raise CorruptObject on any inconsistency.
    ``where`` names the record in errors; with ``offset``, ``where`` is its pack's name
    (the message is only built for an error)."""

    def damaged(what: str) -> CorruptObject:
        return CorruptObject(f"{where if offset is None else _where(where, offset)}: {what}")

    mv = memoryview(buf)
    if len(mv) < RECORD_HEADER.size + CHECKSUM.size:
        raise damaged(f"truncated ({len(mv)} bytes)")
    magic, ver, codec, _flags, cid, raw_len, plen, paylen, _res = RECORD_HEADER.unpack_from(mv)
    if magic != RECORD_MAGIC:
        raise damaged("bad record magic")
    if ver != RECORD_VERSION:
        raise damaged(f"record version {ver} is not supported")
    end = RECORD_HEADER.size + plen + paylen
    if end + CHECKSUM.size != len(mv):
        raise damaged("lengths in the header do not match the record size")
    (stored,) = CHECKSUM.unpack_from(mv, end)
    if xxhash.xxh3_64_intdigest(mv[:end]) != stored:
        raise damaged("checksum mismatch (the stored bytes are damaged)")
    params = bytes(mv[RECORD_HEADER.size : RECORD_HEADER.size + plen])
    payload = mv[RECORD_HEADER.size + plen : end]
    return Record(codec, bytes(cid), raw_len, params, payload)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PackWriter:
    """Appends records to packs of its own under ``folder``; ``sync`` makes them durable."""

    def __init__(self, folder: Path, max_bytes: int = MAX_PACK_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._file = None
        self._name: str | None = None
        self._size = 0
        self._dirty = False
        self._unflushed = 0
        self._flusher: threading.Thread | None = None
        self._flush_error: BaseException | None = None

    def _background_flush(self) -> None:
        """Start writing what was appended so far to disk on a helper thread, so that the
        disk works while the caller encodes the next chunks and :meth:`sync` waits only
        for the tail. Its error, if any, is raised by the next :meth:`sync`."""
        self._join_flusher()
        assert self._file is not None
        self._file.flush()
        fd = self._file.fileno()

        def run() -> None:
            try:
                os.fdatasync(fd)
            except BaseException as exc:  # noqa: BLE001 - handed to sync()
                self._flush_error = exc

        self._flusher = threading.Thread(target=run, name="modelgit-pack-flush", daemon=True)
        self._flusher.start()
        self._unflushed = 0

    def _join_flusher(self) -> None:
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None

    def _open_new(self) -> None:
        self.close()
        name = f"pack-{uuid.uuid4().hex}.mgp"
        f = open(self.folder / name, "xb")  # noqa: SIM115 - closed in close()
        f.write(PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0, 0))
        f.flush()
        os.fsync(f.fileno())
        fsync_dir(self.folder)
        self._file, self._name, self._size = f, name, PACK_HEADER.size

    def _reopen(self) -> bool:
        """Reopen our own current pack after close(), if it is still as we left it."""
        if self._name is None:
            return False
        path = self.folder / self._name
        try:
            if path.stat().st_size != self._size:
                return False
        except FileNotFoundError:
            return False  # gc rewrote it
        self._file = open(path, "ab")  # noqa: SIM115 - closed in close()
        return True

    def append(
        self, rec: Record, pieces: list[bytes | memoryview] | None = None
    ) -> tuple[str, int, int]:
        """Write one record (``pieces``: its ``encode_record``, if the caller has it);
        return (pack name, offset, length). Not durable until sync."""
        if pieces is None:
            pieces = encode_record(rec)
        length = sum(len(p) for p in pieces)
        if self._file is None and not self._reopen():
            self._open_new()
        elif not (self.folder / self._name).exists():  # type: ignore[operator]
            self._open_new()
        elif self._size + length > self.max_bytes and self._size > PACK_HEADER.size:
            self.sync()
            self._open_new()
        assert self._file is not None and self._name is not None
        offset = self._size
        try:
            for p in pieces:
                self._file.write(p)
        except BaseException:
            self._forget()  # a torn record: never append after it
            raise
        self._size += length
        self._dirty = True
        self._unflushed += length
        if self._unflushed >= FLUSH_EVERY:
            self._background_flush()
        return self._name, offset, length

    def sync(self) -> None:
        self._join_flusher()
        error, self._flush_error = self._flush_error, None
        if error is not None:
            raise error
        if self._file is not None and self._dirty:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._dirty = False
            self._unflushed = 0

    def close(self) -> None:
        """Sync and close the file; a later append reopens the same pack. If the sync
        fails (a full disk), the pack is given up: the writer stays usable and its next
        append starts a new pack (the failed one holds no published record: garbage)."""
        if self._file is None:
            return
        try:
            self.sync()
        except BaseException:
            self._forget()
            raise
        self._join_flusher()
        self._file.close()
        self._file = None

    def _forget(self) -> None:
        """Drop the current pack after a failed write, whatever state its file is in."""
        with suppress(BaseException):
            self._join_flusher()
        self._flush_error = None
        if self._file is not None:
            with suppress(Exception):
                self._file.close()
        self._file, self._name, self._size = None, None, 0
        self._dirty, self._unflushed = False, 0


class PackReader:
    """Reads records by (pack, offset, length). Keeps at most ``max_open`` packs open
    (the least recently read is closed first, once no thread is reading it), so a
    repository of thousands of packs stays within the process's open-file limit.

    Each open pack remembers its size at the last ``fstat``: a record within it needs
    no system call to be checked, and one past it (the pack grew, or the span is
    damaged) looks again. A pack truncated since is caught by the short read."""

    def __init__(self, folder: Path, max_open: int = MAX_OPEN_PACKS) -> None:
        self.folder = folder
        self.max_open = max(1, max_open)
        # pack -> [fd, readers, size at the last fstat]
        self._fds: OrderedDict[str, list[int]] = OrderedDict()
        self._fds_lock = threading.Lock()

    def _acquire(self, pack: str, offset: int, length: int) -> list[int]:
        """The entry of ``pack``, opened if needed and marked as read by one more
        thread (``_release`` it), once [offset, offset + length) is checked to be a
        plausible record of the file (before a damaged length allocates)."""
        with self._fds_lock:
            entry = self._fds.get(pack)
            if entry is None:
                try:
                    fd = os.open(self.folder / pack, os.O_RDONLY)
                except FileNotFoundError:
                    raise CorruptObject(f"{_where(pack, offset)}: pack file is missing") from None
                entry = self._fds[pack] = [fd, 0, -1]
            else:
                self._fds.move_to_end(pack)
            entry[1] += 1
        try:
            if offset < PACK_HEADER.size or length < RECORD_HEADER.size + CHECKSUM.size:
                raise CorruptObject(
                    f"{_where(pack, offset)}: impossible offset or length ({offset}, {length})"
                )
            if offset + length > entry[2]:
                entry[2] = os.fstat(entry[0]).st_size
                if offset + length > entry[2]:
                    raise CorruptObject(f"{_where(pack, offset)}: pack is truncated")
        except BaseException:
            self._release(entry)
            raise
        return entry

    def _release(self, entry: list[int]) -> None:
        with self._fds_lock:
            entry[1] -= 1
            self._evict()

    def _evict(self) -> None:
        """Close the least recently used idle packs beyond ``max_open`` (lock held)."""
        excess = len(self._fds) - self.max_open
        if excess <= 0:
            return
        for pack in [p for p, (_, readers, _) in self._fds.items() if readers == 0][:excess]:
            os.close(self._fds.pop(pack)[0])

    @property
    def open_packs(self) -> int:
        """How many pack files are open now."""
        return len(self._fds)

    def read(self, pack: str, offset: int, length: int) -> Record:
        """One verified record in memory of its own."""
        entry = self._acquire(pack, offset, length)
        try:
            data = os.pread(entry[0], length, offset)
        finally:
            self._release(entry)
        if len(data) != length:
            raise CorruptObject(f"{_where(pack, offset)}: pack is truncated")
        return decode_record(data, pack, offset)

    def read_scratch(self, pack: str, offset: int, length: int, scratch: bytearray) -> Record:
        """Like :meth:`read`, into ``scratch`` (grown as needed): the record's payload is
        a view of it, valid until the caller's next use of the same scratch buffer. Saves
        the allocation (and page faults) of a fresh buffer per chunk on the load path."""
        entry = self._acquire(pack, offset, length)
        try:
            if len(scratch) < length:
                scratch.extend(bytes(length - len(scratch)))
            view = memoryview(scratch)[:length]
            got = os.preadv(entry[0], [view], offset)
        finally:
            self._release(entry)
        if got != length:
            raise CorruptObject(f"{_where(pack, offset)}: pack is truncated")
        return decode_record(view, pack, offset)

    def close(self) -> None:
        with self._fds_lock:
            for fd, _, _ in self._fds.values():
                os.close(fd)
            self._fds.clear()
