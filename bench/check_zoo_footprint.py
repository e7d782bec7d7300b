"""Footprint of the reference zoos added with automatic bases and no declared parents.

For each zoo (``small``, ``minilm``, ``minilm-b`` under ``bench/cache``, or the folder
given with ``--cache``), every model of its manifest is added in manifest order without
parents into a new repository, and the stored bytes are printed. A change to how bases
are chosen (``storage.similarity``, ``versions.bases``) must leave these numbers where
they were.

``--index-only`` searches the LSH forest (``storage.sketch_index``) even in these small
repositories, which otherwise rank every stored sketch.

Run: ``python bench/check_zoo_footprint.py [--cache DIR] [--json] [--index-only]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import modelgit as mg
from modelgit.zoo import load_manifest

ZOOS = ("small", "minilm", "minilm-b")


def footprint(zoo: Path, work: Path) -> dict:
    t0 = time.perf_counter()
    with mg.init(work) as repo:
        for e in load_manifest(zoo):
            repo.add(e["name"], zoo / e["file"])
        s = repo.stats()
    return {
        "models": len(load_manifest(zoo)),
        "logical_bytes": s.logical_bytes,
        "stored_bytes": s.stored_bytes,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "cache")
    ap.add_argument("--zoo", action="append", choices=ZOOS, help="default: all three")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--index-only",
        action="store_true",
        help="search the LSH forest however small the repository (SCAN_ROWS = 0)",
    )
    args = ap.parse_args()
    if args.index_only:
        from modelgit.storage import similarity

        similarity.SCAN_ROWS = 0
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.zoo or ZOOS:
            zoo = args.cache / name
            if not (zoo / "manifest.json").exists():
                print(f"{name}: no zoo at {zoo} (python -m modelgit.zoo {name} {zoo})")
                continue
            out[name] = footprint(zoo, Path(tmp) / name)
            if not args.json:
                r = out[name]
                print(
                    f"{name:9s} {r['models']:3d} models  logical {r['logical_bytes']:>12,d}"
                    f"  stored {r['stored_bytes']:>12,d}  ({r['seconds']} s)"
                )
    if args.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
