"""The entropy stage (zstandard) and bounds-checked payload sections."""

from __future__ import annotations

import struct
import threading

import zstandard

from ..errors import CorruptObject

__all__ = ["ZSTD_LEVEL", "zstd_or_none", "zstd_decompress", "Sections", "section"]

ZSTD_LEVEL = 3
# Byte planes are mostly order-0 material (exponents, residual bytes): a fast strategy
# with long minimum matches codes them smaller *and* several times faster than level 3.
PLANE_PARAMS = zstandard.ZstdCompressionParameters(
    strategy=zstandard.STRATEGY_FAST,
    min_match=7,
    hash_log=6,
    chain_log=6,
    search_log=1,
    window_log=20,
)
# Low byte planes of a standalone chunk that do compress (structured values: embeddings,
# low-precision weights) hold real matches, which a match-finding level codes smaller;
# tried only on those planes, and kept only when smaller.
MATCH_LEVEL = 5
_SAMPLE = 64 * 1024
MAX_FRAME_RATIO = 0.97  # data that zstd shrinks by less than 3% is stored raw

_local = threading.local()
_SECTION = struct.Struct("<BI")
RAW, ZSTD = 0, 1


def _cctx() -> zstandard.ZstdCompressor:
    c = getattr(_local, "cctx", None)
    if c is None:
        c = _local.cctx = zstandard.ZstdCompressor(compression_params=PLANE_PARAMS)
    return c


def _dctx() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "dctx", None)
    if d is None:
        d = _local.dctx = zstandard.ZstdDecompressor()
    return d


def _cmatch() -> zstandard.ZstdCompressor:
    c = getattr(_local, "cmatch", None)
    if c is None:
        c = _local.cmatch = zstandard.ZstdCompressor(level=MATCH_LEVEL)
    return c


def zstd_or_none(data: memoryview | bytes, matches: bool = False) -> bytes | None:
    """A zstd frame of ``data`` if it saves at least 3%, else None (store raw).

    ``matches``: when the fast frame saves that much, also try ``MATCH_LEVEL`` and keep
    the smaller frame."""
    data = memoryview(data)
    n = len(data)
    if n == 0:
        return None
    cctx = _cctx()
    if n > 4 * _SAMPLE:  # try a sample first: incompressible planes are common
        step = n // 4
        sample = b"".join(bytes(data[i * step : i * step + _SAMPLE // 4]) for i in range(4))
        if len(cctx.compress(sample)) > MAX_FRAME_RATIO * len(sample):
            return None
    frame = cctx.compress(data)
    if len(frame) > MAX_FRAME_RATIO * n:
        return None
    if matches:
        alt = _cmatch().compress(data)
        if len(alt) < len(frame):
            frame = alt
    return frame


def zstd_decompress(frame: memoryview | bytes, size: int, where: str) -> bytes:
    """Decode one frame that must yield exactly ``size`` bytes."""
    if size == 0:
        if len(frame):
            raise CorruptObject(f"{where}: data where none was expected")
        return b""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise CorruptObject(f"{where}: not a zstd frame ({exc})") from None
    if declared not in (-1, size):  # never trust a header to size an allocation
        raise CorruptObject(f"{where}: zstd frame declares {declared} bytes, expected {size}")
    try:
        out = _dctx().decompress(frame, max_output_size=size)
    except (zstandard.ZstdError, MemoryError) as exc:
        raise CorruptObject(f"{where}: zstd frame cannot be decoded ({exc!r})") from None
    if len(out) != size:
        raise CorruptObject(f"{where}: zstd frame decodes to {len(out)} bytes, expected {size}")
    return out


def section(data: memoryview | bytes, matches: bool = False) -> list[bytes | memoryview]:
    """One section: u8 method (0 raw, 1 zstd), u32 stored length, the bytes."""
    frame = zstd_or_none(data, matches)
    if frame is None:
        return [_SECTION.pack(RAW, len(data)), data]
    return [_SECTION.pack(ZSTD, len(frame)), frame]


class Sections:
    """Reads sections and fixed fields from a payload, checking every bound."""

    def __init__(self, payload: memoryview, where: str) -> None:
        self.buf = payload
        self.pos = 0
        self.where = where

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise CorruptObject(f"{self.where}: payload is truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self._take(fmt.size))

    def section(self, size: int) -> bytes | memoryview:
        """The next section, which must decode to exactly ``size`` bytes."""
        method, length = self.unpack(_SECTION)
        body = self._take(length)
        if method == RAW:
            if length != size:
                raise CorruptObject(f"{self.where}: raw section has the wrong length")
            return body
        if method == ZSTD:
            return zstd_decompress(body, size, self.where)
        raise CorruptObject(f"{self.where}: unknown section method {method}")

    def parts(self, count: int, size: int) -> list[bytes | memoryview]:
        """The next ``count`` sections of ``size`` bytes each, as they are: raw ones as
        views of the payload, zstd ones decoded (no staging copy)."""
        return [self.section(size) for _ in range(count)]

    def sections_into(self, out: memoryview, count: int) -> None:
        """The next ``count`` sections, each len(out) // count bytes, decoded into ``out``."""
        size = len(out) // count
        for i in range(count):
            out[i * size : (i + 1) * size] = self.section(size)

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise CorruptObject(f"{self.where}: trailing bytes after the payload")
