"""planes_encode / planes_decode against the numpy reference, bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelgit import _core
from reference import (
    DELTA_NONE,
    DELTA_OSUB,
    DELTA_SUB,
    DELTA_XOR,
    planes_decode_ref,
    planes_encode_ref,
    zero_mask_ref,
)

MODES = [
    (DELTA_NONE, False),
    (DELTA_NONE, True),
    (DELTA_XOR, False),
    (DELTA_XOR, True),
    (DELTA_SUB, False),
    (DELTA_SUB, True),
    (DELTA_OSUB, False),
    (DELTA_OSUB, True),
]


def special_floats(dtype, n, rng):
    """Random floats of `dtype` mixed with NaN payloads, +-inf, -0.0 and subnormals."""
    if dtype == "bfloat16":
        x = rng.standard_normal(n).astype(np.float32).view(np.uint32) >> 16
        x = x.astype(np.uint16)
        specials = np.array(
            [0x7FC0, 0x7F81, 0xFFC1, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x807F], dtype=np.uint16
        )
    else:
        x = rng.standard_normal(n).astype(dtype)
        fi = np.finfo(dtype)
        uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[x.itemsize]
        nan_payload = np.iinfo(uint).max >> 1  # all-ones NaN payload
        specials = np.array(
            [np.inf, -np.inf, -0.0, fi.smallest_subnormal, -fi.tiny, np.nan], dtype=dtype
        ).view(uint)
        extra = np.array([nan_payload, nan_payload - 5], dtype=uint)
        specials = np.concatenate([specials, extra])
        x = x.view(uint)
    if n:
        idx = rng.integers(0, n, size=min(n, 64))
        x[idx] = specials[rng.integers(0, len(specials), size=len(idx))]
    return x


def check(data: np.ndarray, elem_size: int, base, delta, rotate, **kw):
    enc = _core.planes_encode(data, elem_size, base, delta, rotate, **kw)
    assert isinstance(enc, bytearray) and len(enc) == data.nbytes
    ref = planes_encode_ref(data, elem_size, base, delta, rotate)
    assert np.array_equal(np.frombuffer(enc, np.uint8), ref)
    dec = _core.planes_decode(enc, elem_size, base, delta, rotate, **kw)
    assert np.array_equal(
        np.frombuffer(dec, np.uint8), planes_decode_ref(ref, elem_size, base, delta, rotate)
    )
    assert bytes(dec) == data.tobytes()


DTYPES = [("float32", 4), ("float16", 2), ("bfloat16", 2), ("float64", 8)]


@pytest.mark.parametrize("dtype,es", DTYPES)
@pytest.mark.parametrize("delta,rotate", MODES)
@pytest.mark.parametrize("n", [0, 1, 7, 1001, 4099])
def test_floats_roundtrip(dtype, es, delta, rotate, n):
    rng = np.random.default_rng(n * 31 + es)
    x = special_floats(dtype, n, rng)
    base = None
    if delta != DELTA_NONE:
        base = x.copy()
        base[::3] = special_floats(dtype, len(base[::3]), rng)
    check(x, es, base, delta, rotate)


@pytest.mark.parametrize("dt", [np.int8, np.uint8])
@pytest.mark.parametrize("delta,rotate", MODES)
def test_bytes_elem_size_1(dt, delta, rotate):
    rng = np.random.default_rng(1)
    x = rng.integers(-128 if dt is np.int8 else 0, 128, 999).astype(dt)
    base = rng.integers(0, 100, 999).astype(dt) if delta else None
    check(x, 1, base, delta, rotate)


@pytest.mark.parametrize("es", [1, 2, 4, 8])
@pytest.mark.parametrize(
    "delta,rotate",
    [(DELTA_NONE, False), (DELTA_XOR, True), (DELTA_SUB, True), (DELTA_OSUB, False)],
)
def test_large_threaded_independent(es, delta, rotate):
    rng = np.random.default_rng(es)
    n = (5 << 20) + 3 * 8  # > 4 MiB: threaded path, uneven split
    x = rng.integers(0, 256, n, dtype=np.uint8)
    base = rng.integers(0, 256, n, dtype=np.uint8) if delta else None
    outs = [bytes(_core.planes_encode(x, es, base, delta, rotate, threads=t)) for t in (1, 2, 3, 0)]
    assert all(o == outs[0] for o in outs)
    assert np.array_equal(
        np.frombuffer(outs[0], np.uint8), planes_encode_ref(x, es, base, delta, rotate)
    )
    decs = [bytes(_core.planes_decode(outs[0], es, base, delta, rotate, threads=t)) for t in (1, 3)]
    assert decs[0] == decs[1] == x.tobytes()


def test_input_kinds_and_out():
    x = np.arange(64, dtype=np.float32)
    b = np.ones(64, dtype=np.float32)
    ref = planes_encode_ref(x, 4, b, DELTA_XOR, True).tobytes()
    for conv in (bytes, bytearray, memoryview, lambda a: a, lambda a: memoryview(a.tobytes())):
        assert bytes(_core.planes_encode(conv(x), 4, conv(b), DELTA_XOR, True)) == ref
    out = bytearray(x.nbytes)
    r = _core.planes_encode(x, 4, b, delta=DELTA_XOR, rotate=True, out=out)
    assert r is out and bytes(out) == ref
    arr = np.empty(x.nbytes, np.uint8)
    r = _core.planes_decode(ref, 4, b, delta=DELTA_XOR, rotate=True, out=arr)
    assert r is arr and arr.tobytes() == x.tobytes()
    # a 2-D array is fine when contiguous
    assert bytes(_core.planes_encode(x.reshape(8, 8), 4)) == planes_encode_ref(x, 4).tobytes()


def test_non_contiguous_rejected():
    x = np.arange(64, dtype=np.float32)
    with pytest.raises(ValueError, match="contiguous"):
        _core.planes_encode(x[::2], 4)
    with pytest.raises(ValueError, match="contiguous"):
        _core.planes_encode(memoryview(x.tobytes())[::2], 1)
    with pytest.raises(ValueError, match="contiguous"):
        _core.planes_decode(x.tobytes(), 4, x.reshape(8, 8).T, DELTA_XOR)
    with pytest.raises(ValueError, match="contiguous"):
        _core.planes_encode(x, 4, out=np.empty(512, np.uint8)[::2])


def test_constants():
    assert (_core.DELTA_NONE, _core.DELTA_XOR, _core.DELTA_SUB, _core.DELTA_OSUB) == (0, 1, 2, 3)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=300),
    es=st.sampled_from([1, 2, 4, 8]),
    mode=st.sampled_from(MODES),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_roundtrip(data, es, mode, seed):
    delta, rotate = mode
    data = data[: len(data) - len(data) % es]
    x = np.frombuffer(data, np.uint8)
    base = None
    if delta:
        base = np.random.default_rng(seed).integers(0, 256, len(data), dtype=np.uint8)
    check(x, es, base, delta, rotate)


@pytest.mark.parametrize("es", [2, 4, 8])
def test_unaligned_buffers(es):
    rng = np.random.default_rng(es)
    raw = rng.integers(0, 256, 8 * 1001, dtype=np.uint8)
    store = bytearray(len(raw) + 1)
    store[1:] = raw.tobytes()
    x = memoryview(store)[1:]  # contiguous but not aligned to the word size
    ref = planes_encode_ref(raw, es).tobytes()
    assert bytes(_core.planes_encode(x, es)) == ref
    assert bytes(_core.planes_encode(x, es, x, DELTA_SUB, True)) == bytes(len(raw))
    out = bytearray(len(raw) + 1)
    _core.planes_decode(ref, es, out=memoryview(out)[1:])
    assert bytes(out[1:]) == raw.tobytes()


@pytest.mark.parametrize("es", [1, 2, 4, 8])
@pytest.mark.parametrize("delta,rotate", MODES)
@pytest.mark.parametrize("n", [0, 1, 7, 1001, 4099])
def test_decode_parts_matches_reference(es, delta, rotate, n):
    """planes_decode_parts: the planes in separate (unaligned, any-kind) buffers."""
    rng = np.random.default_rng(1000 * es + n + delta)
    data = rng.integers(0, 256, n * es, dtype=np.uint8)
    base = rng.integers(0, 256, n * es, dtype=np.uint8) if delta != DELTA_NONE else None
    ref = planes_encode_ref(data, es, base, delta, rotate)
    store = bytearray(len(ref) + es)  # plane p at an odd offset in one buffer, or alone
    parts = []
    for p in range(es):
        plane = ref[p * n : (p + 1) * n].tobytes()
        if p % 2:
            store[p + p * n : p + (p + 1) * n] = plane
            parts.append(memoryview(store)[p + p * n : p + (p + 1) * n])
        else:
            parts.append(plane)
    got = _core.planes_decode_parts(parts, es, base, delta, rotate)
    want = planes_decode_ref(ref, es, base, delta, rotate)
    assert np.array_equal(np.frombuffer(got, np.uint8), want)
    assert bytes(got) == data.tobytes()
    out = bytearray(n * es)
    assert _core.planes_decode_parts(parts, es, base, delta, rotate, out=out, threads=2) is out
    assert bytes(out) == data.tobytes()


def test_decode_parts_large_threaded():
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 4 * (3 << 20), dtype=np.uint8)
    m = len(data) // 4
    enc = _core.planes_encode(data, 4, rotate=True)
    parts = [bytes(enc[p * m : (p + 1) * m]) for p in range(4)]
    for threads in (1, 2, 5):
        assert bytes(_core.planes_decode_parts(parts, 4, rotate=True, threads=threads)) == bytes(
            data
        )


def test_decode_parts_errors():
    good = [bytes(8), bytes(8)]
    with pytest.raises(ValueError, match="elem_size"):
        _core.planes_decode_parts(good, 3)
    with pytest.raises(ValueError, match="expected elem_size"):
        _core.planes_decode_parts(good, 4)
    with pytest.raises(ValueError, match="same length"):
        _core.planes_decode_parts([bytes(8), bytes(7)], 2)
    with pytest.raises(ValueError, match="requires base"):
        _core.planes_decode_parts(good, 2, delta=DELTA_XOR)
    with pytest.raises(ValueError, match="DELTA_NONE"):
        _core.planes_decode_parts(good, 2, base=bytes(16))
    with pytest.raises(ValueError, match="must be equal"):
        _core.planes_decode_parts(good, 2, base=bytes(15), delta=DELTA_XOR)
    with pytest.raises(ValueError, match="delta"):
        _core.planes_decode_parts(good, 2, base=bytes(16), delta=9)
    with pytest.raises(ValueError, match="exactly"):
        _core.planes_decode_parts(good, 2, out=bytearray(15))
    with pytest.raises(ValueError, match="writable"):
        _core.planes_decode_parts(good, 2, out=bytes(16))
    with pytest.raises(TypeError):
        _core.planes_decode_parts([bytes(8), 5], 2)
    shared = memoryview(bytearray(32))
    with pytest.raises(ValueError, match="overlap"):
        _core.planes_decode_parts([shared[:8], bytes(8)], 2, out=shared[4:20])


@pytest.mark.parametrize("es", [1, 2, 4, 8])
@pytest.mark.parametrize("delta,rotate", [m for m in MODES if m[0] != DELTA_NONE])
@pytest.mark.parametrize("n", [0, 1, 7, 1001, 4099])
@pytest.mark.parametrize("threads", [1, 3])
def test_apply_parts_in_place_matches_reference(es, delta, rotate, n, threads):
    """planes_apply_parts: out holds the base and receives what planes_decode_parts
    would write given that base."""
    rng = np.random.default_rng(5000 * es + n + delta)
    data = rng.integers(0, 256, n * es, dtype=np.uint8)
    base = rng.integers(0, 256, n * es, dtype=np.uint8)
    ref = planes_encode_ref(data, es, base, delta, rotate)
    parts = [ref[p * n : (p + 1) * n].tobytes() for p in range(es)]
    out = bytearray(base.tobytes())
    assert _core.planes_apply_parts(parts, es, delta, rotate, out=out, threads=threads) is out
    assert np.array_equal(
        np.frombuffer(out, np.uint8), planes_decode_ref(ref, es, base, delta, rotate)
    )
    assert bytes(out) == data.tobytes()


def test_apply_parts_errors():
    good = [bytes(8), bytes(8)]
    with pytest.raises(ValueError, match="needs a delta"):
        _core.planes_apply_parts(good, 2, DELTA_NONE, out=bytearray(16))
    with pytest.raises(ValueError, match="required"):
        _core.planes_apply_parts(good, 2, DELTA_XOR)
    with pytest.raises(ValueError, match="exactly"):
        _core.planes_apply_parts(good, 2, DELTA_XOR, out=bytearray(15))
    with pytest.raises(ValueError, match="writable"):
        _core.planes_apply_parts(good, 2, DELTA_XOR, out=bytes(16))
    shared = memoryview(bytearray(32))
    with pytest.raises(ValueError, match="overlap"):
        _core.planes_apply_parts([shared[:8], bytes(8)], 2, DELTA_XOR, out=shared[4:20])


@pytest.mark.parametrize("es", [1, 2, 4, 8])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000, 4099])
def test_zero_mask_matches_reference(es, n):
    rng = np.random.default_rng(n * es + 1)
    data = rng.integers(0, 256, n * es, dtype=np.uint8)
    words = data.view(f"<u{es}")
    words[rng.random(n) < 0.4] = 0
    pred = rng.integers(0, 256, n * es, dtype=np.uint8)
    bits, out = _core.zero_mask(data, pred, es)
    rbits, rout = zero_mask_ref(data, pred, es)
    assert bytes(bits) == rbits and len(bits) == (n + 7) // 8
    assert bytes(out) == rout.tobytes()
    with pytest.raises(ValueError, match="must be equal"):
        _core.zero_mask(data, pred[: max(0, len(pred) - es)] if n else bytes(es), es)
    with pytest.raises(ValueError, match="elem_size"):
        _core.zero_mask(data, pred, 3)


def _planes(buf, es: int, n: int) -> list[bytes]:
    return [bytes(buf[p * n : (p + 1) * n]) for p in range(es)]


@pytest.mark.parametrize("es", [1, 2, 4, 8])
@pytest.mark.parametrize("delta,rotate", [m for m in MODES if m[0] != DELTA_NONE])
@pytest.mark.parametrize("base_rotate", [False, True])
@pytest.mark.parametrize("n", [0, 1, 7, 2049, 4099])
def test_decode_pair_matches_reference(es, delta, rotate, base_rotate, n, kernel_copy):
    """planes_decode_pair: a standalone base given as its planes (rotated or not) and a
    residual on top, against decoding the base first with the numpy reference."""
    rng = np.random.default_rng(9000 * es + n + 10 * delta + rotate + 2 * base_rotate)
    data = rng.integers(0, 256, n * es, dtype=np.uint8)
    base = rng.integers(0, 256, n * es, dtype=np.uint8)
    base_ref = planes_encode_ref(base, es, None, DELTA_NONE, base_rotate)
    assert np.array_equal(planes_decode_ref(base_ref, es, None, DELTA_NONE, base_rotate), base)
    ref = planes_encode_ref(data, es, base, delta, rotate)
    want = planes_decode_ref(ref, es, base, delta, rotate)
    got = _core.planes_decode_pair(
        _planes(base_ref, es, n), base_rotate, _planes(ref, es, n), es, delta, rotate
    )
    assert np.array_equal(np.frombuffer(got, np.uint8), want)
    assert bytes(got) == data.tobytes()
    out = bytearray(n * es)
    bp, rp = _planes(base_ref, es, n), _planes(ref, es, n)
    got = _core.planes_decode_pair(bp, base_rotate, rp, es, delta, rotate, out=out, threads=3)
    assert got is out
    assert bytes(out) == data.tobytes()


def test_decode_pair_floats_with_special_values():
    rng = np.random.default_rng(3)
    for dtype, es in DTYPES:
        n = 5000
        x, b = special_floats(dtype, n, rng), special_floats(dtype, n, rng)
        enc_b = _core.planes_encode(b, es, rotate=True)
        for delta, rotate in [m for m in MODES if m[0] != DELTA_NONE]:
            res = _core.planes_encode(x, es, b, delta, rotate)
            got = _core.planes_decode_pair(
                _planes(enc_b, es, n), True, _planes(res, es, n), es, delta, rotate
            )
            assert bytes(got) == x.tobytes()


def test_decode_pair_errors():
    good = [bytes(8), bytes(8)]
    with pytest.raises(ValueError, match="needs a delta"):
        _core.planes_decode_pair(good, False, good, 2, DELTA_NONE)
    with pytest.raises(ValueError, match="expected elem_size"):
        _core.planes_decode_pair([bytes(8)], False, good, 2, DELTA_XOR)
    with pytest.raises(ValueError, match="another length"):
        _core.planes_decode_pair([bytes(7), bytes(7)], False, good, 2, DELTA_XOR)
    with pytest.raises(ValueError, match="same length"):
        _core.planes_decode_pair([bytes(8), bytes(7)], False, good, 2, DELTA_XOR)
    with pytest.raises(ValueError, match="exactly"):
        _core.planes_decode_pair(good, False, good, 2, DELTA_XOR, out=bytearray(15))
    with pytest.raises(ValueError, match="delta"):
        _core.planes_decode_pair(good, False, good, 2, 9)
    shared = memoryview(bytearray(32))
    with pytest.raises(ValueError, match="overlap"):
        _core.planes_decode_pair([shared[:8], bytes(8)], False, good, 2, DELTA_XOR,
                                 out=shared[4:20])  # fmt: skip
    with pytest.raises(ValueError, match="overlap"):
        _core.planes_decode_pair(good, False, [shared[:8], bytes(8)], 2, DELTA_XOR,
                                 out=shared[4:20])  # fmt: skip


@pytest.fixture
def kernels():
    """Sets the kernel copies for one test and restores the automatic choice."""
    yield _core.kernels
    _core.kernels("auto")


def test_kernel_choice(kernels):
    assert kernels() in ("avx2", "baseline")
    assert kernels("baseline") == "baseline" == kernels()
    with pytest.raises(ValueError, match="auto"):
        kernels("sse9")
    try:
        assert kernels("avx2") == "avx2"
    except ValueError as exc:  # a CPU or build without them says so
        assert "no AVX2" in str(exc)
        assert kernels() == "baseline"


@pytest.mark.parametrize("es", [1, 2, 4, 8])
def test_every_kernel_copy_gives_the_same_bytes(kernels, es):
    """The AVX2 copy of every plane kernel against the baseline copy, on data long enough
    for whole vector loops and with ragged tails."""
    try:
        kernels("avx2")
    except ValueError:
        pytest.skip("this CPU has no AVX2: only the baseline kernels exist")
    rng = np.random.default_rng(es)
    n = 3 * 2048 + 77
    data = rng.integers(0, 256, n * es, dtype=np.uint8)
    base = rng.integers(0, 256, n * es, dtype=np.uint8)
    for delta, rotate in MODES:
        b = base if delta != DELTA_NONE else None
        got = {}
        for k in ("baseline", "avx2"):
            kernels(k)
            enc = _core.planes_encode(data, es, b, delta, rotate)
            dec = _core.planes_decode_parts(_planes(enc, es, n), es, b, delta, rotate)
            results = [bytes(enc), bytes(dec)]
            if delta != DELTA_NONE:
                out = bytearray(base.tobytes())
                _core.planes_apply_parts(_planes(enc, es, n), es, delta, rotate, out=out)
                benc = _core.planes_encode(base, es, rotate=not rotate)
                pair = _core.planes_decode_pair(
                    _planes(benc, es, n), not rotate, _planes(enc, es, n), es, delta, rotate
                )
                results += [bytes(out), bytes(pair)]
            got[k] = results
        assert got["baseline"] == got["avx2"]
        assert all(r == data.tobytes() for r in got["avx2"][1:])
        assert got["avx2"][0] == planes_encode_ref(data, es, b, delta, rotate).tobytes()


def test_kernels_env_forces_the_baseline_copy():
    """$MODELGIT_KERNELS=baseline: a process runs the baseline copies, "auto" included."""
    code = "from modelgit._native import _core; print(_core.kernels(), _core.kernels('auto'))"
    env = {**os.environ, "MODELGIT_KERNELS": "baseline"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out == ["baseline", "baseline"]
    env.pop("MODELGIT_KERNELS")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out[0] == out[1] and out[0] in ("avx2", "baseline")
