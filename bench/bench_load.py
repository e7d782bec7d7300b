"""What a version costs to load: against safetensors, at any depth, cached, cold.

Every timed load runs in a fresh process (``--child``), page cache warm unless said
(every file the contenders read dropped from it and read back once first: ``rewarm``),
the decoded-base cache empty, contenders interleaved round by round; tables show medians of
``--runs`` rounds and ratios measured side by side. Each load is followed by reading
every byte of every tensor once (a mapped tensor is materialized on every side).

Sections (``--sections``, all by default):

* ``standalone``: MiniLM fp32, MiniLM bf16 and a synthetic ``--gib`` GiB fp32 model, each
  stored alone: ``repo.load`` against ``safetensors.load_file`` + clone (and against the
  same load by another build, ``--baseline PYTHON``: that interpreter's modelgit, of the
  same repositories or, with ``--baseline-work DIR``, of the ones it wrote there: a
  build of another format needs its own).
* ``depth``: real relatives from the MiniLM reference zoo (``bench/cache/minilm``, built
  when missing): a fine-tune (topic-a), a fine-tune of it (topic-b), a bf16 cast of
  topic-b, and a chain of 20 versions of continued training of sent-a (2 AdamW steps a
  version), all added with their parents declared, in the default layout; each against
  the same model stored standalone in a repository of its own.
* ``layouts``: for max_depth 1, 2, 4 and 8, the chain's and the MiniLM zoo's stored
  bytes and the load time of chain versions against the standalone model.
* ``stars``: the same after ``repo.repack()``, which re-codes delta chains as stars
  around their medoid (``modelgit.versions.stars``): each version's depth and load
  time against the standalone model, and the stored bytes of the chain alone and of
  the MiniLM zoo before and after the repack.
* ``repacked`` (not in the default list: ``stars`` times the same loads): the loads
  alone of the repacked family's versions against the standalone models, and with
  ``--baseline PYTHON`` that interpreter's loads of the same repository as a third
  contender (with ``--baseline-work DIR``: of the family and standalone repositories it
  wrote there, each build's ratio against its own standalone load).
* ``casts``: the bf16 cast of topic-b after a repack with and without its cast pass
  (``repo.repack(casts=False)``), against the cast stored standalone, and the stored
  bytes of both repositories and of the MiniLM zoo after either repack.
* ``cache``: a second load with the checkout cache on, against ``load_file`` (lazy).
* ``load_into``: topic-a (a delta-coded fine-tune) into an existing module, against
  ``module.load_state_dict(load_file(path))``; with and without the checkout cache.
* ``cold``: loads after ``echo 3 > /proc/sys/vm/drop_caches`` (when writable): MiniLM
  and topic-a against ``load_file`` + clone, with the bytes each side reads.
* ``memory``: peak RSS of loading a ``--memory-gib`` GiB model in a fresh process.

Run: ``python bench/bench_load.py`` (``--help`` for options); ``--profile`` prints where
the time of decoding a version goes instead (one thread, per stage, from cProfile).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import modelgit as mg

sys.path.insert(0, str(Path(__file__).parent))
from bench_repository import minilm, synthetic, touch  # noqa: E402 - the same models

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "bench" / "cache" / "minilm"


# -- the child: one timed load in a fresh process --------------------------------------
def _module_like(sd: dict[str, torch.Tensor]) -> torch.nn.Module:
    """An nn.Module holding parameters (float) and buffers (others) named as ``sd``,
    allocated and touched, as a constructed model is before its weights load."""
    root = torch.nn.Module()
    for name, t in sd.items():
        *path, leaf = name.split(".")
        m = root
        for part in path:
            if not hasattr(m, part):
                m.add_module(part, torch.nn.Module())
            m = getattr(m, part)
        value = torch.zeros_like(t)
        if t.is_floating_point():
            m.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=False))
        else:
            m.register_buffer(leaf, value)
    return root


def child(spec: dict[str, Any]) -> dict[str, float]:
    """One timed load. Python's cyclic garbage collector is run before the clock starts:
    the first allocations after importing torch trigger a full collection of everything
    the imports made (~80 ms here), a debt of the process, not of whatever runs next."""
    kind = spec["kind"]
    if kind in ("mg_load_into", "st_load_state_dict"):
        module = _module_like(load_file(spec["shape_of"]))
    repo = None
    if kind.startswith("mg_"):
        repo = mg.open(spec["repo"], checkout_cache=spec.get("cache"))
    gc.collect()
    t0 = time.perf_counter()
    if kind == "mg_load":
        touch(repo.load(spec["ref"]))
    elif kind == "st_clone":
        touch({k: v.clone() for k, v in load_file(spec["path"]).items()})
    elif kind == "st_lazy":
        touch(load_file(spec["path"]))
    elif kind == "mg_load_into":
        repo.load_into(module, spec["ref"])
    elif kind == "st_load_state_dict":
        module.load_state_dict(load_file(spec["path"]))
    else:
        raise SystemExit(f"unknown child kind {kind}")
    dt = time.perf_counter() - t0
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) * 1024
    return {"seconds": dt, "peak_rss": rss}


def run_child(spec: dict[str, Any], cold: bool = False) -> dict[str, float]:
    if cold:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    out = subprocess.run(
        [spec.get("python", sys.executable), __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {spec} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def spec_files(spec: dict[str, Any]) -> list[Path]:
    """The files a child of ``spec`` reads: a repository's packs and catalog (and its
    checkout cache's entries, with the cache on), or a .safetensors file."""
    files = [Path(spec[k]) for k in ("path", "shape_of") if k in spec]
    if "repo" in spec:
        repo = Path(spec["repo"])
        files += sorted((repo / "packs").glob("*")) + sorted(repo.glob("catalog.db*"))
        if spec.get("cache"):
            with mg.open(repo, checkout_cache=spec["cache"]) as r:
                files += [e.path for e in r.checkout_cache.entries()]
    return [f for f in files if f.is_file()]


