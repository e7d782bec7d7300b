"""Does ``add`` slow down as a repository grows? (issue #16: automatic bases must stay
sub-linear; a 5,000-model repository may not slow ``add`` down by more than 20%.)

A repository of ``--models`` models (default 5,000) is built once and kept under
``bench/cache/scale`` (git-ignored; rebuilt when the generator changes): 50 families of
100 relatives each, in four architectures (two transformer-shaped state dicts that share
tensor names at different sizes, an MLP, a small conv net; 0.26-0.43 M float32
parameters). A family's first model is a random init; every other one is an earlier
relative of the family (the previous one half of the time, any earlier one otherwise)
plus noise of 0.1%-3% of each tensor's scale, some with frozen tensors; each is added
with ``repo.add`` with its parent declared and ``base="parent"`` (so that building does
not itself depend on the search being measured).

Then, side by side in one run, ``--runs`` rounds of: each probe model added with
automatic bases and no declared parent into a small repository (10 models: the first
three of families 0-2, the first of family 3) and into the large one, interleaved; the
probe is removed again after each add (and a fresh one, with new noise, made for the
next round, so that no chunk is found already stored). Probes: fine-tunes (1% noise) of
the first models of families 0-2 (three relatives in the small repository, a hundred in
the large one, the same base either way) and of family 3 (one relative in the small
one), and a model of a new family (nothing to find). Also timed:
``storage.similarity.candidates`` alone, on the same sketches, and as a reference the
add of a new family's model with ``base="parent"`` (no search at all: what a larger
catalog costs an add by itself).

Quality: for ``--queries`` fine-tunes of random family members (not roots; noise of
0.3%, 1% and 3% in turn), the version ``candidates`` ranks first is compared with the
exact answer (every stored version's sketches, ranked by the same distance): how often
it is the same, and its distance over the best distance.

Run: ``python bench/bench_scale.py`` (``--json`` for machine-readable output; the first
run builds the large repository, ~5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import modelgit as mg
from modelgit.formats.sources import open_model
from modelgit.storage import similarity
from modelgit.storage.similarity import TensorSketch, relative_distance, sketch_source

GENERATOR = 1  # bump when the models change: the cached repository is rebuilt
CACHE = Path(__file__).resolve().parent / "cache" / "scale"
FAMILY_SIZE = 100
PROBE_FAMILIES = 4  # probes: fine-tunes of these families' first models
QUERY_NOISE = (0.003, 0.01, 0.03)  # of the quality queries, in turn
StateDict = dict[str, torch.Tensor]


def _transformer(vocab: int, d: int, layers: int) -> dict[str, tuple[tuple[int, ...], str]]:
    shapes = {"embed.weight": ((vocab, d), "w")}
    for i in range(layers):
        p = f"layers.{i}."
        for m in ("q", "k", "v", "o"):
            shapes[p + f"attn.{m}.weight"] = ((d, d), "w")
        shapes[p + "mlp.up.weight"] = ((4 * d, d), "w")
        shapes[p + "mlp.up.bias"] = ((4 * d,), "b")
        shapes[p + "mlp.down.weight"] = ((d, 4 * d), "w")
        shapes[p + "mlp.down.bias"] = ((d,), "b")
        shapes[p + "norm.weight"] = ((d,), "g")
        shapes[p + "norm.bias"] = ((d,), "b")
    shapes["norm.weight"] = ((d,), "g")
    shapes["head.weight"] = ((16, d), "w")
    return shapes


ARCHS = {
    "tfm64": _transformer(1000, 64, 4),  # 0.26 M parameters, 43 tensors
    "tfm96": _transformer(800, 96, 3),  # 0.41 M, shared names at other sizes
    "mlp": {
        "fc1.weight": ((256, 784), "w"),
        "fc1.bias": ((256,), "b"),
        "fc2.weight": ((512, 256), "w"),
        "fc2.bias": ((512,), "b"),
        "fc3.weight": ((128, 512), "w"),
        "fc3.bias": ((128,), "b"),
        "out.weight": ((10, 128), "w"),
    },
    "conv": {
        "conv1.weight": ((64, 3, 5, 5), "w"),
        "bn1.weight": ((64,), "g"),
        "conv2.weight": ((128, 64, 3, 3), "w"),
        "bn2.weight": ((128,), "g"),
        "conv3.weight": ((256, 128, 3, 3), "w"),
        "bn3.weight": ((256,), "g"),
        "fc.weight": ((100, 256), "w"),
        "fc.bias": ((100,), "b"),
    },
}
ARCH_ORDER = list(ARCHS)


def family_arch(f: int) -> str:
    return ARCH_ORDER[f % len(ARCH_ORDER)]


def spread(shape: tuple[int, ...], kind: str) -> float:
    """The standard deviation of a tensor's random init."""
    return {"w": 1.0 / math.sqrt(math.prod(shape[1:])), "g": 0.05}.get(kind, 0.01)


