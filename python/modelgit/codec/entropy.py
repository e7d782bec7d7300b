"""The entropy stage (zstandard, and the core's order-0 rANS, runs and Huffman coders)
and bounds-checked payload sections."""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

import zstandard

from .._native import _core
from ..errors import CorruptObject
from ..scratch import scratch

__all__ = [
    "ZSTD_LEVEL",
    "METHOD_RAW",
    "METHOD_ZSTD",
    "METHOD_RANS",
    "METHOD_RUNS",
    "METHOD_HUFF",
    "zstd_or_none",
    "zstd_decompress",
    "Sections",
    "section",
]

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
# rANS codes order-0 material (exponent planes) within a hair of its entropy, where
# zstd's Huffman literals lose 1-3%; with SSE4.1 it codes and decodes at about zstd's
# speeds (bench/bench_entropy.py). Where the two are within 1%, zstd is kept (it
# decodes a little faster); either must be 3% smaller than the raw data, which costs
# nothing to decode.
RANS_OVER_ZSTD = 0.99
# rANS decodes about 1 byte per ns whatever the data; zstd decodes sparse planes (the high
# bytes of a fine-tune's delta) ten times faster and dense ones two to three times: rANS
# must also save this share of the plane's raw bytes over zstd, or zstd is kept.
RANS_MIN_SAVING = 0.004
_RANS_MIN = 256  # below this the frequency table outweighs any gain
# A runs section (one value's runs and the other bytes, csrc/core/runs.hpp) decodes a
# plane that one value dominates (the high planes of a fine-tune's residual) 5-8 times
# faster than rANS and about twice as fast as zstd, at about rANS's size: smaller where
# the other bytes cluster, a little larger (its two frequency tables) where they do not
# (bench/bench_runs.py). It is kept when it is at most RUNS_SLACK larger than the
# smallest of the others, plus RUNS_MAX_COST of the plane's raw bytes: it saves about
# 0.5 ns of decoding per raw byte, and 0.1% of the bytes takes far less to read.
RUNS_SLACK = 0.01
RUNS_MAX_COST = 0.001
# A Huffman section (codes of at most 11 bits in four streams, csrc/core/huff.hpp)
# decodes about 1.7 times as fast as rANS, at 1.4-2.1% more bytes on the exponent
# planes of float weights (0.3% of a float32 model, 0.7% of a bfloat16 one); zstd's
# frame of such a plane (Huffman-coded literals) decodes about as fast and is about as
# large. The smaller of the two takes rANS's place where it is at most this much larger.
HUFF_SLACK = 0.03
_SAMPLE_RANS_RATIO = 0.98

_local = threading.local()
_SECTION = struct.Struct("<BI")
# section methods (docs/FORMAT.md section 3): not the codec ids of codec/__init__.py
METHOD_RAW, METHOD_ZSTD, METHOD_RANS, METHOD_RUNS, METHOD_HUFF = 0, 1, 2, 3, 4


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


