"""The ``modelgit`` command line.

Like git, commands act on the repository at or above the current folder; ``--repo
PATH`` (or ``$MODELGIT_REPO``) names another. Read commands take ``--json``. Errors
print one line on stderr and exit non-zero: 1 for an error of use or data (unknown
model, corrupt repository...), 2 for wrong arguments, 130 when interrupted.
Set ``MODELGIT_DEBUG=1`` to see the traceback of an unexpected error.

One module per group of commands: ``maintain`` (init, du, fsck, gc, repack,
prune-checkpoints), ``write`` (add, commit, rm, tag, rename, export), ``importing``
(import), ``query`` (ls, log, show, diff), ``lineage`` (graph, edge), ``workflows``
(test, creator, cascade, bisect), ``collab`` (push, pull, merge, infer), ``settings``
(cache, layout), ``web`` (serve, site), ``demo``, and ``bench``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import ModelgitError, ModelgitWarning
from ._command import repo_option
from ._output import CliError, UsageError, print_error, print_warning

__all__ = ["main", "build_parser"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
modelgit: version control and compact storage for families of ML models.

Models are nodes of a lineage graph (base -> fine-tunes, casts, merges...); each
model has a list of immutable versions; weights shared between relatives are
stored once, and fine-tunes are delta-coded against their parents."""

EPILOG = """\
examples:
  modelgit init models && cd models
  modelgit add base base.safetensors -m "pretrained"
  modelgit add chat chat.safetensors --parent base --relation finetune
  modelgit commit chat chat-v2.safetensors -m "more data"
  modelgit log chat
  modelgit diff base chat@2
  modelgit graph --format html -o lineage.html
  modelgit du
  modelgit demo            # a small lineage graph trained on the spot

Run `modelgit COMMAND --help` for the options and examples of a command."""


GIT_VERBS = {  # what a git user types, and what modelgit calls it
    "checkout": "`modelgit export REF PATH` writes a version out (or `load` it in Python)",
    "clone": "`modelgit init PATH` then `modelgit pull SOURCE`",
    "status": "`modelgit ls` lists the models, `modelgit log` the versions",
    "fetch": "`modelgit pull SOURCE` (diverged versions wait for `modelgit merge`)",
    "branch": "models are the branches: `modelgit ls`, `modelgit add NEW PATH --parent REF`",
    "reset": "`modelgit tag` names a version; versions are never rewritten",
    "revert": "`modelgit commit NAME PATH` of the older weights (`modelgit export` them first)",
    "mv": "`modelgit rename OLD NEW`",
}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors; an unknown command gets a suggestion (the closest
    command, or what a git verb is called here)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = _suggestion(message)
        print_error(f"{message}{hint} (see `{self.prog} --help`)", prog=self.prog)
        raise SystemExit(EXIT_USAGE)


def _suggestion(message: str) -> str:
    """'; did you mean ...' for argparse's "invalid choice: 'X' (choose from ...)"."""
    import difflib
    import re

    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if m is None:
        return ""
    word, choices = m.group(1), re.findall(r"'([^']*)'", m.group(2))
    if word in GIT_VERBS:
        return f"; modelgit has no {word!r}: {GIT_VERBS[word]}"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Version(argparse.Action):
    """``--version``: the package's metadata is read only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from .. import __version__

        print(f"modelgit {__version__}")
        parser.exit()


def build_parser() -> Parser:
    from . import (
        bench,
        collab,
        demo,
        importing,
        lineage,
        maintain,
        query,
        settings,
        web,
        workflows,
        write,
    )

    parser = Parser(
        prog="modelgit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    repo_option(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in (
        maintain, write, importing, query, lineage, workflows, collab, settings, web, demo, bench
    ):  # fmt: skip
        module.register(sub)
    return parser


def _close_stdout() -> None:
    """After a broken pipe (``modelgit log | head``), silence the final flush."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@contextmanager
def _warnings_on_stderr() -> Iterator[None]:
    """modelgit's own warnings (likely mistakes) as ``modelgit: warning: ...`` lines on
    stderr, each time they happen; other warnings as Python shows them."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", ModelgitWarning)
        shown = warnings.showwarning

        def show(message: Any, category: Any, *rest: Any, **kw: Any) -> None:
            if issubclass(category, ModelgitWarning):
                print_warning(message)
            else:
                shown(message, category, *rest, **kw)

        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print_error("a command is required (see `modelgit --help`)")
        return EXIT_USAGE
    try:
        with _warnings_on_stderr():
            code = args.func(args)
        sys.stdout.flush()
        return int(code or 0)
    except BrokenPipeError:
        _close_stdout()
        return EXIT_ERROR
    except KeyboardInterrupt:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print_error(exc)
        return EXIT_USAGE
    except (ModelgitError, CliError) as exc:
        print_error(exc)
        return EXIT_ERROR
    except sqlite3.DatabaseError as exc:
        print_error(
            f"catalog error ({exc}); run `modelgit fsck`, and restore catalog.db from a "
            "backup only if it reports damage"
        )
        return EXIT_ERROR
    except OSError as exc:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print_error(f"{exc.strerror or exc}{where}")
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("MODELGIT_DEBUG"):
            raise
        print_error(
            f"internal error: {type(exc).__name__}: {exc} "
            "(set MODELGIT_DEBUG=1 for a traceback, and please report it)"
        )
        return EXIT_INTERNAL
