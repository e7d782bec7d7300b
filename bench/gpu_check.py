#!/usr/bin/env python3
"""GPU check of modelgit._cuda: build, bit-exactness against modelgit._core, speed.

Run from the repository root on a machine with a CUDA GPU (nvcc and torch installed):

    pip install --no-build-isolation --no-deps . && python bench/gpu_check.py

(the script builds and installs the package itself when modelgit._cuda is missing).
It imports only modelgit._core, modelgit._cuda (loaded without the package's Python
layer), numpy and torch.

1. Exactness on small random inputs: every kernel and parameter combination, odd
   lengths, misaligned pointers, NaN/Inf/-0/subnormals, against the CPU core.
2. Speed on ~256 MiB random inputs (never zeros): each kernel timed with CUDA events
   (median of several batches, launches queued behind a GPU sleep so that host overhead
   is hidden) next to a device-to-device copy of the same number of output bytes
   measured in the same run; the outputs of these large runs are checked bit for bit
   against the CPU too. "frac" = kernel bandwidth (bytes read + written) / copy
   bandwidth (2 x bytes copied); the target is >= 0.5 for every kernel.

Exit status: 0 all exact, 1 a bit-exactness failure, 2 could not run.
"""

# ruff: noqa: E501  (long table and message lines)
from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


# --- build / load ---------------------------------------------------------------------------


def _load_ext(name: str):
    """Load modelgit.<name> (an extension) without running modelgit/__init__.py."""
    spec = importlib.util.find_spec("modelgit")
    if spec is not None and spec.submodule_search_locations:
        for d in spec.submodule_search_locations:
            for path in sorted(
                glob.glob(os.path.join(d, f"{name}.*so"))
                + glob.glob(os.path.join(d, f"{name}.*pyd"))
            ):
                s = importlib.util.spec_from_file_location(f"modelgit.{name}", path)
                mod = importlib.util.module_from_spec(s)
                s.loader.exec_module(mod)
                return mod
    return importlib.import_module(f"modelgit.{name}")  # e.g. an editable install


def _build() -> None:
    env = dict(os.environ)
    nvcc = shutil.which("nvcc") or next(
        (
            p
            for p in ("/usr/local/cuda/bin/nvcc", *sorted(glob.glob("/usr/local/cuda-*/bin/nvcc")))
            if os.path.exists(p)
        ),
        None,
    )
    if nvcc:
        env.setdefault("CUDACXX", nvcc)
        env["MODELGIT_CUDA"] = "ON"
    cmd = [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", str(ROOT)]
    print("building:", " ".join(cmd), f"(CUDACXX={env.get('CUDACXX')})", flush=True)
    t0 = time.time()
    r = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-6000:], r.stderr[-6000:], sep="\n")
        print("build failed", file=sys.stderr)
        sys.exit(2)
    print(f"built in {time.time() - t0:.0f} s", flush=True)


def load_modules(allow_build: bool):
    try:
        core, cu = _load_ext("_core"), _load_ext("_cuda")
        return core, cu
    except ImportError as exc:
        if not allow_build:
            print(f"cannot import the native modules: {exc}", file=sys.stderr)
            sys.exit(2)
        print(f"modelgit native modules not importable ({exc}); building", flush=True)
    _build()
    os.execv(
        sys.executable, [sys.executable, str(Path(__file__).resolve()), "--no-build", *sys.argv[1:]]
    )


# --- context --------------------------------------------------------------------------------

ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