def _sample(data: memoryview) -> bytes:
    """_SAMPLE bytes from four places of ``data`` (longer than _SAMPLE)."""
    step = len(data) // 4
    return b"".join(bytes(data[i * step : i * step + _SAMPLE // 4]) for i in range(4))


def zstd_or_none(
    data: memoryview | bytes, matches: bool = False, sample_frame: int | None = None
) -> bytes | None:
    """A zstd frame of ``data`` if it saves at least 3%, else None (store raw).

    ``matches``: when the fast frame saves that much, also try ``MATCH_LEVEL`` and keep
    the smaller frame. ``sample_frame``: the fast frame size of ``_sample(data)`` when
    the caller has it already."""
    data = memoryview(data)
    n = len(data)
    if n == 0:
        return None
    cctx = _cctx()
    if n > 2 * _SAMPLE:  # try a sample first: incompressible planes are common
        if sample_frame is None:
            sample_frame = len(cctx.compress(_sample(data)))
        if sample_frame > MAX_FRAME_RATIO * _SAMPLE:
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
    """One section: u8 method (0 raw, 1 zstd, 2 rANS, 3 runs, 4 Huffman), u32 stored
    length, the bytes.

    The smallest of raw, zstd and rANS, where rANS must beat zstd by 1% and by 0.4% of
    the raw bytes, and either must beat raw by 3% (decode speed); then a runs section
    instead where one value dominates the bytes and it is at most RUNS_SLACK (plus
    RUNS_MAX_COST of the bytes) larger (it decodes several times faster than either),
    else, in place of rANS, the smaller of a Huffman section and the zstd frame where
    it is at most HUFF_SLACK larger (both decode about 1.7 times as fast).
    rANS's and Huffman's sizes are known from histograms before coding; zstd's
    whole-plane frame is only computed when a sample says that it may win (it finds
    matches: runs of zeros in deltas, repeated rows) or rANS does not apply."""
    data = memoryview(data)
    n = len(data)
    raw_limit = int(MAX_FRAME_RATIO * n)
    sample_frame = None
    est = n
    if n > 2 * _SAMPLE:
        sample = _sample(data)
        sample_frame = len(_cctx().compress(sample))
        # zstd cannot shrink the sample: nor will rANS, by 3% (Huffman gets near order-0)
        if sample_frame > RANS_OVER_ZSTD * _SAMPLE:
            return _packed(METHOD_RAW, data)
        # the whole plane's histogram only where the sample's says rANS may reach 3%
        # (the sample's stream carries ~0.5% of table and states that the plane's won't)
        if _core.rans_estimate(sample) <= _SAMPLE_RANS_RATIO * _SAMPLE:
            est = _core.rans_estimate(data)
    elif n >= _RANS_MIN:
        est = _core.rans_estimate(data)
    runs = _core.runs_encode(data, max_size=raw_limit) if n >= _RANS_MIN else None
    if sample_frame is not None and est <= raw_limit:
        zstd_est = sample_frame * n / _SAMPLE
        if runs is not None and _runs_fit(runs, min(est, zstd_est), n):
            return _packed(METHOD_RUNS, runs)
        if zstd_est - est >= max((1 - RANS_OVER_ZSTD) * zstd_est, RANS_MIN_SAVING * n):
            fast = _fast_instead(
                data, est, raw_limit, lambda: zstd_or_none(data, matches, sample_frame), zstd_est
            )
            if fast is not None:
                return fast
            stream = _core.rans_encode(data, max_size=raw_limit)
            if stream is not None:
                return _or_fast(data, runs, METHOD_RANS, stream)
    frame = zstd_or_none(data, matches, sample_frame)
    if frame is None:
        limit = raw_limit
    else:
        limit = int(min(RANS_OVER_ZSTD * len(frame), len(frame) - RANS_MIN_SAVING * n))
    stream = None
    if n >= _RANS_MIN and est <= limit:
        if runs is not None and _runs_fit(runs, est, n):
            return _packed(METHOD_RUNS, runs)
        fast = _fast_instead(data, est, raw_limit, lambda: frame)
        if fast is not None:
            return fast
        stream = _core.rans_encode(data, max_size=limit)
    if stream is not None:
        return _or_fast(data, runs, METHOD_RANS, stream)
    if frame is None:
        return _or_fast(data, runs, METHOD_RAW, data)
    return _or_fast(data, runs, METHOD_ZSTD, frame)


def _fast_instead(
    data: memoryview,
    rans_size: float,
    raw_limit: int,
    frame: Callable[[], bytes | None],
    frame_estimate: float | None = None,
) -> list[bytes | memoryview] | None:
    """In place of rANS (of estimated ``rans_size``), the smaller of a Huffman section and
    the zstd frame (``frame()``, computed only when needed: ``frame_estimate`` from a
    sample first) where that is at most HUFF_SLACK larger and under ``raw_limit``: both
    decode dense planes about 1.7 times as fast as rANS. None to keep rANS. The Huffman
    coder knows its size from histograms and codes nothing over the limit."""
    limit = max(0, int(min((1 + HUFF_SLACK) * rans_size, raw_limit)))  # (< 0: no limit)
    huff = _core.huff_encode(data, max_size=limit)
    if huff is None:
        return None
    if frame_estimate is None or frame_estimate < len(huff):
        z = frame()
        if z is not None and len(z) < len(huff):
            return _packed(METHOD_ZSTD, z)
    return _packed(METHOD_HUFF, huff)


def _or_fast(
    data: memoryview, runs: bytes | None, method: int, body: bytes | memoryview
) -> list[bytes | memoryview]:
    """The section of ``data`` to keep against ``body`` of ``method``: the runs section
    where it fits (``_runs_fit``), else ``body``."""
    if runs is not None and _runs_fit(runs, len(body), len(data)):
        return _packed(METHOD_RUNS, runs)
    return _packed(method, body)


def _packed(method: int, body: bytes | memoryview) -> list[bytes | memoryview]:
    """A section: its header (method, stored length) and its body."""
    return [_SECTION.pack(method, len(body)), body]


def _runs_fit(runs: bytes, other: float, n: int) -> bool:
    """Whether a runs section of a plane of ``n`` bytes is kept against another of
    ``other`` bytes."""
    return len(runs) <= (1 + RUNS_SLACK) * other + RUNS_MAX_COST * n


# section method -> the name of the core's decoder of it (looked up on _core at each
# call, so that tests may stand in for the core)
_NATIVE_DECODERS = {
    METHOD_RANS: "rans_decode",
    METHOD_RUNS: "runs_decode",
    METHOD_HUFF: "huff_decode",
}


def _native_decode(
    method: int,
    stream: memoryview | bytes,
    size: int,
    where: str,
    out: memoryview | None = None,
) -> bytearray | memoryview:
    """Decode one rANS, runs or Huffman section body that must yield exactly ``size``
    bytes (into ``out``); CorruptObject names what is wrong with an invalid one."""
    try:
        return getattr(_core, _NATIVE_DECODERS[method])(stream, size, out=out)
    except ValueError as exc:
        raise CorruptObject(f"{where}: {exc}") from None


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

    def section(
        self, size: int, scratch: memoryview | None = None
    ) -> bytes | bytearray | memoryview:
        """The next section, which must decode to exactly ``size`` bytes (a rANS, runs or
        Huffman one into ``scratch`` when given: ``size`` writable bytes)."""
        method, length = self.unpack(_SECTION)
        body = self._take(length)
        if method == METHOD_RAW:
            if length != size:
                raise CorruptObject(f"{self.where}: raw section has the wrong length")
            return body
        if method == METHOD_ZSTD:
            return zstd_decompress(body, size, self.where)
        if method in _NATIVE_DECODERS:
            return _native_decode(method, body, size, self.where, scratch)
        raise CorruptObject(f"{self.where}: unknown section method {method}")

    def parts(
        self, count: int, size: int, buffer: str = "planes-decode"
    ) -> list[bytes | bytearray | memoryview]:
        """The next ``count`` sections of ``size`` bytes each, as they are: raw ones as
        views of the payload, zstd ones decoded (no staging copy), rANS, runs and Huffman
        ones decoded into this thread's scratch buffer ``buffer`` (valid until the
        thread's next call for it)."""
        buf = memoryview(scratch(buffer, count * size))
        return [self.section(size, buf[i * size : (i + 1) * size]) for i in range(count)]

    def sections_into(self, out: memoryview, count: int) -> None:
        """The next ``count`` sections, each len(out) // count bytes, decoded into ``out``."""
        size = len(out) // count
        for i in range(count):
            out[i * size : (i + 1) * size] = self.section(size)

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise CorruptObject(f"{self.where}: trailing bytes after the payload")
