"""Repository commands: init, du, fsck, gc, repack, prune-checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..repository import init
from ._command import command
from ._output import emit, human, share, table
from ._progress import Progress, call_with_progress
from ._repo import open_repo


def register(sub: Any) -> None:
    p = command(
        sub,
        "init",
        cmd_init,
        help="create a repository",
        description="Create a new, empty repository in PATH (a new or empty folder).",
        epilog="examples:\n  modelgit init               # here\n  modelgit init models",
        repo=False,
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH", help="folder (default: .)")

    command(
        sub,
        "du",
        cmd_du,
        help="storage used, per model",
        description=(
            "Storage per model: logical size (all versions), stored size (the bytes of "
            "the chunks the model introduced), ratio, the share of its bytes served by "
            "deduplication and the share stored as deltas."
        ),
        epilog="examples:\n  modelgit du\n  modelgit du --json",
    )

    p = command(
        sub,
        "fsck",
        cmd_fsck,
        help="check the repository",
        description=(
            "Check the catalog and the packs; by default decode and verify every chunk. "
            "Exits 1 when a problem is found."
        ),
        epilog="examples:\n  modelgit fsck\n  modelgit fsck --quick --json",
    )
    p.add_argument("--quick", action="store_true", help="check the catalog only, decode nothing")

    command(
        sub,
        "gc",
        cmd_gc,
        help="reclaim unused space",
        description="Delete chunks no version needs (after rm) and compact the packs.",
        epilog="examples:\n  modelgit rm old-model && modelgit gc",
    )
    p = command(
        sub,
        "prune-checkpoints",
        cmd_prune_checkpoints,
        help="drop the optimizer state (or the versions) of old training checkpoints",
        description=(
            "Of the checkpoint versions of NAME (written by repo.checkpoint or the training "
            "callbacks), keep the last K and the best by a metric whole; drop the optimizer "
            "and scheduler state of the others and keep their weights, or, with "
            "--drop-versions, remove those versions (tagged ones, those another model "
            "derives from and the latest version stay). Then run `modelgit gc`."
        ),
        epilog=(
            "examples:\n"
            "  modelgit prune-checkpoints mlp --keep-last 2\n"
            "  modelgit prune-checkpoints mlp --keep-last 1 --keep-best loss\n"
            "  modelgit prune-checkpoints mlp --keep-last 1 --drop-versions && modelgit gc"
        ),
    )
    p.add_argument("name", metavar="NAME", help="the model")
    p.add_argument("--keep-last", type=int, default=1, metavar="K",
                   help="keep the last K checkpoints whole (default: 1)")  # fmt: skip
    p.add_argument("--keep-best", metavar="METRIC",
                   help="also keep the checkpoint with the lowest METRIC")  # fmt: skip
    p.add_argument("--maximize", action="store_true", help="with --keep-best: the highest")
    p.add_argument("--drop-versions", action="store_true",
                   help="remove the pruned versions, not only their training state")  # fmt: skip

    p = command(
        sub,
        "repack",
        cmd_repack,
        help="re-encode stored chunks against better bases",
        description=(
            "Go through the versions oldest first and re-encode each chunk against the "
            "closest chunks of older versions under the current policy (automatic bases, "
            "linear predictors for merges), keeping a new record only where it is "
            "smaller. Then turn delta chains (a training run's checkpoints, fine-tunes "
            "of fine-tunes) into stars around their medoid, where that takes at most 1% "
            "more space: every version then decodes at most one delta (about 1.3 times "
            "a standalone load, where a chain of 4 took about 2 times). Then code each "
            "cast of such a delta (a bf16 copy of a fine-tune) against the standalone "
            "chunk the delta's chain ends in, where that takes at most half the cast's "
            "raw size (a chunk of at most 16 KiB whatever it takes), so that it decodes "
            "one delta too. Then gc to "
            "reclaim the old records' space. "
            "Versions and their contents do not change. Loads keep working while it "
            "runs; add and commit wait. Interrupted (even by kill -9), it loses "
            "nothing: run it again."
        ),
        epilog=(
            "examples:\n"
            "  modelgit repack              # e.g. after importing models without parents\n"
            "  modelgit repack --no-gc      # leave the old records until the next gc\n"
            "  modelgit repack --no-stars   # keep the delta chains as they are\n"
            "  modelgit repack --star-slack 5%   # stars even where they take up to 5% more\n"
            "  modelgit repack --no-casts   # keep casts coded against their parent\n"
            "  modelgit repack --json"
        ),
    )
    p.add_argument(
        "--no-gc", action="store_true", help="do not run gc afterwards (the space stays used)"
    )
    p.add_argument(
        "--no-stars", action="store_true",
        help="only re-choose bases; leave delta chains as deep as they are",
    )  # fmt: skip
    p.add_argument(
        "--no-casts", action="store_true",
        help="leave casts coded against their parent (smaller; a cast of a delta then "
             "decodes its parent first)",
    )  # fmt: skip
    p.add_argument(
        "--star-slack", type=_share, default=None, metavar="SHARE",
        help="how much more space a star may take than the chain it replaces, as 5%% or "
             "0.05 (default 1%%): more makes more versions load as one delta",
    )  # fmt: skip


def cmd_init(args: argparse.Namespace) -> int:
    repo = init(Path(args.path))
    root = repo.root.resolve()
    repo.close()
    emit(args.json, {"path": str(root)}, f"Initialized empty modelgit repository in {root}")
    return 0


def stored_against(repo: Any, stats: Any) -> dict[str, list[str]]:
    """The models each model's latest version was coded against (its storage bases)."""
    out = {}
    for m in stats.models:
        names = [v.model for v in repo.storage_bases(m.name)]
        out[m.name] = list(dict.fromkeys(n for n in names if n != m.name))
    return out


