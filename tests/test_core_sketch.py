"""sketch against the reference (bit for bit) and thread-count independence."""

from __future__ import annotations

import numpy as np
import pytest

from modelgit import _core
from reference import f32_to_bf16_bits_ref, sketch_ref

DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "bfloat16": None}


def make(dtype, n, rng):
    v = rng.standard_normal(n)
    if dtype == "bfloat16":
        x = f32_to_bf16_bits_ref(v.astype(np.float32))
        if n:
            x[:: max(1, n // 7)] = 0x7FC1  # NaN
        return x
    x = v.astype(DTYPES[dtype])
    if n:
        x[:: max(1, n // 7)] = np.nan
        x[1 :: max(1, n // 5)] = np.inf
        x[-1] = -0.0
    return x


def sk(x, dtype, **kw):
    return np.frombuffer(_core.sketch(x, dtype, **kw), np.float64)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("n", [0, 1, 3, 1000, 65536, 65537, 200003])
@pytest.mark.parametrize("k,seed", [(64, 0), (1, 5), (7, 2**64 - 1)])
def test_reference(dtype, n, k, seed):
    rng = np.random.default_rng(n + k)
    x = make(dtype, n, rng)
    got = sk(x, dtype, k=k, seed=seed)
    ref = sketch_ref(x, dtype, k, seed)
    assert got.shape == (k,)
    assert np.allclose(got, ref, rtol=1e-12, atol=0)
    assert got.tobytes() == ref.tobytes()  # the reference reproduces the summation order


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_threads_independent(dtype):
    rng = np.random.default_rng(2)
    x = make(dtype, (6 << 20) // np.dtype(DTYPES[dtype] or np.uint16).itemsize + 11, rng)
    outs = [sk(x, dtype, k=128, seed=3, threads=t).tobytes() for t in (1, 2, 3, 0)]
    assert len(set(outs)) == 1
    assert np.allclose(np.frombuffer(outs[0]), sketch_ref(x, dtype, 128, 3), rtol=1e-12)


def test_large_k_waves():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5 << 20) // 8).astype(np.float64)
    a = sk(x, "float64", k=1 << 20, threads=1)
    b = sk(x, "float64", k=1 << 20, threads=2)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() == sketch_ref(x, "float64", 1 << 20).tobytes()


def test_distance_estimate():
    rng = np.random.default_rng(4)
    a = rng.standard_normal(100000)
    b = a + rng.standard_normal(100000) * 0.01
    est = np.linalg.norm(sk(a, "float64", k=1024) - sk(b, "float64", k=1024))
    true = np.linalg.norm(a - b)
    assert 0.7 * true < est < 1.3 * true
    assert np.linalg.norm(sk(a, "float64") - sk(a.copy(), "float64")) == 0


def test_input_kinds():
    x = np.linspace(-1, 1, 999, dtype=np.float32)
    ref = sk(x, "float32").tobytes()
    for conv in (bytes, bytearray, memoryview):
        assert bytes(_core.sketch(conv(x.tobytes()), "float32")) == ref
    assert isinstance(_core.sketch(x, "float32"), bytearray)
    with pytest.raises(ValueError, match="contiguous"):
        _core.sketch(x[::2], "float32")
