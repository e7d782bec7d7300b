"""``python -m modelgit.zoo {small,minilm,minilm-b} OUT``: build a reference zoo and list it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..units import human_bytes
from . import load_manifest, parents_of


def _describe(out: Path) -> str:
    entries = load_manifest(out)
    rows = [("name", "parent", "relation", "accuracy", "size")]
    total = 0
    for e in entries:
        size = (out / e["file"]).stat().st_size
        total += size
        acc = f"{e['eval']['value']:.4f}" if "eval" in e else "-"
        rows.append((e["name"], ",".join(parents_of(e)) or "-", e["relation"] or "-", acc,
                     human_bytes(size)))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"{len(entries)} models, {human_bytes(total)} in {out}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelgit.zoo", description=__doc__)
    ap.add_argument("zoo", choices=["small", "minilm", "minilm-b"])
    ap.add_argument("out", type=Path, help="output folder")
    ap.add_argument("--steps", type=int, default=50, help="training steps per run (minilm)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (minilm)")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="another draw: every random stream shifted (0: the reference)",
    )
    ap.add_argument("--force", action="store_true", help="rebuild even if a cached build matches")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    if args.zoo == "small":
        from .small import build_small_zoo

        out = build_small_zoo(args.out, force=args.force, seed=args.seed)
    else:
        from .minilm import build_minilm_zoo

        out = build_minilm_zoo(
            args.out,
            steps=args.steps,
            force=args.force,
            threads=args.threads,
            verbose=True,
            variant="b" if args.zoo == "minilm-b" else "a",
            seed=args.seed,
        )
    elapsed = time.perf_counter() - t0
    print(_describe(out))
    print(f"done in {elapsed:.1f} s (a matching cached build is reused unless --force)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
