"""modelgit.cuda / modelgit._cuda: every GPU kernel bit for bit against modelgit._core.

Runs only where the CUDA module is built and torch sees a CUDA device; elsewhere the
GPU tests are skipped with the reason (the import-hygiene test runs everywhere).
Data are random (never zeros), with NaN (payloads, signalling and quiet), +-Inf, -0.0
and subnormals mixed in, odd lengths and misaligned pointers.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest

from modelgit import _core
from modelgit import cuda as mgcuda
from reference import SPECIAL_WORDS

torch = pytest.importorskip("torch")


def _gpu_skip_reason() -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mgcuda.unavailable_reason()


_REASON = _gpu_skip_reason()
gpu = pytest.mark.skipif(_REASON is not None, reason=f"GPU tests skipped: {_REASON}")

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _random_words(rng, m: int, e: int) -> np.ndarray:
    """m random words of e bytes (as uint8), with special float patterns mixed in."""
    raw = rng.integers(1, 256, size=m * e, dtype=np.uint8)
    if e in SPECIAL_WORDS and m:
        w = raw.view(UINT[e])
        sp = np.array(SPECIAL_WORDS[e], dtype=UINT[e])
        pos = rng.choice(m, size=min(m, max(1, m // 7)), replace=False)
        w[pos] = sp[rng.integers(0, len(sp), size=pos.size)]
    return raw


def _random_floats(rng, n: int, dtype: str, scale: float = 1.0) -> np.ndarray:
    """n plausible weights of `dtype` as raw bytes, with specials mixed in."""
    x = (rng.standard_normal(n) * scale).astype(np.float32)
    if dtype == "float64":
        raw = (rng.standard_normal(n) * scale).astype(np.float64).view(np.uint8)
    elif dtype == "float32":
        raw = x.view(np.uint8)
    elif dtype == "float16":
        raw = x.astype(np.float16).view(np.uint8)
    else:
        raw = (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    raw = raw.copy()
    e = ITEMSIZE[dtype]
    if n:
        w = raw.view(UINT[e])
        sp = np.array(SPECIAL_WORDS[e], dtype=UINT[e])
        pos = rng.choice(n, size=min(n, max(1, n // 11)), replace=False)
        w[pos] = sp[rng.integers(0, len(sp), size=pos.size)]
    return raw


def _dev(a: np.ndarray, offset: int = 0):
    """Copy host bytes to a CUDA uint8 tensor starting `offset` bytes into an allocation."""
    buf = torch.empty(a.size + offset, dtype=torch.uint8, device="cuda")
    buf.fill_(0xA5)
    t = buf[offset : offset + a.size]
    t.copy_(torch.from_numpy(np.ascontiguousarray(a).view(np.uint8)))
    return t


def _out_dev(nbytes: int, offset: int = 0):
    buf = torch.empty(nbytes + offset, dtype=torch.uint8, device="cuda")
    buf.fill_(0x5A)
    return buf[offset : offset + nbytes]


def _host(t) -> np.ndarray:
    torch.cuda.synchronize()
    return t.reshape(-1).view(torch.uint8).cpu().numpy()


def _assert_same(gpu_bytes: np.ndarray, cpu_bytes, what: str) -> None:
    cpu_bytes = np.frombuffer(cpu_bytes, dtype=np.uint8)
    assert gpu_bytes.shape == cpu_bytes.shape, what
    if not np.array_equal(gpu_bytes, cpu_bytes):
        bad = np.flatnonzero(gpu_bytes != cpu_bytes)
        raise AssertionError(
            f"{what}: {bad.size} bytes differ, first at byte {bad[0]} "
            f"(gpu {gpu_bytes[bad[0]]:#04x}, cpu {cpu_bytes[bad[0]]:#04x})"
        )


# --- import hygiene (runs everywhere) --------------------------------------------------


def test_import_does_not_initialise_cuda():
    code = (
        "import torch, modelgit.cuda, modelgit._native as n\n"
        "m = n.cuda_module()\n"
        "assert not torch.cuda.is_initialized()\n"
        "print('ok', m is not None)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


def test_unavailable_reason_is_text_or_none():
    reason = _gpu_skip_reason()
    assert reason is None or isinstance(reason, str)
    assert mgcuda.is_available() == (reason is None)


# --- byte planes ------------------------------------------------------------------------

PLANE_SIZES = [1, 3, 4, 5, 31, 127, 128, 129, 131, 132, 133, 255, 257, 1000, 4099, 40_003]


@gpu
@pytest.mark.parametrize("elem_size", [1, 2, 4, 8])
@pytest.mark.parametrize("delta", [0, 1, 2, 3])
@pytest.mark.parametrize("rotate", [False, True])
def test_planes_match_cpu(elem_size, delta, rotate):
    rng = _rng(1000 * elem_size + 10 * delta + rotate)
    for m in PLANE_SIZES:
        data = _random_words(rng, m, elem_size)
        base = _random_words(rng, m, elem_size) if delta else None
        enc_cpu = _core.planes_encode(data, elem_size, base, delta, rotate)
        dec_cpu = _core.planes_decode(data, elem_size, base, delta, rotate)
        for off in (0, 1, 3) if m in (129, 4099) else (0,):
            d_t = _dev(data, off)
            b_t = _dev(base, (off * 5) % 16) if base is not None else None
            enc = mgcuda.planes_encode(
                d_t, elem_size, b_t, delta, rotate, out=_out_dev(data.size, off)
            )
            _assert_same(
                _host(enc), enc_cpu, f"encode E={elem_size} d={delta} r={rotate} m={m} off={off}"
            )
            dec = mgcuda.planes_decode(
                d_t, elem_size, b_t, delta, rotate, out=_out_dev(data.size, 2 * off)
            )
            _assert_same(
                _host(dec), dec_cpu, f"decode E={elem_size} d={delta} r={rotate} m={m} off={off}"
            )
            back = mgcuda.planes_decode(enc, elem_size, b_t, delta, rotate)
            _assert_same(_host(back), data.tobytes(), f"round trip E={elem_size} m={m}")


@gpu
def test_planes_large_unaligned_and_stream():
    rng = _rng(7)
    m = (1 << 20) + 3
    data = _random_words(rng, m, 4)
    base = _random_words(rng, m, 4)
    enc_cpu = _core.planes_encode(data, 4, base, 1, True)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        d_t, b_t = _dev(data), _dev(base)
        enc = mgcuda.planes_encode(d_t, 4, b_t, 1, True)
        dec = mgcuda.planes_decode(enc, 4, b_t, 1, True)
    s.synchronize()
    _assert_same(_host(enc), enc_cpu, "encode on a side stream")
    _assert_same(_host(dec), data.tobytes(), "decode on a side stream")


@gpu
def test_planes_decode_into_typed_tensor():
    rng = _rng(8)
    x = torch.randn(1001, dtype=torch.float32).to(torch.bfloat16)
    raw = x.view(torch.uint8).numpy()
    planes = _core.planes_encode(raw, 2, None, 0, True)
    out = torch.empty(1001, dtype=torch.bfloat16, device="cuda")
    res = mgcuda.planes_decode(_dev(np.frombuffer(planes, np.uint8)), 2, rotate=True, out=out)
    assert res is out
    torch.cuda.synchronize()
    assert torch.equal(out.cpu().view(torch.int16), x.view(torch.int16))
    del rng


@gpu
def test_upload_host_buffers():
    raw = bytes(range(1, 200))
    for buf in (
        raw,
        bytearray(raw),
        memoryview(raw),
        np.frombuffer(raw, np.uint8),
        torch.tensor(list(raw), dtype=torch.uint8),
    ):
        t = mgcuda.upload(buf)
        assert t.is_cuda and t.dtype == torch.uint8
        assert _host(t).tobytes() == raw
    assert mgcuda.upload(b"").numel() == 0


@gpu
def test_planes_empty():
    t = torch.empty(0, dtype=torch.uint8, device="cuda")
    assert mgcuda.planes_encode(t, 4).numel() == 0
    assert mgcuda.planes_decode(t, 8, t, 1).numel() == 0


@gpu
def test_planes_errors():
    d = torch.ones(16, dtype=torch.uint8, device="cuda")
    with pytest.raises(ValueError, match="elem_size"):
        mgcuda.planes_encode(d, 3)
    with pytest.raises(ValueError, match="multiple of elem_size"):
        mgcuda.planes_encode(d[:15], 4)
    with pytest.raises(ValueError, match="delta"):
        mgcuda.planes_encode(d, 4, d.clone(), 5)
    with pytest.raises(ValueError, match="requires base"):
        mgcuda.planes_decode(d, 4, None, 1)
    with pytest.raises(ValueError, match="DELTA_NONE"):
        mgcuda.planes_decode(d, 4, d.clone(), 0)
    with pytest.raises(ValueError, match="must be equal"):
        mgcuda.planes_decode(d, 4, d[:8].clone(), 1)
    with pytest.raises(ValueError, match="CUDA tensor"):
        mgcuda.planes_decode(d.cpu(), 4)
    with pytest.raises(ValueError, match="contiguous"):
        mgcuda.planes_decode(torch.ones(16, 2, dtype=torch.uint8, device="cuda")[:, 0], 4)
    with pytest.raises(ValueError, match="expected exactly"):
        mgcuda.planes_decode(d, 4, out=torch.empty(8, dtype=torch.uint8, device="cuda"))
    with pytest.raises(TypeError):
        mgcuda.planes_decode(b"\x01" * 16, 4)
    # raw module: overlap, host pointers, negative sizes
    mod = mgcuda._module()
    with pytest.raises(ValueError, match="overlap"):
        mod.planes_decode(d.data_ptr(), d.data_ptr() + 4, 16, 4)
    host = np.ones(16, dtype=np.uint8)
    with pytest.raises(ValueError, match="device"):
        mod.planes_decode(host.ctypes.data, d.data_ptr(), 16, 4)
    with pytest.raises(ValueError):
        mod.planes_decode(d.data_ptr(), d.data_ptr(), -4, 4)


# --- error-bounded quantized delta ----------------------------------------------------------


def _qdelta_case(rng, n: int, dtype: str, eps: float, realistic: bool):
    es = ITEMSIZE[dtype]
    base = _random_floats(rng, n, dtype)
    if realistic:
        # x = base + small deltas; the CPU encoder gives codes and exceptions
        noise = _random_floats(rng, n, dtype, scale=eps * 40)
        xb = base.copy()
        if dtype in ("float32", "float64"):
            ft = np.float32 if dtype == "float32" else np.float64
            with np.errstate(all="ignore"):
                xv = base.view(ft) + noise.view(ft)
            xb = xv.astype(ft).view(np.uint8).copy()
            # keep a few raw specials in x too
            xb[: min(xb.size, 4 * es)] = noise[: min(xb.size, 4 * es)]
        else:
            xb = noise  # unrelated values: many exceptions, many codes
        codes, idx, vals = _core.qdelta_encode(xb, base, dtype, eps)
        codes = np.frombuffer(codes, np.uint8).copy()
        idx = np.frombuffer(idx, np.uint8).copy()
        vals = np.frombuffer(vals, np.uint8).copy()
    else:
        c = rng.integers(-2000, 2000, size=n, dtype=np.int32)
        if n:
            big = rng.choice(n, size=max(1, n // 13), replace=False)
            c[big] = rng.integers(-(2**31), 2**31, size=big.size, dtype=np.int64).astype(np.int32)
        codes = c.view(np.uint8)
        k = min(n, max(0, n // 17))
        ind = (
            np.sort(rng.choice(n, size=k, replace=False)).astype("<u8") if n else np.zeros(0, "<u8")
        )
        idx = ind.view(np.uint8)
        vals = _random_words(rng, k, es)
    return base, codes, idx, vals


@gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "float64"])
@pytest.mark.parametrize("eps", [1e-3, 3.7e-6, 0.25])
def test_qdelta_decode_matches_cpu(dtype, eps):
    rng = _rng(zlib.crc32(f"{dtype}{eps}".encode()))
    for n in (1, 3, 4, 5, 7, 129, 1001, 65_539):
        for realistic in (True, False):
            base, codes, idx, vals = _qdelta_case(rng, n, dtype, eps, realistic)
            want = _core.qdelta_decode(codes, base, idx, vals, dtype, eps)
            off = n % 3
            for host_exc in (True, False):
                e_idx = idx if host_exc else _dev(idx)
                e_val = vals if host_exc else _dev(vals, off)
                got = mgcuda.qdelta_decode(
                    _dev(codes, 2 * off),
                    _dev(base, off),
                    e_idx,
                    e_val,
                    dtype,
                    eps,
                    out=_out_dev(len(want), off),
                )
                _assert_same(_host(got), want, f"qdelta {dtype} eps={eps} n={n} real={realistic}")


@gpu
def test_qdelta_default_out_dtype():
    rng = _rng(3)
    base, codes, idx, vals = _qdelta_case(rng, 77, "bfloat16", 1e-2, False)
    out = mgcuda.qdelta_decode(_dev(codes), _dev(base), idx, vals, "bfloat16", 1e-2)
    assert out.dtype == torch.bfloat16 and out.numel() == 77
    _assert_same(_host(out), _core.qdelta_decode(codes, base, idx, vals, "bfloat16", 1e-2), "bf16")


@gpu
def test_qdelta_errors():
    n = 10
    codes = torch.zeros(4 * n, dtype=torch.uint8, device="cuda")
    base = torch.ones(4 * n, dtype=torch.uint8, device="cuda")
    ok_idx = np.array([1, 5], dtype="<u8")
    vals = np.zeros(8, dtype=np.uint8)
    with pytest.raises(ValueError, match="dtype"):
        mgcuda.qdelta_decode(codes, base, ok_idx, vals, "int8", 1e-3)
    for eps in (0.0, -1.0, float("nan"), float("inf"), 1e-60):
        with pytest.raises(ValueError, match="eps"):
            mgcuda.qdelta_decode(codes, base, ok_idx, vals, "float32", eps)
    with pytest.raises(ValueError, match="codes"):
        mgcuda.qdelta_decode(codes[:-4], base, ok_idx, vals, "float32", 1e-3)
    with pytest.raises(ValueError, match="multiple"):
        mgcuda.qdelta_decode(codes, base[:-1], ok_idx, vals, "float32", 1e-3)
    with pytest.raises(ValueError, match="exc_values"):
        mgcuda.qdelta_decode(codes, base, ok_idx, vals[:-1], "float32", 1e-3)
    with pytest.raises(ValueError, match="multiple of 8"):
        mgcuda.qdelta_decode(codes, base, b"\x00" * 7, b"", "float32", 1e-3)
    for bad in ([5, 1], [3, 3], [1, 10], [2**63 + 1, 4]):
        idx = np.array(bad, dtype="<u8")
        with pytest.raises(ValueError, match="exc_index"):
            mgcuda.qdelta_decode(codes, base, idx, vals, "float32", 1e-3)
        with pytest.raises(ValueError, match="exc_index"):
            mgcuda.qdelta_decode(codes, base, _dev(idx.view(np.uint8)), _dev(vals), "float32", 1e-3)
    mod = mgcuda._module()
    with pytest.raises(ValueError, match="n_exc"):
        mod.qdelta_decode(
            codes.data_ptr(), base.data_ptr(), 0, 0, 11, codes.data_ptr() + 4096, n, "float32", 1e-3
        )


# --- low-bit dequantization ------------------------------------------------------------------


def _lowbit_case(rng, n: int, bits: int, group: int, realistic: bool):
    ngroups = (n + group - 1) // group
    if realistic:
        x = _random_floats(rng, n, "float32")
        packed, scales, offsets = _core.lowbit_quantize(x, bits, group)
        return (
            np.frombuffer(packed, np.uint8).copy(),
            np.frombuffer(scales, np.uint8).copy(),
            np.frombuffer(offsets, np.uint8).copy(),
        )
    packed = rng.integers(1, 256, size=(n * bits + 7) // 8, dtype=np.uint8)
    if packed.size and (n * bits) % 8:  # unused high bits of the last byte are 0
        packed[-1] &= (1 << ((n * bits) % 8)) - 1
    scales = _random_floats(rng, ngroups, "float32", scale=0.1)
    offsets = _random_floats(rng, ngroups, "float32")
    return packed, scales, offsets


@gpu
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("group", [1, 3, 64, 1000, 1 << 20])
def test_lowbit_dequantize_matches_cpu(bits, group):
    rng = _rng(100 * bits + group % 97)
    for n in (1, 2, 7, 8, 9, 63, 1001, 65_541):
        for realistic in (True, False):
            packed, scales, offsets = _lowbit_case(rng, n, bits, group, realistic)
            want = _core.lowbit_dequantize(packed, scales, offsets, bits, group, n)
            off = (n + bits) % 4
            got = mgcuda.lowbit_dequantize(
                _dev(packed, off),
                _dev(scales, 4 * off),
                _dev(offsets, off),
                bits,
                group,
                n,
                out=_out_dev(4 * n, (3 * off) % 8),
            )
            _assert_same(
                _host(got), want, f"lowbit bits={bits} group={group} n={n} real={realistic}"
            )


@gpu
def test_lowbit_errors():
    p = torch.zeros(4, dtype=torch.uint8, device="cuda")
    s = torch.ones(1, dtype=torch.float32, device="cuda")
    with pytest.raises(ValueError, match="bits"):
        mgcuda.lowbit_dequantize(p, s, s, 3, 8, 8)
    with pytest.raises(ValueError, match="group"):
        mgcuda.lowbit_dequantize(p, s, s, 4, 0, 8)
    with pytest.raises(ValueError, match="packed"):
        mgcuda.lowbit_dequantize(p, s, s, 4, 8, 9)
    with pytest.raises(ValueError, match="scales"):
        mgcuda.lowbit_dequantize(p, s, s, 4, 4, 8)
    out = mgcuda.lowbit_dequantize(p, s, s, 4, 8, 8)
    assert out.dtype == torch.float32 and out.numel() == 8
    mod = mgcuda._module()
    with pytest.raises(ValueError, match="overlap"):
        mod.lowbit_dequantize(p.data_ptr(), s.data_ptr(), s.data_ptr(), p.data_ptr(), 4, 8, 8)
