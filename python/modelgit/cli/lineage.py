"""Lineage commands: graph (text, dot, svg, html) and edge (add/rm after the fact)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._command import command
from ._output import CliError, UsageError, emit
from ._repo import open_repo

FORMATS = ("text", "dot", "svg", "html")
SUFFIX_FORMATS = {".svg": "svg", ".html": "html", ".htm": "html", ".dot": "dot", ".gv": "dot"}
TEXT_SUFFIXES = ("", ".txt", ".text")


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
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of stdout (replaced if it exists); its suffix sets the "
        "format unless --format does: .txt, .dot/.gv, .svg, .html",
    )
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


def _format_for(fmt: str | None, output: str | None) -> str:
    """The format to write: ``--format``, else the output file's suffix; a suffix that
    names another format (or none that graph writes) is refused, never silently
    filled with text."""
    suffix = Path(output).suffix.lower() if output else ""
    named = SUFFIX_FORMATS.get(suffix)
    if fmt is not None and named is not None and named != fmt:
        raise CliError(f"the suffix of {output} says {named}, but --format is {fmt}")
    if fmt is not None:
        return fmt
    if named is None and suffix not in TEXT_SUFFIXES:
        raise CliError(
            f"cannot tell which format to write to {output}: graph writes text (.txt), dot "
            "(.dot, .gv), svg or html; give --format, or for a picture: modelgit graph "
            f"--format dot | dot -T{suffix.lstrip('.') or 'png'} > {output}"
        )
    return named or "text"


def cmd_graph(args: argparse.Namespace) -> int:
    fmt = _format_for(args.format, args.output)
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
                raise UsageError("--versions needs --format dot, svg or html")
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
    try:
        tmp.write_text(out if out.endswith("\n") else out + "\n", encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {fmt} of {len(graph)} models to {target}")
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        if args.action == "add":
            e = repo.add_edge(args.parent, args.child, args.relation)
            text = f"recorded {e.parent} -> {e.child} ({e.relation})"
        else:
            e = repo.remove_edge(args.parent, args.child)
            text = f"removed {e.parent} -> {e.child} ({e.relation})"
    emit(args.json, {"action": args.action, "parent": e.parent, "child": e.child,
                     "relation": e.relation}, text)  # fmt: skip
    return 0
