"""The checkout cache: decoded versions kept as .safetensors files, so that loading a
version again maps a file as ``safetensors.torch.load_file`` does instead of decoding.

One folder per repository under ``$MODELGIT_CACHE/checkout`` (default
``~/.cache/modelgit/checkout``), one file per version, named by the version's content
id. Off unless a size limit is set: ``mg.open(path, checkout_cache="8GiB")``, the
environment variable ``MODELGIT_CHECKOUT_CACHE``, or ``modelgit cache size 8GiB``
(kept in ``checkout/limit`` for every repository of the user). Least recently used
files go first when the folder outgrows the limit.

An entry is verified before it is trusted: its tensors must be the version's (names,
dtypes, shapes, in order) and each of their chunks must hash to its chunk id, as a
decode would be; a file that fails is deleted and the version decoded again. This is
done right after an entry is written (once the file system's clock has passed its
change time: at once where the kernel refines timestamps) and at any hit that finds no
valid seal. A verified entry gets a seal (``<content id>.seal``, protected by its own
checksum): the file's size, inode, modification and change times as they were when it
was checked, the boot it was checked in, the version's tensors in order (where each
lies in the file, its dtype and shape; the tied ones), and the versions it vouches for:
each one's uid and the digest of its catalog rows but its ``versions`` row, taken when
they were read and verified in full.

A hit whose open file still has those times and whose machine has not rebooted since is
served without hashing (git trusts its index's stat data the same way); any other hit
is hashed again. A load by reference then reads only the version's ``versions`` row,
which with the seal's proof must give the version's stored digest (so a damaged content
id is CorruptObject, never another version's weights); a caller holding the verified
rows only checks that they list the seal's tensors. Writing into a file with ``write``,
even through an ``export --link`` hard link, changes its change time, which no user can
set back; a reboot catches data a crash lost. A change within the file system's
timestamp granule of the check could go unseen, so no seal is written then ("racy", as
git says), and the next hit hashes again. What a seal cannot see: bits a disk flips in
a file nobody wrote; a program that made the read-only file writable and keeps writing
through a shared writable mapping (only its first write to a clean page moves the
times); and a seal rewritten on purpose with a valid checksum. ``CheckoutCache.verify``
(``modelgit cache verify``) hashes every entry now.

Files are written to a temporary name and renamed, so a crash leaves no half entry.
``remove`` and ``gc`` drop the entries of versions that are gone. Entries are not
copies a user should edit: ``export(..., link=True)`` hard-links one, and writing into
that link is caught at the next hit (the entry is then thrown away).
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from ..catalog.records import TensorRow
from ..dtypes import by_name
from ..errors import ModelgitError, UnsupportedInput
from ..formats.safetensors_io import SafetensorsFile, SafetensorsWriter
from ..units import human_bytes, parse_bytes
from . import seals
from .seals import (
    Proof,
    Sealing,
    clock_past,
    layout_of,
    mapped_sealed,
    read_seal,
    sealed_layout,
    temp_beside,
    write_seal,
)

if TYPE_CHECKING:
    import torch

__all__ = ["CheckoutCache", "CacheEntry", "cache_base", "ENV"]

ENV = "MODELGIT_CHECKOUT_CACHE"
SUFFIX = ".safetensors"
SEAL = ".seal"


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

    def seal_path(self, content_id: str) -> Path:
        return self.path(content_id).with_suffix(SEAL)

    def entries(self) -> list[CacheEntry]:
        """The cached versions, least recently used first."""
        out = []
        if self.folder.is_dir():
            for p in self.folder.glob("*" + SUFFIX):
                try:
                    st = p.stat()
                except FileNotFoundError:  # evicted meanwhile
                    continue
                used = st.st_mtime
                try:  # a hit on a sealed entry marks its seal, not the entry
                    used = max(used, p.with_suffix(SEAL).stat().st_mtime)
                except OSError:
                    pass
                out.append(CacheEntry(p.name[: -len(SUFFIX)], p, st.st_size, used))
        return sorted(out, key=lambda e: e.used)

    def size(self) -> int:
        return sum(e.size for e in self.entries())

    def drop(self, content_ids: Iterable[str]) -> int:
        """Delete the entries of these versions; returns the bytes freed."""
        freed = 0
        for cid in content_ids:
            p = self.path(cid)
            self.seal_path(cid).unlink(missing_ok=True)  # first: a seal never outlives
            try:
                freed += p.stat().st_size
                p.unlink()
            except FileNotFoundError:
                pass
        return freed

    def clear(self) -> int:
        """Delete every entry of this repository; returns the bytes freed."""
        freed = self.drop(e.content_id for e in self.entries())
        if self.folder.is_dir():  # seals of entries deleted by hand, temporaries of crashes
            for pattern in ("*" + SEAL, "*.tmp"):
                for leftover in self.folder.glob(pattern):
                    leftover.unlink(missing_ok=True)
        return freed

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
    def read_seal(self, content_id: str) -> dict[str, Any] | None:
        """The entry's seal, or None (none, or damaged: its checksum does not match)."""
        return read_seal(self.seal_path(content_id))

    def trusted(
        self,
        content_id: str,
        layout: Sequence[tuple[str, str | None]] | None = None,
        seal: dict[str, Any] | None = None,
    ) -> dict[str, torch.Tensor] | None:
        """The version's tensors mapped from its entry without hashing, when the entry
        has a seal (``seal``, else the one on disk) that its file and this boot still
        match and, given ``layout`` (the version's (name, tied-to) pairs in order:
        versions with equal contents may order or tie them differently), that lists the
        tensors so; else None (then :meth:`load` hashes the entry, if there is one)."""
        boot = seals.boot_id()
        if boot is None:
            return None
        info = seal if seal is not None else self.read_seal(content_id)
        if info is None:
            return None
        try:
            tensors = info["tensors"]
            if info["boot"] != boot:
                return None
            if layout is not None and sealed_layout(tensors) != list(layout):
                return None
            out = mapped_sealed(self.path(content_id), info["stat"], tensors)
        except (OSError, ValueError, LookupError, TypeError, RuntimeError, ModelgitError):
            return None  # a changed file or a seal that does not fit: hash it again
        if out is not None:
            self._used(content_id)
        return out

    def load(
        self, content_id: str, rows: Sequence[TensorRow], proof: Proof | None = None
    ) -> dict[str, torch.Tensor] | None:
        """The version's tensors mapped from its entry (writable copy-on-write pages, as
        ``load_file`` gives), or None if there is none or it fails its check (then the
        entry is deleted). A sealed entry is served as :meth:`trusted` serves it; one
        without a valid seal is checked now, every chunk hashed against its id, and
        sealed, so that the next hits are trusted. ``proof``: the version's uid and the
        digest of its catalog rows but the version row (``catalog.checks.version_tail``),
        recorded in the seal so that a hit by reference alone can check the version row
        (``versions.load.trusted_hit``)."""
        seal = self.read_seal(content_id)
        out = self.trusted(content_id, layout_of(rows), seal) if seal is not None else None
        if out is None:
            out = self._checked(content_id, rows, proof)
            if out is not None:
                self._used(content_id)
        elif proof is not None:
            self._vouch(content_id, proof, seal)  # type: ignore[arg-type]
        return out

    def verify(
        self, candidates: Callable[[str], Sequence[tuple[Sequence[TensorRow], Proof]]]
    ) -> tuple[int, int]:
        """Hash every entry now and seal it again; delete the entries that fail, and
        those of versions that are gone. ``candidates``: for a content id, the tensor
        rows and proof of each version that has it (versions with equal contents may
        order or tie their tensors differently: an entry is kept if it is one of them).
        Returns (kept, deleted). Entries keep their place in the LRU order."""
        kept = deleted = 0
        for e in self.entries():
            if not any(
                self._checked(e.content_id, rows, proof, drop=False) is not None
                for rows, proof in candidates(e.content_id)
            ):
                self.drop([e.content_id])
                deleted += 1
                continue
            kept += 1
            try:
                os.utime(self.seal_path(e.content_id), (e.used, e.used))
            except OSError:
                pass
        return kept, deleted

    def _checked(
        self,
        content_id: str,
        rows: Sequence[TensorRow],
        proof: Proof | None = None,
        drop: bool = True,
    ) -> dict[str, torch.Tensor] | None:
        """The entry's tensors, every chunk hashed against its id, then sealed (when
        not racy); None if it fails (then deleted, with ``drop``)."""
        path = self.path(content_id)
        if not path.exists():
            return None
        sealing = Sealing(self.seal_path(content_id))  # before the entry is looked at
        try:
            try:
                before = os.stat(path)
                mapped = _mapped(path, rows)
            except (ModelgitError, UnsupportedInput, OSError, KeyError, ValueError):
                mapped = None
            if mapped is None:
                if drop:
                    self.drop([content_id])  # unreadable or not this version: never serve it
                return None
            out, spans = mapped
            versions = {} if proof is None else {proof.uid: proof.tail()}
            if not sealing.finish(path, before, rows, spans, versions):
                self.seal_path(content_id).unlink(missing_ok=True)  # one of another state
            return out
        finally:
            sealing.cancel()  # whatever happened (an interrupt too): no temporary left

    def _vouch(self, content_id: str, proof: Proof, used: dict[str, Any]) -> None:
        """Add a version to those an entry's seal vouches for, after a hit served the
        entry by the seal ``used`` for that version's verified rows. Nothing is added
        if the seal changed meanwhile (another process sealed the entry again, perhaps
        for another order or ties of the same content)."""
        info = self.read_seal(content_id)
        if info is None or any(info.get(k) != used.get(k) for k in ("boot", "stat", "tensors")):
            return
        versions = info.get("versions")
        if not isinstance(versions, dict):
            return
        known = versions.get(proof.uid)
        if isinstance(known, str) and proof.holds(known):
            return
        versions[proof.uid] = proof.tail()
        write_seal(self.seal_path(content_id), info)

    def _used(self, content_id: str) -> None:
        """Mark the entry most recently used: its seal's time (touching the entry itself
        would change its change time and break the seal), else the entry's."""
        try:
            os.utime(self.seal_path(content_id))
        except FileNotFoundError:
            try:
                os.utime(self.path(content_id))
            except OSError:
                pass
        except OSError:
            pass

    def store(
        self,
        content_id: str,
        rows: Sequence[TensorRow],
        sd: dict[str, torch.Tensor],
        proof: Proof | None = None,
    ) -> Path | None:
        """Write the entry of a decoded version, if the cache is on and the version fits
        its limit, and evict what no longer fits. A write that fails (a full disk) is
        given up quietly: the load it follows has its result already."""
        return self._write(content_id, rows, sd, force=False, proof=proof)

    def ensure(
        self, content_id: str, rows: Sequence[TensorRow], sd: dict[str, torch.Tensor]
    ) -> Path:
        """The entry's path, written now if it is missing, whatever the limit."""
        path = self._write(content_id, rows, sd, force=True)
        assert path is not None
        return path

    def _write(
        self,
        content_id: str,
        rows: Sequence[TensorRow],
        sd: dict[str, torch.Tensor],
        force: bool,
        proof: Proof | None = None,
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
        tmp = temp_beside(path)
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
        except BaseException:  # an interrupt: no half-written temporary is left behind
            tmp.unlink(missing_ok=True)
            raise
        if clock_past(path):  # then hashed and sealed, as a hit would (else at a hit)
            self._checked(content_id, rows, proof)
        if self.enabled:
            self.evict(keep=content_id)
        return path

    def __str__(self) -> str:
        state = f"limit {human_bytes(self.limit)}" if self.enabled else "off"
        return f"checkout cache {self.folder} ({state}, {human_bytes(self.size())} used)"


def _mapped(
    path: Path, rows: Sequence[TensorRow]
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, int]]] | None:
    """The tensors of ``rows`` from the file at ``path``, verified, and where each
    stored one lies in the file (name -> begin, end: what a seal records); or None."""
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
    return out, {name: (e.begin, e.end) for name, e in entries.items()}


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
