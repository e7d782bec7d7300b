"""The entropy stage on real weights: rANS against zstd, per byte plane and end to end.

Part 1 cuts the all-MiniLM-L6-v2 weights (fp32, and cast to bf16) into the chunks a
repository uses, applies the byte-plane transform and codes every plane with the core's
order-0 rANS and with zstd's fast plane strategy (what section 3 of docs/FORMAT.md
allows): total bytes against the order-0 entropy, and single-core speeds (every rANS
stream is checked to decode to its plane, with both decode loops).

Part 2 adds the same model to a repository with rANS sections enabled and disabled
(disabled: the writer behaves as format 1 did), side by side: stored bytes, save and
load time (medians, loads interleaved).

Run: ``python bench/bench_entropy.py [--runs 9]``.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import zstandard

import modelgit as mg
from modelgit._native import _core
from modelgit.codec import entropy
from modelgit.storage.writer import DEFAULT_CHUNK_ELEMS

sys.path.insert(0, str(Path(__file__).parent))
from bench_repository import minilm, touch  # noqa: E402 - the same model, the same read


def planes_of(sd: dict[str, torch.Tensor], elem: int) -> list[list[bytes]]:
    """Plane p of every chunk: out[p] is a list of byte strings."""
    out: list[list[bytes]] = [[] for _ in range(elem)]
    step = DEFAULT_CHUNK_ELEMS * elem
    for t in sd.values():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes()
        for off in range(0, len(raw), step):
            chunk = raw[off : off + step]
            m = len(chunk) // elem
            planes = _core.planes_encode(chunk, elem, rotate=True)
            for p in range(elem):
                out[p].append(bytes(planes[p * m : (p + 1) * m]))
    return out


def entropy_bytes(chunks: list[bytes]) -> float:
    total = 0.0
    for c in chunks:
        counts = np.bincount(np.frombuffer(c, np.uint8), minlength=256)
        p = counts[counts > 0] / len(c)
        total += float(-(p * np.log2(p)).sum()) * len(c) / 8
    return total


def clock(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def timed_map(fn, *iterables) -> tuple[list, float]:
    """[fn(*items) for items in zip(*iterables)] and the seconds it took."""
    t0 = time.perf_counter()
    out = [fn(*items) for items in zip(*iterables, strict=True)]
    return out, time.perf_counter() - t0


def part1(sd: dict[str, torch.Tensor]) -> None:
    cz = zstandard.ZstdCompressor(compression_params=entropy.PLANE_PARAMS)
    dz = zstandard.ZstdDecompressor()
    print(
        "| model | plane | raw bytes | order-0 entropy | rANS | zstd fast | rANS enc / dec "
        "MB/s (portable loops) | zstd enc / dec MB/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for dtype, elem in ((torch.float32, 4), (torch.bfloat16, 2)):
        planes = planes_of({k: v.to(dtype) for k, v in sd.items()}, elem)
        for p, chunks in enumerate(planes):
            sizes = [len(c) for c in chunks]
            streams, t_enc = timed_map(_core.rans_encode, chunks)
            portable, t_penc = timed_map(lambda c: _core.rans_encode(c, simd=False), chunks)
            assert portable == streams
            outs, t_dec = timed_map(_core.rans_decode, streams, sizes)
            slow, t_slow = timed_map(
                lambda s, n: _core.rans_decode(s, n, simd=False), streams, sizes
            )
            assert [bytes(o) for o in outs] == chunks == [bytes(o) for o in slow]
            frames, z_enc = timed_map(cz.compress, chunks)
            _, z_dec = timed_map(dz.decompress, frames)
            mb = sum(sizes) / 1e6
            print(
                f"| MiniLM {str(dtype)[6:]} | {p} | {sum(sizes):,} | "
                f"{entropy_bytes(chunks):,.0f} | {sum(map(len, streams)):,} | "
                f"{sum(map(len, frames)):,} | {mb / t_enc:.0f} / {mb / t_dec:.0f} "
                f"({mb / t_penc:.0f} / {mb / t_slow:.0f}) | {mb / z_enc:.0f} / {mb / z_dec:.0f} |"
            )


def save(root: Path, state: dict[str, torch.Tensor]) -> None:
    with mg.init(root) as repo:
        repo.add("m", state)


def load(repo: mg.Repository) -> None:
    touch(repo.load("m"))


def part2(sd: dict[str, torch.Tensor], runs: int) -> None:
    real = entropy._core
    without = types.SimpleNamespace(  # never worth it, and no runs sections (format 1)
        rans_estimate=lambda data: 1 << 62, runs_encode=lambda data, max_size=-1: None
    )
    print("\n| model | rANS sections | stored bytes | save s (median) | load s (median) |")
    print("|---|---|---:|---:|---:|")
    for dtype in (torch.float32, torch.bfloat16):
        state = {k: v.to(dtype).clone() for k, v in sd.items()}
        work = Path(tempfile.mkdtemp(prefix="mg-entropy-"))
        repos, saves = {}, {}
        try:
            for label, core in (("off", without), ("on", real)):
                entropy._core = core
                root = work / label
                times = []
                for _ in range(max(3, runs // 2)):
                    shutil.rmtree(root, ignore_errors=True)
                    gc.collect()
                    times.append(clock(save, root, state))
                saves[label] = statistics.median(times)
                repos[label] = mg.open(root)
            entropy._core = real
            loads: dict[str, list[float]] = {k: [] for k in repos}
            for _ in range(runs):
                for label, repo in repos.items():
                    gc.collect()
                    loads[label].append(clock(load, repo))
            for label, repo in repos.items():
                got = repo.load("m")
                assert all(torch.equal(got[k].view(torch.uint8), v.view(torch.uint8))
                           for k, v in state.items())  # fmt: skip
                print(
                    f"| MiniLM {str(dtype)[6:]} | {label} | {repo.stats().stored_bytes:,} | "
                    f"{saves[label]:.3f} | {statistics.median(loads[label]):.3f} |"
                )
                repo.close()
        finally:
            entropy._core = real
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9, help="timed loads per repository")
    args = ap.parse_args()
    sd = minilm()
    part1(sd)
    part2(sd, args.runs)


if __name__ == "__main__":
    main()
