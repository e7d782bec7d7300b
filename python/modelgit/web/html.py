"""The HTML every page shares: escaping, the data files scripts read, the page shell
(navigation, stylesheet, Content-Security-Policy) and small formatting helpers.

Everything a repository holds is hostile text here (model names, relations, messages,
metadata, side files): it reaches a page only through :func:`esc` (HTML text and
attribute values) or :func:`js_data` (a ``.js`` data file: its JSON, given to
``JSON.parse`` as a string literal with ``<``, ``>``, ``&`` and the two JavaScript line
separators escaped). Pages carry no inline script,
no inline style and no event-handler attribute, so the CSP below forbids them all.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from ..units import human_bytes

__all__ = [
    "CSP",
    "SECURITY_HEADERS",
    "esc",
    "safe_json",
    "js_data",
    "page",
    "human",
    "when",
    "ratio",
    "share",
    "table",
    "short_json",
]

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
NAV = (("index.html", "graph", "Graph"), ("search.html", "search", "Search"),
       ("storage.html", "storage", "Storage"))  # fmt: skip
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def esc(value: object) -> str:
    """``value`` as HTML text or a quoted attribute value."""
    return html.escape(str(value), quote=True)


def safe_json(data: Any) -> str:
    """JSON that cannot close a ``<script>`` element or start markup wherever it lands:
    ``<``, ``>`` and ``&`` (and U+2028/U+2029) are written as ``\\u`` escapes."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return "".join(_JSON_ESCAPES.get(c, c) for c in text)


def js_data(var: str, data: Any) -> str:
    """A data file for scripts: ``window.VAR = JSON.parse("...");`` (``var`` is ours, never
    a user's). The JSON goes through ``JSON.parse`` as a string literal, never as an object
    literal: in a literal, a key ``"__proto__"`` (a model may be named so) would set the
    object's prototype instead of adding an entry; JSON.parse adds it as any other."""
    assert var.isidentifier(), var
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return f"window.{var} = JSON.parse({safe_json(text)});\n"


def page(
    title: str,
    body: str,
    *,
    root: str,
    current: str = "",
    scripts: Sequence[str] = (),
    mode: str = "static",
) -> str:
    """A whole page. ``root``: the relative way back to the site's root (``""`` or
    ``"../"``), so that every link is relative and the static site works from
    ``file://``. ``scripts``: paths from the root (data files first)."""
    links = " ".join(
        f'<a href="{root}{href}"' + (' class="current"' if key == current else "") + f">{label}</a>"
        for href, key, label in NAV
    )
    tags = "".join(f'<script src="{esc(root + s)}"></script>' for s in scripts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{esc(title)} · modelgit</title>'
        f'<link rel="stylesheet" href="{root}static/style.css">'
        f'<link rel="icon" href="{root}static/favicon.svg" type="image/svg+xml">'
        f'</head><body data-mode="{esc(mode)}" data-root="{esc(root)}">\n'
        f'<nav id="nav"><span class="brand">modelgit</span> {links}</nav>\n'
        f"<main>\n{body}\n</main>\n{tags}\n</body></html>\n"
    )


def human(n: float | None) -> str:
    return human_bytes(n)


def when(value: datetime | float) -> str:
    """A UTC timestamp to the minute (the same for every reader of a published site)."""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def ratio(logical: int, stored: int) -> str:
    return f"{logical / stored:.2f}x" if stored else "-"


def share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def short_json(value: Any, limit: int = 200) -> str:
    """A value as compact JSON text, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(
    id_: str,
    head: Sequence[str],
    rows: Iterable[tuple[Sequence[str], str]],
    *,
    numeric: Sequence[int] = (),
    empty: str = "none",
) -> str:
    """A table whose cells are ready HTML (the caller escaped them); each row comes with
    its ``<tr>`` attributes (``""`` for none). ``numeric``: right-aligned columns."""
    num = set(numeric)
    right = ' class="num"'
    th = "".join(f"<th{right if i in num else ''}>{h}</th>" for i, h in enumerate(head))
    body = []
    for cells, attrs in rows:
        tds = "".join(f"<td{right if i in num else ''}>{c}</td>" for i, c in enumerate(cells))
        body.append(f"<tr{(' ' + attrs) if attrs else ''}>{tds}</tr>")
    if not body:
        body.append(f'<tr class="empty"><td colspan="{len(head)}">{esc(empty)}</td></tr>')
    return f'<table id="{id_}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'
