"""Encode throughput of ``add`` against a baseline build of modelgit.

Adds the MiniLM reference zoo (declared parents, its 12 models in manifest order) to a
fresh repository, timed, in this interpreter (automatic bases, ``base="parent"``) and,
with ``--baseline PYTHON``, in another interpreter that has a baseline build installed
(e.g. the commit before automatic bases). The runs alternate between the builds so
that machine noise hits both alike; the table gives medians and throughput ratios.

A baseline build, once::

    git worktree add /tmp/base 2abf0b9
    python -m venv /tmp/base-venv && . /tmp/base-venv/bin/activate
    pip install torch==2.13.0 scikit-build-core pybind11
    pip install --no-build-isolation -e /tmp/base

Run: ``python bench/bench_add_speed.py --baseline /tmp/base-venv/bin/python --runs 7``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "bench" / "cache" / "minilm"

ONE_RUN = r"""
import gc, json, sys, tempfile, time
from pathlib import Path
from safetensors.torch import load_file
import modelgit as mg
from modelgit.zoo import load_manifest, parents_of
zoo, mode = Path(sys.argv[1]), sys.argv[2]
entries = load_manifest(zoo)
models = {e["name"]: load_file(zoo / e["file"]) for e in entries}
kw = {} if mode == "baseline" else {"base": mode}
with tempfile.TemporaryDirectory() as d:
    repo = mg.init(Path(d) / "r")
    gc.collect()
    t = time.perf_counter()
    for e in entries:
        repo.add(e["name"], models[e["name"]], parents=parents_of(e) or None,
                 relation=e.get("relation") or "finetune", **kw)
    seconds = time.perf_counter() - t
    stored = repo.stats().stored_bytes
    logical = sum(m.logical_bytes for m in repo.stats().models)
    repo.close()
print(json.dumps({"seconds": seconds, "stored": stored, "logical": logical}))
"""


def run(python: str, mode: str) -> dict:
    out = subprocess.run([python, "-c", ONE_RUN, str(ZOO), mode], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", metavar="PYTHON", help="an interpreter with a baseline build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not (ZOO / "manifest.json").is_file():
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_zoo import zoo_folder

        zoo_folder("minilm", 50)
    builds = [("auto", sys.executable, "auto"), ("parent", sys.executable, "parent")]
    if args.baseline:
        builds.insert(0, ("baseline", args.baseline, "baseline"))
    got: dict[str, list[dict]] = {name: [] for name, _, _ in builds}
    load_before = os.getloadavg()
    for _ in range(args.runs):
        for name, python, mode in builds:
            got[name].append(run(python, mode))
    table = {
        name: {"seconds": statistics.median(r["seconds"] for r in runs),
               "stored": runs[0]["stored"], "logical": runs[0]["logical"]}
        for name, runs in got.items()
    }  # fmt: skip
    ref = table["baseline" if args.baseline else "parent"]
    load = {"before": load_before, "after": os.getloadavg()}  # 1, 5, 15 minutes
    if args.json:
        print(json.dumps({**table, "load_average": load}, indent=2))
        return 0
    print("| build | seconds (median) | MB/s | throughput vs " + ("baseline" if args.baseline
          else "parent") + " | stored bytes |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for name, r in table.items():
        mbs = r["logical"] / r["seconds"] / 1e6
        print(f"| {name} | {r['seconds']:.2f} | {mbs:.0f} | "
              f"{100 * ref['seconds'] / r['seconds']:.0f}% | {r['stored']:,} |")  # fmt: skip
    print("\nload average (1, 5, 15 min): before " + ", ".join(f"{x:.2f}" for x in load["before"])
          + "; after " + ", ".join(f"{x:.2f}" for x in load["after"]))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