def rewarm(files: list[Path]) -> None:
    """Put every file in the page cache afresh: its cached pages dropped, then read
    once from start to end. "Page cache warm" then means the same for every contender:
    how a file came to be cached (written, partly evicted and read back by pieces) sets
    the size of its page-cache folios, and reads out of small folios run at half the
    speed (here a repacked family's pack read at 10 GB/s and a standalone model's at
    21 GB/s; after this, 28 and 16-20 GB/s)."""
    buf = memoryview(bytearray(8 << 20))
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            with contextlib.suppress(OSError):
                os.fdatasync(fd)  # dirty pages are not dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            offset = 0
            while n := os.preadv(fd, [buf], offset):
                offset += n
        finally:
            os.close(fd)


def medians(specs: dict[str, dict[str, Any]], runs: int, cold: bool = False) -> dict[str, float]:
    """Median seconds of each spec over ``runs`` rounds, run interleaved (after
    :func:`rewarm` of the files they read, unless ``cold``)."""
    if not cold:
        rewarm(sorted({f for spec in specs.values() for f in spec_files(spec)}))
    times: dict[str, list[float]] = {k: [] for k in specs}
    for _ in range(runs):
        for k, spec in specs.items():
            times[k].append(run_child(spec, cold)["seconds"])
    return {k: statistics.median(v) for k, v in times.items()}


# -- building what is loaded -----------------------------------------------------------
def standalone_repo(work: Path, name: str, sd: dict[str, torch.Tensor]) -> tuple[Path, Path]:
    """A repository holding ``sd`` alone, and the same model as a .safetensors file."""
    path = work / f"sa-{name}"
    if not (path / "MODELGIT").exists():
        shutil.rmtree(path, ignore_errors=True)
        with mg.init(path) as repo:
            repo.add(name, sd)
    st = work / f"{name}.safetensors"
    if not st.exists():
        save_file(sd, str(st))
    return path, st