def _specials() -> dict[int, list[int]]:
    """Raw bit patterns of special values per element size: the table the tests use
    (tests/reference.py, loaded by path so that this script needs nothing installed)."""
    spec = importlib.util.spec_from_file_location("_mg_reference", ROOT / "tests" / "reference.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    return ref.SPECIAL_WORDS


class Gpu:
    """What every section uses: the two modules, the device, one seeded random generator
    (the sections draw from it in a fixed order), the failures found so far, and the
    helpers that move data to and from the device and compare it with the CPU.

    numpy and torch are imported here, late, so that the build step needs neither."""

    def __init__(self, core, cu) -> None:
        import numpy as np
        import torch

        self.np, self.torch = np, torch
        self.core, self.cu = core, cu
        self.uint = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
        self.specials = _specials()
        self.dev = torch.device("cuda")
        self.rng = np.random.default_rng(20240607)
        self.failures: list[str] = []

    def stream(self) -> int:
        return self.torch.cuda.current_stream().cuda_stream

    # ---- host <-> device ---------------------------------------------------------------------
    def to_dev(self, a, offset: int = 0):
        """A copy of `a` on the device, `offset` bytes into a fresh buffer (misaligned)."""
        np, torch = self.np, self.torch
        a = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        buf = torch.empty(a.size + offset + 16, dtype=torch.uint8, device=self.dev)
        t = buf[offset : offset + a.size]
        if a.size:
            t.copy_(torch.from_numpy(a))
        return t

    def out_dev(self, nbytes: int, offset: int = 0):
        """An output buffer of `nbytes` (pre-filled with 0x5A), `offset` bytes in."""
        torch = self.torch
        buf = torch.full((nbytes + offset + 16,), 0x5A, dtype=torch.uint8, device=self.dev)
        return buf[offset : offset + nbytes]

    def host(self, t):
        self.torch.cuda.synchronize()
        return t.view(self.torch.uint8).cpu().numpy()

    def same(self, got, want, what: str) -> bool:
        """got (device result, on the host) == want (the CPU core's); records a failure."""
        np = self.np
        want = (
            np.frombuffer(want, dtype=np.uint8)
            if not isinstance(want, np.ndarray)
            else want.view(np.uint8)
        )
        ok = got.shape == want.shape and np.array_equal(got, want)
        if not ok:
            if got.shape != want.shape:
                detail = f"shape {got.shape} vs {want.shape}"
            else:
                bad = np.flatnonzero(got != want)
                detail = f"{bad.size} bytes differ, first at {bad[0]} (gpu {got[bad[0]]:#04x} cpu {want[bad[0]]:#04x})"
            self.failures.append(f"{what}: {detail}")
            print(f"  MISMATCH {what}: {detail}", flush=True)
        return ok

    # ---- random inputs on the host (from self.rng) ----------------------------------------------
    def rand_words(self, m: int, e: int):
        """m random words of e bytes (never zero bytes), about 1/7 of them special values."""
        np, rng = self.np, self.rng
        raw = rng.integers(1, 256, size=m * e, dtype=np.uint8)
        if e in self.specials and m:
            w = raw.view(self.uint[e])
            sp = np.array(self.specials[e], dtype=self.uint[e])
            pos = rng.choice(m, size=min(m, max(1, m // 7)), replace=False)
            w[pos] = sp[rng.integers(0, len(sp), size=pos.size)]
        return raw

    def rand_floats(self, n: int, dtype: str, scale: float = 1.0):
        """n normal floats of `dtype` times `scale`, about 1/11 of them special values."""
        np, rng = self.np, self.rng
        if dtype == "float64":
            raw = (rng.standard_normal(n) * scale).view(np.uint8).copy()
        else:
            x = (rng.standard_normal(n) * scale).astype(np.float32)
            if dtype == "float32":
                raw = x.view(np.uint8).copy()
            elif dtype == "float16":
                raw = x.astype(np.float16).view(np.uint8).copy()
            else:
                raw = (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).copy()
        e = ITEMSIZE[dtype]
        if n:
            w = raw.view(self.uint[e])
            sp = np.array(self.specials[e], dtype=self.uint[e])
            pos = rng.choice(n, size=min(n, max(1, n // 11)), replace=False)
            w[pos] = sp[rng.integers(0, len(sp), size=pos.size)]
        return raw

    # ---- random inputs on the device (torch's generator) ----------------------------------------
    def _dev_specials(self, e: int):
        torch = self.torch
        return torch.tensor(
            [
                int(v) - (1 << (8 * e)) if v >= 1 << (8 * e - 1) else int(v)
                for v in self.specials[e]
            ],
            dtype={2: torch.int16, 4: torch.int32, 8: torch.int64}[e],
            device=self.dev,
        )

    def dev_random_words(self, m: int, e: int, specials: bool = True):
        torch = self.torch
        t = torch.randint(1, 256, (m * e,), dtype=torch.uint8, device=self.dev)
        if specials and e in self.specials:
            sp = self._dev_specials(e)
            w = t.view(sp.dtype)
            pos = torch.arange(0, m, 97, device=self.dev)
            w[pos] = sp[pos % sp.numel()]
        return t

    def dev_floats(self, n: int, dtype: str, scale: float = 1.0):
        torch = self.torch
        tdt = getattr(torch, dtype)
        x = (
            torch.randn(
                n, dtype=torch.float64 if dtype == "float64" else torch.float32, device=self.dev
            )
            * scale
        ).to(tdt)
        t = x.view(torch.uint8)
        sp = self._dev_specials(ITEMSIZE[dtype])
        w = t.view(sp.dtype)
        pos = torch.arange(0, n, 997, device=self.dev)
        w[pos] = sp[pos % sp.numel()]
        return t


# --- 0. build info ------------------------------------------------------------------------------


def print_build_info(g: Gpu) -> None:
    torch = g.torch
    props = torch.cuda.get_device_properties(g.dev)
    print(
        f"device: {props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB; "
        f"torch {torch.__version__} (CUDA {torch.version.cuda}); modelgit._cuda built with CUDA runtime "
        f"{g.cu.CUDA_RUNTIME_VERSION}; _core threads {g.core.hardware_threads()}",
        flush=True,
    )


# --- 1. small exactness suite ---------------------------------------------------------------------

PLANE_LENGTHS = (1, 3, 5, 127, 128, 129, 131, 133, 257, 4099, 100_003)
QDELTA_LENGTHS = (1, 3, 5, 7, 129, 1001, 65_539)
LOWBIT_LENGTHS = (1, 2, 7, 8, 9, 63, 1001, 65_541)


def exact_planes(g: Gpu) -> int:
    """planes_encode / planes_decode: every elem_size, delta, rotation; odd lengths and
    misaligned pointers. Returns the number of checks."""
    nchecks = 0
    for e in (1, 2, 4, 8):
        for delta in (0, 1, 2, 3):
            for rot in (False, True):
                for m in PLANE_LENGTHS:
                    data = g.rand_words(m, e)
                    base = g.rand_words(m, e) if delta else None
                    for off in (0, 1, 2, 3) if m in (131, 100_003) else (0,):
                        _exact_planes_case(g, data, base, e, delta, rot, m, off)
                        nchecks += 2
    return nchecks


def _exact_planes_case(g: Gpu, data, base, e: int, delta: int, rot: bool, m: int, off: int) -> None:
    core, cu = g.core, g.cu
    d_t = g.to_dev(data, off)
    b_t = g.to_dev(base, (3 * off) % 16) if delta else None
    bp = b_t.data_ptr() if delta else 0
    o = g.out_dev(data.size, (5 * off) % 16)
    cu.planes_encode(d_t.data_ptr(), o.data_ptr(), data.size, e, bp, delta, rot, g.stream())
    g.same(
        g.host(o),
        core.planes_encode(data, e, base, delta, rot),
        f"planes_encode E={e} delta={delta} rot={rot} m={m} off={off}",
    )
    o2 = g.out_dev(data.size, off)
    cu.planes_decode(d_t.data_ptr(), o2.data_ptr(), data.size, e, bp, delta, rot, g.stream())
    g.same(
        g.host(o2),
        core.planes_decode(data, e, base, delta, rot),
        f"planes_decode E={e} delta={delta} rot={rot} m={m} off={off}",
    )


def exact_qdelta(g: Gpu) -> int:
    """qdelta_decode: every dtype, a few eps, encoder output ("realistic") and arbitrary
    codes with exceptions. Returns the number of checks."""
    nchecks = 0
    for dtype in ("float32", "bfloat16", "float16", "float64"):
        for eps in (1e-3, 3.7e-6, 0.25):
            for n in QDELTA_LENGTHS:
                for realistic in (True, False):
                    codes, base, idx, vals = _qdelta_inputs(g, dtype, eps, n, realistic)
                    _exact_qdelta_case(g, codes, base, idx, vals, dtype, eps, n, realistic)
                    nchecks += 1
    return nchecks


def _qdelta_inputs(g: Gpu, dtype: str, eps: float, n: int, realistic: bool):
    np, rng = g.np, g.rng
    base = g.rand_floats(n, dtype)
    if realistic:
        x = g.rand_floats(n, dtype, scale=eps * 50)
        if dtype in ("float32", "float64"):
            ft = np.float32 if dtype == "float32" else np.float64
            with np.errstate(all="ignore"):
                x = (base.view(ft) + x.view(ft)).astype(ft).view(np.uint8).copy()
        codes, idx, vals = (
            np.frombuffer(b, np.uint8).copy() for b in g.core.qdelta_encode(x, base, dtype, eps)
        )
    else:
        c = rng.integers(-2000, 2000, size=n, dtype=np.int32)
        big = rng.choice(n, size=max(1, n // 13), replace=False)
        c[big] = rng.integers(-(2**31), 2**31, size=big.size, dtype=np.int64).astype(np.int32)
        codes = c.view(np.uint8)
        k = n // 17
        idx = np.sort(rng.choice(n, size=k, replace=False)).astype("<u8").view(np.uint8)
        vals = g.rand_words(k, ITEMSIZE[dtype])
    return codes, base, idx, vals


def _exact_qdelta_case(
    g: Gpu, codes, base, idx, vals, dtype: str, eps: float, n: int, realistic: bool
) -> None:
    es = ITEMSIZE[dtype]
    want = g.core.qdelta_decode(codes, base, idx, vals, dtype, eps)
    off = n % 4
    c_t, b_t, i_t, v_t = (
        g.to_dev(codes, off),
        g.to_dev(base, 2 * off),
        g.to_dev(idx),
        g.to_dev(vals, off),
    )
    o = g.out_dev(n * es, (3 * off) % 8)
    k = idx.size // 8
    g.cu.qdelta_decode(
        c_t.data_ptr(),
        b_t.data_ptr(),
        i_t.data_ptr() if k else 0,
        v_t.data_ptr() if k else 0,
        k,
        o.data_ptr(),
        n,
        dtype,
        eps,
        g.stream(),
    )
    g.same(
        g.host(o),
        want,
        f"qdelta_decode {dtype} eps={eps} n={n} realistic={realistic} off={off}",
    )


def exact_lowbit(g: Gpu) -> int:
    """lowbit_dequantize: every bit width, groups from 1 to larger than the input,
    quantizer output ("realistic") and arbitrary packed codes. Returns the number of checks."""
    nchecks = 0
    for bits in (1, 2, 4, 8):
        for group in (1, 3, 64, 1000, 1 << 20):
            for n in LOWBIT_LENGTHS:
                for realistic in (True, False):
                    packed, scales, offsets = _lowbit_inputs(g, bits, group, n, realistic)
                    _exact_lowbit_case(g, packed, scales, offsets, bits, group, n, realistic)
                    nchecks += 1
    return nchecks


def _lowbit_inputs(g: Gpu, bits: int, group: int, n: int, realistic: bool):
    np = g.np
    ng = (n + group - 1) // group
    if realistic:
        return tuple(
            np.frombuffer(b, np.uint8).copy()
            for b in g.core.lowbit_quantize(g.rand_floats(n, "float32"), bits, group)
        )
    packed = g.rng.integers(1, 256, size=(n * bits + 7) // 8, dtype=np.uint8)
    if (n * bits) % 8:
        packed[-1] &= (1 << ((n * bits) % 8)) - 1
    scales, offsets = (
        g.rand_floats(ng, "float32", 0.1),
        g.rand_floats(ng, "float32"),
    )
    return packed, scales, offsets


def _exact_lowbit_case(
    g: Gpu, packed, scales, offsets, bits: int, group: int, n: int, realistic: bool
) -> None:
    want = g.core.lowbit_dequantize(packed, scales, offsets, bits, group, n)
    off = (n + bits) % 4
    p_t, s_t, f_t = (
        g.to_dev(packed, off),
        g.to_dev(scales, 4 * off),
        g.to_dev(offsets, off),
    )
    o = g.out_dev(4 * n, (3 * off) % 8)
    g.cu.lowbit_dequantize(
        p_t.data_ptr(),
        s_t.data_ptr(),
        f_t.data_ptr(),
        o.data_ptr(),
        bits,
        group,
        n,
        g.stream(),
    )
    g.same(
        g.host(o),
        want,
        f"lowbit_dequantize bits={bits} group={group} n={n} realistic={realistic} off={off}",
    )


def exactness_suite(g: Gpu) -> None:
    """1. Every kernel family against the CPU core on small inputs."""
    t0 = time.time()
    nchecks = exact_planes(g)
    nchecks += exact_qdelta(g)
    nchecks += exact_lowbit(g)
    print(
        f"small exactness suite: {nchecks} checks, {len(g.failures)} failures, {time.time() - t0:.1f} s",
        flush=True,
    )


# --- 2. timed runs on large buffers ------------------------------------------------------------------


class Bench:
    """Timing of kernels next to a device-to-device copy of as many output bytes; one
    row per kernel (name, MiB moved, ms, GB/s, copy GB/s, frac, exact)."""

    def __init__(self, g: Gpu, mib: int, reps: int) -> None:
        torch = g.torch
        self.g, self.mib, self.reps = g, mib, reps
        self.size = mib * MIB
        self.copy_src = torch.randint(1, 256, (self.size,), dtype=torch.uint8, device=g.dev)
        self.copy_dst = torch.empty_like(self.copy_src)
        self.sleep = getattr(torch.cuda, "_sleep", None)
        self.rows: list[tuple] = []

    def timeit(self, fn, inner: int = 5) -> float:
        """Median seconds per call: batches of `inner` calls between two CUDA events."""
        torch = self.g.torch
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(self.reps):
            if self.sleep is not None:
                self.sleep(2_000_000)  # keep the GPU busy while the host queues the batch
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(inner):
                fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e) / 1e3 / inner)
        return float(self.g.np.median(times))

    def copy_time(self, nbytes: int) -> float:
        a, b = self.copy_src[:nbytes], self.copy_dst[:nbytes]
        return self.timeit(lambda: b.copy_(a))

    def row(self, name: str, moved: int, out_bytes: int, fn, check) -> None:
        tk = self.timeit(fn)
        tc = self.copy_time(out_bytes)
        bw_k = moved / tk / 1e9
        bw_c = 2 * out_bytes / tc / 1e9
        ok = check()
        self.rows.append((name, moved / MIB, tk * 1e3, bw_k, bw_c, bw_k / bw_c, ok))
        print(
            f"  {name:34s} {moved / MIB:8.0f} MiB {tk * 1e3:8.3f} ms {bw_k:7.0f} GB/s  copy {bw_c:6.0f} GB/s  frac {bw_k / bw_c:5.2f}  exact {'yes' if ok else 'NO'}",
            flush=True,
        )


# (elem_size, delta, rotate, trim): trim > 0 makes the plane boundaries not 4-byte aligned
PLANE_CASES = [
    (4, 0, False, 0),
    (4, 1, False, 0),
    (4, 2, True, 0),
    (4, 3, False, 0),
    (2, 3, False, 0),
    (2, 1, True, 0),
    (2, 0, False, 0),
    (8, 1, False, 0),
    (1, 1, False, 0),
    (4, 1, False, 3),
    (2, 2, True, 3),
]


def time_planes(g: Gpu, bench: Bench) -> None:
    for enc in (False, True):
        for e, delta, rot, trim in PLANE_CASES:
            _time_planes_case(g, bench, enc, e, delta, rot, trim)


def _time_planes_case(
    g: Gpu, bench: Bench, enc: bool, e: int, delta: int, rot: bool, trim: int
) -> None:
    torch, core = g.torch, g.core
    m = bench.size // e - trim
    nbytes = m * e
    src = g.dev_random_words(m, e)
    base = g.dev_random_words(m, e) if delta else None
    out = torch.empty(nbytes, dtype=torch.uint8, device=g.dev)
    bp = base.data_ptr() if delta else 0
    f = g.cu.planes_encode if enc else g.cu.planes_decode

    def call():
        f(src.data_ptr(), out.data_ptr(), nbytes, e, bp, delta, rot, g.stream())

    def check():
        torch.cuda.synchronize()
        s_h = src.cpu().numpy()
        b_h = base.cpu().numpy() if base is not None else None
        ref = (core.planes_encode if enc else core.planes_decode)(s_h, e, b_h, delta, rot)
        return g.same(
            out.cpu().numpy(),
            ref,
            f"large {'encode' if enc else 'decode'} E={e} delta={delta} rot={rot}",
        )

    name = f"planes_{'encode' if enc else 'decode'} E={e} {['none', 'xor', 'sub', 'osub'][delta]}{' rot' if rot else ''}{' odd-m' if trim else ''}"
    bench.row(name, nbytes * (3 if delta else 2), nbytes, call, check)


def time_qdelta(g: Gpu, bench: Bench) -> None:
    for dtype in ("float32", "bfloat16", "float16", "float64"):
        _time_qdelta_case(g, bench, dtype)


def _time_qdelta_case(g: Gpu, bench: Bench, dtype: str) -> None:
    np, torch, dev = g.np, g.torch, g.dev
    es = ITEMSIZE[dtype]
    n = bench.size // es
    eps = 1e-3
    base = g.dev_floats(n, dtype)
    codes = torch.randint(-3000, 3000, (n,), dtype=torch.int32, device=dev)
    codes[::1009] = torch.randint(
        -(2**31), 2**31 - 1, (codes[::1009].numel(),), dtype=torch.int32, device=dev
    )
    k = n // 1000
    idx_h = np.unique(g.rng.integers(0, n, size=k)).astype("<u8")
    k = idx_h.size
    idx = torch.from_numpy(idx_h.view(np.uint8)).to(dev)
    vals = torch.randint(1, 256, (k * es,), dtype=torch.uint8, device=dev)
    out = torch.empty(n * es, dtype=torch.uint8, device=dev)

    def call():
        g.cu.qdelta_decode(
            codes.data_ptr(),
            base.data_ptr(),
            idx.data_ptr(),
            vals.data_ptr(),
            k,
            out.data_ptr(),
            n,
            dtype,
            eps,
            g.stream(),
        )

    def check():
        torch.cuda.synchronize()
        ref = g.core.qdelta_decode(
            codes.cpu().numpy(),
            base.cpu().numpy(),
            idx.cpu().numpy(),
            vals.cpu().numpy(),
            dtype,
            eps,
        )
        return g.same(out.cpu().numpy(), ref, f"large qdelta_decode {dtype}")

    bench.row(f"qdelta_decode {dtype}", n * 4 + 2 * n * es + k * (8 + es), n * es, call, check)


def time_lowbit(g: Gpu, bench: Bench) -> None:
    for bits in (1, 2, 4, 8):
        _time_lowbit_case(g, bench, bits)


def _time_lowbit_case(g: Gpu, bench: Bench, bits: int) -> None:
    torch = g.torch
    group = 128
    n = bench.size // 4
    ng = (n + group - 1) // group
    packed = torch.randint(1, 256, ((n * bits + 7) // 8,), dtype=torch.uint8, device=g.dev)
    scales = g.dev_floats(ng, "float32", 0.05)
    offsets = g.dev_floats(ng, "float32")
    out = torch.empty(4 * n, dtype=torch.uint8, device=g.dev)

    def call():
        g.cu.lowbit_dequantize(
            packed.data_ptr(),
            scales.data_ptr(),
            offsets.data_ptr(),
            out.data_ptr(),
            bits,
            group,
            n,
            g.stream(),
        )

    def check():
        torch.cuda.synchronize()
        ref = g.core.lowbit_dequantize(
            packed.cpu().numpy(), scales.cpu().numpy(), offsets.cpu().numpy(), bits, group, n
        )
        return g.same(out.cpu().numpy(), ref, f"large lowbit_dequantize bits={bits}")

    bench.row(
        f"lowbit_dequantize {bits}-bit g=128",
        packed.numel() + 8 * ng + 4 * n,
        4 * n,
        call,
        check,
    )


def timed_runs(g: Gpu, mib: int, reps: int) -> list[tuple]:
    """2. Each kernel on ~`mib` MiB inputs, timed and checked; returns the table rows."""
    bench = Bench(g, mib, reps)
    print(f"timed runs on {mib} MiB buffers:", flush=True)
    time_planes(g, bench)
    time_qdelta(g, bench)
    time_lowbit(g, bench)
    return bench.rows


# --- 3. summary -------------------------------------------------------------------------------------


def print_table(rows: list[tuple]) -> None:
    print()
    print(f"{'kernel':36s} {'MiB':>7s} {'ms':>8s} {'GB/s':>7s} {'copy':>7s} {'frac':>5s}  exact")
    for name, mib, ms, bw, bwc, frac, ok in rows:
        print(
            f"{name:36s} {mib:7.0f} {ms:8.3f} {bw:7.0f} {bwc:7.0f} {frac:5.2f}  {'yes' if ok else 'NO'}"
        )


def print_verdict(failures: list[str], rows: list[tuple], t_start: float) -> int:
    """The bandwidth target, the bit-exactness verdict; returns the exit status."""
    slow = [r[0] for r in rows if r[5] < 0.5]
    print()
    print(
        f"bandwidth target (frac >= 0.5): {'met by every kernel' if not slow else 'missed by ' + ', '.join(slow)}"
    )
    print(
        f"bit-exactness: {'all exact' if not failures else f'{len(failures)} FAILURES'}; total {time.time() - t_start:.0f} s"
    )
    for f in failures[:20]:
        print("  FAIL", f)
    return 1 if failures else 0


# --- main ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-build", action="store_true", help="never build, fail if not importable")
    ap.add_argument("--mib", type=int, default=256, help="size of the timed buffers (MiB)")
    ap.add_argument("--reps", type=int, default=7, help="timed batches per kernel (median)")
    return ap.parse_args()


def cuda_device_present() -> bool:
    import torch

    if not torch.cuda.is_available():
        print("torch sees no CUDA device", file=sys.stderr)
        return False
    return True


def main() -> int:
    args = parse_args()
    t_start = time.time()
    core, cu = load_modules(allow_build=not args.no_build)
    if not cuda_device_present():
        return 2
    g = Gpu(core, cu)
    print_build_info(g)
    exactness_suite(g)
    rows = timed_runs(g, args.mib, args.reps)
    print_table(rows)
    return print_verdict(g.failures, rows, t_start)


if __name__ == "__main__":
    sys.exit(main())
