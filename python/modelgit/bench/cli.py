"""The ``bench`` command: ``python -m modelgit.bench`` (``main``), and the parts of
``modelgit bench`` (registered by ``modelgit.cli.bench``).

``modelgit bench ZOO_DIR -o OUT`` measures how the zoo (or repository) at ZOO_DIR is
stored by each strategy and writes OUT/results.csv, OUT/results.md and OUT/*.png.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ..progress import progress_wanted

__all__ = ["DESCRIPTION", "EPILOG", "configure", "cmd_bench", "build_parser", "main"]

DESCRIPTION = """\
Measure how much space a model zoo needs under each storage strategy, and at what
cost: stored bytes, ratio, encode/decode throughput (medians of --repeats rounds),
largest absolute error and the change of each model's evaluation metric.

ZOO_DIR is a folder of .safetensors files plus manifest.json (see modelgit.zoo), or an
existing modelgit repository. Writes OUT/results.csv (one row per strategy and model),
OUT/results.md and the plots OUT/footprint.png, OUT/tradeoff.png, OUT/lineage.png
(plots need matplotlib: pip install "modelgit[bench]")."""

EPILOG = """\
examples:
  modelgit bench bench/cache/small -o bench/out/small
  modelgit bench zoo/ -o out --strategies safetensors,bitx,mgit,modelgit,modelgit-abs1e-4
  modelgit bench my-repo -o out --repeats 1 --no-eval"""


def configure(p: argparse.ArgumentParser) -> None:
    """Add the options of ``bench`` to ``p``."""
    from .choices import strategy_help

    p.add_argument(
        "source", metavar="ZOO_DIR", help="zoo folder (with manifest.json) or repository"
    )
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (created)")
    p.add_argument(
        "-s", "--strategies", metavar="LIST", default=None,
        help=f"comma-separated strategies to compare; {strategy_help()}",
    )  # fmt: skip
    p.add_argument("-r", "--repeats", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument(
        "--models", metavar="LIST", default=None, help="only these models (comma-separated)"
    )
    p.add_argument("--no-eval", action="store_true", help="do not re-evaluate decoded models")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (none is drawn when stderr is no terminal either)",
    )
    p.add_argument("--workdir", metavar="DIR", default=None, help="where temporary stores go")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on the first strategy error or lossless round-trip mismatch",
    )


def _split(s: str | None) -> list[str] | None:
    return None if s is None else [x.strip() for x in s.split(",") if x.strip()]


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the harness as the arguments say; print where the reports went."""
    from .run import run_bench

    if args.repeats < 1:
        print("modelgit bench: --repeats must be >= 1", file=sys.stderr)
        return 2
    argv = getattr(args, "argv", None)
    if argv is not None:
        command = "modelgit bench " + shlex.join(argv)
    elif "bench" in sys.argv[1:]:
        command = "modelgit " + shlex.join(sys.argv[1:])
    else:
        command = None
    try:
        res = run_bench(
            args.source,
            args.out,
            strategies=_split(args.strategies),
            repeats=args.repeats,
            progress=not args.no_progress and progress_wanted(sys.stderr),  # a terminal's
            models=_split(args.models),
            evaluate=not args.no_eval,
            command=command,
            workdir=args.workdir,
            plots=not args.no_plots,
            strict=args.strict,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"modelgit bench: {exc}", file=sys.stderr)
        return 1
    from .report import _mb, _ratio

    for s in res.summary():
        print(f"{s['strategy']:<22} {_mb(s['stored_bytes']):>10} MB  ratio {_ratio(s['ratio'])}")
    for n in res.notes:
        print(f"note: {n}")
    print(f"wrote {', '.join(str(f) for f in res.files)}")
    failed = any(
        n.startswith(("ROUND TRIP FAILED", "FAILED")) or " FAILED " in n for n in res.notes
    )
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m modelgit.bench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return cmd_bench(args)
