"""qdelta_encode / qdelta_decode: bit-exact against the reference, and the eps guarantee."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelgit import _core
from reference import (
    ITEMSIZE,
    f32_to_bf16_bits_ref,
    qdelta_decode_ref,
    qdelta_encode_ref,
    to_float32_ref,
)

DTYPES = ["float32", "float16", "bfloat16", "float64"]


def make(dtype: str, n: int, rng, scale=1.0, noise=1e-3):
    """(x, base) raw arrays of dtype with fine-tune-like differences and special values."""
    b = rng.standard_normal(n) * scale
    x = b + rng.standard_normal(n) * noise * scale
    return encode_values(x, dtype), encode_values(b, dtype)


def encode_values(v: np.ndarray, dtype: str) -> np.ndarray:
    """float64 values rounded to dtype (raw words for bfloat16); overflow gives inf."""
    with np.errstate(all="ignore"):
        if dtype == "bfloat16":
            return f32_to_bf16_bits_ref(v.astype(np.float32))
        return v.astype(dtype)


def values(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float64":
        return raw.view(np.float64)
    return to_float32_ref(raw, dtype).astype(np.float64)


SPECIAL_BITS = {
    "float32": [
        0x7FC00000,
        0x7F800001,
        0xFFFFFFFF,
        0x7F800000,
        0xFF800000,
        0x80000000,
        1,
        0x807FFFFF,
        0x7F7FFFFF,
        0xFF7FFFFF,
    ],
    "float16": [0x7E00, 0x7C01, 0xFFFF, 0x7C00, 0xFC00, 0x8000, 1, 0x83FF, 0x7BFF, 0xFBFF],
    "bfloat16": [0x7FC0, 0x7F81, 0xFFFF, 0x7F80, 0xFF80, 0x8000, 1, 0x807F, 0x7F7F, 0xFF7F],
    "float64": [
        0x7FF8000000000000,
        0x7FF0000000000001,
        0xFFFFFFFFFFFFFFFF,
        0x7FF0000000000000,
        0xFFF0000000000000,
        0x8000000000000000,
        1,
        0x000FFFFFFFFFFFFF,
        0x7FEFFFFFFFFFFFFF,
        0xFFEFFFFFFFFFFFFF,
    ],
}
UINT = {8: np.uint64, 4: np.uint32, 2: np.uint16}


def sprinkle(raw: np.ndarray, dtype: str, rng, count=64):
    u = raw.view(UINT[ITEMSIZE[dtype]])
    if len(u):
        sp = np.array(SPECIAL_BITS[dtype], dtype=u.dtype)
        idx = rng.integers(0, len(u), count)
        u[idx] = sp[rng.integers(0, len(sp), count)]
    return raw


def check_guarantee(x, base, dtype, eps, **kw):
    codes, idx, vals = _core.qdelta_encode(x, base, dtype, eps, **kw)
    rc, ri, rv = qdelta_encode_ref(x, base, dtype, eps)
    assert bytes(codes) == rc.tobytes()
    assert bytes(idx) == ri.tobytes()
    assert bytes(vals) == rv.tobytes()
    dec = _core.qdelta_decode(codes, base, idx, vals, dtype, eps, **kw)
    assert np.array_equal(
        np.frombuffer(dec, np.uint8), qdelta_decode_ref(rc, base, ri, rv, dtype, eps)
    )
    es = ITEMSIZE[dtype]
    d_raw = np.frombuffer(dec, UINT[es])
    x_raw = np.ascontiguousarray(x).view(UINT[es]).reshape(-1)

    with np.errstate(all="ignore"):
        dv = values(d_raw.copy(), dtype)
        xv = values(x_raw, dtype)
    fin = np.isfinite(xv)
    # the GUARANTEE: every finite element within eps, non-finite ones bit-exact
    assert np.all(np.abs(dv[fin] - xv[fin]) <= eps)
    assert np.array_equal(d_raw[~fin], x_raw[~fin])
    # exceptions are stored exactly
    assert np.array_equal(d_raw[ri.astype(np.intp)], x_raw[ri.astype(np.intp)])
    return rc, ri


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 3, 1001, 20011])
@pytest.mark.parametrize("eps", [1e-4, 3e-3, 0.5])
def test_random(dtype, n, eps):
    rng = np.random.default_rng(n + int(eps * 1e4))
    x, b = make(dtype, n, rng)
    sprinkle(x, dtype, rng)
    sprinkle(b, dtype, rng, count=8)
    check_guarantee(x, b, dtype, eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adversarial(dtype):
    rng = np.random.default_rng(7)
    n = 20000
    eps = 1e-3
    s = 2 * eps if dtype == "float64" else float(np.float32(2 * eps))
    b = rng.standard_normal(n) * 4
    k = rng.integers(-1000, 1000, n)
    # exactly on half-way points of the quantizer, and just around them
    half = b + (k + 0.5) * s
    jitter = half + rng.choice([-1, 1], n) * np.spacing(np.abs(half))
    big = (
        rng.choice([-1, 1], n)
        * rng.uniform(0.5, 1.0, n)
        * {"float64": 1e308, "float32": 3e38, "float16": 65000.0, "bfloat16": 3e38}[dtype]
    )
    for xv, bv in [(half, b), (jitter, b), (big, b), (b, big), (big, -big), (big, big * 0.999)]:
        x, base = encode_values(xv, dtype), encode_values(bv, dtype)
        check_guarantee(x, base, dtype, eps)
    # codes at the int32 limit: a huge difference relative to eps
    tiny = 1e-300 if dtype == "float64" else 1e-30
    check_guarantee(encode_values(b, dtype), encode_values(b[::-1].copy(), dtype), dtype, tiny)
    # eps so large that float32(2*eps) is inf: everything becomes an exception
    check_guarantee(encode_values(b, dtype), encode_values(b * 0.5, dtype), dtype, 1e300)


def test_exhaustive_half_conversions():
    """Every float16 / bfloat16 word as base with zero and random codes."""
    rng = np.random.default_rng(3)
    allw = np.arange(65536, dtype=np.uint16)
    for dtype in ("float16", "bfloat16"):
        for eps in (2.0**-31, 2.0**-11, 0.25, 1e4):
            codes = rng.integers(-(2**31), 2**31, 65536, dtype=np.int64).astype(np.int32)
            codes[:1000] = 0
            for base in (allw, np.zeros(65536, np.uint16)):
                got = _core.qdelta_decode(codes, base, b"", b"", dtype, eps)
                ref = qdelta_decode_ref(codes, base, np.zeros(0, np.uint64), b"", dtype, eps)
                assert np.frombuffer(got, np.uint8).tobytes() == ref.tobytes(), (dtype, eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_threaded_independent(dtype):
    rng = np.random.default_rng(11)
    n = (5 << 20) // ITEMSIZE[dtype] + 17
    x, b = make(dtype, n, rng)
    sprinkle(x, dtype, rng, 1000)
    res = [_core.qdelta_encode(x, b, dtype, 1e-3, threads=t) for t in (1, 2, 3)]
    for r in res[1:]:
        assert all(bytes(a) == bytes(c) for a, c in zip(r, res[0], strict=True))
    rc, ri = check_guarantee(x, b, dtype, 1e-3, threads=2)
    codes, idx, vals = res[0]
    d1 = _core.qdelta_decode(codes, b, idx, vals, dtype, 1e-3, threads=1)
    d3 = _core.qdelta_decode(codes, b, idx, vals, dtype, 1e-3, threads=3)
    assert bytes(d1) == bytes(d3)


def test_input_kinds_and_out():
    rng = np.random.default_rng(0)
    x, b = make("float32", 257, rng)
    ref = [bytes(a) for a in _core.qdelta_encode(x, b, "float32", 1e-3)]
    for conv in (bytes, bytearray, memoryview):
        got = _core.qdelta_encode(conv(x.tobytes()), conv(b.tobytes()), "float32", 1e-3)
        assert [bytes(a) for a in got] == ref
        assert all(isinstance(a, bytearray) for a in got)
    out = np.empty(x.nbytes, np.uint8)
    r = _core.qdelta_decode(ref[0], b, ref[1], ref[2], "float32", 1e-3, out=out)
    assert r is out
    assert out.tobytes() == bytes(_core.qdelta_decode(*ref[:1], b, *ref[1:], "float32", 1e-3))
    with pytest.raises(ValueError, match="contiguous"):
        _core.qdelta_encode(x[::2], b[::2], "float32", 1e-3)


@settings(max_examples=150, deadline=None)
@given(
    xs=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=40),
    noise=st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=40),
    eps=st.floats(1e-6, 1e3),
    dtype=st.sampled_from(DTYPES),
)
def test_hypothesis_guarantee(xs, noise, eps, dtype):
    x = np.array(xs, dtype=np.float64)
    nz = np.resize(np.array(noise or [0.0]), len(x))
    with np.errstate(all="ignore"):
        b = x + nz
    check_guarantee(encode_values(x, dtype), encode_values(b, dtype), dtype, eps)
