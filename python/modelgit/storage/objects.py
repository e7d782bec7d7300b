"""Where pack files live: the object-store interface and its two backends.

A pack (docs/FORMAT.md, "Pack files") is an immutable object once it is published: it
is written by exactly one writer under a fresh random name, made durable whole, and
then only read (by byte ranges) or deleted by ``gc``. So no backend needs locks for
objects; what each must guarantee is written in docs/FORMAT.md, "Object stores".

- :class:`LocalObjects`: a folder (``packs/`` of a local repository, or a shared
  filesystem path of a team repository). Writers append to their own pack file in
  place and fsync it, exactly as a local repository always did.
- :class:`FsspecObjects`: any fsspec URL (``s3://bucket/prefix``, ``gs://...``,
  ``memory://`` ...). Writers build a pack in a local staging folder; ``publish``
  uploads it whole (one PUT) before the catalog transaction that names it commits.
  Reads are ranged GETs.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ..errors import TEAM_EXTRA_HINT, CorruptObject, ModelgitError, StorageUnavailable
from .packs import (
    PACK_HEADER,
    PACK_MAGIC,
    PACK_VERSION,
    PackReader,
    PackWriter,
    Record,
    decode_record,
    fsync_dir,
)

__all__ = [
    "ObjectStore",
    "LocalObjects",
    "FsspecObjects",
    "open_objects",
    "StorageUnavailable",
]


class ReaderLike(Protocol):
    def read(self, pack: str, offset: int, length: int) -> Record: ...

    def read_scratch(self, pack: str, offset: int, length: int, scratch: bytearray) -> Record: ...

    def close(self) -> None: ...


class ObjectStore(Protocol):
    """Immutable, write-once pack objects addressed by name."""

    url: str

    def reader(self) -> ReaderLike:
        """A reader of records by (pack, offset, length) (keeps handles; close it)."""
        ...

    def writer(self) -> PackWriter:
        """A writer of new packs; what it wrote is durable in the store after
        :meth:`publish` of the pack names it returned."""
        ...

    def publish(self, names: Iterable[str]) -> None:
        """Make the named packs (written by :meth:`writer`, synced and closed) durable
        and visible in the store. Called before the catalog transaction naming them."""
        ...

    def discard(self, names: Iterable[str]) -> None:
        """Forget unpublished packs (a failed write); published ones are left to gc."""
        ...

    def list(self) -> dict[str, int]:
        """Every pack in the store: name -> size in bytes."""
        ...

    def exists(self, name: str) -> bool: ...

    def get_range(self, name: str, offset: int, length: int) -> bytes: ...

    def put(self, name: str, data: bytes) -> None:
        """Store a whole object once (an existing name is an error)."""
        ...

    def delete(self, name: str) -> None: ...

    def check_header(self, name: str) -> None:
        """Raise CorruptObject unless the object starts with a pack header."""
        ...

    def sync_folder(self) -> None:
        """Make creations and deletions of objects durable (a folder's fsync)."""
        ...


def _check_head(head: bytes, name: str) -> None:
    if len(head) < PACK_HEADER.size:
        raise CorruptObject(f"{name}: truncated pack header")
    magic, ver, _, _ = PACK_HEADER.unpack(head)
    if magic != PACK_MAGIC or ver != PACK_VERSION:
        raise CorruptObject(f"{name}: not a modelgit pack (or an unsupported version)")


class LocalObjects:
    """Packs in a folder: the local repository's ``packs/`` (format and behavior
    unchanged), or a shared filesystem folder of a team repository."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.url = str(self.folder)

    def reader(self) -> PackReader:
        return PackReader(self.folder)

    def writer(self) -> PackWriter:
        return PackWriter(self.folder)

    def publish(self, names: Iterable[str]) -> None:
        """Nothing to do: the writer appended in place and fsynced."""

    def discard(self, names: Iterable[str]) -> None:
        """Nothing to do: unnamed records are garbage that gc reclaims."""

    def list(self) -> dict[str, int]:
        out = {}
        for p in self.folder.glob("*.mgp"):
            try:
                out[p.name] = p.stat().st_size
            except FileNotFoundError:
                continue  # deleted (by gc) since the folder was listed
        return out

    def exists(self, name: str) -> bool:
        return (self.folder / name).is_file()

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            with open(self.folder / name, "rb") as f:
                return os.pread(f.fileno(), length, offset)
        except FileNotFoundError:
            raise CorruptObject(f"{name}: pack file is missing") from None

    def put(self, name: str, data: bytes) -> None:
        tmp = self.folder / f".{name}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, self.folder / name)  # fails if the name exists: write once
        except FileExistsError:
            raise ModelgitError(
                f"{self.folder}: object {name} exists already (objects are immutable)"
            ) from None
        finally:
            os.unlink(tmp)
        fsync_dir(self.folder)

    def delete(self, name: str) -> None:
        try:
            os.unlink(self.folder / name)
        except FileNotFoundError:
            pass

    def check_header(self, name: str) -> None:
        _check_head(self.get_range(name, 0, PACK_HEADER.size), name)

    def sync_folder(self) -> None:
        fsync_dir(self.folder)


BLOCK_BYTES = 8 << 20  # ranged GETs read aligned blocks of a pack...
CACHE_BYTES = 256 << 20  # ...kept in a small LRU (packs are immutable: never stale)


class _RemoteReader:
    """Records by ranged GETs of aligned 8 MiB blocks, cached (a load reads a pack's
    records in order, so one GET serves many chunks: few round trips on a real object
    store). A missing object is a CorruptObject (like a missing file), so the store's
    "gc moved it" retry works the same on every backend."""

    def __init__(self, objects: FsspecObjects) -> None:
        self.objects = objects
        self._blocks: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def _block(self, pack: str, index: int) -> bytes:
        key = (pack, index)
        with self._lock:
            hit = self._blocks.get(key)
            if hit is not None:
                self._blocks.move_to_end(key)
                return hit
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one GET per block, however many threads want it
            with self._lock:
                hit = self._blocks.get(key)
            if hit is not None:
                return hit
            data = self.objects.get_range(pack, index * BLOCK_BYTES, BLOCK_BYTES)
            with self._lock:
                self._blocks[key] = data
                self._size += len(data)
                self._loading.pop(key, None)
                while self._size > CACHE_BYTES and self._blocks:
                    _, old = self._blocks.popitem(last=False)
                    self._size -= len(old)
            return data

    def _get(self, pack: str, offset: int, length: int) -> bytes:
        if length >= BLOCK_BYTES:
            return self.objects.get_range(pack, offset, length)
        first, last = offset // BLOCK_BYTES, (offset + length - 1) // BLOCK_BYTES
        parts = [self._block(pack, i) for i in range(first, last + 1)]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        start = offset - first * BLOCK_BYTES
        return data[start : start + length]

    def read(self, pack: str, offset: int, length: int) -> Record:
        where = f"chunk record at {pack}:{offset}"
        data = self._get(pack, offset, length)
        if len(data) != length:
            raise CorruptObject(f"{where}: pack is truncated")
        return decode_record(data, where)

    def read_scratch(self, pack: str, offset: int, length: int, scratch: bytearray) -> Record:
        return self.read(pack, offset, length)

    def close(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._size = 0


def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError:
        raise StorageUnavailable(
            f"object-store URLs need fsspec (and s3fs for s3://); {TEAM_EXTRA_HINT}"
        ) from None
    return fsspec


class FsspecObjects:
    """Packs as objects under an fsspec URL (``s3://bucket/prefix`` ...).

    New packs are staged in ``staging`` (a local folder) and uploaded whole by
    :meth:`publish`; a pack is never modified after its upload. ``storage_options``
    go to fsspec (for s3fs: ``endpoint_url``, ``key``, ``secret`` ... or the usual
    AWS environment variables)."""

    def __init__(self, url: str, staging: Path, **storage_options: Any) -> None:
        fsspec = _fsspec()
        self.url = url.rstrip("/")
        try:
            self.fs, path = fsspec.core.url_to_fs(self.url, **storage_options)
        except ImportError as exc:
            raise StorageUnavailable(
                f"no fsspec backend for {url!r} ({exc}); {TEAM_EXTRA_HINT}"
            ) from None
        except ValueError as exc:
            raise StorageUnavailable(f"{url!r} is not a usable object-store URL: {exc}") from None
        self.prefix = path.rstrip("/")
        self.staging = Path(staging)
        self.staging.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _path(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (FileNotFoundError, ModelgitError):
            raise
        except Exception as exc:  # the backends' own errors (botocore's are not OSErrors)
            raise StorageUnavailable(
                f"{self.url}: cannot {what}: {type(exc).__name__}: {exc}"
            ) from None

    def check_reachable(self) -> None:
        """Raise StorageUnavailable unless the prefix can be listed."""
        try:
            self._call("list the objects", self.fs.ls, self.prefix, False)
        except FileNotFoundError:
            bucket = self.prefix.split("/", 1)[0]
            if not self._call("list the objects", self.fs.exists, bucket):
                raise StorageUnavailable(
                    f"{self.url}: the bucket {bucket!r} does not exist"
                ) from None

    def reader(self) -> _RemoteReader:
        return _RemoteReader(self)

    def writer(self) -> PackWriter:
        return PackWriter(self.staging)

    def publish(self, names: Iterable[str]) -> None:
        for name in sorted(set(names)):
            local = self.staging / name
            if not local.exists():
                continue  # published already (a pack named by several writes)
            self._call("upload a pack", self.fs.put_file, str(local), self._path(name))
            size = self._call("check an upload", self.fs.size, self._path(name))
            if size != local.stat().st_size:
                raise StorageUnavailable(f"{self.url}: upload of {name} is incomplete")
            local.unlink()

    def discard(self, names: Iterable[str]) -> None:
        for name in set(names):
            (self.staging / name).unlink(missing_ok=True)

    def list(self) -> dict[str, int]:
        self.fs.invalidate_cache(self.prefix)  # other hosts write too: never a stale listing
        try:
            entries = self._call("list the objects", self.fs.ls, self.prefix, True)
        except FileNotFoundError:
            return {}
        out = {}
        for e in entries:
            name = str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(".mgp") and e.get("type") != "directory":
                out[name] = int(e["size"])
        return out

    def exists(self, name: str) -> bool:
        self.fs.invalidate_cache(self._path(name))
        return bool(self._call("look up an object", self.fs.exists, self._path(name)))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        try:
            data = self._call(
                "read an object", self.fs.cat_file, self._path(name),
                start=offset, end=offset + length,
            )  # fmt: skip
        except FileNotFoundError:
            raise CorruptObject(f"{name}: pack object is missing from {self.url}") from None
        return bytes(data)

    def put(self, name: str, data: bytes) -> None:
        if self.exists(name):
            raise ModelgitError(f"{self.url}: object {name} exists already (objects are immutable)")
        self._call("upload an object", self.fs.pipe_file, self._path(name), data)

    def delete(self, name: str) -> None:
        try:
            self._call("delete an object", self.fs.rm_file, self._path(name))
        except FileNotFoundError:
            pass

    def check_header(self, name: str) -> None:
        _check_head(self.get_range(name, 0, PACK_HEADER.size), name)

    def sync_folder(self) -> None:
        """Nothing to do: an object store's PUT and DELETE are durable when they return."""

    def clear_staging(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def is_local_path(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def open_objects(url: str, staging: Path, **storage_options: Any) -> LocalObjects | FsspecObjects:
    """The object store behind ``url``: a folder path (or ``file://``) or an fsspec URL."""
    if is_local_path(url):
        folder = Path(url[len("file://") :] if url.startswith("file://") else url)
        return LocalObjects(folder)
    return FsspecObjects(url, staging, **storage_options)
