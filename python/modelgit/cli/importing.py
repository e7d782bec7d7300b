"""``modelgit import``: add a folder of models in one go, with inferred lineage."""

from __future__ import annotations

import argparse
from typing import Any

from ._command import command
from ._output import emit
from ._progress import Progress
from ._repo import open_repo


def register(sub: Any) -> None:
    p = command(
        sub,
        "import",
        cmd_import,
        help="add every model found in folders, with inferred lineage",
        description=(
            "Add every model found under the PATHs: .safetensors files, Hugging Face model "
            "folders (sharded too) and Hugging Face hub cache folders "
            "(models--org--name/snapshots/REV/: one model per repository, one version per "
            "snapshot, the repository and revision kept as metadata). Lineage is inferred "
            "from the weights and the models' metadata; likely roots are added first, and "
            "each model gets its inferred parents as edges of relation 'inferred' with a "
            "confidence. Storage bases are chosen automatically, so a wrong guess costs no "
            "space. Each model is one transaction: an interrupted import keeps what it "
            "added, and running it again skips those. Fix edges afterwards with "
            "`modelgit edge`, or give them up front with --edges."
        ),
        epilog=(
            "examples:\n"
            "  modelgit import ./zoo/ --dry-run        # print the proposed lineage only\n"
            "  modelgit import ./zoo/\n"
            "  modelgit import ~/.cache/huggingface/hub/models--org--name\n"
            "  modelgit import a.safetensors b.safetensors ./c-model/\n"
            '  modelgit import ./zoo/ --edges edges.json   # {"chat": "base", "base": null}\n'
            "  modelgit edge rm base chat && modelgit edge add base-v2 chat --relation finetune"
        ),
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to import")
    p.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="print the models found and the proposed lineage; write nothing",
    )
    p.add_argument(
        "--edges",
        metavar="FILE",
        help="a JSON object {child: parent, [parents] or null} overriding inferred parents",
    )
    p.add_argument(
        "--base",
        choices=["auto", "parent"],
        default="auto",
        help="storage bases: auto (default, the closest stored tensors) or parent "
        "(the first inferred parent)",
    )
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="read symlinks in model folders that lead outside them (refused by default, "
        "except a hub cache snapshot's links to its blobs)",
    )


def cmd_import(args: argparse.Namespace) -> int:
    from ..workflows.importing import read_edges_file

    edges = read_edges_file(args.edges) if args.edges else None
    with open_repo(args) as repo:
        with Progress("importing") as bar:
            report = repo.import_models(
                args.paths,
                dry_run=args.dry_run,
                edges=edges,
                base=args.base,
                progress=bar.update,
                follow_symlinks=args.follow_symlinks,
            )
        emit(args.json, report)
    return 0
