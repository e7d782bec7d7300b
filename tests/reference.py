"""Plain-numpy reference implementations of every kernel of ``modelgit._core``.

Each function follows the specification in ``python/modelgit/_core.pyi`` literally and
returns numpy arrays; the native core (and the CUDA module) must match them bit for bit.
Inputs are numpy arrays (or anything ``np.frombuffer`` accepts where noted).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DELTA_NONE",
    "DELTA_XOR",
    "DELTA_SUB",
    "DELTA_OSUB",
    "UINT",
    "planes_encode_ref",
    "planes_decode_ref",
    "zero_mask_ref",
    "cast_ref",
    "mean_cast_ref",
    "qdelta_encode_ref",
    "qdelta_decode_ref",
    "lowbit_quantize_ref",
    "lowbit_dequantize_ref",
    "pack_bits_ref",
    "unpack_bits_ref",
    "sketch_ref",
    "sketch_parts_ref",
    "residual_bits_ref",
    "plane_entropy_ref",
    "log_ratio_median_ref",
    "splitmix64_ref",
    "f32_to_bf16_bits_ref",
    "to_float32_ref",
    "from_float32_ref",
    "rans_encode_ref",
    "rans_decode_ref",
    "ITEMSIZE",
    "SPECIAL_WORDS",
]

DELTA_NONE, DELTA_XOR, DELTA_SUB, DELTA_OSUB = 0, 1, 2, 3
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}

# Raw bit patterns of special values per element size (±Inf, NaN payloads, -0.0,
# subnormals, extremes), shared by the CUDA tests and bench/gpu_check.py.
SPECIAL_WORDS = {
    2: [
        0x7C00,
        0xFC00,
        0x7E00,
        0x7C01,
        0xFD55,
        0x8000,
        0x0001,
        0x83FF,
        0x7F80,
        0xFF81,
        0x7FC0,
        0x0040,
    ],
    4: [
        0x7F800000,
        0xFF800000,
        0x7FC00000,
        0x7F800001,
        0xFFA5A5A5,
        0x80000000,
        0x00000001,
        0x807FFFFF,
        0x00400000,
        0x7F7FFFFF,
        0x33800000,
        0x477FF000,
    ],
    8: [
        0x7FF0000000000000,
        0xFFF0000000000000,
        0x7FF8000000000000,
        0x7FF0000000000001,
        0xFFF4000000000123,
        0x8000000000000000,
        0x0000000000000001,
        0x800FFFFFFFFFFFFF,
        0x7FEFFFFFFFFFFFFF,
    ],
}


_quiet = np.errstate(all="ignore")  # NaN/inf/overflow are data here, not errors


def _u8(buf) -> np.ndarray:
    """Any buffer or array as a flat uint8 view."""
    if isinstance(buf, np.ndarray):
        return np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    return np.frombuffer(buf, dtype=np.uint8)


# --- byte planes --------------------------------------------------------------------


def _rotl1(w: np.ndarray) -> np.ndarray:
    bits = w.dtype.itemsize * 8
    return (w << w.dtype.type(1)) | (w >> w.dtype.type(bits - 1))


def _rotr1(w: np.ndarray) -> np.ndarray:
    bits = w.dtype.itemsize * 8
    return (w >> w.dtype.type(1)) | (w << w.dtype.type(bits - 1))


def _ordered(w: np.ndarray) -> np.ndarray:
    """Sign-magnitude pattern -> value-ordered integer (negative: flip all but the sign)."""
    bits = w.dtype.itemsize * 8
    neg = (w >> w.dtype.type(bits - 1)).astype(bool)
    mask = w.dtype.type((1 << (bits - 1)) - 1)
    return np.where(neg, w ^ mask, w).astype(w.dtype)


def _zigzag(d: np.ndarray) -> np.ndarray:
    bits = d.dtype.itemsize * 8
    neg = (d >> d.dtype.type(bits - 1)).astype(bool)
    return ((d << d.dtype.type(1)) ^ np.where(neg, ~d.dtype.type(0), d.dtype.type(0))).astype(
        d.dtype
    )


def _unzigzag(z: np.ndarray) -> np.ndarray:
    one = z.dtype.type(1)
    return ((z >> one) ^ (z.dtype.type(0) - (z & one))).astype(z.dtype)


def _combine(t: np.ndarray, tb: np.ndarray, delta: int) -> np.ndarray:
    if delta == DELTA_XOR:
        return t ^ tb
    if delta == DELTA_OSUB:
        return _zigzag((_ordered(t) - _ordered(tb)).astype(t.dtype))
    return t - tb  # uint arithmetic wraps mod 2**bits


def _uncombine(w: np.ndarray, tb: np.ndarray, delta: int) -> np.ndarray:
    if delta == DELTA_XOR:
        return w ^ tb
    if delta == DELTA_OSUB:
        return _ordered((_ordered(tb) + _unzigzag(w)).astype(w.dtype))
    return w + tb


def planes_encode_ref(data, elem_size, base=None, delta=DELTA_NONE, rotate=False) -> np.ndarray:
    """Byte planes of the (delta-coded, optionally rotated) words; returns uint8."""
    t = _u8(data).view(UINT[elem_size])
    if rotate:
        t = _rotl1(t)
    if delta != DELTA_NONE:
        tb = _u8(base).view(UINT[elem_size])
        if rotate:
            tb = _rotl1(tb)
        t = _combine(t, tb, delta)
    # little-endian bytes of each word, most significant plane first
    by = t.astype(t.dtype.newbyteorder("<"), copy=False).view(np.uint8).reshape(-1, elem_size)
    return np.ascontiguousarray(by[:, ::-1].T).reshape(-1)


def planes_decode_ref(planes, elem_size, base=None, delta=DELTA_NONE, rotate=False) -> np.ndarray:
    """Inverse of planes_encode_ref; returns uint8."""
    p = _u8(planes).reshape(elem_size, -1)
    w = np.ascontiguousarray(p[::-1].T).reshape(-1).view(UINT[elem_size])
    if delta != DELTA_NONE:
        tb = _u8(base).view(UINT[elem_size])
        if rotate:
            tb = _rotl1(tb)
        w = _uncombine(w, tb, delta)
    if rotate:
        w = _rotr1(w)
    return w.view(np.uint8)


# --- float conversions ----------------------------------------------------------------


@_quiet
def zero_mask_ref(data, pred, elem_size: int) -> tuple[bytes, np.ndarray]:
    """The packed zero mask of data's words (LSB first) and pred zeroed there."""
    words = np.frombuffer(data, dtype=UINT[elem_size])
    mask = words == 0
    out = np.frombuffer(pred, dtype=UINT[elem_size]).copy()
    out[mask] = 0
    return np.packbits(mask, bitorder="little").tobytes(), out


