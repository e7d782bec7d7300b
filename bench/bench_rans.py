"""rANS decode loops, one by one, against a baseline build, on the planes a repository codes.

Each data set is cut into the repository's chunks (262,144 elements), turned into byte
planes as the writer does (rotated; XOR residuals against the base for a fine-tune) and
every plane of every chunk is rANS-coded once. Every decode loop of this build
(``_core.rans_decoders()``) and, with ``--baseline PYTHON``, of another build (that
interpreter's ``modelgit._core``, loaded into this process: its SIMD loop and its
portable one) then decodes every stream, single-threaded, the loops interleaved round by
round, each stream into its place in one preallocated buffer (as a load decodes into a
scratch buffer: no page faults are timed). The table shows medians of ``--runs`` rounds
in GB/s of decoded bytes and the speed-up of each loop over the baseline's loop of the
same kind. Every decode is checked against its plane, and the baseline's encoder must
write the same streams. The Huffman sections of the same planes (section method 4,
``_core.huff_encode``) and their zstd frames (the writer's plane strategy) join as two
more contenders: their sizes against rANS's and their decode speeds against this
build's fastest rANS loop (zstd's including the allocation of its output, as a load
pays it).

Data: all-MiniLM-L6-v2 (fp32 and bf16 planes); topic-a, a real fine-tune of it, as XOR
residual planes against it when the MiniLM zoo is in ``bench/cache/minilm`` (built by
``bench/bench_load.py`` or ``bench/bench_zoo.py``); synthetic skewed bytes.

Run: ``python bench/bench_rans.py --runs 7 --baseline /path/to/other/venv/bin/python``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import zstandard
from safetensors.torch import load_file

from modelgit._native import _core
from modelgit.codec import entropy
from modelgit.storage.writer import DEFAULT_CHUNK_ELEMS

sys.path.insert(0, str(Path(__file__).parent))
from bench_repository import minilm  # noqa: E402 - the same model

ZOO = Path(__file__).resolve().parents[1] / "bench" / "cache" / "minilm"


def baseline_core(python: str) -> ModuleType:
    """The ``modelgit._core`` extension of another interpreter's modelgit, loaded here."""
    code = "import modelgit._native as n; print(n._core.__file__)"
    path = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    spec = importlib.util.spec_from_file_location("_core", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def planes(
    sd: dict[str, torch.Tensor], base: dict[str, torch.Tensor] | None = None
) -> list[list[bytes]]:
    """Plane p of every chunk of every floating tensor: out[p] is a list of byte strings."""
    elem = next(v for v in sd.values() if v.is_floating_point()).element_size()
    out: list[list[bytes]] = [[] for _ in range(elem)]
    step = DEFAULT_CHUNK_ELEMS * elem
    for k, t in sd.items():
        if not t.is_floating_point() or (base is not None and k not in base):
            continue  # (a fine-tune's new head has no base)
        raw = t.contiguous().view(torch.uint8).numpy().tobytes()
        braw = base[k].contiguous().view(torch.uint8).numpy().tobytes() if base else None
        for off in range(0, len(raw), step):
            chunk = raw[off : off + step]
            m = len(chunk) // elem
            if braw is None:
                p = _core.planes_encode(chunk, elem, rotate=True)
            else:
                p = _core.planes_encode(
                    chunk, elem, braw[off : off + step], _core.DELTA_XOR, rotate=True
                )
            for i in range(elem):
                out[i].append(bytes(p[i * m : (i + 1) * m]))
    return out


def data_sets() -> list[tuple[str, list[bytes]]]:
    sd = minilm()
    bf16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in sd.items()}
    sets = [(f"MiniLM fp32, plane {p}", c) for p, c in enumerate(planes(sd))]
    sets += [(f"MiniLM bf16, plane {p}", c) for p, c in enumerate(planes(bf16))]
    if (ZOO / "topic-a.safetensors").exists():
        base = load_file(str(ZOO / "minilm.safetensors"))
        ft = load_file(str(ZOO / "topic-a.safetensors"))
        sets += [(f"topic-a XOR MiniLM, plane {p}", c) for p, c in enumerate(planes(ft, base))]
    rng = np.random.default_rng(0)
    skewed = np.minimum(rng.geometric(0.6, 64 * DEFAULT_CHUNK_ELEMS), 255).astype(np.uint8)
    step = DEFAULT_CHUNK_ELEMS
    chunks = [skewed[i : i + step].tobytes() for i in range(0, len(skewed), step)]
    sets.append(("synthetic, geometric p=0.6", chunks))
    return sets


