"""Declaring a command: its subparser with the settings every command shares."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["command", "repo_option"]


def repo_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--repo",
        metavar="PATH",
        default=default,
        help="the repository to use (default: the one at or above the current folder)",
    )


def command(
    sub: Any,
    name: str,
    fn: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    epilog: str,
    repo: bool = True,
    json: bool = True,
) -> argparse.ArgumentParser:
    """Add command ``name`` to the subparsers ``sub``, run by ``fn(args)``; its
    description and epilog (the examples) print as written. ``--repo PATH`` and
    ``--json`` are added unless ``repo`` or ``json`` is false. Returns the parser, for
    the command's own arguments."""
    p = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if repo:
        repo_option(p, argparse.SUPPRESS)
    if json:
        p.add_argument(
            "--json", action="store_true", default=False, help="machine-readable JSON output"
        )
    p.set_defaults(func=fn)
    return p
