"""lowbit_quantize / lowbit_dequantize / pack_bits / unpack_bits against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelgit import _core
from reference import (
    lowbit_dequantize_ref,
    lowbit_quantize_ref,
    pack_bits_ref,
    unpack_bits_ref,
)

BITS = [1, 2, 4, 8]
SPECIALS = np.array(
    [
        0x7FC00000,
        0x7F800001,
        0xFFC00001,
        0x7F800000,
        0xFF800000,
        0x80000000,
        1,
        0x807FFFFF,
        0x7F7FFFFF,
        0xFF7FFFFF,
    ],
    dtype=np.uint32,
).view(np.float32)


def data(n, rng, specials=True):
    x = (rng.standard_normal(n) * rng.uniform(0.01, 10)).astype(np.float32)
    if specials and n:
        idx = rng.integers(0, n, min(n, 40))
        x[idx] = SPECIALS[rng.integers(0, len(SPECIALS), len(idx))]
    return x


def check(x, bits, group, **kw):
    packed, scales, offsets = _core.lowbit_quantize(x, bits, group, **kw)
    rp, rs, ro = lowbit_quantize_ref(x, bits, group)
    assert bytes(packed) == rp.tobytes()
    assert bytes(scales) == rs.tobytes()
    assert bytes(offsets) == ro.tobytes()
    dec = _core.lowbit_dequantize(packed, scales, offsets, bits, group, len(x), **kw)
    ref = lowbit_dequantize_ref(rp, rs, ro, bits, group, len(x))
    assert bytes(dec) == ref.tobytes()
    return np.frombuffer(dec, np.float32)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("group", [1, 3, 64, 1000, 10**6])
@pytest.mark.parametrize("n", [0, 1, 7, 4097])
def test_quantize_roundtrip(bits, group, n):
    rng = np.random.default_rng(bits * 1000 + n + group)
    check(data(n, rng), bits, group)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_error_bound_finite(bits):
    """Decoded finite values are within scale/2 (+ float32 rounding) of the input."""
    rng = np.random.default_rng(bits)
    x = data(10000, rng, specials=False)
    dec = check(x, bits, 128)
    _, scales, _ = lowbit_quantize_ref(x, bits, 128)
    sc = np.repeat(scales, 128)[: len(x)].astype(np.float64)
    err = np.abs(dec.astype(np.float64) - x)
    assert np.all(err <= sc / 2 + 1e-6 * np.abs(x) + 1e-30)


def test_all_nonfinite_group_and_constant_group():
    x = np.array([np.nan, np.inf, -np.inf, np.nan, 5, 5, 5, 5], np.float32)
    for bits in BITS:
        check(x, bits, 4)


@pytest.mark.parametrize("bits", BITS)
def test_large_threaded_independent(bits):
    rng = np.random.default_rng(5)
    x = data((5 << 20) // 4 + 13, rng)
    res = [[bytes(a) for a in _core.lowbit_quantize(x, bits, 256, threads=t)] for t in (1, 2, 3)]
    assert res[0] == res[1] == res[2]
    check(x, bits, 256, threads=2)
    d = [bytes(_core.lowbit_dequantize(*res[0], bits, 256, len(x), threads=t)) for t in (1, 3)]
    assert d[0] == d[1]


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("n", [0, 1, 5, 8, 9, 1023])
def test_pack_unpack(bits, n):
    rng = np.random.default_rng(n)
    c = rng.integers(0, 1 << bits, n, dtype=np.uint8)
    p = _core.pack_bits(c, bits)
    assert bytes(p) == pack_bits_ref(c, bits).tobytes()
    assert len(p) == (n * bits + 7) // 8
    u = _core.unpack_bits(p, bits, n)
    assert bytes(u) == c.tobytes() == unpack_bits_ref(p, bits, n).tobytes()


def test_pack_large_and_kinds():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 4, (5 << 20) + 3, dtype=np.uint8)
    p = _core.pack_bits(c, 2)
    assert bytes(p) == pack_bits_ref(c, 2).tobytes()
    assert bytes(_core.unpack_bits(bytes(p), 2, len(c))) == c.tobytes()
    small = c[:100]
    for conv in (bytes, bytearray, memoryview):
        assert bytes(_core.pack_bits(conv(small.tobytes()), 2)) == pack_bits_ref(small, 2).tobytes()


def test_pack_rejects_large_codes():
    with pytest.raises(ValueError, match="2\\*\\*bits"):
        _core.pack_bits(bytes([0, 1, 2]), 1)
    with pytest.raises(ValueError):
        _core.pack_bits(np.full((5 << 20), 16, np.uint8), 4)


def test_out_and_inputs():
    rng = np.random.default_rng(1)
    x = data(1000, rng)
    packed, scales, offsets = _core.lowbit_quantize(memoryview(x.tobytes()), 4, 100)
    out = np.empty(1000, np.float32)
    r = _core.lowbit_dequantize(bytes(packed), scales, offsets, 4, 100, 1000, out=out)
    assert r is out
    assert out.tobytes() == bytes(_core.lowbit_dequantize(packed, scales, offsets, 4, 100, 1000))
    with pytest.raises(ValueError, match="contiguous"):
        _core.lowbit_quantize(x[::2], 4, 100)


@settings(max_examples=150, deadline=None)
@given(
    xs=st.lists(st.floats(width=32), max_size=70),
    bits=st.sampled_from(BITS),
    group=st.integers(1, 80),
)
def test_hypothesis(xs, bits, group):
    check(np.array(xs, dtype=np.float32), bits, group)
