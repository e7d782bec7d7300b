"""``modelgit demo``: a small real lineage graph, trained on the spot."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ._command import command
from ._output import emit, human


def register(sub: Any) -> None:
    p = command(
        sub,
        "demo",
        cmd_demo,
        help="build a small lineage graph trained on the spot",
        description=(
            "Train tiny MLPs on scikit-learn's digits (synthetic data without scikit-learn) "
            "in a few seconds, store them as a family (a base and a second version of it, "
            "two fine-tunes, a bfloat16 cast, a merge), then print the storage report and "
            "the graph. With DIR the repository is kept there; without, it is built in a "
            "temporary folder and deleted."
        ),
        epilog=(
            "examples:\n  modelgit demo\n  modelgit demo demo-repo && cd demo-repo && modelgit log"
        ),
        repo=False,
    )
    p.add_argument("dir", nargs="?", metavar="DIR", help="where to build it (kept)")


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import build_demo
    from .maintain import du_json, du_text, stored_against

    tmp = None
    if args.dir is None:
        tmp = tempfile.mkdtemp(prefix="modelgit-demo-")
        path = Path(tmp) / "repo"
    else:
        path = Path(args.dir)
    try:
        res = build_demo(path, log=None if args.json else print)
        with res.repo as repo:
            stats = repo.stats()
            against = stored_against(repo, stats)
            graph = repo.graph
            if args.json:
                emit(True, {
                    "path": None if tmp else str(path.resolve()),
                    "data": res.data,
                    "accuracy": res.accuracy,
                    "stats": du_json(stats, against),
                    "graph": graph.to_json(),
                })  # fmt: skip
                return 0
            print()
            print(du_text(stats, against))
            print()
            print(graph.to_text())
            print()
            saved = stats.logical_bytes - stats.stored_bytes
            print(
                f"{len(graph)} models, {human(stats.logical_bytes)} of weights stored in "
                f"{human(stats.stored_bytes)} ({human(saved)} saved)"
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if tmp is None:
        print(f"repository kept in {path}; try: cd {path} && modelgit log")
    else:
        print("(built in a temporary folder, now deleted; `modelgit demo DIR` keeps it)")
    return 0
