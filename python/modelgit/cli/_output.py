"""Shared output of the command line: JSON or text, tables, sizes and one-line errors."""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime
from typing import Any

from ..text import one_line, table
from ..units import human_bytes

__all__ = [
    "CliError",
    "emit",
    "print_error",
    "print_warning",
    "one_line",
    "human",
    "table",
    "when",
    "share",
]


class CliError(Exception):
    """A user error found by the command line itself (bad option value, bad file)."""


class UsageError(CliError):
    """Arguments that do not go together (exit status 2, as argparse's own errors)."""


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _clean(obj: Any) -> Any:
    """Non-finite floats become null: the output stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def emit(as_json: bool, data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON when asked, else ``text`` (``str(data)`` by default)."""
    if as_json:
        if hasattr(data, "to_json"):
            data = data.to_json()
        data = json.loads(json.dumps(data, default=_default))
        print(json.dumps(_clean(data), indent=2, allow_nan=False))
    else:
        print(str(data) if text is None else text)


# The library's messages name its Python API; on the command line the same advice is
# worded as commands and flags.
CLI_WORDING = (
    ("use commit() for a new version", "use `modelgit commit` for a new version"),
    ("; use modelgit.open()", "; use it with --repo (or run modelgit inside it)"),
    ("create one with `modelgit init` or modelgit.init()", "create one with `modelgit init`"),
    ("remove_edge() first to change it", "`modelgit edge rm PARENT CHILD` first to change it"),
    ("pass replace=True", "pass --replace"),
    ("untag it or pass force=True", "untag it (`modelgit tag -d`) or pass --force"),
    ("pass force=True to change it", "pass --force to change it"),
    ("pass follow_symlinks=True, --follow-symlinks,", "pass --follow-symlinks"),
    ("pass --force (force=True)", "pass --force"),
    ("max_shard_size must be", "--max-shard-size must be"),
    ("max_depth must be", "--max-depth must be"),
    ("ErrorBound bound must be", "the --tolerance bound must be"),
    ("LowBit bits must be", "--tolerance bits= must be"),
)


def cli_wording(text: str) -> str:
    """A library message with its Python advice worded for the command line."""
    for python, cli in CLI_WORDING:
        text = text.replace(python, cli)
    return text


def print_error(msg: object, prog: str = "modelgit") -> None:
    print(f"{prog}: error: {cli_wording(one_line(msg))}", file=sys.stderr)


def print_warning(msg: object, prog: str = "modelgit") -> None:
    print(f"{prog}: warning: {one_line(msg)}", file=sys.stderr)


def human(n: float | None) -> str:
    return human_bytes(n)


def share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def when(dt: datetime) -> str:
    """A local, second-precision timestamp."""
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")
