"""The checkout cache: decoded versions kept as .safetensors files, so that loading a
version again maps a file as ``safetensors.torch.load_file`` does instead of decoding.

One folder per repository under ``$MODELGIT_CACHE/checkout`` (default
``~/.cache/modelgit/checkout``), one file per version, named by the version's content
id. Off unless a size limit is set: ``mg.open(path, checkout_cache="8GiB")``, the
environment variable ``MODELGIT_CHECKOUT_CACHE``, or ``modelgit cache size 8GiB``
(kept in ``checkout/limit`` for every repository of the user). Least recently used
files go first when the folder outgrows the limit.

Every hit is verified: the file's tensors must be the version's (names, dtypes, shapes,
in order) and each of their chunks must hash to its chunk id, as a decode would be; a
file that fails is deleted and the version decoded again. Files are written to a
temporary name and renamed, so a crash leaves no half entry. ``remove`` and ``gc`` drop
the entries of versions that are gone. Entries are not copies a user should edit:
``export(..., link=True)`` hard-links one, and writing into that link is caught at the
next hit (the entry is then thrown away).
"""

from __future__ import annotations

import hashlib
import mmap
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import xxhash

from ..catalog.records import TensorRow
from ..dtypes import by_name
from ..errors import ModelgitError, UnsupportedInput
from ..formats.safetensors_io import SafetensorsFile, SafetensorsWriter
from ..units import human_bytes, parse_bytes

if TYPE_CHECKING:
    import torch

__all__ = ["CheckoutCache", "CacheEntry", "cache_base", "ENV"]

ENV = "MODELGIT_CHECKOUT_CACHE"
SUFFIX = ".safetensors"


def cache_base() -> Path:
    """``$MODELGIT_CACHE/checkout``, or ``~/.cache/modelgit/checkout``."""
    base = os.environ.get("MODELGIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelgit"
    )
    return Path(base) / "checkout"


def _limit_from(value: int | str | None) -> int | None:
    if value is None:
        return None
    try:
        limit = parse_bytes(value)
    except ValueError as exc:
        raise UnsupportedInput(f"checkout cache size: {exc}") from None
    if limit < 0:
        raise UnsupportedInput("checkout cache size must be >= 0 (0 turns the cache off)")
    return limit


@dataclass(frozen=True)
class CacheEntry:
    """One cached version: its content id, file, size and when it was last used."""

    content_id: str
    path: Path
    size: int
    used: float  # Unix time of the last hit or write

    def to_json(self) -> dict[str, object]:
        used = datetime.fromtimestamp(self.used, tz=timezone.utc).isoformat()
        return {"content_id": self.content_id, "path": str(self.path), "size": self.size,
                "used": used}  # fmt: skip


