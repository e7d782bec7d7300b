"""Large models with bounded memory: add and export a big sharded checkpoint.

Generates a synthetic sharded bf16 checkpoint of ``--gib`` GiB (transformer-shaped,
``model-0000i-of-0000N.safetensors`` + index) and a fine-tuned sibling, adds both to a
fresh repository (the sibling as a delta against the base) and exports both as sharded
folders, each step in a fresh process with the repository's memory budget set to
``--budget``. Reports the peak RSS of each step (VmHWM), the RSS it started from after
imports, and its throughput; every export is checked against the generated tensors'
hashes. Sources and exports are deleted as soon as they have served, so the disk needs
about twice ``--gib`` plus the repository.

Then, at ``--compare-gib`` (a size that fits in memory), the streaming paths are timed
side by side with the in-memory ones, ``--runs`` rounds interleaved, medians:
add from the sharded folder vs add of the same state dict already in memory, and
export vs ``repo.load`` followed by safetensors ``save_file`` + fsync (plus ``repo.load``
alone: decoding with nothing written, the upper bound).

Run: ``python bench/bench_large.py --gib 32`` (``--help`` for options). Results:
docs/benchmarks_large.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import modelgit as mg
from modelgit.bench.large import (
    PhaseResult,
    folder_hashes,
    layout_for,
    run_phase,
    write_checkpoint,
)


def _row(r: PhaseResult, gib: float) -> str:
    return (
        f"| {r.phase} | {gib:.1f} | {r.seconds:.1f} | {r.gbps:.3f} | "
        f"{r.peak_rss / 2**20:.0f} | {r.start_rss / 2**20:.0f} | "
        f"{r.peak_over_start / 2**20:.0f} |"
    )


def big_run(work: Path, gib: float, budget: str, shard_gib: float) -> list[str]:
    layout = layout_for(int(gib * 2**30), hidden=4096)
    shard = int(shard_gib * 2**30)
    need = 1.9 * layout.nbytes  # a source, the repository and some slack
    free = shutil.disk_usage(work).free
    if free < need:
        sys.exit(f"{work}: {free / 2**30:.0f} GiB free, this run needs about {need / 2**30:.0f}")
    repo = str(work / "repo")
    mg.init(repo).close()
    size = layout.nbytes / 2**30
    lines = []
    print(f"model: {len(layout.tensors)} tensors, {size:.2f} GiB bf16", flush=True)
    hashes = {}
    for name, seed, parent_seed, parent in (("base", 1, None, None), ("tuned", 2, 1, "base")):
        t0 = time.perf_counter()
        src = work / name
        hashes[name] = write_checkpoint(src, layout, shard, seed=seed, parent_seed=parent_seed)
        print(f"generated {name} in {time.perf_counter() - t0:.0f}s", flush=True)
        r = run_phase(f"add {name}", budget, repo=repo, op="add", name=name, src=str(src),
                      parent=parent)  # fmt: skip
        lines.append(_row(r, size))
        print(lines[-1], flush=True)
        shutil.rmtree(src)
    with mg.open(repo) as opened:
        st = {m.name: m for m in opened.stats().models}
    stored = {k: v.stored_bytes / 2**30 for k, v in st.items()}
    for name in ("base", "tuned"):
        dest = work / f"out-{name}"
        r = run_phase(f"export {name}", budget, repo=repo, op="export", name=name,
                      dest=str(dest))  # fmt: skip
        lines.append(_row(r, size))
        print(lines[-1], flush=True)
        ok = folder_hashes(dest) == hashes[name]
        print(f"export {name} bit-exact: {ok}", flush=True)
        if not ok:
            sys.exit(f"export of {name} differs from the generated checkpoint")
        shutil.rmtree(dest)
    lines.append("")
    lines.append(
        f"stored: base {stored['base']:.2f} GiB, tuned {stored['tuned']:.2f} GiB "
        f"(of {size:.2f} GiB each); every export bit-exact"
    )
    return lines


def compare_run(work: Path, gib: float, budget: str, runs: int) -> list[str]:
    layout = layout_for(int(gib * 2**30), hidden=2048)
    src = work / "cmp-src"
    write_checkpoint(src, layout, layout.nbytes // 4 + 1, seed=3)
    times: dict[str, list[float]] = {
        k: [] for k in ("files", "memory", "export", "export_memory", "load")
    }
    peaks: dict[str, list[int]] = {k: [] for k in times}
    for i in range(runs):
        for how, op in (("files", "add"), ("memory", "add_memory")):
            repo = work / f"cmp-{how}-{i}"
            mg.init(repo).close()
            r = run_phase(how, budget, repo=str(repo), op=op, name="m", src=str(src))
            times[how].append(r.seconds)
            peaks[how].append(r.peak_over_start)
        repo = work / f"cmp-files-{i}"
        r = run_phase("export", budget, repo=str(repo), op="export", name="m",
                      dest=str(work / "cmp-out"))  # fmt: skip
        times["export"].append(r.seconds)
        peaks["export"].append(r.peak_over_start)
        shutil.rmtree(work / "cmp-out")
        r = run_phase("export_memory", budget, repo=str(repo), op="export_memory", name="m",
                      dest=str(work / "cmp-out"))  # fmt: skip
        times["export_memory"].append(r.seconds)
        peaks["export_memory"].append(r.peak_over_start)
        shutil.rmtree(work / "cmp-out")
        r = run_phase("load", budget, repo=str(repo), op="load", name="m")
        times["load"].append(r.seconds)
        peaks["load"].append(r.peak_over_start)
        for how in ("files", "memory"):
            shutil.rmtree(work / f"cmp-{how}-{i}")
    shutil.rmtree(src)
    n = layout.nbytes
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [
        "| path | GB/s (median) | peak RSS over start, MiB (max) | ratio |",
        "|---|---|---|---|",
        f"| add from sharded files (streaming) | {n / med['files'] / 1e9:.3f} | "
        f"{max(peaks['files']) / 2**20:.0f} | "
        f"{med['memory'] / med['files']:.2f}x the in-memory speed |",
        f"| add of the state dict in memory | {n / med['memory'] / 1e9:.3f} | "
        f"{max(peaks['memory']) / 2**20:.0f} | 1.00 |",
        f"| export to sharded files (streaming) | {n / med['export'] / 1e9:.3f} | "
        f"{max(peaks['export']) / 2**20:.0f} | "
        f"{med['export_memory'] / med['export']:.2f}x the in-memory speed |",
        f"| load into memory, then save_file + fsync | {n / med['export_memory'] / 1e9:.3f} | "
        f"{max(peaks['export_memory']) / 2**20:.0f} | 1.00 |",
        f"| load into memory (nothing written: the bound) | {n / med['load'] / 1e9:.3f} | "
        f"{max(peaks['load']) / 2**20:.0f} | - |",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=32.0, help="size of the big checkpoint")
    p.add_argument("--shard-gib", type=float, default=4.0, help="shard size of the input")
    p.add_argument("--budget", default="512MiB", help="the repositories' memory budget")
    p.add_argument("--compare-gib", type=float, default=2.0, help="size of the side-by-side run")
    p.add_argument("--runs", type=int, default=3, help="rounds of the side-by-side run")
    p.add_argument("--work", type=Path, default=Path("bench/out/large"), help="work folder")
    p.add_argument("--skip-big", action="store_true", help="only the side-by-side run")
    args = p.parse_args(argv)
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    out = []
    if not args.skip_big:
        out += [
            f"### {args.gib:g} GiB sharded bf16 checkpoint, budget {args.budget}",
            "",
            "| step | GiB | seconds | GB/s | peak RSS MiB | RSS after imports MiB "
            "| peak over start MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        out += big_run(args.work, args.gib, args.budget, args.shard_gib)
        out.append("")
    out += [
        f"### streaming vs in-memory, {args.compare_gib:g} GiB, budget {args.budget}, "
        f"medians of {args.runs}",
        "",
    ]
    out += compare_run(args.work, args.compare_gib, args.budget, args.runs)
    print("\n".join(out))
    shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
