"""Every bad input raises ValueError (TypeError for non-buffers), never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from modelgit import _core

F32 = np.arange(16, dtype=np.float32)
B64 = bytes(64)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: _core.planes_encode(B64, 3), "elem_size"),
        (lambda: _core.planes_encode(B64, 0), "elem_size"),
        (lambda: _core.planes_encode(bytes(7), 4), "multiple"),
        (lambda: _core.planes_encode(B64, 4, B64, 4), "delta"),
        (lambda: _core.planes_encode(B64, 4, B64, -1), "delta"),
        (lambda: _core.planes_encode(B64, 4, None, _core.DELTA_XOR), "requires base"),
        (lambda: _core.planes_encode(B64, 4, B64, _core.DELTA_NONE), "base"),
        (lambda: _core.planes_encode(B64, 4, bytes(60), _core.DELTA_SUB), "equal"),
        (lambda: _core.planes_decode(B64, 4, bytes(68), _core.DELTA_XOR), "equal"),
        (lambda: _core.planes_encode(B64, 4, out=bytearray(63)), "expected exactly 64"),
        (lambda: _core.planes_encode(B64, 4, out=bytes(64)), "writable"),
        (lambda: _core.planes_encode(B64, 4, threads=-1), "threads"),
        (lambda: _core.planes_encode(B64, 2**70), "range"),
        (lambda: _core.qdelta_encode(F32, F32, "float8", 0.1), "dtype"),
        (lambda: _core.qdelta_encode(F32, F32, "float32", 0.0), "eps"),
        (lambda: _core.qdelta_encode(F32, F32, "float32", -1.0), "eps"),
        (lambda: _core.qdelta_encode(F32, F32, "float32", float("nan")), "eps"),
        (lambda: _core.qdelta_encode(F32, F32, "float32", float("inf")), "eps"),
        (lambda: _core.qdelta_encode(F32, F32, "float32", 1e-50), "too small"),
        (lambda: _core.qdelta_encode(F32, F32[:15], "float32", 0.1), "equal"),
        (lambda: _core.qdelta_encode(bytes(6), bytes(6), "float32", 0.1), "multiple"),
        (lambda: _core.qdelta_decode(bytes(60), F32, b"", b"", "float32", 0.1), "codes"),
        (
            lambda: _core.qdelta_decode(bytes(64), F32, bytes(7), b"", "float32", 0.1),
            "multiple of 8",
        ),
        (lambda: _core.qdelta_decode(bytes(64), F32, bytes(8), b"", "float32", 0.1), "exc_values"),
        (
            lambda: _core.qdelta_decode(
                bytes(64), F32, np.array([16], np.uint64), bytes(4), "float32", 0.1
            ),
            "out of range",
        ),
        (
            lambda: _core.qdelta_decode(
                bytes(64), F32, np.array([3, 3], np.uint64), bytes(8), "float32", 0.1
            ),
            "ascending",
        ),
        (
            lambda: _core.qdelta_decode(
                bytes(64), F32, np.array([5, 2], np.uint64), bytes(8), "float32", 0.1
            ),
            "ascending",
        ),
        (
            lambda: _core.qdelta_decode(
                bytes(64), F32, np.array([2**64 - 1], np.uint64), bytes(4), "float32", 0.1
            ),
            "out of range",
        ),
        (
            lambda: _core.qdelta_decode(bytes(64), F32, b"", b"", "float32", 0.1, out=bytearray(8)),
            "expected",
        ),
        (lambda: _core.lowbit_quantize(F32, 3, 4), "bits"),
        (lambda: _core.lowbit_quantize(F32, 4, 0), "group"),
        (lambda: _core.lowbit_quantize(bytes(6), 4, 4), "multiple of 4"),
        (lambda: _core.lowbit_dequantize(bytes(8), bytes(16), bytes(16), 4, 4, 17), "packed"),
        (lambda: _core.lowbit_dequantize(bytes(8), bytes(12), bytes(16), 4, 4, 16), "scales"),
        (lambda: _core.lowbit_dequantize(bytes(8), bytes(16), bytes(20), 4, 4, 16), "offsets"),
        (lambda: _core.lowbit_dequantize(bytes(8), bytes(16), bytes(16), 4, 4, -1), "n must"),
        (lambda: _core.lowbit_dequantize(bytes(8), bytes(16), bytes(16), 4, 4, 2**62), "n is"),
        (lambda: _core.pack_bits(bytes([4]), 2), "2\\*\\*bits"),
        (lambda: _core.pack_bits(bytes(4), 16), "bits"),
        (lambda: _core.unpack_bits(bytes(3), 4, 7), "packed"),
        (lambda: _core.unpack_bits(bytes(5), 4, 7), "packed"),
        (lambda: _core.sketch(F32, "int8"), "dtype"),
        (lambda: _core.sketch(F32, "float32", k=0), "k must"),
        (lambda: _core.sketch(F32, "float32", k=2**40), "k must"),
        (lambda: _core.sketch(bytes(7), "float16"), "multiple"),
    ],
)
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_buffers_are_type_errors():
    with pytest.raises(TypeError):
        _core.planes_encode("abc", 1)
    with pytest.raises(TypeError):
        _core.sketch([1.0, 2.0], "float64")
    with pytest.raises(TypeError):
        _core.planes_encode(B64, 4.0)


def test_strided_rejected_everywhere():
    mv = memoryview(bytes(128))[::2]
    calls = [
        lambda: _core.planes_encode(mv, 1),
        lambda: _core.planes_decode(bytes(64), 1, mv, _core.DELTA_XOR),
        lambda: _core.qdelta_encode(mv, bytes(64), "float32", 0.1),
        lambda: _core.qdelta_decode(bytes(64), bytes(64), mv[:8], mv[:4], "float32", 0.1),
        lambda: _core.lowbit_quantize(mv, 4, 4),
        lambda: _core.lowbit_dequantize(mv[:8], bytes(16), bytes(16), 4, 4, 16),
        lambda: _core.pack_bits(mv, 8),
        lambda: _core.unpack_bits(mv, 8, 64),
        lambda: _core.sketch(mv, "float32"),
        lambda: _core.planes_encode(bytes(64), 1, out=memoryview(bytearray(128))[::2]),
    ]
    for c in calls:
        with pytest.raises(ValueError, match="contiguous"):
            c()


def test_out_overlap_rejected():
    buf = bytearray(64)
    with pytest.raises(ValueError, match="overlap"):
        _core.planes_encode(buf, 4, out=buf)
    with pytest.raises(ValueError, match="overlap"):
        _core.planes_decode(memoryview(buf)[:32], 4, out=memoryview(buf)[16:48])


def test_readonly_numpy_out_rejected():
    a = np.zeros(64, np.uint8)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.planes_encode(B64, 4, out=a)


def _random_call(rng):
    """One call with random (mostly wrong) buffers and parameters."""

    def buf():
        n = int(rng.choice([0, 1, 3, 4, 7, 8, 16, 64, 65, 128, 1000]))
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    dtype = str(rng.choice(["float32", "float16", "bfloat16", "float64", "x"]))
    es = int(rng.choice([1, 2, 3, 4, 8, 16]))
    bits = int(rng.choice([0, 1, 2, 3, 4, 8]))
    group = int(rng.choice([-1, 0, 1, 3, 64]))
    n = int(rng.choice([-1, 0, 1, 7, 64, 100, 1000, 2**40]))
    eps = float(rng.choice([0.0, -1.0, 1e-3, 1e-50, 1e300, np.nan]))
    k = int(rng.choice([0, 1, 64, 2**30]))
    which = int(rng.integers(0, 8))
    base = buf() if rng.random() < 0.7 else None
    if which == 0:
        return _core.planes_encode(
            buf(), es, base, int(rng.integers(-1, 4)), bool(rng.random() < 0.5)
        )
    if which == 1:
        return _core.planes_decode(
            buf(), es, base, int(rng.integers(-1, 4)), bool(rng.random() < 0.5)
        )
    if which == 2:
        return _core.qdelta_encode(buf(), buf(), dtype, eps)
    if which == 3:
        x = buf()
        codes = rng.integers(-(2**31), 2**31, len(x) // 2 + 1, dtype=np.int64).astype(np.int32)
        return _core.qdelta_decode(
            codes[: int(rng.integers(0, len(codes) + 1))], x, buf(), buf(), dtype, eps
        )
    if which == 4:
        return _core.lowbit_quantize(buf(), bits, group)
    if which == 5:
        return _core.lowbit_dequantize(buf(), buf(), buf(), bits, group, n)
    if which == 6:
        return (
            _core.unpack_bits(buf(), bits, n)
            if rng.random() < 0.5
            else _core.pack_bits(buf(), bits)
        )
    return _core.sketch(buf(), dtype, k)


def _fuzz(iterations, seed):
    rng = np.random.default_rng(seed)
    ok = 0
    for _ in range(iterations):
        try:
            _random_call(rng)
            ok += 1
        except ValueError:
            pass
    return ok


def test_random_corruption():
    _fuzz(3000, 0)


def test_qdelta_decode_corrupt_streams():
    """Valid encodings with truncated / extended / shuffled parts."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(500).astype(np.float32)
    x[::50] = np.nan
    b = x + np.float32(0.01)
    codes, idx, vals = (bytes(a) for a in _core.qdelta_encode(x, b, "float32", 1e-3))
    variants = [
        (codes[:-4], b, idx, vals),
        (codes + bytes(4), b, idx, vals),
        (codes, b, idx[:-8], vals),
        (codes, b, idx, vals[:-1]),
        (codes, b, idx[8:] + idx[:8], vals),
    ]
    for v in variants:
        with pytest.raises(ValueError):
            _core.qdelta_decode(*v, "float32", 1e-3)
    # garbage codes are still safe to decode (any int32 is a code)
    garbage = rng.integers(0, 256, len(codes), dtype=np.uint8).tobytes()
    _core.qdelta_decode(garbage, b, idx, vals, "float32", 1e-3)


@pytest.mark.slow
def test_random_corruption_long(request):
    """~1 minute of fuzzing; runs only when selected explicitly (pytest -m slow)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long fuzz run: select it with -m slow")
    for seed in range(6):
        _fuzz(20000, 100 + seed)