class CheckoutCache:
    """The checkout cache of one repository (``Repository.checkout_cache``)."""

    def __init__(self, location: str, limit: int | str | None = None) -> None:
        self.base = cache_base()
        key = hashlib.sha256(location.encode()).hexdigest()[:16]
        self.folder = self.base / key
        self._limit = _limit_from(limit)

    # -- the limit --------------------------------------------------------------------
    @property
    def limit(self) -> int:
        """Bytes the folder may hold (0: the cache is off): this handle's setting, else
        ``$MODELGIT_CHECKOUT_CACHE``, else the user's (``set_default_limit``)."""
        if self._limit is not None:
            return self._limit
        env = os.environ.get(ENV)
        if env:
            return _limit_from(env) or 0
        try:
            return _limit_from((self.base / "limit").read_text().strip()) or 0
        except (OSError, UnsupportedInput):
            return 0

    @limit.setter
    def limit(self, value: int | str) -> None:
        self._limit = _limit_from(value)

    def set_default_limit(self, value: int | str) -> None:
        """The limit of every repository of this user that sets none of its own."""
        limit = _limit_from(value)
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.base / "limit.tmp"
        tmp.write_text(f"{limit}\n")
        os.replace(tmp, self.base / "limit")

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    # -- entries ----------------------------------------------------------------------
    def path(self, content_id: str) -> Path:
        if not content_id or not all(c in "0123456789abcdef" for c in content_id):
            raise ModelgitError(f"bad content id {content_id!r}")
        return self.folder / (content_id + SUFFIX)

    def entries(self) -> list[CacheEntry]:
        """The cached versions, least recently used first."""
        out = []
        if self.folder.is_dir():
            for p in self.folder.glob("*" + SUFFIX):
                try:
                    st = p.stat()
                except FileNotFoundError:  # evicted meanwhile
                    continue
                out.append(CacheEntry(p.name[: -len(SUFFIX)], p, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e.used)

    def size(self) -> int:
        return sum(e.size for e in self.entries())

    def drop(self, content_ids: Iterable[str]) -> int:
        """Delete the entries of these versions; returns the bytes freed."""
        freed = 0
        for cid in content_ids:
            p = self.path(cid)
            try:
                freed += p.stat().st_size
                p.unlink()
            except FileNotFoundError:
                pass
        return freed

    def clear(self) -> int:
        """Delete every entry of this repository; returns the bytes freed."""
        return self.drop(e.content_id for e in self.entries())

    def keep_only(self, content_ids: set[str]) -> int:
        """Delete the entries of versions not in ``content_ids`` (after gc or remove)."""
        return self.drop(e.content_id for e in self.entries() if e.content_id not in content_ids)

    def evict(self, keep: str | None = None) -> None:
        """Delete least recently used entries until the folder fits the limit."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        for e in entries:
            if total <= self.limit:
                break
            if e.content_id == keep:
                continue
            total -= self.drop([e.content_id])

    # -- reading and writing ----------------------------------------------------------
    def load(self, content_id: str, rows: Sequence[TensorRow]) -> dict[str, torch.Tensor] | None:
        """The version's tensors mapped from its entry (writable copy-on-write pages, as
        ``load_file`` gives), or None if there is none or it fails verification (then
        the entry is deleted)."""
        path = self.path(content_id)
        if not path.exists():
            return None
        try:
            out = _mapped(path, rows)
        except (ModelgitError, UnsupportedInput, OSError, KeyError, ValueError):
            out = None
        if out is None:
            self.drop([content_id])  # unreadable or not this version: never serve it
            return None
        try:
            os.utime(path)  # most recently used
        except OSError:
            pass
        return out

    def store(
        self, content_id: str, rows: Sequence[TensorRow], sd: dict[str, torch.Tensor]
    ) -> Path | None:
        """Write the entry of a decoded version, if the cache is on and the version fits
        its limit, and evict what no longer fits. A write that fails (a full disk) is
        given up quietly: the load it follows has its result already."""
        return self._write(content_id, rows, sd, force=False)

    def ensure(
        self, content_id: str, rows: Sequence[TensorRow], sd: dict[str, torch.Tensor]
    ) -> Path:
        """The entry's path, written now if it is missing, whatever the limit."""
        path = self._write(content_id, rows, sd, force=True)
        assert path is not None
        return path

    def _write(
        self, content_id: str, rows: Sequence[TensorRow], sd: dict[str, torch.Tensor], force: bool
    ) -> Path | None:
        import torch

        stored = [r for r in rows if r.tie is None]
        total = sum(r.nbytes for r in stored)
        path = self.path(content_id)
        if not force and (not self.enabled or total > self.limit):
            return None
        if path.exists():
            return path
        self.folder.mkdir(parents=True, exist_ok=True)
        order = sorted(stored, key=_write_key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            with tmp.open("wb") as f:
                w = SafetensorsWriter(
                    f,
                    [(r.name, by_name(r.dtype).safetensors, r.shape, r.nbytes) for r in order],
                    {"modelgit_content_id": content_id},
                )
                for r in order:
                    t = sd[r.name]
                    if r.nbytes:
                        w.write(memoryview(t.contiguous().reshape(-1).view(torch.uint8).numpy()))
            os.chmod(tmp, 0o444)  # an entry is never written into (export --link shares it)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            if force:
                raise
            return None  # a full disk makes no error of a load
        if self.enabled:
            self.evict(keep=content_id)
        return path

    def __str__(self) -> str:
        state = f"limit {human_bytes(self.limit)}" if self.enabled else "off"
        return f"checkout cache {self.folder} ({state}, {human_bytes(self.size())} used)"


def _mapped(path: Path, rows: Sequence[TensorRow]) -> dict[str, torch.Tensor] | None:
    """The tensors of ``rows`` from the file at ``path``, verified, or None."""
    import torch

    with SafetensorsFile(path) as st:
        entries = {e.name: e for e in st.entries}
        stored = [r for r in rows if r.tie is None]
        if [e.name for e in st.entries] != _file_order(stored):
            return None
        if not all(_matches(r, entries[r.name]) for r in stored):
            return None
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size else None
    whole = memoryview(mapped) if mapped is not None else memoryview(b"")
    out: dict[str, torch.Tensor] = {}
    for r in sorted(rows, key=lambda r: r.position):
        if r.tie is not None:
            out[r.name] = out[r.tie]
            continue
        e = entries[r.name]
        data = whole[e.begin : e.end]
        if not _chunks_verify(data, r):
            return None
        dt = by_name(r.dtype).torch
        if r.nbytes == 0:
            out[r.name] = torch.empty(r.shape, dtype=dt)
        else:
            out[r.name] = torch.frombuffer(data, dtype=torch.uint8).view(dt).reshape(r.shape)
    return out


def _write_key(r: TensorRow) -> tuple[int, int]:
    """Widest elements first: every tensor then starts at a multiple of its element
    size (the data section has no gaps), so mapped tensors are aligned."""
    return (-by_name(r.dtype).size, r.position)


def _file_order(rows: Sequence[TensorRow]) -> list[str]:
    return [r.name for r in sorted(rows, key=_write_key)]


def _matches(r: TensorRow, e: object) -> bool:
    return (
        getattr(e, "dtype", None) == by_name(r.dtype)
        and tuple(getattr(e, "shape", ())) == tuple(r.shape)
        and getattr(e, "nbytes", -1) == r.nbytes
    )


def _chunks_verify(data: memoryview, r: TensorRow) -> bool:
    """Whether every chunk of the tensor's bytes hashes to its chunk id."""
    for i, cid in enumerate(r.chunk_ids):
        s = i * r.chunk_bytes
        if xxhash.xxh3_128_digest(data[s : min(r.nbytes, s + r.chunk_bytes)]) != cid:
            return False
    return True
