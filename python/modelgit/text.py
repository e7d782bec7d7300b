"""Plain-text helpers shared by the library's reports and the command line."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["one_line", "table"]


def one_line(msg: object) -> str:
    """Collapse a message to one line."""
    return " ".join(str(msg).split()) or type(msg).__name__


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
