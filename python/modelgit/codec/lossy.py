"""Lossy codecs: error-bounded quantized deltas and low-bit quantized deltas.

Both code the chunk against a prediction from its (decoded) base chunks (see
``predict``), keep NaN/Inf and any element that would break the bound exactly in an
exception list, and return the decoded bytes along with the encoding: the chunk id of
a lossy chunk is the hash of what ``load`` will return.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .._native import _core
from ..dtypes import DType, by_code
from ..errors import CorruptObject
from ..scratch import scratch
from .entropy import Sections, section
from .predict import predict

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "QDELTA_PARAMS",
    "LOWBIT_PARAMS",
    "encode_qdelta",
    "encode_lowbit",
    "decode_qdelta",
    "decode_lowbit",
    "qdelta_bases",
    "lowbit_bases",
    "KERNEL_DTYPES",
]

QDELTA_PARAMS = struct.Struct("<BBBBBBHd")  # predictor, dtype, base dtype, nbases, 0, 0, 0, eps
LOWBIT_PARAMS = struct.Struct(
    "<BBBBBBHI"
)  # predictor, dtype, base dtype, nbases, bits, 0, 0, group
_U8 = struct.Struct("<B")
_U64 = struct.Struct("<Q")
KERNEL_DTYPES = ("float64", "float32", "float16", "bfloat16")


def _exceptions(idx: np.ndarray, values: bytes | memoryview) -> list[bytes | memoryview]:
    import numpy as np

    gaps = np.diff(idx.astype(np.uint64), prepend=np.uint64(0)) if len(idx) else idx
    return [_U64.pack(len(idx)), *section(gaps.astype("<u8").tobytes()), *section(values)]


def _read_exceptions(r: Sections, n: int, elem: int) -> tuple[np.ndarray, bytes | memoryview]:
    import numpy as np

    (k,) = r.unpack(_U64)
    if k > n:
        raise CorruptObject(f"{r.where}: more exceptions than elements")
    gaps = np.frombuffer(r.section(8 * k), dtype="<u8")
    idx = np.cumsum(gaps, dtype=np.uint64)
    if k and (idx[-1] >= n or (k > 1 and np.any(gaps[1:] == 0))):
        raise CorruptObject(f"{r.where}: exception indices out of range or repeated")
    return idx, r.section(k * elem)


def _ids(bases: list[bytes]) -> bytes:
    return b"".join(bases)


# -- error-bounded ---------------------------------------------------------------
def encode_qdelta(
    data: memoryview,
    dtype: DType,
    eps: float,
    predictor: int,
    bases: list[memoryview],
    base_ids: list[bytes],
    base_dtype: DType,
) -> tuple[bytes, bytes, bytes]:
    """(params, payload, decoded bytes) of an error-bounded delta of a float chunk."""
    import numpy as np

    n = len(data) // dtype.size
    pred = predict(predictor, bases, base_dtype, dtype, n)
    codes_b, exc_idx_b, exc_val_b = _core.qdelta_encode(data, pred, dtype.name, eps)
    codes = np.frombuffer(codes_b, dtype="<i4")
    lo, hi = (int(codes.min()), int(codes.max())) if n else (0, 0)
    width = 1 if -128 <= lo and hi <= 127 else 2 if -32768 <= lo and hi <= 32767 else 4
    narrow = codes.astype(f"<i{width}")
    planes = memoryview(_core.planes_encode(narrow, width)) if width > 1 else memoryview(narrow)
    parts: list[bytes | memoryview] = [_U8.pack(width)]
    for p in range(width):
        parts += section(planes[p * n : (p + 1) * n])
    idx = np.frombuffer(exc_idx_b, dtype="<u8")
    parts += _exceptions(idx, exc_val_b)
    decoded = _core.qdelta_decode(codes_b, pred, exc_idx_b, exc_val_b, dtype.name, eps)
    params = QDELTA_PARAMS.pack(
        predictor, dtype.code, base_dtype.code, len(base_ids), 0, 0, 0, eps
    ) + _ids(base_ids)
    return params, b"".join(parts), bytes(decoded)


def _parse(params: bytes, fmt: struct.Struct, where: str) -> tuple[tuple, list[bytes]]:
    if len(params) < fmt.size:
        raise CorruptObject(f"{where}: bad lossy codec parameters")
    head = fmt.unpack_from(params)
    nbases = head[3]
    if len(params) != fmt.size + 16 * nbases:
        raise CorruptObject(f"{where}: bad lossy codec parameters")
    ids = [params[fmt.size + 16 * i : fmt.size + 16 * (i + 1)] for i in range(nbases)]
    return head, ids


def qdelta_bases(params: bytes) -> list[bytes]:
    try:
        return _parse(params, QDELTA_PARAMS, "chunk")[1]
    except CorruptObject:
        return []


def lowbit_bases(params: bytes) -> list[bytes]:
    try:
        return _parse(params, LOWBIT_PARAMS, "chunk")[1]
    except CorruptObject:
        return []


def _prediction(
    predictor: int, ids: list[bytes], bases, base_dtype: DType, dtype: DType, n: int
) -> memoryview:
    """The prediction in this thread's scratch buffer (the kernels write out separately)."""
    views = [bases.get(b, slot) for slot, b in enumerate(ids)]
    buf = memoryview(scratch("prediction", n * dtype.size))[: n * dtype.size]
    return predict(predictor, views, base_dtype, dtype, n, out=buf)


