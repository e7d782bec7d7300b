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


# --- data -------------------------------------------------------------------------------------

UINT = None  # filled in main (numpy imported late so that the build step needs none)
SPECIALS = None  # filled in main, from tests/reference.py


def _specials() -> dict[int, list[int]]:
    """Raw bit patterns of special values per element size: the table the tests use
    (tests/reference.py, loaded by path so that this script needs nothing installed)."""
    spec = importlib.util.spec_from_file_location("_mg_reference", ROOT / "tests" / "reference.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    return ref.SPECIAL_WORDS


ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-build", action="store_true", help="never build, fail if not importable")
    ap.add_argument("--mib", type=int, default=256, help="size of the timed buffers (MiB)")
    ap.add_argument("--reps", type=int, default=7, help="timed batches per kernel (median)")
    args = ap.parse_args()

    t_start = time.time()
    core, cu = load_modules(allow_build=not args.no_build)

    import numpy as np
    import torch

    global UINT, SPECIALS
    UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
    SPECIALS = _specials()

    if not torch.cuda.is_available():
        print("torch sees no CUDA device", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    print(
        f"device: {props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.0f} GiB; "
        f"torch {torch.__version__} (CUDA {torch.version.cuda}); modelgit._cuda built with CUDA runtime "
        f"{cu.CUDA_RUNTIME_VERSION}; _core threads {core.hardware_threads()}",
        flush=True,
    )
    stream = lambda: torch.cuda.current_stream().cuda_stream  # noqa: E731
    rng = np.random.default_rng(20240607)
    failures: list[str] = []

    # ---- helpers --------------------------------------------------------------------------------
    def to_dev(a: np.ndarray, offset: int = 0):
        a = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        buf = torch.empty(a.size + offset + 16, dtype=torch.uint8, device=dev)
        t = buf[offset : offset + a.size]
        if a.size:
            t.copy_(torch.from_numpy(a))
        return t

    def out_dev(nbytes: int, offset: int = 0):
        buf = torch.full((nbytes + offset + 16,), 0x5A, dtype=torch.uint8, device=dev)
        return buf[offset : offset + nbytes]

    def host(t) -> np.ndarray:
        torch.cuda.synchronize()
        return t.view(torch.uint8).cpu().numpy()

    def same(got: np.ndarray, want, what: str) -> bool:
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
            failures.append(f"{what}: {detail}")
            print(f"  MISMATCH {what}: {detail}", flush=True)
        return ok

    def rand_words(m: int, e: int) -> np.ndarray:
        raw = rng.integers(1, 256, size=m * e, dtype=np.uint8)
        if e in SPECIALS and m:
            w = raw.view(UINT[e])
            sp = np.array(SPECIALS[e], dtype=UINT[e])
            pos = rng.choice(m, size=min(m, max(1, m // 7)), replace=False)
            w[pos] = sp[rng.integers(0, len(sp), size=pos.size)]
        return raw

    def rand_floats(n: int, dtype: str, scale: float = 1.0) -> np.ndarray:
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
            w = raw.view(UINT[e])
            sp = np.array(SPECIALS[e], dtype=UINT[e])
            pos = rng.choice(n, size=min(n, max(1, n // 11)), replace=False)
            w[pos] = sp[rng.integers(0, len(sp), size=pos.size)]
        return raw

    # ---- 1. small exactness suite -----------------------------------------------------------------
    t0 = time.time()
    nchecks = 0
    for e in (1, 2, 4, 8):
        for delta in (0, 1, 2, 3):
            for rot in (False, True):
                for m in (1, 3, 5, 127, 128, 129, 131, 133, 257, 4099, 100_003):
                    data = rand_words(m, e)
                    base = rand_words(m, e) if delta else None
                    for off in (0, 1, 2, 3) if m in (131, 100_003) else (0,):
                        d_t = to_dev(data, off)
                        b_t = to_dev(base, (3 * off) % 16) if delta else None
                        bp = b_t.data_ptr() if delta else 0
                        o = out_dev(data.size, (5 * off) % 16)
                        cu.planes_encode(
                            d_t.data_ptr(), o.data_ptr(), data.size, e, bp, delta, rot, stream()
                        )
                        same(
                            host(o),
                            core.planes_encode(data, e, base, delta, rot),
                            f"planes_encode E={e} delta={delta} rot={rot} m={m} off={off}",
                        )
                        o2 = out_dev(data.size, off)
                        cu.planes_decode(
                            d_t.data_ptr(), o2.data_ptr(), data.size, e, bp, delta, rot, stream()
                        )
                        same(
                            host(o2),
                            core.planes_decode(data, e, base, delta, rot),
                            f"planes_decode E={e} delta={delta} rot={rot} m={m} off={off}",
                        )
                        nchecks += 2
    for dtype in ("float32", "bfloat16", "float16", "float64"):
        es = ITEMSIZE[dtype]
        for eps in (1e-3, 3.7e-6, 0.25):
            for n in (1, 3, 5, 7, 129, 1001, 65_539):
                for realistic in (True, False):
                    base = rand_floats(n, dtype)
                    if realistic:
                        x = rand_floats(n, dtype, scale=eps * 50)
                        if dtype in ("float32", "float64"):
                            ft = np.float32 if dtype == "float32" else np.float64
                            with np.errstate(all="ignore"):
                                x = (base.view(ft) + x.view(ft)).astype(ft).view(np.uint8).copy()
                        codes, idx, vals = (
                            np.frombuffer(b, np.uint8).copy()
                            for b in core.qdelta_encode(x, base, dtype, eps)
                        )
                    else:
                        c = rng.integers(-2000, 2000, size=n, dtype=np.int32)
                        big = rng.choice(n, size=max(1, n // 13), replace=False)
                        c[big] = rng.integers(
                            -(2**31), 2**31, size=big.size, dtype=np.int64
                        ).astype(np.int32)
                        codes = c.view(np.uint8)
                        k = n // 17
                        idx = (
                            np.sort(rng.choice(n, size=k, replace=False))
                            .astype("<u8")
                            .view(np.uint8)
                        )
                        vals = rand_words(k, es)
                    want = core.qdelta_decode(codes, base, idx, vals, dtype, eps)
                    off = n % 4
                    c_t, b_t, i_t, v_t = (
                        to_dev(codes, off),
                        to_dev(base, 2 * off),
                        to_dev(idx),
                        to_dev(vals, off),
                    )
                    o = out_dev(n * es, (3 * off) % 8)
                    k = idx.size // 8
                    cu.qdelta_decode(
                        c_t.data_ptr(),
                        b_t.data_ptr(),
                        i_t.data_ptr() if k else 0,
                        v_t.data_ptr() if k else 0,
                        k,
                        o.data_ptr(),
                        n,
                        dtype,
                        eps,
                        stream(),
                    )
                    same(
                        host(o),
                        want,
                        f"qdelta_decode {dtype} eps={eps} n={n} realistic={realistic} off={off}",
                    )
                    nchecks += 1
    for bits in (1, 2, 4, 8):
        for group in (1, 3, 64, 1000, 1 << 20):
            for n in (1, 2, 7, 8, 9, 63, 1001, 65_541):
                for realistic in (True, False):
                    ng = (n + group - 1) // group
                    if realistic:
                        packed, scales, offsets = (
                            np.frombuffer(b, np.uint8).copy()
                            for b in core.lowbit_quantize(rand_floats(n, "float32"), bits, group)
                        )
                    else:
                        packed = rng.integers(1, 256, size=(n * bits + 7) // 8, dtype=np.uint8)
                        if (n * bits) % 8:
                            packed[-1] &= (1 << ((n * bits) % 8)) - 1
                        scales, offsets = (
                            rand_floats(ng, "float32", 0.1),
                            rand_floats(ng, "float32"),
                        )
                    want = core.lowbit_dequantize(packed, scales, offsets, bits, group, n)
                    off = (n + bits) % 4
                    p_t, s_t, f_t = (
                        to_dev(packed, off),
                        to_dev(scales, 4 * off),
                        to_dev(offsets, off),
                    )
                    o = out_dev(4 * n, (3 * off) % 8)
                    cu.lowbit_dequantize(
                        p_t.data_ptr(),
                        s_t.data_ptr(),
                        f_t.data_ptr(),
                        o.data_ptr(),
                        bits,
                        group,
                        n,
                        stream(),
                    )
                    same(
                        host(o),
                        want,
                        f"lowbit_dequantize bits={bits} group={group} n={n} realistic={realistic} off={off}",
                    )
                    nchecks += 1
    print(
        f"small exactness suite: {nchecks} checks, {len(failures)} failures, {time.time() - t0:.1f} s",
        flush=True,
    )

    # ---- 2. timed runs on large buffers -------------------------------------------------------------
    size = args.mib * MIB
    copy_src = torch.randint(1, 256, (size,), dtype=torch.uint8, device=dev)
    copy_dst = torch.empty_like(copy_src)
    sleep = getattr(torch.cuda, "_sleep", None)

    def timeit(fn, inner: int = 5) -> float:
        """Median seconds per call: batches of `inner` calls between two CUDA events."""
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(args.reps):
            if sleep is not None:
                sleep(2_000_000)  # keep the GPU busy while the host queues the batch
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(inner):
                fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e) / 1e3 / inner)
        return float(np.median(times))

    def copy_time(nbytes: int) -> float:
        a, b = copy_src[:nbytes], copy_dst[:nbytes]
        return timeit(lambda: b.copy_(a))

    rows = []

    def row(name: str, moved: int, out_bytes: int, fn, check) -> None:
        tk = timeit(fn)
        tc = copy_time(out_bytes)
        bw_k = moved / tk / 1e9
        bw_c = 2 * out_bytes / tc / 1e9
        ok = check()
        rows.append((name, moved / MIB, tk * 1e3, bw_k, bw_c, bw_k / bw_c, ok))
        print(
            f"  {name:34s} {moved / MIB:8.0f} MiB {tk * 1e3:8.3f} ms {bw_k:7.0f} GB/s  copy {bw_c:6.0f} GB/s  frac {bw_k / bw_c:5.2f}  exact {'yes' if ok else 'NO'}",
            flush=True,
        )

    def dev_random_words(m: int, e: int, specials: bool = True):
        t = torch.randint(1, 256, (m * e,), dtype=torch.uint8, device=dev)
        if specials and e in SPECIALS:
            sp = torch.tensor(
                [int(v) - (1 << (8 * e)) if v >= 1 << (8 * e - 1) else int(v) for v in SPECIALS[e]],
                dtype={2: torch.int16, 4: torch.int32, 8: torch.int64}[e],
                device=dev,
            )
            w = t.view(sp.dtype)
            pos = torch.arange(0, m, 97, device=dev)
            w[pos] = sp[pos % sp.numel()]
        return t

    def dev_floats(n: int, dtype: str, scale: float = 1.0):
        tdt = getattr(torch, dtype)
        x = (
            torch.randn(n, dtype=torch.float64 if dtype == "float64" else torch.float32, device=dev)
            * scale
        ).to(tdt)
        t = x.view(torch.uint8)
        e = ITEMSIZE[dtype]
        sp = torch.tensor(
            [int(v) - (1 << (8 * e)) if v >= 1 << (8 * e - 1) else int(v) for v in SPECIALS[e]],
            dtype={2: torch.int16, 4: torch.int32, 8: torch.int64}[e],
            device=dev,
        )
        w = t.view(sp.dtype)
        pos = torch.arange(0, n, 997, device=dev)
        w[pos] = sp[pos % sp.numel()]
        return t

    print(f"timed runs on {args.mib} MiB buffers:", flush=True)
    plane_cases = [
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
    for enc in (False, True):
        for e, delta, rot, trim in plane_cases:
            m = size // e - trim  # trim > 0: plane boundaries not 4-byte aligned
            nbytes = m * e
            src = dev_random_words(m, e)
            base = dev_random_words(m, e) if delta else None
            out = torch.empty(nbytes, dtype=torch.uint8, device=dev)
            bp = base.data_ptr() if delta else 0
            f = cu.planes_encode if enc else cu.planes_decode

            def call(f=f, src=src, out=out, nbytes=nbytes, e=e, bp=bp, delta=delta, rot=rot):
                f(src.data_ptr(), out.data_ptr(), nbytes, e, bp, delta, rot, stream())

            def check(src=src, base=base, out=out, e=e, delta=delta, rot=rot, enc=enc):
                torch.cuda.synchronize()
                s_h = src.cpu().numpy()
                b_h = base.cpu().numpy() if base is not None else None
                ref = (core.planes_encode if enc else core.planes_decode)(s_h, e, b_h, delta, rot)
                return same(
                    out.cpu().numpy(),
                    ref,
                    f"large {'encode' if enc else 'decode'} E={e} delta={delta} rot={rot}",
                )

            name = f"planes_{'encode' if enc else 'decode'} E={e} {['none', 'xor', 'sub', 'osub'][delta]}{' rot' if rot else ''}{' odd-m' if trim else ''}"
            row(name, nbytes * (3 if delta else 2), nbytes, call, check)
            del src, base, out

    for dtype in ("float32", "bfloat16", "float16", "float64"):
        es = ITEMSIZE[dtype]
        n = size // es
        eps = 1e-3
        base = dev_floats(n, dtype)
        codes = torch.randint(-3000, 3000, (n,), dtype=torch.int32, device=dev)
        codes[::1009] = torch.randint(
            -(2**31), 2**31 - 1, (codes[::1009].numel(),), dtype=torch.int32, device=dev
        )
        k = n // 1000
        idx_h = np.unique(rng.integers(0, n, size=k)).astype("<u8")
        k = idx_h.size
        idx = torch.from_numpy(idx_h.view(np.uint8)).to(dev)
        vals = torch.randint(1, 256, (k * es,), dtype=torch.uint8, device=dev)
        out = torch.empty(n * es, dtype=torch.uint8, device=dev)

        def call(
            codes=codes, base=base, idx=idx, vals=vals, k=k, out=out, n=n, dtype=dtype, eps=eps
        ):
            cu.qdelta_decode(
                codes.data_ptr(),
                base.data_ptr(),
                idx.data_ptr(),
                vals.data_ptr(),
                k,
                out.data_ptr(),
                n,
                dtype,
                eps,
                stream(),
            )

        def check(codes=codes, base=base, idx=idx, vals=vals, out=out, dtype=dtype, eps=eps):
            torch.cuda.synchronize()
            ref = core.qdelta_decode(
                codes.cpu().numpy(),
                base.cpu().numpy(),
                idx.cpu().numpy(),
                vals.cpu().numpy(),
                dtype,
                eps,
            )
            return same(out.cpu().numpy(), ref, f"large qdelta_decode {dtype}")

        row(f"qdelta_decode {dtype}", n * 4 + 2 * n * es + k * (8 + es), n * es, call, check)
        del base, codes, idx, vals, out

    for bits in (1, 2, 4, 8):
        group = 128
        n = size // 4
        ng = (n + group - 1) // group
        packed = torch.randint(1, 256, ((n * bits + 7) // 8,), dtype=torch.uint8, device=dev)
        scales = dev_floats(ng, "float32", 0.05)
        offsets = dev_floats(ng, "float32")
        out = torch.empty(4 * n, dtype=torch.uint8, device=dev)

        def call(packed=packed, scales=scales, offsets=offsets, out=out, bits=bits, n=n):
            cu.lowbit_dequantize(
                packed.data_ptr(),
                scales.data_ptr(),
                offsets.data_ptr(),
                out.data_ptr(),
                bits,
                128,
                n,
                stream(),
            )

        def check(packed=packed, scales=scales, offsets=offsets, out=out, bits=bits, n=n):
            torch.cuda.synchronize()
            ref = core.lowbit_dequantize(
                packed.cpu().numpy(), scales.cpu().numpy(), offsets.cpu().numpy(), bits, 128, n
            )
            return same(out.cpu().numpy(), ref, f"large lowbit_dequantize bits={bits}")

        row(
            f"lowbit_dequantize {bits}-bit g=128",
            packed.numel() + 8 * ng + 4 * n,
            4 * n,
            call,
            check,
        )
        del packed, scales, offsets, out

    # ---- table ----------------------------------------------------------------------------------------
    print()
    print(f"{'kernel':36s} {'MiB':>7s} {'ms':>8s} {'GB/s':>7s} {'copy':>7s} {'frac':>5s}  exact")
    for name, mib, ms, bw, bwc, frac, ok in rows:
        print(
            f"{name:36s} {mib:7.0f} {ms:8.3f} {bw:7.0f} {bwc:7.0f} {frac:5.2f}  {'yes' if ok else 'NO'}"
        )
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


if __name__ == "__main__":
    sys.exit(main())
