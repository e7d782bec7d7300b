"""The chunk store: content-addressed chunks in packs, indexed by the catalog.

``put`` dedups by chunk id (XXH3-128 of the decoded bytes) and appends new records;
the rows it returns are published by the caller's catalog transaction after ``sync``.
``get_into`` reads, verifies the record checksum, decodes (resolving delta bases through
a bounded cache of decoded chunks) and verifies the chunk id of the result.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import xxhash

from .. import codec
from ..catalog import Catalog
from ..catalog.records import ChunkRow, chunk_row, chunk_rows
from ..errors import CorruptObject
from ..scratch import scratch
from .objects import LocalObjects, ObjectStore
from .packs import PackWriter, Record, encode_record

__all__ = ["ChunkStore", "chunk_id", "DEFAULT_MAX_DEPTH"]

DEFAULT_MAX_DEPTH = 4  # delta links between any chunk and a standalone one (a layout)
_CACHE_BYTES = 256 * 1024 * 1024


_thread_scratch = threading.local()  # decode nesting depth per thread (see get_into)


def chunk_id(data: bytes | memoryview) -> bytes:
    return xxhash.xxh3_128_digest(data)


class _DecodedCache:
    """LRU of decoded chunks (delta bases), bounded in bytes, thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[bytes, bytearray] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> bytearray | None:
        with self._lock:
            v = self._items.get(key)
            if v is not None:
                self._items.move_to_end(key)
            return v

    def put(self, key: bytes, value: bytearray) -> None:
        if len(value) > self.limit:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += len(value)
            while self._size > self.limit:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


class ChunkStore:
    """The chunks of one repository: records in the packs of an object store, indexed by
    the catalog's ``chunks`` table.

    Writing: :meth:`put` appends a record to this store's own pack (deduplicating by
    chunk id against the catalog and the rows not yet published); :meth:`sync` makes
    the records durable; the caller then inserts :meth:`pending_rows` in its catalog
    transaction and calls :meth:`published` (or :meth:`abandon` if the transaction
    failed). Reading: :meth:`read_record` (checksum verified; follows a chunk that gc
    moved meanwhile), :meth:`get_into` (decoded and verified against the chunk id) and
    :meth:`get` (cached: for delta bases). Thread-safe.
    """

    def __init__(
        self,
        root: Path,
        catalog: Catalog,
        objects: ObjectStore | None = None,
        cache_bytes: int = _CACHE_BYTES,
    ) -> None:
        self.packs_dir = root / "packs"
        self.objects: ObjectStore = LocalObjects(self.packs_dir) if objects is None else objects
        self.catalog = catalog
        self.reader = self.objects.reader()
        self._writer: PackWriter | None = None
        self._write_lock = threading.Lock()
        self._pending: dict[bytes, ChunkRow] = {}
        self._hints: dict[bytes, ChunkRow] = {}
        self.cache = _DecodedCache(cache_bytes)

    # -- lookup -------------------------------------------------------------------
    def row(self, cid: bytes) -> ChunkRow | None:
        """The row of a chunk (one not yet published by this store's writer included)."""
        pending = self._pending.get(cid)
        if pending is not None:
            return pending
        return chunk_row(self.catalog, cid)

    def rows(self, ids: Iterable[bytes]) -> dict[bytes, ChunkRow]:
        """The published rows of the given chunks, by id."""
        return chunk_rows(self.catalog, ids)

    # -- writing ------------------------------------------------------------------
    def put(
        self, data: memoryview, enc: codec.Encoded, cid: bytes, lossy: bool = False
    ) -> ChunkRow:
        """Append one encoded chunk (unless it is known already) and return its row."""
        depth = 0
        for b in enc.bases:
            base_row = self.row(b)
            if base_row is None:
                raise CorruptObject("delta base chunk is missing from the store")
            depth = max(depth, base_row.depth + 1)
        rec = Record(enc.codec, cid, len(data), enc.params, enc.payload)
        pieces = encode_record(rec)  # the checksum, outside the lock
        with self._write_lock:
            known = self._pending.get(cid)
            if known is not None:
                return known
            if self._writer is None:
                self._writer = self.objects.writer()
            pack, offset, length = self._writer.append(rec, pieces)
            base = b"".join(enc.bases) or None
            row = ChunkRow(cid, pack, offset, length, len(data), enc.codec, base, depth, lossy)
            self._pending[cid] = row
            return row

    def pending_rows(self) -> list[ChunkRow]:
        return list(self._pending.values())

    def sync(self) -> None:
        """Make every appended record durable (before the catalog transaction): fsync
        in place, and for a remote object store also close and upload the packs whole."""
        with self._write_lock:
            if self._writer is not None:
                self._writer.sync()
                if not isinstance(self.objects, LocalObjects):
                    self._writer.close()
                    self.objects.publish({r.pack for r in self._pending.values()})

    def published(self) -> None:
        """The caller's transaction committed: pending rows are now in the catalog.

        The pack file is closed between writes (it is reopened for the next one), so an
        idle repository holds no open file for writing."""
        self._pending.clear()
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()

    def abandon(self) -> None:
        """The caller's transaction failed: forget pending rows (their bytes are garbage)."""
        packs = {r.pack for r in self._pending.values()}
        self._pending.clear()
        with self._write_lock:
            if self._writer is not None:
                try:
                    self._writer.close()
                except OSError:
                    pass  # e.g. the disk is still full: the error being raised says so
            self.objects.discard(packs)

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.reader.close()

    # -- reading ------------------------------------------------------------------
    def get(self, cid: bytes) -> bytearray:
        """The decoded bytes of a chunk (cached: used for delta bases; do not modify)."""
        hit = self.cache.get(cid)
        if hit is not None:
            return hit
        row = self.row(cid)
        if row is None:
            raise CorruptObject(f"chunk {cid.hex()} is referenced but not in the store")
        buf = bytearray(row.raw_length)
        self.get_into(row, memoryview(buf))
        self.cache.put(cid, buf)
        return buf

    def read_record(
        self, row: ChunkRow, scratch: bytearray | None = None
    ) -> tuple[ChunkRow, Record]:
        """Read a chunk's record, checksum verified (into ``scratch`` when given), and
        check that its header matches the row. If gc moved the chunk since ``row`` was
        read, follow the catalog once. Returns the row the record was read by."""

        def read(r: ChunkRow) -> Record:
            if scratch is None:
                return self.reader.read(r.pack, r.offset, r.length)
            return self.reader.read_scratch(r.pack, r.offset, r.length, scratch)

        try:
            rec = read(row)
        except CorruptObject:
            fresh = chunk_row(self.catalog, row.id)
            if fresh is None or (fresh.pack, fresh.offset) == (row.pack, row.offset):
                raise
            row = fresh
            rec = read(row)
        if rec.chunk_id != row.id or rec.raw_length != row.raw_length or rec.codec != row.codec:
            raise CorruptObject(f"chunk {row.id.hex()}: record header does not match the catalog")
        return row, rec

    @staticmethod
    def check_length(row: ChunkRow, where: str) -> None:
        """A record length no codec can produce is corrupt (checked before a buffer of
        that size is allocated)."""
        if not 0 < row.length <= 2 * row.raw_length + (1 << 20):
            raise CorruptObject(f"{where}: record length {row.length} is impossible")

    def get_into(self, row: ChunkRow, out: memoryview, verify: bool = True) -> None:
        """Decode one chunk into ``out`` and verify it against its id.

        Records are read into per-thread scratch buffers (one per nesting depth). A
        delta on a standalone planes base is decoded with the base's planes in one pass;
        any other delta in place: its base goes straight into ``out`` (from the cache,
        or decoded there itself), then the residual is applied. Bases decoded along the
        way are not hashed on their own (``verify=False``): the id check of the chunk
        that was asked for covers every byte they contributed."""
        where = f"chunk {row.id.hex()}"
        if len(out) != row.raw_length:
            raise CorruptObject(f"{where}: catalog length {row.raw_length} != {len(out)}")
        self.check_length(row, where)
        depth = getattr(_thread_scratch, "depth", 0)
        _thread_scratch.depth = depth + 1
        try:
            row, rec = self.read_record(row, scratch(f"record-{depth}", row.length))
            codec.decode_into(
                rec.codec, rec.params, memoryview(rec.payload), out, _Bases(self, depth), where
            )
        finally:
            _thread_scratch.depth = depth
        if verify and chunk_id(out) != row.id:
            raise CorruptObject(
                f"{where}: decoded bytes (or a delta base's) do not match the chunk id"
            )

    def base_row(self, cid: bytes) -> ChunkRow:
        """The row of a delta base (from the rows a reader announced, else the catalog)."""
        row = self._hints.get(cid) or self.row(cid)
        if row is None:
            raise CorruptObject(f"chunk {cid.hex()} is referenced but not in the store")
        return row

    def hint_rows(self, rows: dict[bytes, ChunkRow]) -> None:
        """Rows a reader fetched in bulk, so that decoding their dependents needs no
        catalog query per base (a stale one is followed by ``read_record``)."""
        if len(self._hints) > 200_000:
            self._hints = {}
        self._hints.update(rows)


