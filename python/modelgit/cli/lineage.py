"""Lineage commands: graph (text, dot, svg, html) and edge (add/rm after the fact)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._command import command
from ._output import CliError, emit
from ._repo import open_repo

FORMATS = ("text", "dot", "svg", "html")
SUFFIX_FORMATS = {".svg": "svg", ".html": "html", ".htm": "html", ".dot": "dot", ".gv": "dot"}


def register(sub: Any) -> None:
    p = command(
        sub,
        "graph",
        cmd_graph,
        help="draw the lineage graph",
        description=(
            "Draw the lineage graph: as a text tree (default), Graphviz DOT, or a "
            "self-contained SVG or HTML page (no graphviz needed). Nodes show each model's "
            "latest version, size and stored size; edges are coloured by relation; lossy "
            "models are marked."
        ),
        epilog=(
            "examples:\n"
            "  modelgit graph\n"
            "  modelgit graph --format svg -o lineage.svg\n"
            "  modelgit graph -o lineage.html           # format from the suffix\n"
            "  modelgit graph --versions --format dot | dot -Tpng > lineage.png\n"
            "  modelgit graph --json"
        ),
    )
    p.add_argument("--format", "-f", choices=FORMATS, help="output format (default: text)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--versions", action="store_true", help="one node per version")

    p = command(
        sub,
        "edge",
        cmd_edge,
        help="record or forget lineage after the fact",
        description=(
            "`edge add PARENT CHILD` records that CHILD was derived from PARENT (refused "
            "if it would make a cycle); `edge rm PARENT CHILD` forgets it. Weights are "
            "not touched."
        ),
        epilog=(
            "examples:\n"
            "  modelgit edge add base student --relation distill\n"
            "  modelgit edge rm base student"
        ),
        json=False,
    )
    p.add_argument("action", choices=("add", "rm"))
    p.add_argument("parent", metavar="PARENT", help="parent model (add: name@N allowed)")
    p.add_argument("child", metavar="CHILD", help="child model")
    p.add_argument("-r", "--relation", default="finetune", help="relation (default: finetune)")


def _can_encode(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def cmd_graph(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower() if args.output else ""
        fmt = SUFFIX_FORMATS.get(suffix, "text")
    with open_repo(args) as repo:
        graph = repo.graph
        if args.json:
            emit(True, graph.to_json())
            return 0
        if fmt == "text":
            from ..lineage.render import to_text

            out = to_text(graph)
            if args.output is None and not _can_encode(out):
                out = to_text(graph, ascii_only=True)
            if args.versions:
                raise CliError("--versions needs --format dot, svg or html")
        elif fmt == "dot":
            out = graph.to_dot(versions=args.versions)
        elif fmt == "svg":
            out = graph.to_svg(versions=args.versions)
        else:
            out = graph.to_html(versions=args.versions, title=f"lineage of {repo.root.name}")
    if args.output is None:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
        return 0
    target = Path(args.output)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_text(out if out.endswith("\n") else out + "\n", encoding="utf-8")
    os.replace(tmp, target)
    print(f"wrote {fmt} of {len(graph)} models to {target}")
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        if args.action == "add":
            e = repo.add_edge(args.parent, args.child, args.relation)
            print(f"recorded {e.parent} -> {e.child} ({e.relation})")
        else:
            e = repo.remove_edge(args.parent, args.child)
            print(f"removed {e.parent} -> {e.child} ({e.relation})")
    return 0
