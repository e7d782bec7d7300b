"""Lossless codecs: raw (0), zstd (1), planes (2) and predicted (3).

``planes`` cuts a chunk into byte planes (optionally as a delta against one base chunk of
the same dtype) and codes each plane as a section; ``predicted`` codes the residual
against a prediction from base chunks (a cast, a mean; ``predict``), with an optional
zero mask. docs/FORMAT.md sections 3.1-3.3 define them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .._native import _core
from ..dtypes import DType, by_code
from ..errors import CorruptObject
from ..scratch import scratch
from .entropy import Sections, section, zstd_decompress, zstd_or_none
from .ids import PLANES, PREDICTED, RAW, ZSTD
from .predict import IDENT, LINEAR_PREDICTORS, predict

__all__ = [
    "ZERO_ID",
    "Encoded",
    "GetBase",
    "Bases",
    "FromCallable",
    "encode_standalone",
    "encode_planes",
    "encode_predicted",
    "PlanesParts",
    "planes_parts",
    "BasePlanes",
    "standalone_planes",
    "decode_raw",
    "decode_zstd",
    "decode_planes",
    "decode_predicted",
    "planes_bases",
    "predicted_bases",
]

ZERO_ID = bytes(16)
PLANES_PARAMS = struct.Struct("<BBBB16s")  # elem size, delta mode, rotate, 0, base id
PRED_PARAMS = struct.Struct("<BBBBBBBB")  # predictor, dtype, base dtype, delta, rotate,
#                                           nbases, flags (bit 0: zero mask), 0; then the
#                                           base ids, then (linear predictors) k float64
FLAG_MASK = 1


@dataclass(frozen=True)
class Encoded:
    """A chunk's record payload and what it needs: codec id, parameters, the chunk ids
    of its bases."""

    codec: int
    params: bytes
    payload: bytes | memoryview
    bases: tuple[bytes, ...] = ()  # chunk ids this record needs to decode


def _plane_sections(
    planes: memoryview, elem_size: int, m: int, matches: bool = False
) -> list[bytes | memoryview]:
    """The E plane sections; ``matches``: also try a match-finding zstd level on the
    planes after the first that compress (standalone chunks only: cheap there, since
    few low planes of a standalone chunk compress at all)."""
    parts: list[bytes | memoryview] = []
    for p in range(elem_size):
        parts += section(planes[p * m : (p + 1) * m], matches and p > 0)
    return parts


def encode_standalone(
    data: memoryview, elem_size: int, is_float: bool, matches: bool = True
) -> Encoded:
    """Best of raw / zstd / byte planes for a chunk with no base; ``matches``: also try
    the match-finding zstd level on the planes that compress (``_plane_sections``)."""
    if elem_size > 1:
        enc = encode_planes(data, elem_size, rotate=is_float, matches=matches)
        if len(enc.payload) < len(data):
            return enc
        return Encoded(RAW, b"", data)
    frame = zstd_or_none(data)
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
    matches: bool = True,
) -> Encoded:
    """Byte-plane coding, as a delta against ``base`` when ``delta`` is XOR or SUB
    (``matches``: as in :func:`encode_standalone`, without a delta only)."""
    # a per-thread buffer: the sections are joined (copied) before the thread's next use
    planes = memoryview(scratch("planes-encode", len(data)))[: len(data)]
    _core.planes_encode(data, elem_size, base=base, delta=delta, rotate=rotate, out=planes)
    m = len(data) // elem_size
    payload = b"".join(_plane_sections(planes, elem_size, m, matches and not delta))
    params = PLANES_PARAMS.pack(elem_size, delta, int(rotate), 0, base_id or ZERO_ID)
    return Encoded(PLANES, params, payload, (base_id,) if delta and base_id else ())


def encode_predicted(
    data: memoryview,
    dtype: DType,
    predictor: int,
    bases: list[memoryview],
    base_ids: list[bytes],
    base_dtype: DType,
    delta: int,
    use_mask: bool = False,
    coeffs: Sequence[float] = (),
    pred: memoryview | None = None,
) -> Encoded:
    """A residual against a prediction (cast, mean, linear with ``coeffs``), with an
    optional zero mask; ``pred``: the prediction when the caller has computed it.

    Floats are coded with rotation unless ``delta`` is OSUB (which orders them itself)."""
    n = len(data) // dtype.size
    if pred is None:
        pred = predict(predictor, bases, base_dtype, dtype, n, coeffs=coeffs)
    parts: list[bytes | memoryview] = []
    flags = 0
    if use_mask:  # the mask's bits, and the prediction zeroed where the chunk is zero
        bits, masked = _core.zero_mask(data, pred, dtype.size)
        pred = memoryview(masked)
        parts += section(bits)
        flags |= FLAG_MASK
    rotate = dtype.is_float and delta != _core.DELTA_OSUB
    planes = memoryview(scratch("planes-encode", len(data)))[: len(data)]  # as above
    _core.planes_encode(data, dtype.size, base=pred, delta=delta, rotate=rotate, out=planes)
    parts += _plane_sections(planes, dtype.size, n)
    params = PRED_PARAMS.pack(
        predictor, dtype.code, base_dtype.code, delta, int(rotate), len(base_ids), flags, 0
    ) + b"".join(base_ids)
    if predictor in LINEAR_PREDICTORS:
        params += struct.pack(f"<{len(base_ids)}d", *coeffs)
    return Encoded(PREDICTED, params, b"".join(parts), tuple(base_ids))


GetBase = Callable[[bytes], memoryview]


class Bases(Protocol):
    """Where a decoder finds the decoded base chunks it needs.

    Optionally also ``planes(cid, n, elem_size) -> BasePlanes | None``: base ``cid`` as
    the byte planes it is stored as, when it is a standalone planes record of ``n``
    bytes in words of ``elem_size`` that is not at hand decoded; else None. A decoder
    asks it first where a Bases has it, then transforms base and residual in one pass
    (else it uses :meth:`into`); the planes need only stay valid until its next call
    of this Bases' methods."""

    def get(self, cid: bytes, slot: int = 0) -> memoryview:
        """The decoded bytes of base ``cid`` (read only; valid until this decode ends;
        ``slot`` tells apart the bases one record needs at once)."""
        ...

    def into(self, cid: bytes, out: memoryview) -> None:
        """Write the decoded bytes of base ``cid`` into ``out`` (CorruptObject if the
        base is not ``len(out)`` bytes long)."""
        ...


