"""Lineage inference benchmark: accuracy on the reference zoos, speed on 500 models.

    python -m modelgit.zoo minilm bench/cache/minilm       # once: the MiniLM zoos
    python -m modelgit.zoo minilm-b bench/cache/minilm-b
    python bench/bench_inference.py                 # small, minilm, minilm-b, 10 x 50 synthetic
    python bench/bench_inference.py --families 2 --size 20   # quick
    python -m modelgit.zoo small /tmp/small-s4 --seed 4      # another draw of the small zoo
    python bench/bench_inference.py --zoo /tmp/small-s4      # ... measured too

Accuracy: precision and recall of the inferred (parent, child) edges against each zoo's
manifest, direction counted (a reversed edge is wrong; a merge has two true edges; a
distilled student with another architecture cannot be found from weights), for the
directed edges (``infer_lineage``: what a user gets as lineage) and for all edges of
``infer_edges`` (an undirected one counted in its likelier order), plus the undirected
scores (pairs, direction ignored). The small zoo is built here if missing; the MiniLM
zoos are measured when their folders exist. Speed: synthetic families generated as random walks from
random roots (each model = a random earlier member of its family + Gaussian noise of
1-5% of its RMS, or, one time in ten, a bfloat16 cast of it; 1-5M float32 parameters per
model; families 0 and 1 share an architecture). Models are generated depth first, so
only one root-to-leaf path is in memory; the time reported is inference alone (sketching
every model + the arborescence), on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

from modelgit.lineage.inference import infer_edges, lineage_from_sketches, sketch_model
from modelgit.zoo import load_manifest, parents_of

ROOT = Path(__file__).resolve().parent.parent


def score(got: list[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, float]:
    g = set(got)
    tp = len(g & truth)
    und = {frozenset(e) for e in g} & {frozenset(e) for e in truth}
    return {
        "edges": len(g),
        "true_edges": len(truth),
        "precision": tp / len(g) if g else 1.0,
        "recall": tp / len(truth) if truth else 1.0,
        "undirected_precision": len(und) / len(g) if g else 1.0,
        "undirected_recall": len(und) / len(truth) if truth else 1.0,
    }


def zoo_accuracy(folder: Path, k: int) -> dict:
    man = load_manifest(folder)
    models = {e["name"]: folder / e["file"] for e in man}
    truth = {(p, e["name"]) for e in man for p in parents_of(e)}
    t0 = time.perf_counter()
    edges = infer_edges(models, k=k)
    seconds = time.perf_counter() - t0
    got = [(e.parent, e.child) for e in edges if e.directed]
    out = score(got, truth)
    every = score([(e.parent, e.child) for e in edges], truth)
    out.update(models=len(models), seconds=seconds, undirected_edges=len(edges) - len(got),
               all_precision=every["precision"], all_recall=every["recall"])  # fmt: skip
    out["wrong"] = sorted(set(got) - truth)
    out["missed"] = sorted(truth - set(got))
    out["edges_detail"] = [
        f"{e.parent} -> {e.child} ({e.relation}, {e.confidence:.2f}"
        f"{'' if e.directed else ', undirected'})"
        for e in edges
    ]
    return out


def synthetic(families: int, size: int, k: int, seed: int, threads: int) -> dict:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    params = [int(1e6 + 4e6 * f / max(1, families - 1)) for f in range(families)]
    if families > 1:
        params[1] = params[0]  # two families with the same architecture
    sketches = []
    truth: set[tuple[str, str]] = set()
    sketch_s = 0.0
    total_params = 0
    for f in range(families):
        width = int((params[f] / 4) ** 0.5)
        shapes = {f"layers.{i}.weight": (width, width) for i in range(4)}
        shapes.update({f"layers.{i}.bias": (width,) for i in range(4)})
        # the family tree: model j's parent is a random earlier non-cast member
        parent = {0: -1}
        cast = {0: False}
        for j in range(1, size):
            parent[j] = rng.choice([i for i in range(j) if not cast[i]])
            cast[j] = rng.random() < 0.1
        children: dict[int, list[int]] = {}
        for j in range(1, size):
            children.setdefault(parent[j], []).append(j)
            truth.add((f"f{f}-m{parent[j]}", f"f{f}-m{j}"))
        root = {
            n: torch.randn(s, generator=gen) / (s[-1] ** 0.5) for n, s in shapes.items()
        }  # fmt: skip
        stack = [(0, root)]
        while stack:  # depth first: one path in memory
            j, sd = stack.pop()
            t0 = time.perf_counter()
            sketches.append(sketch_model(f"f{f}-m{j}", sd, k=k, threads=threads))
            sketch_s += time.perf_counter() - t0
            total_params += sum(t.numel() for t in sd.values())
            for c in children.get(j, []):
                if cast[c]:
                    child = {n: t.to(torch.bfloat16) for n, t in sd.items()}
                else:
                    sigma = rng.uniform(0.01, 0.05)
                    child = {
                        n: t + sigma * t.float().pow(2).mean().sqrt() * torch.randn(
                            t.shape, generator=gen
                        )
                        for n, t in sd.items()
                    }  # fmt: skip
                stack.append((c, child))
    t0 = time.perf_counter()
    got = lineage_from_sketches(sketches)
    tree_s = time.perf_counter() - t0
    out = score(got, truth)
    out.update(
        models=len(sketches),
        params_mean=total_params / len(sketches),
        sketch_seconds=sketch_s,
        tree_seconds=tree_s,
        seconds=sketch_s + tree_s,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", type=int, default=10)
    ap.add_argument("--size", type=int, default=50)
    ap.add_argument("-k", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zoo", type=Path, action="append", default=[],
                    help="another zoo folder to measure (repeatable)")  # fmt: skip
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, dict] = {}
    small = ROOT / "bench" / "cache" / "small"
    if not (small / "manifest.json").exists():
        from modelgit.zoo.small import build_small_zoo

        build_small_zoo(small)
    results["small"] = zoo_accuracy(small, args.k)
    for name in ("minilm", "minilm-b"):
        folder = ROOT / "bench" / "cache" / name
        if (folder / "manifest.json").exists():
            results[name] = zoo_accuracy(folder, args.k)
    for folder in args.zoo:
        results[str(folder)] = zoo_accuracy(folder, args.k)
    results["synthetic"] = synthetic(args.families, args.size, args.k, args.seed, args.threads)
    if args.json:
        print(json.dumps(results, indent=2, default=list))
        return 0
    print(f"lineage inference, k={args.k}, threads={args.threads}, cpus={os.cpu_count()}")
    print(
        "| set | models | directed edges | undirected edges | true edges | precision | "
        "recall | all edges P | all edges R | undirected P | undirected R | seconds |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        und = r.get("undirected_edges", 0)
        ap, ar = r.get("all_precision", r["precision"]), r.get("all_recall", r["recall"])
        print(
            f"| {name} | {r['models']} | {r['edges']} | {und} | {r['true_edges']} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {ap:.3f} | {ar:.3f} | "
            f"{r['undirected_precision']:.3f} | {r['undirected_recall']:.3f} | "
            f"{r['seconds']:.1f} |"
        )
    syn = results["synthetic"]
    print(
        f"synthetic: {syn['models']} models, {syn['params_mean'] / 1e6:.2f}M params on "
        f"average; sketching {syn['sketch_seconds']:.1f} s, tree {syn['tree_seconds']:.2f} s"
    )
    for name in results:
        if "wrong" in results[name]:
            print(f"{name}: wrong {results[name]['wrong']}; missed {results[name]['missed']}")
            print("  " + "; ".join(results[name]["edges_detail"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