def family(
    work: Path, chain_len: int, max_depth: int | None = None
) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    """The family repository (declared parents; the default layout, or ``max_depth``)
    and its models."""
    from modelgit.zoo.minilm import build_minilm_zoo, continue_training

    build_minilm_zoo(ZOO)
    sds = {n: load_file(str(ZOO / f"{n}.safetensors")) for n in ("minilm", "topic-a", "topic-b")}
    sds["topic-b-bf16"] = {
        k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in sds["topic-b"].items()
    }
    chain_file = work / f"chain-{chain_len}.pt"
    if chain_file.exists():
        chain = torch.load(chain_file, weights_only=True)
    else:
        chain = [load_file(str(ZOO / "sent-a.safetensors"))]
        for i in range(chain_len - 1):
            chain.append(continue_training(chain[-1], "sentiment", steps=2, lr=3e-5, seed=100 + i))
        torch.save(chain, chain_file)
    for i, sd in enumerate(chain, 1):
        sds[f"chain@{i}"] = sd
    path = work / ("family" if max_depth is None else f"family-d{max_depth}")
    if not (path / "MODELGIT").exists():
        shutil.rmtree(path, ignore_errors=True)
        with mg.init(path) as repo:
            if max_depth is not None:
                repo.layout(max_depth=max_depth)
            repo.add("minilm", sds["minilm"])
            repo.add("topic-a", sds["topic-a"], parents="minilm")
            repo.add("topic-b", sds["topic-b"], parents="topic-a")
            repo.add("topic-b-bf16", sds["topic-b-bf16"], parents="topic-b", relation="cast")
            repo.add("chain", chain[0], parents="minilm")
            for sd in chain[1:]:
                repo.commit("chain", sd)
    return path, sds


def repacked_family(
    work: Path, chain_len: int, casts: bool = True
) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    """A copy of the family repository after ``repo.repack()`` (stars; with ``casts``
    false, ``repo.repack(casts=False)``)."""
    fam, sds = family(work, chain_len)
    path = work / ("family-repacked" if casts else "family-repacked-parent-casts")
    if not (path / "MODELGIT").exists():
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(fam, path)
        with mg.open(path) as repo:
            print(repo.repack(casts=casts), file=sys.stderr)
    return path, sds


def max_depth_of(repo_path: Path, ref: str) -> int:
    with mg.open(repo_path) as repo:
        vid, _ = repo.resolve(ref)
        ids = [c for r in repo.tensor_rows(vid) for c in r.chunk_ids]
        return max((r.depth for r in repo.store.rows(ids).values()), default=0)


def chain_footprint(
    sds: dict[str, dict[str, torch.Tensor]], chain_len: int, depth: int, repack: bool = False
) -> int | tuple[int, int]:
    """The chain alone under ``max_depth``: its stored bytes (and after a repack)."""
    with tempfile.TemporaryDirectory() as d, mg.init(Path(d) / "r") as repo:
        repo.layout(max_depth=depth)
        repo.add("chain", sds["chain@1"])
        for i in range(2, chain_len + 1):
            repo.commit("chain", sds[f"chain@{i}"])
        before = repo.stats().stored_bytes
        if not repack:
            return before
        repo.repack()
        return before, repo.stats().stored_bytes


def zoo_footprint(depth: int, repack: bool = False, casts: bool = True) -> int | tuple[int, int]:
    """The MiniLM reference zoo, every parent declared, under ``max_depth`` (and after
    a repack, with or without its cast pass)."""
    from modelgit.zoo import load_manifest, parents_of

    with tempfile.TemporaryDirectory() as d, mg.init(Path(d) / "r") as repo:
        repo.layout(max_depth=depth)
        for e in load_manifest(ZOO):
            repo.add(e["name"], ZOO / e["file"], parents=parents_of(e) or None,
                     relation=e.get("relation") or "finetune")  # fmt: skip
        before = repo.stats().stored_bytes
        if not repack:
            return before
        repo.repack(casts=casts)
        return before, repo.stats().stored_bytes