def decoders(base: ModuleType | None) -> dict[str, tuple[str, object]]:
    """Label -> (kind, decode function). kind: "simd" or "portable" (the pairs compared)."""
    out: dict[str, tuple[str, object]] = {}
    if base is not None:
        out["baseline SIMD"] = ("simd", lambda s, n, o: base.rans_decode(s, n, out=o))
        out["baseline portable"] = (
            "portable", lambda s, n, o: base.rans_decode(s, n, out=o, simd=False)
        )  # fmt: skip
    for d in _core.rans_decoders():
        kind = "portable" if d == "portable" else "simd"
        out[f"this build {d}"] = (
            kind, lambda s, n, o, d=d: _core.rans_decode(s, n, out=o, decoder=d)
        )  # fmt: skip
    return out


def huff_decode(s: bytes, n: int, o: memoryview) -> None:
    _core.huff_decode(s, n, out=o)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="rounds (medians)")
    ap.add_argument("--baseline", help="python of another modelgit build to compare against")
    args = ap.parse_args()
    base = baseline_core(args.baseline) if args.baseline else None
    loops = decoders(base)
    labels = list(loops)
    print(f"decode loops of this build: {_core.rans_decoders()}; {args.runs} rounds\n")
    head = ["data", "raw bytes", "coded"] + [f"{k} GB/s" for k in labels]
    if base is not None:
        head += [f"{k}: speed-up" for k in labels if k.startswith("this")]
    fastest = f"this build {_core.rans_decoders()[0]}"
    head += ["Huffman: size / rANS", "Huffman GB/s", "Huffman speed-up"]
    head += ["zstd: size / rANS", "zstd GB/s", "zstd speed-up"]
    cctx = zstandard.ZstdCompressor(compression_params=entropy.PLANE_PARAMS)
    dctx = zstandard.ZstdDecompressor()

    def zstd_decode(s: bytes, n: int, o: memoryview) -> None:
        dctx.decompress(s, max_output_size=n)

    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for name, chunks in data_sets():
        streams = [_core.rans_encode(c) for c in chunks]
        huff = [_core.huff_encode(c) for c in chunks]
        frames = [cctx.compress(c) for c in chunks]
        assert all(dctx.decompress(f, max_output_size=len(c)) == c
                   for f, c in zip(frames, chunks, strict=True))  # fmt: skip
        if base is not None:
            assert [base.rans_encode(c) for c in chunks[:8]] == streams[:8], "encoders differ"
        sizes = [len(c) for c in chunks]
        raw = sum(sizes)
        want = b"".join(chunks)
        buf = bytearray(raw)  # decoded into, as a load decodes into its scratch buffer
        offs = np.cumsum([0, *sizes]).tolist()
        outs = [memoryview(buf)[a:b] for a, b in zip(offs, offs[1:], strict=False)]
        extra = {"huffman": (huff_decode, huff), "zstd": (zstd_decode, frames)}
        times: dict[str, list[float]] = {k: [] for k in [*labels, *extra]}
        for _ in range(args.runs):
            for k in [*labels, *extra]:
                fn, coded = extra.get(k, (loops.get(k, (None, None))[1], streams))
                buf[:] = bytes(raw)
                t0 = time.perf_counter()
                for s, n, o in zip(coded, sizes, outs, strict=True):
                    fn(s, n, o)  # type: ignore[operator]
                times[k].append(time.perf_counter() - t0)
                assert buf == want or k == "zstd", (name, k)  # zstd: checked above
        gbs = {k: raw / statistics.median(v) / 1e9 for k, v in times.items()}
        row = [name, f"{raw:,}", f"{sum(map(len, streams)) / raw:.3f}"]
        row += [f"{gbs[k]:.2f}" for k in labels]
        if base is not None:
            ref = {"simd": gbs["baseline SIMD"], "portable": gbs["baseline portable"]}
            row += [f"{gbs[k] / ref[loops[k][0]]:.2f}x" for k in labels if k.startswith("this")]
        for k, coded in (("huffman", huff), ("zstd", frames)):
            row += [f"{sum(map(len, coded)) / sum(map(len, streams)):.3f}", f"{gbs[k]:.2f}",
                    f"{gbs[k] / gbs[fastest]:.2f}x"]  # fmt: skip
        print("| " + " | ".join(row) + " |", flush=True)
    cmd = f"python bench/bench_rans.py --runs {args.runs}"
    print("\n" + cmd + (" --baseline PYTHON" if base is not None else ""))


if __name__ == "__main__":
    main()