class _Bases:
    """How a decode at nesting ``depth`` gets its bases (``codec.Bases``): a cached base
    is reused; any other is decoded straight into the caller's buffer (``into``) or into
    this thread's scratch buffer for that depth and slot (``get``)."""

    __slots__ = ("store", "depth")

    def __init__(self, store: ChunkStore, depth: int) -> None:
        self.store = store
        self.depth = depth

    def get(self, cid: bytes, slot: int = 0) -> memoryview:
        hit = self.store.cache.get(cid)
        if hit is not None:
            return memoryview(hit)
        row = self.store.base_row(cid)
        n = row.raw_length
        buf = memoryview(scratch(f"base-{self.depth}-{slot}", n))[:n]
        self.store.get_into(row, buf, verify=False)
        return buf

    def planes(self, cid: bytes, n: int, elem_size: int) -> codec.BasePlanes | None:
        """A standalone planes base's planes (``codec.Bases``: the record goes into this
        thread's scratch buffer for the next depth, valid until the next call of this
        object's methods); None for a cached base (a copy is cheaper) or any other."""
        if self.store.cache.get(cid) is not None:
            return None
        row = self.store.base_row(cid)
        if row.codec != codec.PLANES or row.bases or row.raw_length != n:
            return None  # a delta base is read once, by into()
        where = f"chunk {cid.hex()}"
        self.store.check_length(row, where)
        row, rec = self.store.read_record(row, scratch(f"record-{self.depth + 1}", row.length))
        if rec.codec != codec.PLANES:  # the row was stale: repack re-coded the chunk
            return None
        return codec.standalone_planes(rec.params, memoryview(rec.payload), n, elem_size, where)

    def into(self, cid: bytes, out: memoryview) -> None:
        hit = self.store.cache.get(cid)
        if hit is not None:
            if len(hit) != len(out):
                raise CorruptObject(f"base chunk has {len(hit)} bytes, expected {len(out)}")
            out[:] = hit
            return
        self.store.get_into(self.store.base_row(cid), out, verify=False)
