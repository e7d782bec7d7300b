"""Throughput of the native core kernels against their numpy references.

Usage: python bench/bench_core.py [--mib 64] [--runs 5] [--copies]

Each kernel runs on an input of --mib MiB (input bytes / time = GB/s) with threads=1
and threads=2, side by side with its numpy reference from tests/reference.py; the
table shows medians over --runs interleaved runs and speed-ups over numpy. Kernels with
an ``out=`` parameter write into a preallocated buffer; the others (and every numpy
reference) allocate their result, page faults included.

``--copies``: the kernels built twice (``_core.kernels``: byte planes and casts), their
baseline copy against their AVX2 copy, threads=1, interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import reference as ref  # noqa: E402
from modelgit import _core  # noqa: E402


def cases(nbytes: int, rng):
    n32 = nbytes // 4
    x32 = rng.standard_normal(n32).astype(np.float32)
    b32 = (x32 + rng.standard_normal(n32).astype(np.float32) * np.float32(1e-3)).astype(np.float32)
    xbf = ref.f32_to_bf16_bits_ref(rng.standard_normal(nbytes // 2).astype(np.float32))
    bbf = xbf ^ rng.integers(0, 4, len(xbf), dtype=np.uint16)
    xr, br = x32.view(np.uint8), b32.view(np.uint8)
    p_none = bytes(_core.planes_encode(xr, 4))
    p_xor = bytes(_core.planes_encode(xr, 4, br, _core.DELTA_XOR, True))
    p_osub = bytes(_core.planes_encode(xr, 4, br, _core.DELTA_OSUB, False))
    p_bf = bytes(_core.planes_encode(xbf, 2, bbf, _core.DELTA_SUB, True))
    m32 = n32
    pb_rot = _core.planes_encode(br, 4, rotate=True)
    base_parts = [bytes(pb_rot[p * m32 : (p + 1) * m32]) for p in range(4)]
    osub_parts = [p_osub[p * m32 : (p + 1) * m32] for p in range(4)]
    q32 = _core.qdelta_encode(x32, b32, "float32", 1e-3)
    qbf = _core.qdelta_encode(xbf, bbf, "bfloat16", 1e-2)
    l4 = _core.lowbit_quantize(x32, 4, 128)
    l1 = _core.lowbit_quantize(x32, 1, 128)
    codes4 = rng.integers(0, 16, nbytes, dtype=np.uint8)
    packed4 = bytes(_core.pack_bits(codes4, 4))
    o8 = bytearray(nbytes)  # out= buffers: measure the kernels, not the page faults
    o8b = bytearray(nbytes)
    o8_half = memoryview(o8)[: nbytes // 2]
    X = _core.DELTA_XOR
    S = _core.DELTA_SUB
    return [
        # name, core(threads), numpy reference, input bytes
        (
            "planes_encode f32 none",
            lambda t: _core.planes_encode(xr, 4, out=o8, threads=t),
            lambda: ref.planes_encode_ref(xr, 4),
            nbytes,
        ),
        (
            "planes_decode f32 none",
            lambda t: _core.planes_decode(p_none, 4, out=o8, threads=t),
            lambda: ref.planes_decode_ref(p_none, 4),
            nbytes,
        ),
        (
            "planes_encode f32 xor+rot",
            lambda t: _core.planes_encode(xr, 4, br, X, True, o8, t),
            lambda: ref.planes_encode_ref(xr, 4, br, X, True),
            nbytes,
        ),
        (
            "planes_decode f32 xor+rot",
            lambda t: _core.planes_decode(p_xor, 4, br, X, True, o8, t),
            lambda: ref.planes_decode_ref(p_xor, 4, br, X, True),
            nbytes,
        ),
        (
            "planes_encode f32 osub",
            lambda t: _core.planes_encode(xr, 4, br, _core.DELTA_OSUB, False, o8, t),
            lambda: ref.planes_encode_ref(xr, 4, br, ref.DELTA_OSUB, False),
            nbytes,
        ),
        (
            "planes_decode f32 osub",
            lambda t: _core.planes_decode(p_osub, 4, br, _core.DELTA_OSUB, False, o8, t),
            lambda: ref.planes_decode_ref(p_osub, 4, br, ref.DELTA_OSUB, False),
            nbytes,
        ),
        (
            "planes_encode bf16 sub+rot",
            lambda t: _core.planes_encode(xbf, 2, bbf, S, True, o8, t),
            lambda: ref.planes_encode_ref(xbf, 2, bbf, S, True),
            nbytes,
        ),
        (
            "planes_decode bf16 sub+rot",
            lambda t: _core.planes_decode(p_bf, 2, bbf, S, True, o8, t),
            lambda: ref.planes_decode_ref(p_bf, 2, bbf, S, True),
            nbytes,
        ),
        (
            "planes_decode_pair f32 osub",
            lambda t: _core.planes_decode_pair(
                base_parts, True, osub_parts, 4, _core.DELTA_OSUB, False, o8, t
            ),
            lambda: ref.planes_decode_ref(
                p_osub, 4, ref.planes_decode_ref(pb_rot, 4, rotate=True), ref.DELTA_OSUB, False
            ),
            nbytes,
        ),
        (
            "cast f32 -> bf16",
            lambda t: _core.cast(xr, "float32", "bfloat16", out=o8_half, threads=t),
            lambda: ref.cast_ref(x32.view(np.uint32), "float32", "bfloat16"),
            nbytes,
        ),
        (
            "cast bf16 -> f32",
            lambda t: _core.cast(xbf[: nbytes // 4], "bfloat16", "float32", out=o8, threads=t),
            lambda: ref.cast_ref(xbf[: nbytes // 4], "bfloat16", "float32"),
            nbytes // 2,
        ),
        (
            "qdelta_encode f32",
            lambda t: _core.qdelta_encode(x32, b32, "float32", 1e-3, threads=t),
            lambda: ref.qdelta_encode_ref(x32, b32, "float32", 1e-3),
            nbytes,
        ),
        (
            "qdelta_decode f32",
            lambda t: _core.qdelta_decode(q32[0], b32, q32[1], q32[2], "float32", 1e-3, o8, t),
            lambda: ref.qdelta_decode_ref(q32[0], b32, q32[1], q32[2], "float32", 1e-3),
            nbytes,
        ),
        (
            "qdelta_encode bf16",
            lambda t: _core.qdelta_encode(xbf, bbf, "bfloat16", 1e-2, threads=t),
            lambda: ref.qdelta_encode_ref(xbf, bbf, "bfloat16", 1e-2),
            nbytes,
        ),
        (
            "qdelta_decode bf16",
            lambda t: _core.qdelta_decode(qbf[0], bbf, qbf[1], qbf[2], "bfloat16", 1e-2, o8b, t),
            lambda: ref.qdelta_decode_ref(qbf[0], bbf, qbf[1], qbf[2], "bfloat16", 1e-2),
            nbytes,
        ),
        (
            "lowbit_quantize 4b g128",
            lambda t: _core.lowbit_quantize(x32, 4, 128, threads=t),
            lambda: ref.lowbit_quantize_ref(x32, 4, 128),
            nbytes,
        ),
        (
            "lowbit_dequantize 4b g128",
            lambda t: _core.lowbit_dequantize(*l4, 4, 128, n32, o8, t),
            lambda: ref.lowbit_dequantize_ref(*l4, 4, 128, n32),
            nbytes,
        ),
        (
            "lowbit_quantize 1b g128",
            lambda t: _core.lowbit_quantize(x32, 1, 128, threads=t),
            lambda: ref.lowbit_quantize_ref(x32, 1, 128),
            nbytes,
        ),
        (
            "lowbit_dequantize 1b g128",
            lambda t: _core.lowbit_dequantize(*l1, 1, 128, n32, o8, t),
            lambda: ref.lowbit_dequantize_ref(*l1, 1, 128, n32),
            nbytes,
        ),
        (
            "pack_bits 4b (codes in)",
            lambda t: _core.pack_bits(codes4, 4),
            lambda: ref.pack_bits_ref(codes4, 4),
            nbytes,
        ),
        (
            "unpack_bits 4b (codes out)",
            lambda t: _core.unpack_bits(packed4, 4, nbytes),
            lambda: ref.unpack_bits_ref(packed4, 4, nbytes),
            nbytes,
        ),
        (
            "sketch f32 k=64",
            lambda t: _core.sketch(x32, "float32", 64, threads=t),
            lambda: ref.sketch_ref(x32, "float32", 64),
            nbytes,
        ),
        (
            "sketch bf16 k=64",
            lambda t: _core.sketch(xbf, "bfloat16", 64, threads=t),
            lambda: ref.sketch_ref(xbf, "bfloat16", 64),
            nbytes,
        ),
    ]


def timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--filter", default="", help="only kernels whose name contains this")
    ap.add_argument(
        "--copies", action="store_true", help="the baseline against the AVX2 copy of each kernel"
    )
    args = ap.parse_args()
    nbytes = args.mib << 20
    rng = np.random.default_rng(0)
    if args.copies:
        copies(cases(nbytes, rng), args)
        return
    print(
        f"modelgit._core benchmark: {args.mib} MiB inputs, median of {args.runs} interleaved "
        f"runs, hardware threads = {_core.hardware_threads()}"
    )
    print()
    print("| kernel | core t=1 GB/s | core t=2 GB/s | numpy GB/s | speed-up t=1 | speed-up t=2 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, core, numpy_ref, size in cases(nbytes, rng):
        if args.filter not in name:
            continue
        core(1), core(2), numpy_ref()  # warm up (page faults, caches)
        t1, t2, tr = [], [], []
        for _ in range(args.runs):
            t1.append(timed(lambda c=core: c(1)))
            t2.append(timed(lambda c=core: c(2)))
            tr.append(timed(numpy_ref))
        m1, m2, mr = (statistics.median(v) for v in (t1, t2, tr))
        gb = size / 1e9
        print(
            f"| {name} | {gb / m1:.2f} | {gb / m2:.2f} | {gb / mr:.3f} | {mr / m1:.1f}x | "
            f"{mr / m2:.1f}x |",
            flush=True,
        )


def copies(all_cases: list, args: argparse.Namespace) -> None:
    """The kernels built twice: each copy single-threaded, interleaved, medians."""
    if "avx2" not in (_core.kernels("auto"), _core.kernels()):
        raise SystemExit("this CPU or build has no AVX2 copies to compare")
    print(f"modelgit._core kernel copies: {args.mib} MiB inputs, threads=1, median of "
          f"{args.runs} interleaved runs")  # fmt: skip
    print()
    print("| kernel | baseline GB/s | AVX2 GB/s | AVX2 speed-up |")
    print("|---|---:|---:|---:|")
    for name, core, _, size in all_cases:
        if not name.startswith(("planes", "cast")) or args.filter not in name:
            continue
        times: dict[str, list[float]] = {"baseline": [], "avx2": []}
        for copy in times:  # warm up
            _core.kernels(copy)
            core(1)
        for _ in range(args.runs):
            for copy, got in times.items():
                _core.kernels(copy)
                got.append(timed(lambda c=core: c(1)))
        _core.kernels("auto")
        b, a = (statistics.median(v) for v in times.values())
        gb = size / 1e9
        print(f"| {name} | {gb / b:.2f} | {gb / a:.2f} | {b / a:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