def random_model(arch: str, seed: int) -> StateDict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, (shape, kind) in ARCHS[arch].items():
        x = torch.randn(shape, generator=g) * spread(shape, kind)
        sd[name] = x + 1.0 if kind == "g" else x
    return sd


def relative(sd: StateDict, seed: int, scale: float, frozen: float = 0.0) -> StateDict:
    """``sd`` plus noise of ``scale`` times each tensor's init spread; each tensor is
    left as it is with probability ``frozen``."""
    g = torch.Generator().manual_seed(seed)
    arch = next(a for a, shapes in ARCHS.items() if shapes.keys() == sd.keys())
    out = {}
    for name, t in sd.items():
        keep = float(torch.rand((), generator=g)) < frozen
        noise = torch.randn(t.shape, generator=g)
        out[name] = t.clone() if keep else t + noise * (scale * spread(*ARCHS[arch][name]))
    return out


def family(f: int) -> list[tuple[str, StateDict, str | None]]:
    """Family ``f``: (name, state dict, parent name), parents first."""
    rng = np.random.default_rng(1000 + f)
    arch = family_arch(f)
    members: list[tuple[str, StateDict, str | None]] = []
    for j in range(FAMILY_SIZE):
        name = f"f{f:02d}-{arch}-{j:03d}"
        if j == 0:
            members.append((name, random_model(arch, f), None))
            continue
        p = j - 1 if rng.random() < 0.5 else int(rng.integers(0, j))
        scale = float(10 ** rng.uniform(-3, -1.5))
        frozen = 0.3 if rng.random() < 0.3 else 0.0
        sd = relative(members[p][1], 100_000 * f + j, scale, frozen)
        members.append((name, sd, members[p][0]))
    return members


