"""A streaming reader and writer of the safetensors file format.

The reader hands out each tensor's bytes as a :class:`FileRange` that reads the slices
asked of it with ``pread`` (not a memory map: a file truncated while it is read, by a
trainer rewriting its checkpoint or a sync tool, is then a clear error, not SIGBUS), so
a checkpoint larger than memory is read chunk by chunk. The header is validated as
strictly as the safetensors library does (``_parse``). The writer takes the header
first and then the tensor bytes in order, in pieces, so it never holds a whole model.
Format: 8-byte little-endian header length N, N bytes of JSON header, then the data
section; each header entry has ``dtype``, ``shape`` and ``data_offsets`` [begin, end)
relative to the data section; the optional ``__metadata__`` maps strings to strings.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..dtypes import DType, by_safetensors
from ..errors import UnsupportedInput

__all__ = [
    "SafetensorsEntry",
    "SafetensorsFile",
    "SafetensorsWriter",
    "FileRange",
    "MAX_HEADER",
    "looks_like_safetensors",
]

MAX_HEADER = 100 * 1024 * 1024
MAX_DIM = 2**63 - 1  # a dimension must fit in a signed 64-bit integer


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
        header = _load_header(self._file.read(hlen), self._bad)
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
        ):
            raise self._bad("__metadata__ must map strings to strings")
        self.metadata: dict[str, str] = dict(meta)
        data_start = 8 + hlen
        entries = [self._entry(name, info, data_start) for name, info in header.items()]
        entries.sort(key=lambda e: (e.begin, e.end))
        at = data_start  # the data section is the tensors' bytes, back to back
        for e in entries:
            if e.begin != at:
                raise self._bad(f"entry {e.name!r}: data offsets overlap or leave a gap")
            at = e.end
        if at != size:
            raise self._bad(f"the tensors end at byte {at}, the file at byte {size}")
        self.entries: list[SafetensorsEntry] = entries
        self._fd = self._file.fileno()

    def _entry(self, name: str, info: object, data_start: int) -> SafetensorsEntry:
        if not isinstance(info, dict):
            raise self._bad(f"entry {name!r} is not an object")
        try:
            code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        except KeyError as exc:
            raise self._bad(f"entry {name!r} has no {exc.args[0]!r}") from None
        if not isinstance(code, str):
            raise self._bad(f"entry {name!r}: dtype must be a string")
        dtype = by_safetensors(code)
        if not isinstance(shape, list) or not all(_is_int(s) for s in shape):
            raise self._bad(f"entry {name!r}: shape must be a list of integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))):
            raise self._bad(f"entry {name!r}: data_offsets must be two integers")
        count = 1
        for s in shape:
            if not 0 <= s <= MAX_DIM:
                raise self._bad(f"entry {name!r}: dimension {s} is out of range")
            count *= s
        begin, end = offsets
        if begin < 0 or end < begin or end - begin != count * dtype.size:
            raise self._bad(f"entry {name!r}: offsets do not match dtype and shape")
        if math.prod(s for s in shape if s) > MAX_DIM:  # torch's strides must fit too
            raise self._bad(f"entry {name!r}: shape {shape} overflows 64-bit sizes")
        return SafetensorsEntry(name, dtype, tuple(shape), data_start + begin, data_start + end)

    def view(self, entry: SafetensorsEntry) -> FileRange:
        """The bytes of one tensor, read on demand (slice it; ``[:]`` reads them all)."""
        return FileRange(self, entry.begin, entry.nbytes, entry.name)

    def read(self, offset: int, length: int, name: str) -> memoryview:
        """``length`` bytes at ``offset``; UnsupportedInput if the file has shrunk."""
        if length == 0:
            return memoryview(b"")
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        buf = bytearray(length)
        got = os.preadv(self._fd, [buf], offset)
        if got != length:
            raise UnsupportedInput(
                f"{self.path} changed while it was read: tensor {name!r} is cut short "
                "(was the file rewritten during the add?); nothing was stored"
            )
        return memoryview(buf)

    def close(self) -> None:
        self._fd = None
        self._file.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileRange:
    """A tensor's bytes in a safetensors file: ``len()`` and slices (``[a:b]`` reads
    those bytes with one pread into a buffer of their own; a step is not allowed)."""

    __slots__ = ("_file", "_offset", "_length", "_name")

    def __init__(self, file: SafetensorsFile, offset: int, length: int, name: str) -> None:
        self._file, self._offset, self._length, self._name = file, offset, length, name

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, key: slice) -> memoryview:
        if not isinstance(key, slice):
            raise TypeError("a FileRange is read by slices")
        start, stop, step = key.indices(self._length)
        if step != 1:
            raise ValueError("a FileRange is read by contiguous slices")
        return self._file.read(self._offset + start, max(0, stop - start), self._name)


def looks_like_safetensors(path: str | os.PathLike[str]) -> bool:
    """Whether a file starts as a safetensors file does (a header length that fits the
    file, then a JSON object), whatever its name: a quick sniff, not a validation."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (hlen,) = struct.unpack("<Q", head[:8])
    return 2 <= hlen <= MAX_HEADER and 8 + hlen <= size and head[8:9] == b"{"


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _load_header(raw: bytes, bad: Callable[[str], UnsupportedInput]) -> dict:
    """The JSON header, as strictly as the safetensors library reads it: UTF-8, names
    and metadata without lone surrogates, no duplicate keys, no NaN/Infinity (nesting
    too deep for the parser is refused too; the entries' structure is checked by
    ``SafetensorsFile._entry``)."""

    def pairs(items: list[tuple[str, object]]) -> dict:
        out: dict = {}
        for k, v in items:
            if k in out:
                raise bad(f"key {k!r} appears twice in the header")
            out[k] = v
        return out

    def constant(name: str) -> object:
        raise bad(f"the header holds {name}, which JSON does not allow")

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except UnicodeDecodeError as exc:
        raise bad(f"header is not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise bad(f"header is not JSON ({exc})") from None
    except RecursionError:
        raise bad("the header nests too deep") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    meta = header.get("__metadata__")
    texts = list(header) + (list(meta.items()) if isinstance(meta, dict) else [])
    for text in texts:
        for part in text if isinstance(text, tuple) else (text,):
            if isinstance(part, str) and not _utf8(part):
                raise bad(f"the header holds a lone surrogate in {part!r}")
    return header


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
