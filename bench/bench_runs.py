"""Runs sections against rANS and zstd on the byte planes one value dominates.

Each fine-tune of the MiniLM zoo (``bench/cache/minilm``, built by ``bench/bench_zoo.py``
or ``bench/bench_load.py``) is cut into the repository's chunks (262,144 elements) and
turned into byte planes as the writer codes it against its parent: an OSUB residual,
unrotated (``storage/policy.py``). Every plane of every chunk where one byte value holds
at least 3/4 of the bytes (where ``_core.runs_encode`` applies) is coded three ways: an
order-0 rANS stream, a zstd frame of the writer's plane strategy and a runs section.
The table gives the bytes the writer's section chooser (``codec/entropy.py``) takes for
these planes with runs sections and without (the chooser before them), how many it now
codes as runs, the sizes of the three codings and their single-thread decode speeds
(GB/s of decoded bytes, each stream decoded into its place in one preallocated buffer,
the three interleaved round by round, medians of ``--runs`` rounds; every decode is
checked against its plane).
Two synthetic sets (i.i.d. bytes, 98% and 80% zeros) show data with no structure.

Run: ``python bench/bench_runs.py --runs 7``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import zstandard
from safetensors.torch import load_file

from modelgit._native import _core
from modelgit.codec import entropy
from modelgit.storage.writer import DEFAULT_CHUNK_ELEMS

ZOO = Path(__file__).resolve().parents[1] / "bench" / "cache" / "minilm"


def residual_planes(sd: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> list[bytes]:
    """The OSUB residual planes (unrotated) of every chunk of every float tensor of ``sd``
    that ``base`` has with the same dtype and shape."""
    out = []
    for k, t in sd.items():
        b = base.get(k)
        if not t.is_floating_point() or b is None or b.dtype != t.dtype or b.shape != t.shape:
            continue
        elem = t.element_size()
        raw = t.contiguous().view(torch.uint8).reshape(-1).numpy().tobytes()
        braw = b.contiguous().view(torch.uint8).reshape(-1).numpy().tobytes()
        step = DEFAULT_CHUNK_ELEMS * elem
        for off in range(0, len(raw), step):
            chunk, bchunk = raw[off : off + step], braw[off : off + step]
            m = len(chunk) // elem
            p = _core.planes_encode(chunk, elem, bchunk, _core.DELTA_OSUB, rotate=False)
            out += [bytes(p[i * m : (i + 1) * m]) for i in range(elem)]
    return out


def data_sets() -> list[tuple[str, list[bytes]]]:
    sets = []
    manifest = ZOO / "manifest.json"
    if manifest.exists():
        for m in json.loads(manifest.read_text()):
            parent = m.get("parent")
            if not isinstance(parent, str) or m.get("relation") == "cast":
                continue
            sd = load_file(str(ZOO / f"{m['name']}.safetensors"))
            base = load_file(str(ZOO / f"{parent}.safetensors"))
            sets.append((f"{m['name']} - {parent}", residual_planes(sd, base)))
    rng = np.random.default_rng(0)
    for share in (0.98, 0.8):
        n = DEFAULT_CHUNK_ELEMS
        planes = []
        for _ in range(32):
            x = rng.integers(1, 256, n, dtype=np.uint8)
            x[rng.random(n) < share] = 0
            planes.append(x.tobytes())
        sets.append((f"synthetic, {share:.0%} zeros", planes))
    return sets


class _NoRuns:
    """The core as the section chooser sees it, without runs sections."""

    def __getattr__(self, name: str) -> object:
        return getattr(_core, name)

    @staticmethod
    def runs_encode(data: object, max_size: int = -1) -> None:
        return None


def timed(fn: Callable[[bytes, int, memoryview], object], streams: list, outs: list) -> float:
    t0 = time.perf_counter()
    for s, o in zip(streams, outs, strict=True):
        fn(s, len(o), o)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="rounds (medians)")
    args = ap.parse_args()
    dctx = zstandard.ZstdDecompressor()
    cctx = zstandard.ZstdCompressor(compression_params=entropy.PLANE_PARAMS)

    def zstd_into(s: bytes, n: int, o: memoryview) -> None:
        o[:] = dctx.decompress(s, max_output_size=n)

    coders: dict[str, tuple[Callable, Callable]] = {
        "rANS": (_core.rans_encode, lambda s, n, o: _core.rans_decode(s, n, out=o)),
        "zstd": (cctx.compress, zstd_into),
        "runs": (_core.runs_encode, lambda s, n, o: _core.runs_decode(s, n, out=o)),
    }
    head = ["residual planes", "planes (of all)", "raw bytes", "chosen as runs",
            "chooser bytes without runs", "with runs"]  # fmt: skip
    head += [f"{k} bytes" for k in coders] + [f"{k} GB/s" for k in coders]
    head += ["runs speed-up over rANS"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for name, all_planes in data_sets():
        planes = [p for p in all_planes if _core.runs_encode(p) is not None]
        if not planes:
            print(f"| {name} | 0 of {len(all_planes)} |" + " - |" * (len(head) - 2))
            continue
        streams = {k: [enc(p) for p in planes] for k, (enc, _) in coders.items()}
        sections = [entropy.section(p) for p in planes]
        chosen = sum(head[0] == entropy.METHOD_RUNS for head, _ in sections)  # u8 method
        with_runs = sum(len(body) for _, body in sections)
        entropy._core = _NoRuns()  # type: ignore[assignment]  # the chooser as before
        try:
            without = sum(len(entropy.section(p)[1]) for p in planes)
        finally:
            entropy._core = _core
        sizes = [len(p) for p in planes]
        raw = sum(sizes)
        want = b"".join(planes)
        buf = bytearray(raw)
        offs = np.cumsum([0, *sizes]).tolist()
        outs = [memoryview(buf)[a:b] for a, b in zip(offs, offs[1:], strict=False)]
        times: dict[str, list[float]] = {k: [] for k in coders}
        for _ in range(args.runs):
            for k, (_, dec) in coders.items():
                buf[:] = bytes(raw)
                times[k].append(timed(dec, streams[k], outs))
                assert buf == want, (name, k)
        gbs = {k: raw / statistics.median(v) / 1e9 for k, v in times.items()}
        row = [name, f"{len(planes)} of {len(all_planes)}", f"{raw:,}", f"{chosen}",
               f"{without:,}", f"{with_runs:,} ({with_runs / without - 1:+.1%})"]  # fmt: skip
        row += [f"{sum(map(len, streams[k])):,}" for k in coders]
        row += [f"{gbs[k]:.2f}" for k in coders] + [f"{gbs['runs'] / gbs['rANS']:.1f}x"]
        print("| " + " | ".join(row) + " |", flush=True)
    print(f"\npython bench/bench_runs.py --runs {args.runs}")


if __name__ == "__main__":
    main()
