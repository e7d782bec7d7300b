"""A streaming reader and writer of the safetensors file format.

The reader maps the file and hands out zero-copy views of each tensor's bytes, so a
checkpoint larger than memory can be read chunk by chunk. The writer takes the header
first and then the tensor bytes in order, in pieces, so it never holds a whole model.
Format: 8-byte little-endian header length N, N bytes of JSON header, then the data
section; each header entry has ``dtype``, ``shape`` and ``data_offsets`` [begin, end)
relative to the data section; the optional ``__metadata__`` maps strings to strings.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..dtypes import DType, by_safetensors
from ..errors import UnsupportedInput

__all__ = ["SafetensorsEntry", "SafetensorsFile", "SafetensorsWriter", "MAX_HEADER"]

MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class SafetensorsEntry:
    name: str
    dtype: DType
    shape: tuple[int, ...]
    begin: int  # absolute offset in the file
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsFile:
    """A mapped .safetensors file: ``entries`` in file order, ``view(entry)`` zero-copy."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UnsupportedInput(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            self._parse()
        except BaseException:
            self._file.close()
            raise

    def _bad(self, why: str) -> UnsupportedInput:
        return UnsupportedInput(f"{self.path} is not a valid safetensors file: {why}")

    def _parse(self) -> None:
        size = os.fstat(self._file.fileno()).st_size
        head = self._file.read(8)
        if len(head) < 8:
            raise self._bad("shorter than 8 bytes")
        (hlen,) = struct.unpack("<Q", head)
        if hlen > MAX_HEADER or 8 + hlen > size:
            raise self._bad(f"header length {hlen} does not fit in a {size}-byte file")
        try:
            header = json.loads(self._file.read(hlen))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._bad(f"header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise self._bad("header is not a JSON object")
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict):
            raise self._bad("__metadata__ is not an object")
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in meta.items()}
        data_start = 8 + hlen
        entries = []
        for name, info in header.items():
            try:
                dtype = by_safetensors(info["dtype"])
                shape = tuple(int(s) for s in info["shape"])
                begin, end = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError) as exc:
                raise self._bad(f"entry {name!r} is malformed ({exc!r})") from None
            count = 1
            for s in shape:
                if s < 0:
                    raise self._bad(f"entry {name!r} has a negative dimension")
                count *= s
            if begin < 0 or end < begin or end - begin != count * dtype.size:
                raise self._bad(f"entry {name!r}: offsets do not match dtype and shape")
            if data_start + end > size:
                raise self._bad(f"entry {name!r} runs past the end of the file")
            entries.append(
                SafetensorsEntry(name, dtype, shape, data_start + begin, data_start + end)
            )
        entries.sort(key=lambda e: e.begin)
        self.entries: list[SafetensorsEntry] = entries
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None

    def view(self, entry: SafetensorsEntry) -> memoryview:
        """Zero-copy view of one tensor's bytes (valid while the file is open)."""
        if self._map is None or entry.nbytes == 0:
            return memoryview(b"")
        return memoryview(self._map)[entry.begin : entry.end]

    def release(self, entry: SafetensorsEntry, start: int, end: int) -> None:
        """Drop the mapped pages of ``entry``'s bytes [start, end) from this process
        (they stay in the page cache; a later access maps them again). Called once a
        chunk is stored, so reading a file larger than memory keeps RSS bounded."""
        if self._map is None or end <= start:
            return
        page = mmap.PAGESIZE
        lo = (entry.begin + start) // page * page
        hi = min(len(self._map), entry.begin + end)
        if hi > lo:
            try:
                self._map.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
            except (AttributeError, OSError, ValueError):  # pragma: no cover - not Linux
                pass

    def close(self) -> None:
        # Views handed out keep the map alive; closing it under them would fail.
        self._map = None
        self._file.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SafetensorsWriter:
    """Write a safetensors file: declare every tensor first, then stream the bytes."""

    def __init__(
        self,
        out: BinaryIO,
        tensors: list[tuple[str, str, tuple[int, ...], int]],
        metadata: dict[str, str] | None = None,
    ) -> None:
        """``tensors``: (name, safetensors dtype code, shape, nbytes) in write order."""
        header: dict[str, object] = {}
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        offset = 0
        self._sizes: list[int] = []
        for name, code, shape, nbytes in tensors:
            header[name] = {
                "dtype": code,
                "shape": list(shape),
                "data_offsets": [offset, offset + nbytes],
            }
            offset += nbytes
            self._sizes.append(nbytes)
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # keep the data section 8-byte aligned
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        self._out = out
        self.total = offset

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._out.write(data)


def iter_shards(folder: Path) -> Iterator[Path]:
    """The .safetensors files of a (possibly sharded) Hugging Face folder, in order."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (KeyError, json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            raise UnsupportedInput(f"{index} is not a valid safetensors index ({exc})") from None
        if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
        ):
            raise UnsupportedInput(f"{index}: weight_map must map tensor names to file names")
        seen: list[str] = []
        for shard in weight_map.values():
            if shard not in seen:
                seen.append(shard)
        for shard in sorted(seen):
            path = folder / shard
            if path.parent != folder or not path.exists():
                raise UnsupportedInput(f"{index} names a missing or outside shard {shard!r}")
            yield path
        return
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UnsupportedInput(f"{folder} contains no .safetensors file")
    yield from files
