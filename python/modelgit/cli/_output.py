"""Shared output of the command line: JSON or text, tables, sizes and one-line errors."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..units import human_bytes

__all__ = [
    "CliError",
    "emit",
    "print_error",
    "one_line",
    "human",
    "table",
    "when",
    "share",
]


class CliError(Exception):
    """A user error found by the command line itself (bad option value, bad file)."""


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


def one_line(msg: object) -> str:
    """Collapse a message to one line."""
    return " ".join(str(msg).split()) or type(msg).__name__


def print_error(msg: object, prog: str = "modelgit") -> None:
    print(f"{prog}: error: {one_line(msg)}", file=sys.stderr)


def human(n: float | None) -> str:
    return human_bytes(n)


def share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def when(dt: datetime) -> str:
    """A local, second-precision timestamp."""
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def table(rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """Align rows in columns; the first row is the header; ``right``: right-aligned columns."""
    cells = [[str(c) for c in r] for r in rows]
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    out = []
    for r in cells:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("  ".join(parts).rstrip())
    return "\n".join(out)
