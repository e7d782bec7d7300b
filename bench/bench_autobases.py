"""Footprint without declared parents: automatic bases, `modelgit import`, and repack.

For each reference zoo (``small``, ``minilm``, ``minilm-b``; built in ``bench/cache``
if missing), the stored bytes of the whole zoo when its models are added

* with every parent declared (the manifest's lineage; the reference),
* with no parent declared (``repo.add(name, file)``: automatic bases),
* by ``repo.import_models(folder)`` (``modelgit import``: inferred lineage),
* with no parent and ``base="parent"`` (every model standalone, as before automatic
  bases), then after ``repo.repack()``,

each as a share of the declared footprint; every model is checked bit-exact after the
import and after the repack. Then the time of adding the MiniLM zoo with automatic
bases against ``base="parent"`` (medians of ``--runs``, side by side in one process).

Run: ``python bench/bench_autobases.py`` (``--zoos small`` for the quick one,
``--json`` for machine-readable output). ``--zoo-dir NAME=PATH`` (repeatable) measures
another zoo folder too, e.g. a seeded draw (``python -m modelgit.zoo minilm PATH --seed 1``);
``--zoos ""`` skips the reference zoos, ``--runs 0`` the timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

import modelgit as mg
from modelgit.zoo import load_manifest, parents_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_zoo import zoo_folder  # noqa: E402


def _folder(name: str, steps: int) -> Path:
    if name == "minilm-b":
        folder = Path(__file__).resolve().parent / "cache" / "minilm-b"
        if not (folder / "manifest.json").is_file():
            from modelgit.zoo.minilm import build_minilm_zoo

            build_minilm_zoo(folder, steps=steps, verbose=True, variant="b")
        return folder
    return zoo_folder(name, steps)


def _check(repo: mg.Repository, zoo: Path, entries: list[dict], names: dict[str, str]) -> None:
    for e in entries:
        got, want = repo.load(names[e["name"]]), load_file(zoo / e["file"])
        for k, v in want.items():
            same = torch.equal(got[k].view(torch.uint8), v.contiguous().view(torch.uint8))
            assert same, f"{e['name']}/{k} is not bit-exact"


def footprints(zoo: Path) -> dict[str, Any]:
    entries = load_manifest(zoo)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        for mode in ("declared", "none", "import", "flat"):
            repo = mg.init(Path(d) / mode)
            names = {e["name"]: e["name"] for e in entries}
            if mode == "import":
                report = repo.import_models(zoo)
                names = {m.path.stem: m.name for m in report.models}
            else:
                for e in entries:
                    ps = parents_of(e) if mode == "declared" else None
                    repo.add(e["name"], zoo / e["file"], parents=ps or None,
                             relation=e.get("relation") or "finetune",
                             base="parent" if mode == "flat" else "auto")  # fmt: skip
            out[mode] = repo.stats().stored_bytes
            if mode == "import":
                _check(repo, zoo, entries, names)
            if mode == "flat":
                repo.repack()
                out["repacked"] = repo.stats().stored_bytes
                _check(repo, zoo, entries, names)
            repo.close()
    return out


def add_times(zoo: Path, runs: int) -> dict[str, float]:
    entries = load_manifest(zoo)
    models = {e["name"]: load_file(zoo / e["file"]) for e in entries}
    times: dict[str, list[float]] = {"auto": [], "parent": []}
    for _ in range(runs):
        for base in ("parent", "auto"):
            with tempfile.TemporaryDirectory() as d:
                repo = mg.init(Path(d) / "r")
                t = time.perf_counter()
                for e in entries:
                    repo.add(e["name"], models[e["name"]], parents=parents_of(e) or None,
                             relation=e.get("relation") or "finetune", base=base)  # fmt: skip
                times[base].append(time.perf_counter() - t)
                repo.close()
    return {k: statistics.median(v) for k, v in times.items()}


def _zoo_dir(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoos", default="small,minilm,minilm-b", help="comma-separated zoos")
    ap.add_argument("--runs", type=int, default=3, help="timing runs (median)")
    ap.add_argument("--steps", type=int, default=50, help="fine-tune steps if a zoo is built")
    ap.add_argument("--zoo-dir", type=_zoo_dir, action="append", default=[], metavar="NAME=PATH",
                    help="another zoo folder to measure, under NAME (repeatable)")  # fmt: skip
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    folders = {name: _folder(name, args.steps) for name in args.zoos.split(",") if name}
    for name, path in args.zoo_dir:
        if name in folders:
            ap.error(f"--zoo-dir: the name {name!r} is already measured")
        folders[name] = path
    rows = {name: footprints(folder) for name, folder in folders.items()}
    timing = None
    if "minilm" in folders and args.runs > 0:
        timing = add_times(folders["minilm"], args.runs)
    if args.json:
        print(json.dumps({"footprints": rows, "add_seconds": timing}, indent=2))
        return 0
    print("| zoo | parents declared | no parents (auto) | `import` | no parents, "
          "base=parent | after `repack` |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        ref = r["declared"]

        def cell(key: str, r: dict = r, ref: int = ref) -> str:
            return f"{r[key]:,} ({100 * r[key] / ref:.1f}%)"

        print(f"| {name} | {ref:,} | {cell('none')} | {cell('import')} | {cell('flat')} "
              f"| {cell('repacked')} |")  # fmt: skip
    if timing:
        print()
        print("| adding the MiniLM zoo (declared parents) | seconds (median) |")
        print("|---|---:|")
        print(f'| base="parent" | {timing["parent"]:.2f} |')
        print(f'| base="auto" | {timing["auto"]:.2f} |')
        print(f"| auto / parent | {timing['auto'] / timing['parent']:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