# -- the large repository -----------------------------------------------------------------
def build(path: Path, models: int, log: Callable[[str], None]) -> float:
    """Build (or finish building) the large repository; seconds spent."""
    marker = path / "bench_scale.json"
    config = {"generator": GENERATOR, "models": models, "family_size": FAMILY_SIZE}
    if marker.exists() and json.loads(marker.read_text()) == config:
        return 0.0
    state = path / "building.json"
    if path.exists() and not (state.exists() and json.loads(state.read_text()) == config):
        shutil.rmtree(path)
    t0 = time.perf_counter()
    if not path.exists():
        path.mkdir(parents=True)
        mg.init(path / "repo").close()
        state.write_text(json.dumps(config))
    with mg.open(path / "repo") as repo:
        have = set(repo.models())
        families = -(-models // FAMILY_SIZE)
        for f in range(families):
            count = min(FAMILY_SIZE, models - f * FAMILY_SIZE)
            members = family(f)[:count]
            if all(name in have for name, _, _ in members):
                continue
            for name, sd, parent in members:
                if name not in have:
                    repo.add(name, sd, parents=parent, base="parent")
            log(f"  built family {f + 1}/{families} ({time.perf_counter() - t0:.0f} s)")
    state.unlink()
    marker.write_text(json.dumps(config))
    return time.perf_counter() - t0


# -- measuring ----------------------------------------------------------------------------
def sketches(sd: StateDict, repo: mg.Repository) -> dict[str, TensorSketch]:
    with open_model(sd) as src:
        return sketch_source(src, repo.chunk_elems)


def exact_candidates(
    catalog: object, new: dict[str, TensorSketch], limit: int
) -> list[tuple[int, float]]:
    """The reference ranking: every stored version that has the probe tensors, ranked
    by the mean relative distance over them (what ``candidates`` did before the index)."""
    probes = sorted(new.values(), key=lambda s: (-s.numel, s.name))[: similarity.PROBES]
    marks = ",".join("?" * len(probes))
    per: dict[int, list[float]] = {}
    rows = catalog.query(  # type: ignore[attr-defined]
        f"SELECT version, name, sketch, norm2, numel FROM tensor_sketches WHERE name IN ({marks})",
        tuple(p.name for p in probes),
    )
    for vid, name, blob, norm2, numel in rows:
        d = relative_distance(new[name], TensorSketch.unpack(name, blob, norm2, numel))
        per.setdefault(vid, []).append(d)
    ranked = [
        (vid, float(np.mean(ds)))
        for vid, ds in per.items()
        if 2 * len(ds) >= len(probes) and np.mean(ds) < similarity.UNRELATED
    ]
    ranked.sort(key=lambda x: (x[1], -x[0]))
    return ranked[:limit]


def small_repository(path: Path) -> mg.Repository:
    """10 models: the first three of families 0-2 and the first of family 3, so that
    the probes of families 0-2 find as many relatives as in the large repository."""
    repo = mg.init(path)
    for f in range(PROBE_FAMILIES):
        for name, sd, parent in family(f)[: 3 if f < PROBE_FAMILIES - 1 else 1]:
            repo.add(name, sd, parents=parent, base="parent")
    return repo


def probes(run: int) -> list[tuple[str, StateDict]]:
    out = []
    for f in range(PROBE_FAMILIES):
        root = random_model(family_arch(f), f)
        out.append((f"probe-ft{f}", relative(root, 7_000_000 + 100 * run + f, 0.01)))
    out.append(("probe-new", random_model("tfm64", 9_000_000 + run)))
    return out


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(big: mg.Repository, small: mg.Repository, runs: int) -> dict:
    """add (and candidates alone) in both repositories, interleaved, per probe."""
    add: dict[str, dict[str, list[float]]] = {}
    cand: dict[str, dict[str, list[float]]] = {}
    order = np.random.default_rng(11)
    for run in range(runs):
        cases = probes(run)
        cases.append(("no search", random_model("tfm64", 9_500_000 + run)))
        # in a new order each round: SQLite checkpoints its log every so many pages
        # written, and would otherwise charge the same probe every round
        for i in order.permutation(len(cases)):
            name, sd = cases[i]
            sk = sketches(sd, big)
            base = "parent" if name == "no search" else "auto"
            for repo, label in ((small, "small"), (big, "large")):
                t = timed(lambda r=repo, s=sd, b=base: r.add("probe", s, base=b))
                add.setdefault(name, {}).setdefault(label, []).append(t)
                repo.remove("probe")
                t0 = time.perf_counter()  # as an add finds the catalog: after a write
                if base == "auto":
                    similarity.candidates(repo.catalog, sk, limit=3)
                cand.setdefault(name, {}).setdefault(label, []).append(time.perf_counter() - t0)
    return {"add": add, "candidates": cand}


def nudged(sd: StateDict, chunk_elems: int) -> StateDict:
    """``sd`` with the lowest bit of the first element of each chunk flipped: other
    chunk ids (nothing deduplicated against a copy added before), the same cost."""
    out = {}
    for k, t in sd.items():
        t = t.clone()
        t.view(-1).view(torch.int32)[::chunk_elems] ^= 1
        out[k] = t
    return out


def quality(big: mg.Repository, models: int, queries: int) -> dict:
    """The base the index finds against the exact search (every stored sketch read,
    as before the index), and what the queries cost to store either way."""
    rng = np.random.default_rng(5)
    agree = 0
    ratios = []
    stored = {"index": 0, "exact": 0}
    for q in range(queries):
        f = int(rng.integers(0, -(-models // FAMILY_SIZE)))
        j = int(rng.integers(1, min(FAMILY_SIZE, models - f * FAMILY_SIZE)))
        name = f"f{f:02d}-{family_arch(f)}-{j:03d}"
        sd = relative(big.load(name), 8_000_000 + q, QUERY_NOISE[q % len(QUERY_NOISE)])
        sk = sketches(sd, big)
        got = similarity.candidates(big.catalog, sk, limit=3)
        want = exact_candidates(big.catalog, sk, limit=3)
        if got and want and got[0][0] == want[0][0]:
            agree += 1
        if want and want[0][1] > 0:
            ratios.append((got[0][1] if got else float("inf")) / want[0][1])
        for mode, model in (("index", sd), ("exact", nudged(sd, big.chunk_elems))):
            scan = getattr(similarity, "SCAN_ROWS", None)  # None: before the index
            if scan is not None and mode == "exact":
                similarity.SCAN_ROWS = 10**12
            try:
                big.add("query", model)
            finally:
                if scan is not None:
                    similarity.SCAN_ROWS = scan
            assert big.last_write is not None
            stored[mode] += big.last_write.new_bytes
            big.remove("query")
    return {
        "queries": queries,
        "top1_agree": agree,
        "distance_ratio_mean": float(np.mean(ratios)) if ratios else None,
        "distance_ratio_p90": float(np.quantile(ratios, 0.9)) if ratios else None,
        "distance_ratio_max": max(ratios) if ratios else None,
        "stored_bytes_index": stored["index"],
        "stored_bytes_exact": stored["exact"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    log = (lambda s: None) if args.json else print
    path = args.cache / f"repo-{args.models}"
    built = build(path, args.models, print if not args.json else (lambda s: None))
    if built:
        log(f"built {args.models} models in {built:.0f} s")
    with (
        tempfile.TemporaryDirectory() as tmp,
        mg.open(path / "repo") as big,
        small_repository(Path(tmp) / "small") as small,
    ):
        t0 = time.perf_counter()
        big.gc()  # what an interrupted run left (chunks of probes would be deduplicated)
        log(f"gc of the large repository: {time.perf_counter() - t0:.1f} s")
        first = {}
        for repo, label in ((small, "small"), (big, "large")):  # warm-up (and any backfill)
            first[label] = timed(lambda r=repo: r.add("warmup", random_model("mlp", 123)))
            repo.remove("warmup")
            log(f"first add into the {label} repository: {first[label] * 1e3:.0f} ms")
        res = measure(big, small, args.runs)
        qual = quality(big, args.models, args.queries)
        big.gc()  # the probes' chunks
        stats = big.stats()
        small_models = small.models()
    rows = []
    for name in sorted(res["add"], key=lambda n: (n == "no search", n)):  # it last
        a, c = res["add"][name], res["candidates"][name]
        rows.append({
            "probe": name,
            "add_small_ms": statistics.median(a["small"]) * 1e3,
            "add_large_ms": statistics.median(a["large"]) * 1e3,
            "add_ratio": statistics.median(a["large"]) / statistics.median(a["small"]),
            "candidates_small_ms": statistics.median(c["small"]) * 1e3,
            "candidates_large_ms": statistics.median(c["large"]) * 1e3,
        })  # fmt: skip
    summary = {
        "models": args.models,
        "runs": args.runs,
        "stored_bytes": stats.stored_bytes,
        "logical_bytes": stats.logical_bytes,
        "probes": rows,
        "add_ratio_median": statistics.median(r["add_ratio"] for r in rows[:-1]),
        "add_ratio_no_search": rows[-1]["add_ratio"],
        "first_add_ms": {k: v * 1e3 for k, v in first.items()},
        "quality": qual,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"\nlarge: {args.models} models, {stats.logical_bytes / 1e9:.2f} GB logical, "
          f"{stats.stored_bytes / 1e9:.2f} GB stored; small: {len(small_models)} models; "
          f"medians of {args.runs} runs")  # fmt: skip
    print(
        f"{'probe':12s} {'add small':>10s} {'add large':>10s} {'ratio':>6s}"
        f" {'cand. small':>12s} {'cand. large':>12s}"
    )
    for r in rows:
        print(
            f"{r['probe']:12s} {r['add_small_ms']:8.1f}ms {r['add_large_ms']:8.1f}ms"
            f" {r['add_ratio']:6.2f} {r['candidates_small_ms']:10.2f}ms"
            f" {r['candidates_large_ms']:10.2f}ms"
        )
    print(
        f"median add ratio (large / small), probes: {summary['add_ratio_median']:.2f};"
        f" no search (a new family's model, base=parent): {rows[-1]['add_ratio']:.2f}"
    )
    print(
        f"quality: top-1 base as the exact search in {qual['top1_agree']}/{qual['queries']}"
        f" queries; distance found / best: mean {qual['distance_ratio_mean']:.3f},"
        f" 90th percentile {qual['distance_ratio_p90']:.3f},"
        f" max {qual['distance_ratio_max']:.3f}"
    )
    print(
        f"stored bytes of the {qual['queries']} queries: {qual['stored_bytes_index']:,d}"
        f" with the index, {qual['stored_bytes_exact']:,d} with the exact search"
        f" ({qual['stored_bytes_index'] / qual['stored_bytes_exact']:.4f})"
    )


if __name__ == "__main__":
    main()
