"""The search page (``search.html?q=...``): models and versions by name, tag, metadata
and message. The search runs in the browser (``static/search.js``) over the index in
``data/search.js``, so the static site searches as the server does."""

from __future__ import annotations

from typing import Any

from ..data import Snapshot
from ..html import js_data, page, short_json

__all__ = ["search_page", "search_index"]


def _flat(prefix: str, value: Any, out: list[str]) -> None:
    """Metadata as ``key=value`` strings, nested keys dotted (what a search matches)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        text = value if isinstance(value, str) else short_json(value, 120)
        out.append(f"{prefix}={text[:200]}")


def search_index(snap: Snapshot) -> dict[str, Any]:
    """One item per version: what a query can match, and where its result links."""
    items = []
    for m in snap.models.values():
        for v in m.versions:
            meta: list[str] = []
            _flat("", v.metadata, meta)
            items.append({
                "model": m.name,
                "ref": v.ref,
                "href": snap.model_href(m.name, v.number if v.fetched_number is None else None),
                "latest": v is m.latest,
                "tags": m.tags.get(v.number, []) if v.fetched_number is None else [],
                "meta": meta,
                "message": v.message[:300],
                "relation": m.relation,
            })  # fmt: skip
    return {"items": items}


def search_page(snap: Snapshot, mode: str) -> tuple[str, str]:
    """(``search.html``, ``data/search.js``)."""
    examples = ["tag:prod", "accuracy=0.9", "name:ft", "finetune"]
    body = (
        "<h1>Search</h1>"
        '<form id="search-form" action="search.html" method="get" role="search">'
        '<input id="query" name="q" type="search" autocomplete="off" autofocus '
        'placeholder="name, tag, metadata or message" aria-label="search"> '
        '<button type="submit">search</button></form>'
        '<p class="note">Words must all match (a model or tag name, a metadata key=value, a '
        "commit message). <code>tag:T</code>, <code>name:N</code>, <code>meta:M</code> and "
        "<code>KEY=VALUE</code> look in one field only. Examples: "
        + ", ".join(f"<code>{e}</code>" for e in examples)
        + '.</p><p id="result-count"></p><ul id="results"></ul>'
        "<noscript><p>Search needs JavaScript; the graph and storage pages list every model."
        "</p></noscript>"
    )
    html = page("search", body, root="", current="search", mode=mode,
                scripts=["data/search.js", "static/search.js"])  # fmt: skip
    return html, js_data("MODELGIT_SEARCH", search_index(snap))