class FromCallable:
    """:class:`Bases` over a plain ``get_base(cid) -> bytes`` function."""

    def __init__(self, get_base: GetBase) -> None:
        self.get_base = get_base

    def get(self, cid: bytes, slot: int = 0) -> memoryview:
        return memoryview(self.get_base(cid))

    def into(self, cid: bytes, out: memoryview) -> None:
        base = self.get_base(cid)
        if len(base) != len(out):
            raise CorruptObject(f"base chunk has {len(base)} bytes, expected {len(out)}")
        out[:] = base

    def planes(self, cid: bytes, n: int, elem_size: int) -> BasePlanes | None:
        return None


@dataclass(frozen=True)
class PlanesParts:
    """A planes record after its entropy stage: what the transform still has to undo."""

    elem_size: int
    delta: int
    rotate: bool
    base_id: bytes | None
    planes: bytearray | memoryview


@dataclass(frozen=True)
class BasePlanes:
    """A standalone planes record after its entropy stage (``Bases.planes``)."""

    rotate: bool
    parts: list[bytes | bytearray | memoryview]


def standalone_planes(
    params: bytes, payload: memoryview, n: int, elem_size: int, where: str
) -> BasePlanes | None:
    """The planes of a planes (id 2) record without delta, for a chunk of n bytes in
    words of ``elem_size`` (rANS sections decoded into this thread's scratch buffer
    "planes-base"); None when the record is a delta or has other words."""
    if elem_size not in (1, 2, 4, 8):
        raise ValueError(f"elem_size must be 1, 2, 4 or 8, not {elem_size}")
    if len(params) != PLANES_PARAMS.size:
        raise CorruptObject(f"{where}: bad planes parameters")
    size, delta, rotate, _, _ = PLANES_PARAMS.unpack(params)
    if delta or size != elem_size or n % elem_size or rotate > 1:
        return None
    r = Sections(payload, where)
    parts = r.parts(elem_size, n // elem_size, "planes-base")
    r.end()
    return BasePlanes(bool(rotate), parts)


def _residual_onto_base(
    base_id: bytes, bases: Bases, r: Sections, out: memoryview, elem_size: int, delta: int,
    rotate: bool,
) -> None:  # fmt: skip
    """The residual planes of ``r`` (the rest of the payload), by ``delta``, onto base
    ``base_id`` into ``out``: in one pass with the base's planes where the base is a
    standalone planes record (``Bases.planes``), else the base into ``out`` first and
    the residual applied in place."""
    m = len(out) // elem_size
    planes = getattr(bases, "planes", None)  # optional: a Bases written before it was
    base = planes(base_id, len(out), elem_size) if planes is not None else None
    if base is None:
        bases.into(base_id, out)
    parts = r.parts(elem_size, m)
    r.end()
    if base is None:
        _core.planes_apply_parts(parts, elem_size, delta, rotate, out=out, threads=1)
    else:
        _core.planes_decode_pair(
            base.parts, base.rotate, parts, elem_size, delta, rotate, out=out, threads=1
        )


def planes_parts(
    params: bytes, payload: memoryview, n: int, where: str, out: memoryview | None = None
) -> PlanesParts:
    """Parse and entropy-decode a planes (id 2) payload for a chunk of n bytes (into
    ``out``, n writable bytes, when given: e.g. pinned memory for a GPU upload)."""
    if len(params) != PLANES_PARAMS.size:
        raise CorruptObject(f"{where}: bad planes parameters")
    elem_size, delta, rotate, _, base_id = PLANES_PARAMS.unpack(params)
    if elem_size not in (1, 2, 4, 8) or n % elem_size or delta > 3 or rotate > 1:
        raise CorruptObject(f"{where}: bad planes parameters")
    r = Sections(payload, where)
    planes = bytearray(n) if out is None else out
    r.sections_into(memoryview(planes), elem_size)
    r.end()
    return PlanesParts(elem_size, delta, bool(rotate), base_id if delta else None, planes)


def decode_planes(
    params: bytes, payload: memoryview, out: memoryview, bases: Bases, where: str
) -> None:
    if len(params) != PLANES_PARAMS.size:
        raise CorruptObject(f"{where}: bad planes parameters")
    elem_size, delta, rotate, _, base_id = PLANES_PARAMS.unpack(params)
    n = len(out)
    if elem_size not in (1, 2, 4, 8) or n % elem_size or delta > 3 or rotate > 1:
        raise CorruptObject(f"{where}: bad planes parameters")
    r = Sections(payload, where)
    if delta:
        _residual_onto_base(base_id, bases, r, out, elem_size, delta, bool(rotate))
        return
    parts = r.parts(elem_size, n // elem_size)
    r.end()
    _core.planes_decode_parts(parts, elem_size, rotate=bool(rotate), out=out, threads=1)


def decode_predicted(
    params: bytes, payload: memoryview, out: memoryview, bases: Bases, where: str
) -> None:
    import numpy as np

    if len(params) < PRED_PARAMS.size:
        raise CorruptObject(f"{where}: bad predicted-codec parameters")
    predictor, dcode, bcode, delta, rotate, k, flags, _ = PRED_PARAMS.unpack_from(params)
    ncoef = k if predictor in LINEAR_PREDICTORS else 0
    if len(params) != PRED_PARAMS.size + 16 * k + 8 * ncoef or delta > 3:
        raise CorruptObject(f"{where}: bad predicted-codec parameters")
    if rotate > 1 or flags > 1:
        raise CorruptObject(f"{where}: bad predicted-codec parameters")
    coeffs = struct.unpack_from(f"<{ncoef}d", params, PRED_PARAMS.size + 16 * k)
    try:
        dtype, base_dtype = by_code(dcode), by_code(bcode)
    except ValueError as exc:
        raise CorruptObject(f"{where}: {exc}") from None
    if len(out) % dtype.size:
        raise CorruptObject(f"{where}: length is not a whole number of elements")
    n = len(out) // dtype.size
    ids = [params[8 + 16 * i : 24 + 16 * i] for i in range(k)]
    r = Sections(payload, where)
    if predictor == IDENT and k == 1 and base_dtype == dtype and delta and not flags:
        _residual_onto_base(ids[0], bases, r, out, dtype.size, delta, bool(rotate))
        return
    # the prediction goes straight into out (bases first: they may decode other chunks)
    try:
        if predictor == IDENT and k == 1 and base_dtype == dtype:
            bases.into(ids[0], out)
        else:
            views = [bases.get(b, slot) for slot, b in enumerate(ids)]
            predict(predictor, views, base_dtype, dtype, n, out=out, coeffs=coeffs)
    except ValueError as exc:
        raise CorruptObject(f"{where}: {exc}") from None
    if flags & FLAG_MASK:
        bits = np.frombuffer(r.section((n + 7) // 8), dtype=np.uint8)
        mask = np.unpackbits(bits, count=n, bitorder="little").astype(bool)
        np.frombuffer(out, dtype=f"<u{dtype.size}")[mask] = 0
    parts = r.parts(dtype.size, n)
    r.end()
    if delta:
        _core.planes_apply_parts(parts, dtype.size, delta, bool(rotate), out=out, threads=1)
    else:  # the residual is the chunk itself
        _core.planes_decode_parts(parts, dtype.size, rotate=bool(rotate), out=out, threads=1)


def planes_bases(params: bytes) -> list[bytes]:
    if len(params) != PLANES_PARAMS.size:
        return []
    _, delta, _, _, base_id = PLANES_PARAMS.unpack(params)
    return [base_id] if delta else []


def predicted_bases(params: bytes) -> list[bytes]:
    if len(params) < PRED_PARAMS.size:
        return []
    k = params[5]
    ncoef = k if params[0] in LINEAR_PREDICTORS else 0
    if len(params) != PRED_PARAMS.size + 16 * k + 8 * ncoef:
        return []
    return [params[8 + 16 * i : 24 + 16 * i] for i in range(k)]


def decode_raw(
    params: bytes, payload: memoryview, out: memoryview, bases: Bases, where: str
) -> None:
    if len(payload) != len(out):
        raise CorruptObject(f"{where}: raw payload has {len(payload)} bytes, expected {len(out)}")
    out[:] = payload


def decode_zstd(
    params: bytes, payload: memoryview, out: memoryview, bases: Bases, where: str
) -> None:
    out[:] = zstd_decompress(payload, len(out), where)