def f32_to_bf16_bits_ref(f: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest even; NaN -> (u >> 16) | 0x40."""
    u = np.ascontiguousarray(f, dtype=np.float32).view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(
        np.uint16
    )
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    r[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return r


@_quiet
def to_float32_ref(raw, dtype: str) -> np.ndarray:
    """Raw little-endian words of a 32/16-bit dtype widened exactly to float32."""
    b = _u8(raw)
    if dtype == "float32":
        return b.view(np.float32).copy()
    if dtype == "float16":
        with np.errstate(all="ignore"):  # signalling NaNs
            return b.view(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        return (b.view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
    raise ValueError(dtype)


@_quiet
def from_float32_ref(f: np.ndarray, dtype: str) -> np.ndarray:
    """float32 -> raw words of dtype (RNE); returns the uint view."""
    if dtype == "float32":
        return f.astype(np.float32).view(np.uint32)
    if dtype == "float16":
        return f.astype(np.float16).view(np.uint16)
    if dtype == "bfloat16":
        return f32_to_bf16_bits_ref(f)
    raise ValueError(dtype)


@_quiet
def _as_f64(raw, dtype: str) -> np.ndarray:
    if dtype == "float64":
        return _u8(raw).view(np.float64).copy()
    with np.errstate(all="ignore"):  # signalling NaNs
        return to_float32_ref(raw, dtype).astype(np.float64)


# --- error-bounded quantized delta ----------------------------------------------------


@_quiet
def _qdelta_dec(codes: np.ndarray, base_raw, dtype: str, eps: float):
    """Decoded raw words (uint view) for int32 codes, and their values as float64."""
    step = 2.0 * eps
    if dtype == "float64":
        b = _u8(base_raw).view(np.float64)
        with np.errstate(all="ignore"):
            dec = b + codes.astype(np.float64) * np.float64(step)
        return dec.view(np.uint64), dec
    b = to_float32_ref(base_raw, dtype)
    with np.errstate(all="ignore"):
        s = np.float32(step)
        d32 = b + codes.astype(np.float32) * s  # two float32 ops, each rounded
        raw = from_float32_ref(d32, dtype)
        return raw, to_float32_ref(raw, dtype).astype(np.float64)


@_quiet
def qdelta_encode_ref(x, base, dtype: str, eps: float):
    """Returns (codes int32, exc_index uint64, exc_values uint8 raw words)."""
    es = ITEMSIZE[dtype]
    xd, bd = _as_f64(x, dtype), _as_f64(base, dtype)
    with np.errstate(all="ignore"):
        s = np.float64(2.0 * eps) if dtype == "float64" else np.float64(np.float32(2.0 * eps))
        q = np.rint((xd - bd) / s)
        bad = ~np.isfinite(xd) | ~np.isfinite(bd) | ~(np.abs(q) <= 2**31 - 1)
        codes = np.where(bad, 0, q).astype(np.int32)
        _, dec = _qdelta_dec(codes, base, dtype, eps)
        bad |= ~np.isfinite(dec) | (np.abs(dec - xd) > eps)
    codes[bad] = 0
    idx = np.flatnonzero(bad).astype(np.uint64)
    vals = _u8(x).reshape(-1, es)[bad].reshape(-1) if es else np.zeros(0, np.uint8)
    return codes, idx, np.ascontiguousarray(vals)


@_quiet
def qdelta_decode_ref(codes, base, exc_index, exc_values, dtype: str, eps: float) -> np.ndarray:
    """Decoded raw bytes (uint8)."""
    es = ITEMSIZE[dtype]
    c = _u8(codes).view(np.int32)
    with np.errstate(all="ignore"):
        raw, _ = _qdelta_dec(c, base, dtype, eps)
    out = raw.view(np.uint8).reshape(-1, es).copy()
    idx = _u8(exc_index).view(np.uint64).astype(np.intp)
    out[idx] = _u8(exc_values).reshape(-1, es)
    return out.reshape(-1)


# --- low-bit quantization -------------------------------------------------------------


def pack_bits_ref(codes, bits: int) -> np.ndarray:
    """LSB-first packing of uint8 codes (each < 2**bits)."""
    c = _u8(codes)
    if np.any(c >> bits):
        raise ValueError("code >= 2**bits")
    n = len(c)
    per = 8 // bits
    pad = (-n) % per
    cp = np.concatenate([c, np.zeros(pad, np.uint8)]).reshape(-1, per).astype(np.uint32)
    shifts = (np.arange(per, dtype=np.uint32) * bits)[None, :]
    return (cp << shifts).sum(axis=1, dtype=np.uint32).astype(np.uint8)


def unpack_bits_ref(packed, bits: int, n: int) -> np.ndarray:
    p = _u8(packed)
    per = 8 // bits
    shifts = (np.arange(per, dtype=np.uint8) * bits)[None, :]
    c = (p[:, None] >> shifts) & np.uint8((1 << bits) - 1)
    return c.reshape(-1)[:n].astype(np.uint8)


def _groups(x: np.ndarray, group: int):
    """Yields (start, stop) of each group; vectorized helpers below use padding."""
    n = len(x)
    return [(g, min(n, g + group)) for g in range(0, n, group)]


@_quiet
def lowbit_quantize_ref(x, bits: int, group: int):
    """Returns (packed uint8, scales float32, offsets float32)."""
    xf = _u8(x).view(np.float32)
    n = len(xf)
    ng = -(-n // group)
    pad = ng * group - n
    xp = np.concatenate([xf, np.full(pad, np.nan, np.float32)]).reshape(ng, group)
    fin = np.isfinite(xp)
    if bits == 1:
        a = np.where(fin, np.abs(xp.astype(np.float64)), 0.0)
        # sequential sum in element order (cumsum), not numpy's pairwise sum
        sums = np.cumsum(a, axis=1)[:, -1] if ng else np.zeros(0)
        cnt = fin.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scales = np.where(cnt > 0, sums / np.maximum(cnt, 1), 0.0).astype(np.float32)
        offsets = np.zeros(ng, np.float32)
        codes = ((xf >= 0) | np.isnan(xf)).astype(np.uint8)
    else:
        L = (1 << bits) - 1
        anyf = fin.any(axis=1)
        lo = np.where(anyf, np.where(fin, xp, np.inf).min(axis=1), 0).astype(np.float32)
        hi = np.where(anyf, np.where(fin, xp, -np.inf).max(axis=1), 0).astype(np.float32)
        # -0.0 orders below +0.0 for min / max
        negz = (fin & (xp == 0) & np.signbit(xp)).any(axis=1)
        posz = (fin & (xp == 0) & ~np.signbit(xp)).any(axis=1)
        lo = np.where(lo == 0, np.where(negz, np.float32(-0.0), np.float32(0.0)), lo)
        hi = np.where(hi == 0, np.where(posz | ~anyf, np.float32(0.0), np.float32(-0.0)), hi)
        scales = ((hi.astype(np.float64) - lo.astype(np.float64)) / L).astype(np.float32)
        offsets = lo
        sc = np.repeat(scales, group)[:n].astype(np.float64)
        lo_e = np.repeat(lo, group)[:n].astype(np.float64)
        with np.errstate(all="ignore"):
            q = np.rint((xf.astype(np.float64) - lo_e) / sc)
        q = np.clip(q, 0, L)
        q[(sc == 0) | ~np.isfinite(xf)] = 0
        codes = q.astype(np.uint8)
    return pack_bits_ref(codes, bits), scales.astype(np.float32), offsets.astype(np.float32)


@_quiet
def lowbit_dequantize_ref(packed, scales, offsets, bits: int, group: int, n: int) -> np.ndarray:
    """Decoded float32 values."""
    codes = unpack_bits_ref(packed, bits, n)
    sc = np.repeat(_u8(scales).view(np.float32), group)[:n]
    of = np.repeat(_u8(offsets).view(np.float32), group)[:n]
    with np.errstate(all="ignore"):
        if bits == 1:
            return np.where(codes == 1, sc, -sc).astype(np.float32)
        return codes.astype(np.float32) * sc + of


# --- sketch -----------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64_ref(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@_quiet
def sketch_ref(x, dtype: str, k: int = 64, seed: int = 0, block: int = 65536) -> np.ndarray:
    """CountSketch (k float64) with per-block sequential sums added in block order."""
    v = _as_f64(x, dtype)
    n = len(v)
    off = np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
    out = np.zeros(k, np.float64)
    for b0 in range(0, n, block):
        vb = v[b0 : b0 + block]
        i = np.arange(b0, b0 + len(vb), dtype=np.uint64)
        with np.errstate(over="ignore"):
            h = splitmix64_ref(i + off)
        bucket = (((h >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32)).astype(np.intp)
        w = np.where((h & np.uint64(1)) == 1, vb, -vb)
        fin = np.isfinite(vb)
        # bincount adds the weights sequentially in element order
        out = out + np.bincount(bucket[fin], weights=w[fin], minlength=k)
    return out


def sketch_parts_ref(x, dtype: str, k: int, parts) -> tuple[np.ndarray, float, int]:
    """The sketches of the parts (start, count, seed) added in part order; the sum of
    squares of their finite elements; their elements equal to zero."""
    v = _as_f64(x, dtype)
    out = np.zeros(k, np.float64)
    norm2, zeros = 0.0, 0
    esize = ITEMSIZE[dtype]
    raw = np.frombuffer(x, np.uint8)
    for start, count, seed in parts:
        out = out + sketch_ref(raw[start * esize : (start + count) * esize], dtype, k, seed)
        part = v[start : start + count]
        zeros += int(np.count_nonzero(part == 0))
        fin = part[np.isfinite(part)]
        norm2 += float(np.dot(fin, fin))
    return out, norm2, zeros


# --- pricing on a sample (storage/policy.py) ----------------------------------------
def residual_bits_ref(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Mean log2(1 + |y - pred|) of words (as float64), and the same with a zero mask:
    zero words of y cost 0, plus the binary entropy of their share."""
    d = np.log2(1 + np.abs(y.astype(np.float64) - pred.astype(np.float64)))
    zero = y == 0
    share = float(np.mean(zero))
    entropy = 0.0
    if 0.0 < share < 1.0:
        entropy = -(share * np.log2(share) + (1 - share) * np.log2(1 - share))
    return float(np.mean(d)), float(np.mean(np.where(zero, 0.0, d))) + entropy


def plane_entropy_ref(w: np.ndarray, rotate: bool) -> float:
    """Summed order-0 entropy (bits per word) of the byte planes of the words ``w``
    (rotated left by one bit first when ``rotate``)."""
    size = w.dtype.itemsize
    if rotate:
        w = _rotl1(w)
    planes = w.view(np.uint8).reshape(len(w), size)
    bits = 0.0
    for j in range(size):
        counts = np.bincount(planes[:, j], minlength=256)
        p = counts[counts > 0] / len(w)
        bits += float(-(p * np.log2(p)).sum())
    return bits


def log_ratio_median_ref(y, b, dtype: str, step: int = 1) -> tuple[int, float]:
    """(count, median of log(|y| / |b|)) over elements 0, step, ... where both are
    finite, nonzero and of one sign (NaN median when none)."""
    fy, fb = _as_f64(y, dtype)[::step], _as_f64(b, dtype)[::step]
    with np.errstate(all="ignore"):
        ok = np.isfinite(fy) & np.isfinite(fb) & (fy * fb > 0)
        r = np.log(np.abs(fy[ok]) / np.abs(fb[ok]))
    if not len(r):
        return 0, float("nan")
    return len(r), float(np.median(r))


# --- order-0 rANS (docs/FORMAT.md section 3.0), plain Python ------------------------
_RANS_K, _RANS_M, _RANS_L, _RANS_STATES = 12, 1 << 12, 1 << 16, 16


def _rans_freqs(data: bytes) -> list[int]:
    """The writer's normalization: nearest share of 2^12 (at least 1 for a present
    value), the rounding error settled one step at a time on the most frequent values."""
    n = len(data)
    count = np.bincount(np.frombuffer(data, np.uint8), minlength=256).tolist()
    present = [s for s in range(256) if count[s]]
    freq = [0] * 256
    for s in present:
        freq[s] = max((count[s] * _RANS_M + n // 2) // n, 1)
    order = sorted(present, key=lambda s: -count[s])  # stable: ties by value
    diff = _RANS_M - sum(freq)
    while diff:
        for s in order:
            if diff > 0:
                freq[s] += 1
                diff -= 1
            elif diff < 0 and freq[s] > 1:
                freq[s] -= 1
                diff += 1
            if not diff:
                break
    return freq


def _rans_table(freq: list[int]) -> bytes:
    out, s = bytearray(), 0
    while s < 256:
        if freq[s] == 0:
            r = 0
            while s + r < 256 and freq[s + r] == 0:
                r += 1
            out += bytes([0, r - 1])
            s += r
        else:
            f = freq[s]
            while f >= 0x80:
                out.append(f & 0x7F | 0x80)
                f >>= 7
            out.append(f)
            s += 1
    return bytes(out)


def rans_encode_ref(data: bytes) -> bytes:
    """The stream ``_core.rans_encode`` writes, by the definition of FORMAT.md 3.0."""
    freq = _rans_freqs(data)
    start = np.concatenate([[0], np.cumsum(freq)[:-1]]).tolist()
    x = [_RANS_L] * _RANS_STATES
    words: list[int] = []  # in the order they are emitted (back to front)
    for i in reversed(range(len(data))):
        j, s = i % _RANS_STATES, data[i]
        if x[j] >> (32 - _RANS_K) >= freq[s]:
            words.append(x[j] & 0xFFFF)
            x[j] >>= 16
        x[j] = (x[j] // freq[s]) * _RANS_M + x[j] % freq[s] + start[s]
    states = np.array(x, dtype="<u4").tobytes()
    return bytes([_RANS_K]) + _rans_table(freq) + states + np.array(words[::-1], "<u2").tobytes()


def rans_decode_ref(stream: bytes, n: int) -> bytes:
    """Decode a stream by the definition of FORMAT.md 3.0 (ValueError if invalid)."""
    if stream[0] != _RANS_K:
        raise ValueError("scale")
    pos, freq = 1, []
    while len(freq) < 256:
        if stream[pos] == 0:
            freq += [0] * (stream[pos + 1] + 1)
            pos += 2
        else:
            f = shift = 0
            while True:
                b = stream[pos]
                pos += 1
                f |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            freq.append(f)
    if len(freq) != 256 or sum(freq) != _RANS_M:
        raise ValueError("table")
    start = np.concatenate([[0], np.cumsum(freq)[:-1]]).tolist()
    slot_value = [s for s in range(256) for _ in range(freq[s])]
    x = np.frombuffer(stream[pos : pos + 4 * _RANS_STATES], "<u4").astype(np.int64).tolist()
    words = np.frombuffer(stream[pos + 4 * _RANS_STATES :], "<u2").tolist()
    w, out = 0, bytearray()
    for i in range(n):
        j = i % _RANS_STATES
        slot = x[j] % _RANS_M
        s = slot_value[slot]
        out.append(s)
        x[j] = freq[s] * (x[j] // _RANS_M) + slot - start[s]
        if x[j] < _RANS_L:
            x[j] = x[j] * 65536 + words[w]
            w += 1
    if w != len(words) or any(v != _RANS_L for v in x):
        raise ValueError("stream")
    return bytes(out)


# -- float casts and the mean predictor (docs/FORMAT.md section 3.3) ------------------------
_CAST_U = {"float64": np.uint64, "float32": np.uint32, "float16": np.uint16, "bfloat16": np.uint16}


def _cast_f32_to_f64(u: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = u.view(np.float32).astype(np.float64).view(np.uint64).copy()
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    u64 = u.astype(np.uint64)
    out[nan] = ((u64 & 0x80000000) << 32 | 0x7FF8000000000000 | (u64 & 0x7FFFFF) << 29)[nan]
    return out


def _cast_f64_to_f32(u: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = u.view(np.float64).astype(np.float32).view(np.uint32).copy()
    nan = (u & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000
    keep = ((u >> 32) & 0x80000000 | 0x7FC00000 | (u >> 29) & 0x7FFFFF).astype(np.uint32)
    out[nan] = keep[nan]
    return out


def _cast_f32_to_f16(u: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = u.view(np.float32).astype(np.float16).view(np.uint16).copy()
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    out[nan] = ((u >> 16) & 0x8000 | 0x7E00 | (u >> 13) & 0x3FF).astype(np.uint16)[nan]
    return out


def _cast_f16_to_f32(u: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = u.view(np.float16).astype(np.float32).view(np.uint32).copy()
    nan = (u & 0x7FFF) > 0x7C00
    u32 = u.astype(np.uint32)
    out[nan] = ((u32 & 0x8000) << 16 | 0x7FC00000 | (u32 & 0x3FF) << 13)[nan]
    return out


def _cast_f32_to_bf16(u: np.ndarray) -> np.ndarray:
    w = u.astype(np.uint64)
    out = ((w + 0x7FFF + ((w >> 16) & 1)) >> 16).astype(np.uint16)
    out[(u & 0x7FFFFFFF) > 0x7F800000] = 0xFFFF
    return out


def _to_f32_bits(u: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float64":
        return _cast_f64_to_f32(u)
    if dtype == "float16":
        return _cast_f16_to_f32(u)
    if dtype == "bfloat16":
        return u.astype(np.uint32) << 16
    return u.copy()


def _from_f32_bits(u: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float64":
        return _cast_f32_to_f64(u)
    if dtype == "float16":
        return _cast_f32_to_f16(u)
    if dtype == "bfloat16":
        return _cast_f32_to_bf16(u)
    return u


def cast_ref(src, src_dtype: str, dst_dtype: str) -> np.ndarray:
    """The words of ``src`` converted as FORMAT.md 3.3 says (torch.Tensor.to on x86-64):
    through float32, except float16 -> bfloat16 whose NaNs become 0x7FC0."""
    u = np.frombuffer(bytes(_u8(src)), dtype=_CAST_U[src_dtype])
    if src_dtype == dst_dtype:
        return u.copy()
    out = _from_f32_bits(_to_f32_bits(u, src_dtype), dst_dtype)
    if src_dtype == "float16" and dst_dtype == "bfloat16":
        out[(u & 0x7FFF) > 0x7C00] = 0x7FC0
    return out


def _add_f32_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        r = (a.view(np.float32) + b.view(np.float32)).view(np.uint32).copy()
    r[(r & 0x7FFFFFFF) > 0x7F800000] = 0xFFC00000  # inf - inf
    a_nan = (a & 0x7FFFFFFF) > 0x7F800000
    b_nan = (b & 0x7FFFFFFF) > 0x7F800000
    r[a_nan] = (a | 0x400000)[a_nan]
    r[b_nan] = (b | 0x400000)[b_nan]  # the second NaN wins
    return r


def mean_cast_ref(srcs, src_dtype: str, dst_dtype: str) -> np.ndarray:
    """float32 sum of the converted elements in order, divided by their count (float32),
    converted to ``dst_dtype``; NaN operands propagate quieted (the last one wins)."""
    words = [np.frombuffer(bytes(_u8(x)), dtype=_CAST_U[src_dtype]) for x in srcs]
    acc = _to_f32_bits(words[0], src_dtype)
    for w in words[1:]:
        acc = _add_f32_bits(acc, _to_f32_bits(w, src_dtype))
    nan = (acc & 0x7FFFFFFF) > 0x7F800000
    with np.errstate(all="ignore"):
        q = (acc.view(np.float32) / np.float32(len(words))).view(np.uint32).copy()
    q[nan] = (acc | 0x400000)[nan]
    return _from_f32_bits(q, dst_dtype)


def linear_exact_ref(srcs, coeffs, src_dtype: str, dst_dtype: str) -> np.ndarray:
    """The float64 sum of c_j * x_j in order, rounded to float64 or through float32 (as
    cast) to the narrower dtypes; every NaN result (a NaN operand, inf - inf) is the
    canonical float32 quiet NaN 0x7FC00000 cast to ``dst_dtype``."""
    words = [np.frombuffer(bytes(_u8(x)), dtype=_CAST_U[src_dtype]) for x in srcs]
    if src_dtype == "float64":
        vals = [w.view(np.float64) for w in words]
    else:
        with np.errstate(all="ignore"):
            vals = [_to_f32_bits(w, src_dtype).view(np.float32).astype(np.float64) for w in words]
    acc = np.zeros(len(words[0]), dtype=np.float64)
    nan = np.zeros(len(acc), dtype=bool)
    with np.errstate(all="ignore"):
        for c, v in zip(coeffs, vals, strict=True):
            nan |= np.isnan(v)
            acc = acc + np.float64(c) * v
    nan |= np.isnan(acc)
    if dst_dtype == "float64":
        out = acc.view(np.uint64).copy()
        out[nan] = _from_f32_bits(np.array([0x7FC00000], np.uint32), "float64")[0]
        return out
    with np.errstate(all="ignore"):
        f32 = acc.astype(np.float32).view(np.uint32).copy()
    f32[nan] = 0x7FC00000
    return _from_f32_bits(f32, dst_dtype)
