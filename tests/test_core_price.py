"""The pricing kernels (residual_bits, plane_entropy, log_ratio_median) against their
numpy references, and sketch_parts against sketch_ref part by part.

Sums of logarithms run in another order than numpy's pairwise sums (and libm's log may
differ from numpy's by an ulp): they are compared to 1e-12; counts, selections and
the sketches themselves bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelgit import _core
from reference import (
    ITEMSIZE,
    SPECIAL_WORDS,
    UINT,
    f32_to_bf16_bits_ref,
    log_ratio_median_ref,
    plane_entropy_ref,
    residual_bits_ref,
    sketch_parts_ref,
)


def words(rng, n, size, zeros=0.0):
    w = rng.integers(0, 2 ** (8 * size), n, dtype=UINT[size], endpoint=False)
    w[rng.random(n) < zeros] = 0
    return w


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [1, 2, 7, 4096, 5000])
@pytest.mark.parametrize("zeros", [0.0, 0.3, 1.0])
def test_residual_bits_reference(size, n, zeros):
    rng = np.random.default_rng(n * size)
    y = words(rng, n, size, zeros)
    # a prediction close to y (a fine-tune), with a few wild words
    noise = rng.integers(0, 300, n).astype(UINT[size])
    pred = (y + noise).astype(UINT[size])
    pred[:: max(1, n // 5)] = words(rng, len(pred[:: max(1, n // 5)]), size)
    got = _core.residual_bits(y, pred, size)
    ref = residual_bits_ref(y, pred)
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-15)
    assert _core.residual_bits(y, y, size) == (0.0, pytest.approx(residual_bits_ref(y, y)[1]))


def test_residual_bits_extremes():
    y = np.array([0, 2**64 - 1, 1, 2**63], np.uint64)
    p = np.array([2**64 - 1, 0, 2**63, 1], np.uint64)
    assert _core.residual_bits(y, p, 8) == pytest.approx(residual_bits_ref(y, p), rel=1e-12)
    assert _core.residual_bits(b"", b"", 4) == (0.0, 0.0)


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [1, 3, 4096, 10007])
@pytest.mark.parametrize("rotate", [False, True])
def test_plane_entropy_reference(size, n, rotate):
    rng = np.random.default_rng(n + size)
    w = words(rng, n, size, 0.2)
    w[: n // 3] &= UINT[size](0x0F)  # skewed planes
    assert _core.plane_entropy(w, size, rotate) == pytest.approx(
        plane_entropy_ref(w, rotate), rel=1e-12, abs=1e-15
    )


def test_plane_entropy_special():
    for size, special in SPECIAL_WORDS.items():
        w = np.array(special * 3, UINT[size])
        for rotate in (False, True):
            got = _core.plane_entropy(w, size, rotate)
            assert got == pytest.approx(plane_entropy_ref(w, rotate), rel=1e-12, abs=1e-15)
    assert _core.plane_entropy(np.zeros(100, np.uint32), 4, True) == 0.0
    assert _core.plane_entropy(b"", 2) == 0.0
    # one plane of 256 equally likely bytes: 8 bits
    assert _core.plane_entropy(np.arange(256, dtype=np.uint8), 1) == pytest.approx(8.0)


def floats(dtype, n, rng, scale=1.0):
    return as_dtype(rng.standard_normal(n) * scale, dtype)


def as_dtype(v, dtype):
    if dtype == "bfloat16":
        return f32_to_bf16_bits_ref(v.astype(np.float32))
    return v.astype({"float64": np.float64, "float32": np.float32, "float16": np.float16}[dtype])


@pytest.mark.parametrize("dtype", list(ITEMSIZE))
@pytest.mark.parametrize("n", [0, 1, 2, 5, 1024, 4096, 4097])
@pytest.mark.parametrize("step", [1, 4])
def test_log_ratio_median_reference(dtype, n, step):
    rng = np.random.default_rng(n + step)
    b = floats(dtype, n, rng)
    y = floats(dtype, n, rng)
    if n > 4:
        y[::2] = b[::2]  # the same element: log ratio 0 (ties)
        y[1::5] = 0
        raw = y.view(UINT[ITEMSIZE[dtype]])
        raw[3::7] = SPECIAL_WORDS[ITEMSIZE[dtype]][0]  # +inf
    count, median = _core.log_ratio_median(y, b, dtype, step)
    rc, rm = log_ratio_median_ref(y, b, dtype, step)
    assert count == rc
    if rc == 0:
        assert math.isnan(median)
    else:
        assert median == pytest.approx(rm, rel=1e-14, abs=1e-300)


@pytest.mark.parametrize("dtype", list(ITEMSIZE))
@pytest.mark.parametrize("n", [3, 4, 5, 6, 63, 64, 1000, 1001, 4096])
@pytest.mark.parametrize("step", [1, 3])
def test_log_ratio_median_picks_the_middle_of_distinct_ratios(dtype, n, step):
    """Ratios all distinct (no ties at 0): the selection itself, odd and even counts,
    against the reference to 1e-14, and against the sorted ratios by hand."""
    rng = np.random.default_rng(1000 * n + step)
    vb = rng.standard_normal(n)
    vy = np.abs(rng.standard_normal(n)) * 3.0 * np.sign(vb)  # each of its pair's sign
    b, y = as_dtype(vb, dtype), as_dtype(vy, dtype)
    count, median = _core.log_ratio_median(y, b, dtype, step)
    rc, rm = log_ratio_median_ref(y, b, dtype, step)
    assert count == rc > 0
    assert median == pytest.approx(rm, rel=1e-14, abs=1e-300)
    assert rm != 0.0  # a real middle, not a tie at zero


def test_log_ratio_median_scale():
    rng = np.random.default_rng(5)
    b = rng.standard_normal(4096).astype(np.float32)
    y = (b * np.float32(0.999)).astype(np.float32)
    count, median = _core.log_ratio_median(y, b, "float32")
    assert count == 4096
    assert median == pytest.approx(math.log(0.999), abs=1e-6)
    # float64 ratios that overflow: +inf, not NaN, still ordered
    y64 = np.array([1e300, 1.0, 2.0], np.float64)
    b64 = np.array([1e-300, 1.0, 1.0], np.float64)
    assert _core.log_ratio_median(y64, b64, "float64") == (3, pytest.approx(math.log(2.0)))


@pytest.mark.parametrize("dtype", list(ITEMSIZE))
def test_sketch_parts_reference(dtype):
    rng = np.random.default_rng(11)
    x = floats(dtype, 30000, rng)
    raw = x.view(UINT[ITEMSIZE[dtype]])
    raw[::97] = 0
    raw[5::101] = SPECIAL_WORDS[ITEMSIZE[dtype]][2]  # NaN
    parts = [(0, 4096, 7), (10000, 4096, 2**64 - 1), (29990, 10, 3), (500, 0, 1)]
    blob, norm2, zeros = _core.sketch_parts(x, dtype, 32, parts)
    ref, rnorm2, rzeros = sketch_parts_ref(x, dtype, 32, parts)
    got = np.frombuffer(blob, np.float64)
    assert got.tobytes() == ref.tobytes()  # parts added in order, as the reference does
    assert zeros == rzeros
    assert norm2 == pytest.approx(rnorm2, rel=1e-12)
    empty, n0, z0 = _core.sketch_parts(x, dtype, 4, [])
    assert bytes(empty) == bytes(32) and n0 == 0.0 and z0 == 0
    # numpy integers are integers too (through __index__), and seeds wrap mod 2**64
    np_parts = [(np.int64(s), np.int32(c), np.uint64(seed)) for s, c, seed in parts]
    assert bytes(_core.sketch_parts(x, dtype, 32, np_parts)[0]) == bytes(blob)
    with pytest.raises(TypeError, match="seed"):
        _core.sketch_parts(x, dtype, 32, [(0, 10, 1.5)])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: _core.residual_bits(bytes(8), bytes(8), 3), "elem_size"),
        (lambda: _core.residual_bits(bytes(8), bytes(4), 4), "must be equal"),
        (lambda: _core.residual_bits(bytes(6), bytes(6), 4), "multiple"),
        (lambda: _core.plane_entropy(bytes(6), 4), "multiple"),
        (lambda: _core.plane_entropy(bytes(8), 0), "elem_size"),
        (lambda: _core.log_ratio_median(bytes(8), bytes(8), "int8"), "dtype"),
        (lambda: _core.log_ratio_median(bytes(8), bytes(4), "float32"), "must be equal"),
        (lambda: _core.log_ratio_median(bytes(8), bytes(8), "float32", 0), "step"),
        (lambda: _core.log_ratio_median(bytes(6), bytes(6), "float32"), "multiple"),
        (lambda: _core.sketch_parts(bytes(16), "float32", 4, [(2, 3, 0)]), "not within"),
        (lambda: _core.sketch_parts(bytes(16), "float32", 4, [(-1, 1, 0)]), "not within"),
        (lambda: _core.sketch_parts(bytes(16), "float32", 4, [(0, 1)]), "start, count, seed"),
        (lambda: _core.sketch_parts(bytes(16), "float32", 0, []), "k must"),
        (lambda: _core.sketch_parts(bytes(15), "float32", 4, []), "multiple"),
    ],
)
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_not_buffers():
    with pytest.raises(TypeError):
        _core.residual_bits([1, 2], b"ab", 1)
    with pytest.raises(TypeError):
        _core.sketch_parts(bytes(16), "float32", 4, [(0, 1, 1.5)])