def du_json(stats: Any, against: dict[str, list[str]] | None = None) -> dict:
    d = stats.to_json()
    for m in d["models"]:
        if against is not None:
            m["stored_against"] = against.get(m["name"], [])
        logical = m["logical_bytes"]
        m["dedup_share"] = m["dedup_bytes"] / logical if logical else None
        m["delta_share"] = m["delta_bytes"] / logical if logical else None
    return d


def du_text(stats: Any, against: dict[str, list[str]] | None = None) -> str:
    rows: list[list[object]] = [
        ["model", "versions", "logical", "stored", "ratio", "dedup", "delta", "", "against"]
    ]
    for m in stats.models:
        ratio = f"{m.logical_bytes / m.stored_bytes:.2f}x" if m.stored_bytes else "-"
        bases = (against or {}).get(m.name, [])
        shown = ", ".join(bases[:3]) + (f" +{len(bases) - 3}" if len(bases) > 3 else "")
        rows.append([
            m.name,
            m.versions,
            human(m.logical_bytes),
            human(m.stored_bytes),
            ratio,
            share(m.dedup_bytes, m.logical_bytes),
            share(m.delta_bytes, m.logical_bytes),
            "lossy" if m.lossy else "",
            shown,
        ])  # fmt: skip
    total_ratio = f"{stats.logical_bytes / stats.stored_bytes:.2f}x" if stats.stored_bytes else "-"
    dedup = sum(m.dedup_bytes for m in stats.models)
    delta = sum(m.delta_bytes for m in stats.models)
    rows.append([
        "total",
        sum(m.versions for m in stats.models),
        human(stats.logical_bytes),
        human(stats.stored_bytes),
        total_ratio,
        share(dedup, stats.logical_bytes),
        share(delta, stats.logical_bytes),
        "",
        "",
    ])  # fmt: skip
    out = table(rows, right=(1, 2, 3, 4, 5, 6))
    out += f"\n{stats.chunks} chunks in {human(stats.pack_bytes)} of pack files"
    held = stats.stored_bytes - sum(m.stored_bytes for m in stats.models)
    if held > 0:  # chunks of removed versions: garbage, or bases others still need
        out += (
            f"\n{human(held)} of it is no version's: chunks of removed versions (`modelgit"
            " gc` frees those nothing needs, `modelgit repack` those still coded against)"
        )
    return out


def cmd_du(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        stats = repo.stats()
        against = stored_against(repo, stats)
        emit(args.json, du_json(stats, against), du_text(stats, against))
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    with open_repo(args) as repo, Progress("checking", unit="chunks") as bar:
        report = call_with_progress(repo.fsck, full=not args.quick, progress=bar)
    emit(args.json, report)
    return 0 if report.ok else 1


def _share(text: str) -> float:
    """A share as "5%" or "0.05", between 0 and 1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a share: {text!r} (e.g. 5% or 0.05)") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 100%")
    return value


def cmd_repack(args: argparse.Namespace) -> int:
    with open_repo(args) as repo, Progress("repacking") as bar:
        slack = {} if args.star_slack is None else {"star_slack": args.star_slack}
        report = call_with_progress(
            repo.repack, gc=not args.no_gc, stars=not args.no_stars,
            casts=not args.no_casts, progress=bar, **slack,
        )  # fmt: skip
    emit(args.json, report)
    return 0


def cmd_prune_checkpoints(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        report = repo.prune_checkpoints(
            args.name,
            keep_last=args.keep_last,
            keep_best=args.keep_best,
            mode="versions" if args.drop_versions else "state",
            maximize=args.maximize,
        )
    lines = []
    if report.states:
        lines.append("dropped the training state of " + ", ".join(report.states))
    if report.versions:
        lines.append("removed " + ", ".join(report.versions))
    if report.skipped:
        lines.append("kept (tagged, or a parent of another model): " + ", ".join(report.skipped))
    if not (report.states or report.versions):
        lines.append("nothing to prune")
    elif report.versions:  # the kept ones may be coded through the removed ones
        lines.append("run `modelgit repack` to reclaim the space (it re-codes what needed them)")
    else:
        lines.append("run `modelgit gc` to reclaim the space")
    emit(args.json, report, "\n".join(lines))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    with open_repo(args) as repo, Progress("collecting garbage") as bar:
        report = call_with_progress(repo.gc, progress=bar)
    emit(args.json, report)
    return 0