# -- sections --------------------------------------------------------------------------
def table(head: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def ms(s: float) -> str:
    return f"{1000 * s:.1f} ms"


def baseline_repo(work: Path, baseline_work: Path | None, name: str) -> Path:
    """Where the baseline build loads ``name`` from: ``work``, or ``baseline_work`` where
    that build wrote its own repositories."""
    if baseline_work is None:
        return work / name
    path = baseline_work / name
    if not (path / "MODELGIT").exists():
        raise SystemExit(f"{path}: no repository; build it with the baseline's python first")
    return path


def section_standalone(
    work: Path, runs: int, gib: float, baseline: str | None = None,
    baseline_work: Path | None = None,
) -> str:  # fmt: skip
    """With ``baseline`` (another build's python), its loads of the same repositories (or
    of its own, in ``baseline_work``) run as a third contender, interleaved."""
    sd = minilm()
    models = {
        "MiniLM fp32": sd,
        "MiniLM bf16": {
            k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in sd.items()
        },  # fmt: skip
        f"synthetic {gib:g} GiB fp32": synthetic(gib, torch.float32),
    }
    rows = []
    for label, m in models.items():
        name = label.split()[0].lower() + "-" + label.split()[-1]
        repo, st = standalone_repo(work, name, m)
        specs = {"st": {"kind": "st_clone", "path": str(st)},
                 "mg": {"kind": "mg_load", "repo": str(repo), "ref": name}}  # fmt: skip
        if baseline:
            where = baseline_repo(work, baseline_work, f"sa-{name}")
            specs["base"] = {**specs["mg"], "python": baseline, "repo": str(where)}
        t = medians(specs, runs)
        row = [label, ms(t["st"])]
        if baseline:
            row += [ms(t["base"]), f"{t['base'] / t['st']:.2f}x"]
        rows.append(row + [ms(t["mg"]), f"{t['mg'] / t['st']:.2f}x"])
    head = ["model", "safetensors load_file + clone"]
    if baseline:
        head += ["modelgit load (baseline build)", "ratio"]
    return "### Standalone models\n\n" + table(head + ["modelgit load", "ratio"], rows)


def versus_standalone(
    work: Path, runs: int, chain_len: int, repos: dict[str, Path],
    python: dict[str, str] | None = None, standalone_in: dict[str, Path] | None = None,
) -> Iterator[tuple[str, dict[str, float]]]:  # fmt: skip
    """For each version of the depth table: its load time from each of ``repos`` (key ->
    a family repository; loaded by ``python[key]``, another build's interpreter, where
    given) and stored standalone (``"sa"``; and for each key of ``standalone_in`` from
    the standalone repository in that folder, loaded by ``python[key]``), medians,
    interleaved."""
    _, sds = family(work, chain_len)
    refs = ["minilm", "topic-a", "topic-b", "topic-b-bf16"] + [
        f"chain@{i}" for i in sorted({1, 2, 3, 5, 8, 10, 15, chain_len})
    ]
    for ref in refs:
        sa, _ = standalone_repo(work, ref.replace("@", "-"), sds[ref])
        specs = {"sa": {"kind": "mg_load", "repo": str(sa), "ref": ref.replace("@", "-")}}
        specs |= {k: {"kind": "mg_load", "repo": str(p), "ref": ref} for k, p in repos.items()}
        for k, folder in (standalone_in or {}).items():
            specs[k] = {**specs["sa"], "repo": str(folder / sa.name)}
        for k, py in (python or {}).items():
            specs[k]["python"] = py
        yield ref, medians(specs, runs)


def section_depth(work: Path, runs: int, chain_len: int) -> str:
    fam, _ = family(work, chain_len)
    rows = []
    for ref, t in versus_standalone(work, runs, chain_len, {"fam": fam}):
        rows.append([ref, max_depth_of(fam, ref), ms(t["sa"]), ms(t["fam"]),
                     f"{t['fam'] / t['sa']:.2f}x"])  # fmt: skip
    out = "### Versions at depth (family repository, default layout)\n\n" + table(
        ["version", "depth", "stored standalone", "in the family", "ratio"], rows
    )
    return out


def section_layouts(work: Path, runs: int, chain_len: int) -> str:
    """The trade-off of the layout setting: footprint of the chain and of the MiniLM zoo,
    and the load time of the chain's versions, for several max_depth values."""
    _, sds = family(work, chain_len)
    sa, _ = standalone_repo(work, f"chain-{chain_len}", sds[f"chain@{chain_len}"])
    probe = [f"chain@{i}" for i in (2, 5, chain_len // 2, chain_len)]
    rows = []
    for depth in (1, 2, 4, 8):
        fam, _ = family(work, chain_len, max_depth=depth)
        specs = {"sa": {"kind": "mg_load", "repo": str(sa), "ref": f"chain-{chain_len}"}}
        specs |= {ref: {"kind": "mg_load", "repo": str(fam), "ref": ref} for ref in probe}
        t = medians(specs, runs)
        ratios = [t[ref] / t["sa"] for ref in probe]
        rows.append([depth, f"{chain_footprint(sds, chain_len, depth):,}",
                     f"{zoo_footprint(depth):,}", f"{max(ratios):.2f}x",
                     f"{statistics.median(ratios):.2f}x"])  # fmt: skip
    return "### Layouts: footprint against load time\n\n" + table(
        ["max_depth", f"chain of {chain_len}: stored bytes", "MiniLM zoo: stored bytes",
         "chain versions: slowest load / standalone", "median"], rows)  # fmt: skip


def section_stars(work: Path, runs: int, chain_len: int) -> str:
    """Loads and footprints after ``repo.repack()`` (delta chains made stars)."""
    fam, sds = family(work, chain_len)
    rep, _ = repacked_family(work, chain_len)
    rows = []
    for ref, t in versus_standalone(work, runs, chain_len, {"fam": fam, "rep": rep}):
        rows.append([ref, ms(t["sa"]), max_depth_of(fam, ref), f"{t['fam'] / t['sa']:.2f}x",
                     max_depth_of(rep, ref), f"{t['rep'] / t['sa']:.2f}x"])  # fmt: skip
    out = "### After repack: delta chains made stars\n\n" + table(
        ["version", "stored standalone", "depth", "as committed", "depth after repack",
         "after repack"], rows)  # fmt: skip
    foot = []
    for depth in (4, 1):
        c0, c1 = chain_footprint(sds, chain_len, depth, repack=True)
        z0, z1 = zoo_footprint(depth, repack=True)
        foot.append([depth, f"{c0:,}", f"{c1:,}", f"{z0:,}", f"{z1:,}"])
    return out + "\n\n" + table(
        ["max_depth", f"chain of {chain_len}: committed", "after repack",
         "MiniLM zoo: added", "after repack"], foot)  # fmt: skip


def section_repacked(
    work: Path, runs: int, chain_len: int, baseline: str | None,
    baseline_work: Path | None = None,
) -> str:  # fmt: skip
    """The repacked family's loads against the standalone models (and a baseline build's
    loads of the same repository, or of its own family and standalone repositories in
    ``baseline_work``, its ratios then against its own standalone loads)."""
    rep, _ = repacked_family(work, chain_len)
    repos = {"rep": rep}
    python: dict[str, str] = {}
    own_sa: dict[str, Path] = {}
    if baseline:
        repos["base"] = baseline_repo(work, baseline_work, "family-repacked")
        python["base"] = baseline
        if baseline_work is not None:
            own_sa["base_sa"] = baseline_work
            python["base_sa"] = baseline
    rows = []
    for ref, t in versus_standalone(work, runs, chain_len, repos, python, own_sa):
        row = [ref, max_depth_of(rep, ref)]
        if baseline:
            base_sa = t.get("base_sa", t["sa"])
            if own_sa:
                row.append(ms(base_sa))
            row += [ms(t["base"]), f"{t['base'] / base_sa:.2f}x"]
        rows.append(row + [ms(t["sa"]), ms(t["rep"]), f"{t['rep'] / t['sa']:.2f}x"])
    head = ["version", "depth after repack"]
    if baseline:
        head += (["baseline: stored standalone"] if own_sa else []) + ["baseline build", "ratio"]
    head += ["stored standalone", "this build", "ratio"]
    return "### Loads after repack\n\n" + table(head, rows)


def section_casts(work: Path, runs: int, chain_len: int) -> str:
    """The bf16 cast of topic-b after a repack that coded it against the star's centre
    (the cast pass) and after one that left it on its parent (``casts=False``), against
    the cast stored standalone; the stored bytes of both repositories and of the MiniLM
    zoo after either repack."""
    _, sds = family(work, chain_len)
    rep, _ = repacked_family(work, chain_len)
    par, _ = repacked_family(work, chain_len, casts=False)
    sa, _ = standalone_repo(work, "topic-b-bf16", sds["topic-b-bf16"])
    specs = {k: {"kind": "mg_load", "repo": str(p), "ref": "topic-b-bf16"}
             for k, p in (("sa", sa), ("par", par), ("rep", rep))}  # fmt: skip
    t = medians(specs, runs)
    rows = [["stored standalone", 0, ms(t["sa"]), "1.00x", "", ""]]
    for key, path, label, casts in (("par", par, "left on its parent (`casts=False`)", False),
                                    ("rep", rep, "coded against the centre", True)):  # fmt: skip
        with mg.open(path) as repo:
            stored = repo.stats().stored_bytes
        _, zoo = zoo_footprint(4, repack=True, casts=casts)
        rows.append([label, max_depth_of(path, "topic-b-bf16"), ms(t[key]),
                     f"{t[key] / t['sa']:.2f}x", f"{stored:,}", f"{zoo:,}"])  # fmt: skip
    return "### Casts after repack\n\n" + table(
        ["topic-b-bf16 after repack", "depth", "load", "ratio", "family stored",
         "MiniLM zoo after repack"], rows)  # fmt: skip


def section_cache(work: Path, runs: int) -> str:
    fam, sds = family(work, 20)
    st = work / "topic-a.safetensors"  # the same model as a file
    if not st.exists():
        save_file(sds["topic-a"], str(st))
    cache_spec = {"kind": "mg_load", "repo": str(fam), "ref": "topic-a", "cache": "4GiB"}
    run_child(cache_spec)  # the first load writes the entry (hashed and sealed)
    t = medians({"st": {"kind": "st_lazy", "path": str(st)}, "mg": cache_spec}, runs)
    mg.open(fam, checkout_cache="4GiB").checkout_cache.clear()
    return "### Checkout cache\n\n" + table(
        ["load", "time", "ratio"],
        [["safetensors load_file (lazy) of topic-a", ms(t["st"]), "1.00x"],
         ["modelgit load of topic-a, second time, cache on", ms(t["mg"]),
          f"{t['mg'] / t['st']:.2f}x"]],
    )  # fmt: skip


def section_load_into(work: Path, runs: int) -> str:
    fam, sds = family(work, 20)
    st = work / "topic-a.safetensors"
    if not st.exists():
        save_file(sds["topic-a"], str(st))
    base = {"shape_of": str(st), "repo": str(fam), "ref": "topic-a"}
    run_child({"kind": "mg_load", "repo": str(fam), "ref": "topic-a", "cache": "4GiB"})
    t = medians(
        {"st": {"kind": "st_load_state_dict", "path": str(st), "shape_of": str(st)},
         "mg": base | {"kind": "mg_load_into"},
         "mgc": base | {"kind": "mg_load_into", "cache": "4GiB"}}, runs)  # fmt: skip
    mg.open(fam, checkout_cache="4GiB").checkout_cache.clear()
    return "### load_into (topic-a, delta-coded)\n\n" + table(
        ["into an existing module", "time", "ratio"],
        [["module.load_state_dict(load_file(path))", ms(t["st"]), "1.00x"],
         ["repo.load_into(module, ref)", ms(t["mg"]), f"{t['mg'] / t['st']:.2f}x"],
         ["repo.load_into, checkout cache on (second time)", ms(t["mgc"]),
          f"{t['mgc'] / t['st']:.2f}x"]],
    )  # fmt: skip


def section_cold(work: Path, runs: int) -> str:
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as exc:
        return f"### Cold page cache\n\nnot measured: /proc/sys/vm/drop_caches ({exc.strerror})"
    fam, sds = family(work, 20)
    sa, st = standalone_repo(work, "minilm-fp32", minilm())
    st_a = work / "topic-a.safetensors"
    if not st_a.exists():
        save_file(sds["topic-a"], str(st_a))
    specs = {
        "st": {"kind": "st_clone", "path": str(st)},
        "mg": {"kind": "mg_load", "repo": str(sa), "ref": "minilm-fp32"},
        "st_a": {"kind": "st_clone", "path": str(st_a)},
        "mg_a": {"kind": "mg_load", "repo": str(fam), "ref": "topic-a"},
    }
    t = medians(specs, runs, cold=True)
    with mg.open(sa) as r:
        sa_bytes = r.stats().stored_bytes
    return "### Cold page cache (drop_caches before every load)\n\n" + table(
        ["load", "bytes on disk", "time", "ratio"],
        [["MiniLM: load_file + clone", f"{st.stat().st_size:,}", ms(t["st"]), "1.00x"],
         ["MiniLM: modelgit load (standalone)", f"{sa_bytes:,}", ms(t["mg"]),
          f"{t['mg'] / t['st']:.2f}x"],
         ["topic-a: load_file + clone", f"{st_a.stat().st_size:,}", ms(t["st_a"]), "1.00x"],
         ["topic-a: modelgit load (family: its chunks and its base's)", "-",
          ms(t["mg_a"]), f"{t['mg_a'] / t['st_a']:.2f}x"]],
    )  # fmt: skip


def section_memory(work: Path, gib: float) -> str:
    sd = synthetic(gib, torch.float32)
    size = sum(t.nbytes for t in sd.values())
    repo, _ = standalone_repo(work, f"synthetic-{gib:g}gib", sd)
    del sd
    r = run_child({"kind": "mg_load", "repo": str(repo), "ref": f"synthetic-{gib:g}gib"})
    budget = 512 << 20
    return "### Memory\n\n" + table(
        ["model size", "peak RSS of a load", "peak / size", "(size + budget) / size"],
        [[f"{size / 2**30:.2f} GiB", f"{r['peak_rss'] / 2**30:.2f} GiB",
          f"{r['peak_rss'] / size:.2f}", f"{(size + budget) / size:.2f}"]],
    )  # fmt: skip


PROFILE_REFS = ("minilm", "topic-a", "topic-b", "topic-b-bf16", "chain@20")
REPACKED_REFS = ("minilm", "topic-b", "topic-b-bf16", "chain@10")  # after repack
STAGES = {  # stage -> names of the native calls (cProfile) whose own time it is
    "rANS": ("rans_decode",),
    "Huffman": ("huff_decode",),
    "runs": ("runs_decode",),
    "zstd": ("decompress",),
    "transform (planes)": ("planes_decode_parts",),
    "delta applied in place": ("planes_apply_parts",),
    "base and delta in one pass": ("planes_decode_pair",),
    "read records": ("preadv", "pread"),
    "checksums + chunk ids": ("xxh3_64_intdigest", "xxh3_128_digest"),
    "cast": ("cast",),
}


def decode_version(repo: mg.Repository, ref: str, profiler: Any = None) -> float:
    """Every chunk of ``ref`` decoded on this thread into preallocated, touched memory,
    the decoded-base cache empty (bases that several chunks need decoded once first, as
    a load does). Returns the seconds."""
    from modelgit.storage.reader import prepare_bases

    store = repo.store
    vid, _ = repo.resolve(ref)
    ids = list(dict.fromkeys(c for r in repo.tensor_rows(vid) for c in r.chunk_ids))
    rows = store.rows(ids)
    bufs = [memoryview(bytearray(b"\1" * rows[c].raw_length)) for c in ids]
    store.cache.clear()
    gc.collect()
    if profiler is not None:
        profiler.enable()
    t0 = time.perf_counter()
    prepare_bases(store, rows)
    for c, buf in zip(ids, bufs, strict=True):
        store.get_into(rows[c], buf)
    dt = time.perf_counter() - t0
    if profiler is not None:
        profiler.disable()
    return dt


def profile(work: Path, runs: int) -> None:
    """Where the time of decoding a version goes: medians of ``runs`` plain timed runs
    (total) and of ``runs`` runs under cProfile (the own time of the native calls of
    each stage); "Python and the rest" is the total less the stages. Versions of the
    family repository as committed, then after a repack."""
    import cProfile
    import pstats

    fam, _ = family(work, 20)
    rep, _ = repacked_family(work, 20)
    rows = []
    for path, refs, label in ((fam, PROFILE_REFS, ""), (rep, REPACKED_REFS, ", repacked")):
        with mg.open(path) as repo:
            for ref in refs:
                totals, stages = [], {k: [] for k in STAGES}
                for _ in range(runs):
                    totals.append(decode_version(repo, ref))
                    pr = cProfile.Profile()
                    decode_version(repo, ref, pr)
                    own: dict[str, float] = dict.fromkeys(STAGES, 0.0)
                    calls = pstats.Stats(pr).stats.items()  # type: ignore[attr-defined]
                    for (where, _, func), (_, _, tt, _, _) in calls:
                        for k, names in STAGES.items():
                            if where == "~" and any(n in func for n in names):  # native
                                own[k] += tt
                                break
                    for k in STAGES:
                        stages[k].append(own[k])
                total = statistics.median(totals)
                med = {k: statistics.median(v) for k, v in stages.items()}
                rest = total - sum(med.values())
                cells = [f"{1e3 * v:.1f}" if v > 5e-5 else "-" for v in med.values()]
                rows.append([f"{ref} ({max_depth_of(path, ref)}{label})", ms(total), *cells,
                             f"{1e3 * rest:.1f}"])  # fmt: skip
    print(table(["version (depth)", "total", *STAGES, "Python and the rest"], rows))
    print(f"\npython bench/bench_load.py --profile --runs {runs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="rounds (medians)")
    ap.add_argument("--gib", type=float, default=1.0, help="synthetic standalone size")
    ap.add_argument("--memory-gib", type=float, default=4.0, help="model of the memory row")
    ap.add_argument("--chain", type=int, default=20, help="versions in the chain")
    ap.add_argument(
        "--sections",
        default="standalone,depth,layouts,stars,casts,cache,load_into,cold,memory",
        help="comma-separated sections to run",
    )  # fmt: skip
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "cache" / "load")
    ap.add_argument(
        "--profile", action="store_true", help="where the time of decoding a version goes, instead"
    )
    ap.add_argument(
        "--baseline",
        help="python of another modelgit build: its loads join the standalone and repacked"
        " sections",
    )
    ap.add_argument(
        "--baseline-work", type=Path,
        help="where the --baseline build wrote its own repositories (run this script with"
        " that python and --work DIR first): needed when the builds' formats differ",
    )  # fmt: skip
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.profile:
        profile(args.work, args.runs)
        return
    todo = args.sections.split(",")
    parts = []
    for name in todo:
        t = time.perf_counter()
        if name == "standalone":
            parts.append(section_standalone(args.work, args.runs, args.gib, args.baseline,
                                            args.baseline_work))  # fmt: skip
        elif name == "depth":
            parts.append(section_depth(args.work, args.runs, args.chain))
        elif name == "layouts":
            parts.append(section_layouts(args.work, args.runs, args.chain))
        elif name == "stars":
            parts.append(section_stars(args.work, args.runs, args.chain))
        elif name == "repacked":
            parts.append(section_repacked(args.work, args.runs, args.chain, args.baseline,
                                          args.baseline_work))  # fmt: skip
        elif name == "casts":
            parts.append(section_casts(args.work, args.runs, args.chain))
        elif name == "cache":
            parts.append(section_cache(args.work, args.runs))
        elif name == "load_into":
            parts.append(section_load_into(args.work, args.runs))
        elif name == "cold":
            parts.append(section_cold(args.work, args.runs))
        elif name == "memory":
            parts.append(section_memory(args.work, args.memory_gib))
        else:
            raise SystemExit(f"unknown section {name!r}")
        print(parts[-1] + f"\n\n({name}: {time.perf_counter() - t:.0f} s)\n", flush=True)
    base = " --baseline PYTHON" if args.baseline else ""
    base += " --baseline-work DIR" if args.baseline_work else ""
    print(f"python bench/bench_load.py --runs {args.runs} --sections {args.sections}{base}")


if __name__ == "__main__":
    main()
