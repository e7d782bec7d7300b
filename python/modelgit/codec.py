"""Chunk codecs: how the bytes of one chunk become a record payload and back.

Each codec has an id (stored in the record header) and binary parameters (stored in
the record). See docs/FORMAT.md, "Codecs". Python chooses; the native core transforms;
zstandard is the entropy stage.

* ``RAW`` (0): the bytes as they are.
* ``ZSTD`` (1): one zstd frame.
* ``PLANES`` (2): optional delta against a base chunk (XOR or integer difference of the
  bit patterns), optional 1-bit rotation (floats: sign to bit 0, exponent byte-aligned),
  split into byte planes, and each plane stored raw or as a zstd frame, whichever is
  smaller.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

import zstandard

from ._native import _core
from .errors import CorruptObject

__all__ = [
    "RAW",
    "ZSTD",
    "PLANES",
    "ZERO_ID",
    "Encoded",
    "encode_standalone",
    "encode_planes",
    "decode_into",
    "codec_name",
    "base_of",
]

RAW, ZSTD, PLANES = 0, 1, 2
_NAMES = {RAW: "raw", ZSTD: "zstd", PLANES: "planes"}
ZERO_ID = bytes(16)
PLANES_PARAMS = struct.Struct("<BBBB16s")
PLANE_HEAD = struct.Struct("<BI")
PLANE_RAW, PLANE_ZSTD = 0, 1
ZSTD_LEVEL = 3
_SAMPLE = 64 * 1024
_MAX_FRAME_RATIO = 0.97  # a plane that zstd shrinks by less than 3% is stored raw

_local = threading.local()


def _cctx() -> zstandard.ZstdCompressor:
    c = getattr(_local, "cctx", None)
    if c is None:
        c = _local.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _dctx() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "dctx", None)
    if d is None:
        d = _local.dctx = zstandard.ZstdDecompressor()
    return d


def codec_name(codec: int) -> str:
    return _NAMES.get(codec, f"codec-{codec}")


@dataclass(frozen=True)
class Encoded:
    codec: int
    params: bytes
    payload: bytes | memoryview
    base: bytes | None = None  # chunk id of the base, for delta codecs


def _zstd_or_none(data: memoryview) -> bytes | None:
    """zstd frame of data if it saves at least 3%, else None (raw is better)."""
    n = len(data)
    if n == 0:
        return None
    cctx = _cctx()
    if n > 4 * _SAMPLE:  # look at a sample first: incompressible planes are common
        step = n // 4
        sample = b"".join(bytes(data[i * step : i * step + _SAMPLE // 4]) for i in range(4))
        if len(cctx.compress(sample)) > _MAX_FRAME_RATIO * len(sample):
            return None
    frame = cctx.compress(data)
    return frame if len(frame) <= _MAX_FRAME_RATIO * n else None


def encode_standalone(data: memoryview, elem_size: int, is_float: bool) -> Encoded:
    """Best of raw / zstd / byte planes for a chunk with no base."""
    if elem_size > 1:
        enc = encode_planes(data, elem_size, rotate=is_float)
        if len(enc.payload) < len(data):
            return enc
        return Encoded(RAW, b"", data)
    frame = _zstd_or_none(data)
    if frame is not None:
        return Encoded(ZSTD, b"", frame)
    return Encoded(RAW, b"", data)


def encode_planes(
    data: memoryview,
    elem_size: int,
    rotate: bool,
    base: memoryview | None = None,
    base_id: bytes | None = None,
    delta: int = 0,
) -> Encoded:
    """Byte-plane coding, as a delta against ``base`` when ``delta`` is XOR or SUB."""
    planes = memoryview(_core.planes_encode(data, elem_size, base=base, delta=delta, rotate=rotate))
    m = len(data) // elem_size
    parts: list[bytes | memoryview] = []
    for p in range(elem_size):
        plane = planes[p * m : (p + 1) * m]
        frame = _zstd_or_none(plane)
        if frame is None:
            parts += [PLANE_HEAD.pack(PLANE_RAW, m), plane]
        else:
            parts += [PLANE_HEAD.pack(PLANE_ZSTD, len(frame)), frame]
    params = PLANES_PARAMS.pack(elem_size, delta, int(rotate), 0, base_id or ZERO_ID)
    return Encoded(PLANES, params, b"".join(parts), base_id if delta else None)


def base_of(codec: int, params: bytes) -> bytes | None:
    """The base chunk id a record depends on, or None."""
    if codec == PLANES and len(params) == PLANES_PARAMS.size:
        _, delta, _, _, base_id = PLANES_PARAMS.unpack(params)
        return base_id if delta else None
    return None


def _zstd_decompress(frame: memoryview, size: int, where: str) -> bytes:
    try:
        out = _dctx().decompress(frame, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise CorruptObject(f"{where}: zstd frame cannot be decoded ({exc})") from None
    if len(out) != size:
        raise CorruptObject(f"{where}: zstd frame decodes to {len(out)} bytes, expected {size}")
    return out


def decode_into(
    codec: int,
    params: bytes,
    payload: memoryview,
    out: memoryview,
    get_base: Callable[[bytes], memoryview],
    where: str = "chunk",
) -> None:
    """Decode a payload into ``out`` (exactly the chunk's raw length)."""
    n = len(out)
    if codec == RAW:
        if len(payload) != n:
            raise CorruptObject(f"{where}: raw payload has {len(payload)} bytes, expected {n}")
        out[:] = payload
    elif codec == ZSTD:
        out[:] = _zstd_decompress(payload, n, where)
    elif codec == PLANES:
        if len(params) != PLANES_PARAMS.size:
            raise CorruptObject(f"{where}: bad planes parameters")
        elem_size, delta, rotate, _, base_id = PLANES_PARAMS.unpack(params)
        if elem_size not in (1, 2, 4, 8) or n % elem_size or delta > 2 or rotate > 1:
            raise CorruptObject(f"{where}: bad planes parameters")
        m = n // elem_size
        pieces: list[bytes | memoryview] = []
        pos = 0
        for _ in range(elem_size):
            if pos + PLANE_HEAD.size > len(payload):
                raise CorruptObject(f"{where}: planes payload is truncated")
            method, length = PLANE_HEAD.unpack_from(payload, pos)
            pos += PLANE_HEAD.size
            if pos + length > len(payload):
                raise CorruptObject(f"{where}: planes payload is truncated")
            body = payload[pos : pos + length]
            pos += length
            if method == PLANE_RAW:
                if length != m:
                    raise CorruptObject(f"{where}: raw plane has the wrong length")
                pieces.append(body)
            elif method == PLANE_ZSTD:
                pieces.append(_zstd_decompress(body, m, where))
            else:
                raise CorruptObject(f"{where}: unknown plane method {method}")
        if pos != len(payload):
            raise CorruptObject(f"{where}: trailing bytes after the planes")
        base = get_base(base_id) if delta else None
        if base is not None and len(base) != n:
            raise CorruptObject(f"{where}: base chunk has {len(base)} bytes, expected {n}")
        _core.planes_decode(
            b"".join(pieces), elem_size, base=base, delta=delta, rotate=bool(rotate), out=out
        )
    else:
        raise CorruptObject(f"{where}: unknown codec id {codec}")
