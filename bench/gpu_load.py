"""Time ``repo.load(name, device="cuda")`` against CPU decode + copy, side by side.

A synthetic family is built on the spot: a float32 base and a fine-tune of it (the base
plus small relative noise, stored as a delta), and a bfloat16 sibling. For each model,
both paths run alternately ``--runs`` times (decoded-base cache cleared every time); the
script checks that both give the same bits and prints the median times and their ratio.

    python bench/gpu_load.py [--mparams 64] [--runs 5]

Needs torch with CUDA, modelgit built with its CUDA module, zstandard and xxhash.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

import modelgit as mg
from modelgit import cuda


def family(mparams: int, seed: int = 0) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    n_layers = 8
    per = mparams * 1_000_000 // n_layers
    side = int(per**0.5)
    base = {
        f"layer{i}.weight": torch.randn(side, side, generator=g) * 0.05 for i in range(n_layers)
    }
    tuned = {k: v + v.abs() * 1e-3 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    return base, tuned


def timed(fn) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mparams", type=int, default=64, help="parameters per model, millions")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not cuda.is_available():
        print("no CUDA:", cuda.unavailable_reason())
        return 2
    print(f"device: {torch.cuda.get_device_name()}  backends: {mg.backends()}")
    base, tuned = family(args.mparams)
    rows = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        repo = mg.init(f"{tmp}/repo")
        repo.add("base", base)
        repo.add("tuned", tuned, parents="base")
        repo.add(
            "tuned-bf16",
            {k: v.to(torch.bfloat16) for k, v in tuned.items()},
            parents="tuned",
            relation="cast",
        )
        for name in ("base", "tuned", "tuned-bf16"):
            nbytes = sum(t.nbytes for t in repo.load(name).values())

            def gpu(name=name):
                repo.store.cache.clear()
                return repo.load(name, device="cuda")

            def cpu_then_copy(name=name):
                repo.store.cache.clear()
                return {k: v.to("cuda") for k, v in repo.load(name).items()}

            a, b = gpu(), cpu_then_copy()  # warm up, and check the bits
            same = all(torch.equal(a[k].view(torch.uint8), b[k].view(torch.uint8)) for k in b)
            ok &= same
            tg, tc = [], []
            for _ in range(args.runs):
                tg.append(timed(gpu))
                tc.append(timed(cpu_then_copy))
            mg_, mc = statistics.median(tg), statistics.median(tc)
            rows.append((name, nbytes, mg_, mc, same))
        repo.close()
    print(f"{'model':<12} {'MB':>8} {'cuda load s':>12} {'cpu+copy s':>11} {'speed-up':>9} exact")
    for name, nbytes, tg, tc, same in rows:
        print(f"{name:<12} {nbytes / 1e6:>8.1f} {tg:>12.3f} {tc:>11.3f} {tc / tg:>8.2f}x {same}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
