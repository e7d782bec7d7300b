"""A checkout-cache entry's seal: what lets a hit skip hashing (``versions.checkout``).

A seal is written only after the entry was hashed against the version's chunk ids. It
records the entry file's size, inode, device, modification and change times, the boot,
where each tensor lies, and the versions it vouches for; it is the XXH3-128 of its JSON
body, a newline and the body (docs/FORMAT.md, section 1.1). ``Sealing`` makes one
without the "racy" window of a timestamp granule; ``mapped_sealed`` maps a sealed entry.
"""

from __future__ import annotations

import functools
import json
import math
import mmap
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from ..catalog.records import TensorRow
from ..dtypes import by_name

if TYPE_CHECKING:
    import torch

__all__ = [
    "Proof",
    "Sealing",
    "boot_id",
    "clock_past",
    "discard",
    "layout_of",
    "mapped_sealed",
    "read_seal",
    "sealed_layout",
    "stat_key",
    "temp_beside",
    "write_seal",
]


@dataclass(frozen=True)
class Proof:
    """What lets a seal vouch for a version: its uid; ``tail()``, the hex digest of its
    catalog rows after its ``versions`` row (``catalog.checks.version_tail``, computed
    only when a seal is to record it); and ``holds(tail)``, whether a recorded tail
    still gives the version's stored digest with its row as it is now."""

    uid: str
    tail: Callable[[], str]
    holds: Callable[[str], bool]


def read_seal(seal: Path) -> dict[str, Any] | None:
    """The seal at ``seal``, or None (none, or damaged: its checksum does not match)."""
    try:
        raw = seal.read_bytes()
    except OSError:
        return None
    check, _, body = raw.partition(b"\n")
    if check != xxhash.xxh3_128_hexdigest(body).encode():
        return None
    try:
        info = json.loads(body)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


@functools.cache
def boot_id() -> str | None:
    """This boot's id (Linux), or None: then no entry is trusted without hashing."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def layout_of(rows: Iterable[TensorRow]) -> list[tuple[str, str | None]]:
    """A version's (name, tied-to) pairs in its order, as a seal lists its tensors."""
    return [(r.name, r.tie) for r in sorted(rows, key=lambda r: r.position)]


def temp_beside(path: Path, suffix: str = ".tmp") -> Path:
    """A temporary name beside ``path``, unique to this process and moment (a cache
    ``clear`` removes ``*.tmp`` leftovers)."""
    return path.with_name(f"{path.name}.{os.getpid()}.{time.monotonic_ns()}{suffix}")


def discard(path: Path) -> None:
    """Remove a temporary file if it is there; a failure is not an error of the caller."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns]


class Sealing:
    """A seal being made for an entry that is being verified. Its temporary file is
    created before the entry is looked at, so its time tells the file system's clock
    then: an entry whose change time is not older than that could change again without
    its times moving (the timestamp granule), and gets no seal."""

    def __init__(self, seal: Path) -> None:
        self.seal = seal
        self.tmp = temp_beside(seal)
        self.born: int | None = None
        if boot_id() is None:
            return
        try:
            with self.tmp.open("x"):
                pass
            self.born = self.tmp.stat().st_mtime_ns
        except OSError:
            self.cancel()

    def finish(
        self,
        path: Path,
        before: os.stat_result,
        rows: Sequence[TensorRow],
        spans: dict[str, tuple[int, int]],
        versions: dict[str, str],
    ) -> bool:
        """Seal the entry at ``path`` if it is still as ``before`` (stat'ed before it
        was checked) and not racy: its stored tensors lie at ``spans`` (name -> begin,
        end, as the check read its header), and it vouches for ``versions`` (uid ->
        proof); whether it was sealed (if not, its next hit hashes)."""
        try:
            if self.born is None:
                return False
            now = os.stat(path)
            if (
                stat_key(now) != stat_key(before)
                or max(now.st_ctime_ns, now.st_mtime_ns) >= self.born
            ):
                return False
            tensors: list[list[object]] = []
            for r in sorted(rows, key=lambda r: r.position):
                if r.tie is not None:
                    tensors.append([r.name, r.tie])
                else:
                    tensors.append([r.name, r.dtype, list(r.shape), *spans[r.name]])
            info = {
                "boot": boot_id(),
                "stat": stat_key(now),
                "tensors": tensors,
                "versions": versions,
            }
            write_seal(self.seal, info, self.tmp)
            return True
        except OSError:
            return False
        finally:
            self.cancel()

    def cancel(self) -> None:
        discard(self.tmp)


def clock_past(path: Path, timeout: float = 0.05) -> bool:
    """Wait until a file written now gets a later time than ``path``'s change time (the
    file system's timestamp granule: a few milliseconds where timestamps are coarse, no
    wait where the kernel refines them); False if that takes over ``timeout`` seconds."""
    probe = temp_beside(path, ".clock.tmp")
    try:
        changed = path.stat().st_ctime_ns
        end = time.monotonic() + timeout
        while True:
            probe.write_bytes(b"")
            if probe.stat().st_mtime_ns > changed:
                return True
            if time.monotonic() > end:
                return False
            time.sleep(0.001)
    except OSError:
        return False
    finally:
        discard(probe)


def write_seal(seal: Path, info: dict[str, Any], tmp: Path | None = None) -> None:
    """Write a seal (temporary file, rename): the XXH3-128 of its JSON body, a newline,
    the body. A failure is given up quietly (the entry is hashed at its next hit)."""
    body = json.dumps(info, separators=(",", ":")).encode()
    tmp = temp_beside(seal) if tmp is None else tmp
    try:
        tmp.write_bytes(xxhash.xxh3_128_hexdigest(body).encode() + b"\n" + body)
        os.replace(tmp, seal)
    except OSError:
        pass
    finally:
        discard(tmp)


def sealed_layout(tensors: list[list[Any]]) -> list[tuple[str, str | None]]:
    return [(t[0], t[1] if len(t) == 2 else None) for t in tensors]


def mapped_sealed(
    path: Path, stat: list[int], tensors: list[list[Any]]
) -> dict[str, torch.Tensor] | None:
    """The tensors of a sealed entry, mapped, not hashed, or None if the file opened is
    not the one sealed (``stat``, compared on the open file: a file put in its place
    after a look by name is not mapped). Where each tensor lies in the file, its dtype
    and shape come from the seal (the header is the one that was checked). ValueError
    for a seal that does not fit the file."""
    import torch

    with open(path, "rb") as f:
        if stat_key(os.fstat(f.fileno())) != stat:
            return None
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    whole = memoryview(mapped)
    size = len(whole)
    out: dict[str, torch.Tensor] = {}
    for t in tensors:
        if len(t) == 2:  # [name, the tensor it is tied to]
            out[t[0]] = out[t[1]]
            continue
        name, dtype, shape, begin, end = t
        dt = by_name(dtype)
        if not 0 <= begin <= end <= size or end - begin != dt.size * math.prod(shape):
            raise ValueError(f"{path}: the seal's span of {name!r} does not fit")
        if end == begin:
            out[name] = torch.empty(shape, dtype=dt.torch)
        else:
            data = torch.frombuffer(whole[begin:end], dtype=torch.uint8)
            out[name] = data.view(dt.torch).reshape(shape)
    return out