def decode_qdelta(params: bytes, payload: memoryview, out: memoryview, bases, where: str) -> None:
    import numpy as np

    (predictor, dcode, bcode, _, _, _, _, eps), ids = _parse(params, QDELTA_PARAMS, where)
    try:
        dtype, base_dtype = by_code(dcode), by_code(bcode)
    except ValueError as exc:
        raise CorruptObject(f"{where}: {exc}") from None
    if dtype.name not in KERNEL_DTYPES or len(out) % dtype.size:
        raise CorruptObject(f"{where}: bad dtype for an error-bounded delta")
    n = len(out) // dtype.size
    r = Sections(payload, where)
    (width,) = r.unpack(_U8)
    if width not in (1, 2, 4):
        raise CorruptObject(f"{where}: bad code width {width}")
    planes = b"".join(bytes(r.section(n)) for _ in range(width))
    narrow = (
        np.frombuffer(_core.planes_decode(planes, width), dtype=f"<i{width}")
        if width > 1
        else np.frombuffer(planes, dtype="<i1")
    )
    idx, values = _read_exceptions(r, n, dtype.size)
    r.end()
    try:
        pred = _prediction(predictor, ids, bases, base_dtype, dtype, n)
        _core.qdelta_decode(
            narrow.astype("<i4"), pred, idx.astype("<u8"), values, dtype.name, eps, out=out
        )
    except ValueError as exc:
        raise CorruptObject(f"{where}: {exc}") from None


# -- low-bit ---------------------------------------------------------------------
def _to32(buf: memoryview | bytes, dtype: DType) -> torch.Tensor:
    import torch

    return torch.frombuffer(bytearray(buf), dtype=torch.uint8).view(dtype.torch).to(torch.float32)


def _lowbit_decoded(
    pred32: torch.Tensor, deq: torch.Tensor, pred: memoryview, dtype: DType
) -> torch.Tensor:
    import torch

    if dtype.name == "float64":
        p64 = torch.frombuffer(bytearray(pred), dtype=torch.uint8).view(torch.float64)
        return p64 + deq.to(torch.float64)
    return (pred32 + deq).to(dtype.torch)


def encode_lowbit(
    data: memoryview,
    dtype: DType,
    bits: int,
    group: int,
    predictor: int,
    bases: list[memoryview],
    base_ids: list[bytes],
    base_dtype: DType,
) -> tuple[bytes, bytes, bytes]:
    """(params, payload, decoded bytes) of a low-bit quantized delta of a float chunk."""
    import torch

    n = len(data) // dtype.size
    pred = predict(predictor, bases, base_dtype, dtype, n)
    x32 = _to32(data, dtype)
    p32 = _to32(pred, dtype)
    d = (x32 - p32).numpy()
    packed, scales, offsets = _core.lowbit_quantize(d, bits, group)
    deq = torch.frombuffer(
        _core.lowbit_dequantize(packed, scales, offsets, bits, group, n), dtype=torch.float32
    )
    dec = _lowbit_decoded(p32, deq, pred, dtype)
    x = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype.torch)
    bad = ~torch.isfinite(x) | ~torch.isfinite(dec)
    idx = torch.nonzero(bad).reshape(-1).numpy().astype("<u8")
    dec[bad] = x[bad]
    values = x[bad].contiguous().view(torch.uint8).numpy().tobytes()
    parts = [*section(packed), *section(scales), *section(offsets), *_exceptions(idx, values)]
    params = LOWBIT_PARAMS.pack(
        predictor, dtype.code, base_dtype.code, len(base_ids), bits, 0, 0, group
    ) + _ids(base_ids)
    return params, b"".join(parts), dec.contiguous().view(torch.uint8).numpy().tobytes()


def decode_lowbit(params: bytes, payload: memoryview, out: memoryview, bases, where: str) -> None:
    import numpy as np
    import torch

    (predictor, dcode, bcode, _, bits, _, _, group), ids = _parse(params, LOWBIT_PARAMS, where)
    try:
        dtype, base_dtype = by_code(dcode), by_code(bcode)
    except ValueError as exc:
        raise CorruptObject(f"{where}: {exc}") from None
    if dtype.name not in KERNEL_DTYPES or len(out) % dtype.size or bits not in (1, 2, 4, 8):
        raise CorruptObject(f"{where}: bad low-bit parameters")
    if group < 1:
        raise CorruptObject(f"{where}: bad low-bit group size")
    n = len(out) // dtype.size
    groups = -(-n // group)
    r = Sections(payload, where)
    packed = r.section(-(-n * bits // 8))
    scales = r.section(4 * groups)
    offsets = r.section(4 * groups)
    idx, values = _read_exceptions(r, n, dtype.size)
    r.end()
    try:
        pred = _prediction(predictor, ids, bases, base_dtype, dtype, n)
        deq = torch.frombuffer(
            _core.lowbit_dequantize(packed, scales, offsets, bits, group, n), dtype=torch.float32
        )
    except ValueError as exc:
        raise CorruptObject(f"{where}: {exc}") from None
    dec = _lowbit_decoded(_to32(pred, dtype), deq, pred, dtype)
    if len(idx):
        exc = torch.frombuffer(bytearray(values), dtype=torch.uint8).view(dtype.torch)
        dec[torch.from_numpy(idx.astype(np.int64))] = exc
    out[:] = memoryview(dec.contiguous().view(torch.uint8).numpy())
