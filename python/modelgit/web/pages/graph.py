"""The graph pages: the lineage graph (``index.html``, one node per model) and the
version graph (``versions.html``, one node per version).

Both are SVG laid out left to right in Python by the layered layout of
``lineage/layout.py`` (so wide families grow downwards, where a page scrolls), with
nodes coloured by how they were derived, each model's stored size and its versions as
a chain of dots. ``static/graph.js`` adds zoom and pan, the search filter, collapsing
of subtrees and picking two nodes to compare; it reads the page's data file
(``data/graph.js`` or ``data/versions.js``), which holds no markup, only JSON.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ...lineage.layout import Box, Link, layout
from ...lineage.render import LOSSY_COLOR, RELATION_COLORS, svg_edge, svg_markers
from ..data import Snapshot
from ..html import esc, human, js_data, page, ratio, when

__all__ = ["graph_page", "versions_page", "relation_color", "PAGES"]

PAGES = {
    "models": ("index.html", "data/graph.js"),
    "versions": ("versions.html", "data/versions.js"),
}
ROOT_COLOR = "#4a5568"
PALETTE = ("#bcbd22", "#ff7f0e", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
MAX_DOTS = 14
MAX_LABEL = 44
NODE_H = 78
VERSION_H = 74
GAP_ACROSS = 14
GAP_ALONG = 70


def relation_color(relation: str) -> str:
    """A relation's colour: the known ones have theirs, any other word a stable one of
    a fixed palette (a colour never comes from the repository's text)."""
    if relation == "root":
        return ROOT_COLOR
    if relation in RELATION_COLORS:
        return RELATION_COLORS[relation]
    return PALETTE[int(hashlib.sha256(relation.encode()).hexdigest(), 16) % len(PALETTE)]


def _short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_width(first: str, rest: list[str]) -> float:
    return max([len(first) * 7.8] + [len(x) * 6.6 for x in rest])


# -- the two views: boxes, links and what each node draws -------------------------------


def _model_boxes(snap: Snapshot) -> tuple[list[Box], list[Link], dict[str, Any]]:
    boxes, info = [], {}
    for m in snap.models.values():
        latest = m.latest
        st = m.stats
        lines = [
            f"v{latest.number if latest else 0} · {human(m.node.logical_bytes)}"
            + (f" · {len(m.versions)} versions" if len(m.versions) > 1 else ""),
            f"stored {human(st.stored_bytes if st else 0)}"
            + (f" · {ratio(st.logical_bytes, st.stored_bytes)}" if st else ""),
        ]
        label = _short(m.name)
        b = Box(m.name, [label, *lines], lossy=m.node.lossy)
        b.width = max(
            150.0,
            24 + _text_width(label, lines) + 30,
            30 + 11 * min(len(m.versions), MAX_DOTS) + 30,
        )
        b.height = NODE_H
        boxes.append(b)
        tags = sorted({t for ts in m.tags.values() for t in ts})
        tip = [m.name, f"derived by {m.relation}" if m.parents else "a root model"]
        tip += [f"tags: {', '.join(tags)}"] if tags else []
        info[m.name] = {
            "href": snap.model_href(m.name),
            "stored": st.stored_bytes if st else 0,
            "relation": m.relation,
            "color": relation_color(m.relation),
            "tip": "\n".join(tip),
            "dots": [
                (
                    v.number,
                    snap.model_href(m.name, v.number),
                    v.lossy,
                    f"{v.ref} · {when(v.created)}" + (f" · {v.message}" if v.message else ""),
                )
                for v in m.versions
                if v.fetched_number is None
            ],  # fmt: skip
            "children": [e.child for e in m.children],
            "parents": [e.parent for e in m.parents],
            "ref": latest.ref if latest else m.name,
            "search": " ".join([m.name, *tags]).lower(),
        }
    links = [Link(e.parent, e.child, e.relation, e.kind, label=e.label) for e in snap.graph.edges()]
    return boxes, links, info


def _version_boxes(snap: Snapshot) -> tuple[list[Box], list[Link], dict[str, Any]]:
    boxes, info = [], {}
    children: dict[str, list[str]] = {}
    parents: dict[str, list[str]] = {}
    edges = snap.graph.edges(kind=None)
    for e in edges:
        children.setdefault(e.parent, []).append(e.child)
        parents.setdefault(e.child, []).append(e.parent)
    for m in snap.models.values():
        for v in m.versions:
            if v.fetched_number is not None:
                continue
            vs = snap.version_stats.get((m.name, v.number))
            stored = vs.stored_bytes if vs else 0
            tags = m.tags.get(v.number, [])
            lines = [
                when(v.created),
                f"{human(v.logical_bytes)} · stored {human(stored)}",
                _short(v.message or "(no message)", 36),
            ]
            label = _short(v.ref)
            b = Box(v.ref, [label, *lines], lossy=v.lossy)
            b.width = max(150.0, 24 + _text_width(label, lines) + 30)
            b.height = VERSION_H
            boxes.append(b)
            rel = "root"
            for p in v.parents:
                rel = "version" if p.kind == "version" else p.relation
                break
            info[v.ref] = {
                "href": snap.model_href(m.name, v.number),
                "stored": stored,
                "relation": rel,
                "color": relation_color(rel),
                "tip": v.ref
                + (f" (tags: {', '.join(tags)})" if tags else "")
                + (f"\n{v.message}" if v.message else ""),
                "dots": [],
                "children": children.get(v.ref, []),
                "parents": parents.get(v.ref, []),
                "ref": v.ref,
                "search": " ".join([v.ref, *tags]).lower(),
            }
    links = [Link(e.parent, e.child, e.relation, e.kind) for e in edges]
    return boxes, links, info


# -- drawing ----------------------------------------------------------------------------


def _node(b: Box, i: dict[str, Any], view: str) -> str:
    x0, y0 = b.x - b.width / 2, b.y
    w, h = b.width, b.height
    cls = "node" + (" lossy" if b.lossy else "") + (" has-children" if i["children"] else "")
    out = [
        f'<g class="{cls}" data-name="{esc(b.id)}" data-stored="{int(i["stored"])}" '
        f'data-relation="{esc(i["relation"])}" transform="translate({x0:.1f},{y0:.1f})">',
        f"<title>{esc(i['tip'])}</title>",
        f'<rect class="box" width="{w:.1f}" height="{h:.1f}" rx="6" stroke="{i["color"]}"/>',
        f'<rect class="stripe" width="5" height="{h:.1f}" rx="2" fill="{i["color"]}"/>',
        '<circle class="pick" cx="15" cy="16" r="6"><title>pick to compare</title></circle>',
        f'<a class="model-link" href="{esc(i["href"])}">'
        f'<text class="name" x="26" y="21">{esc(b.lines[0])}</text></a>',
    ]
    for k, line in enumerate(b.lines[1:]):
        out.append(f'<text class="info" x="14" y="{39 + 16 * k}">{esc(line)}</text>')
    if view == "models":
        dots = i["dots"]
        shown = dots[-MAX_DOTS:]
        x = 18.0
        if len(dots) > len(shown):
            out.append(
                f'<text class="more" x="12" y="{h - 8:.0f}">+{len(dots) - len(shown)}</text>'
            )
            x += 22
        out.append('<g class="chain">')
        for n, (number, href, lossy, tip) in enumerate(shown):
            cx = x + 11 * n
            if n:
                y = h - 12
                out.append(f'<line x1="{cx - 7:.0f}" y1="{y:.0f}" x2="{cx - 4:.0f}" y2="{y:.0f}"/>')
            dot = "ver lossy" if lossy else "ver"
            out.append(
                f'<a href="{esc(href)}"><circle class="{dot}" data-number="{number}" cx="{cx:.0f}" '
                f'cy="{h - 12:.0f}" r="4"><title>{esc(tip)}</title></circle></a>'
            )
        out.append("</g>")
    if i["children"]:
        out.append(
            f'<g class="collapse" data-name="{esc(b.id)}"><rect x="{w - 22:.1f}" y="6" width="16" '
            f'height="16" rx="3"/><text x="{w - 14:.1f}" y="18">−</text>'
            "<title>collapse or expand what is derived from it</title></g>"
            f'<text class="hidden-count" x="{w - 26:.1f}" y="18"></text>'
        )
    out.append("</g>")
    return "".join(out)


def _svg(boxes: list[Box], links: list[Link], info: dict[str, Any], view: str) -> str:
    layers, width, height = layout(boxes, links, horizontal=True, gap_across=GAP_ACROSS,
                                   gap_along=GAP_ALONG)  # fmt: skip
    width, height = max(width, 300.0), max(height, 120.0)
    rels = {"version" if e.kind == "version" else e.relation for e in links}
    out = [
        '<svg id="graph" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" '
        f'data-width="{width:.0f}" data-height="{height:.0f}" data-view="{view}" role="img" '
        'aria-label="lineage graph"><defs>',
        svg_markers({relation_color(r) for r in rels}),
        '</defs><g id="viewport"><g class="edges">',
    ]
    for e in links:
        if not e.points:
            continue
        rel = "version" if e.kind == "version" else e.relation
        attrs = (
            f'class="edge {"version" if e.kind == "version" else "provenance"}" '
            f'data-relation="{esc(rel)}" data-from="{esc(e.parent)}" data-to="{esc(e.child)}"'
        )
        out.append(svg_edge(e, relation_color(rel), attrs, horizontal=True))
    out.append('</g><g class="nodes">')
    for layer in layers:
        for b in layer:
            out.append(_node(b, info[b.id], view))
    if not boxes:
        out.append('<text class="empty" x="20" y="40">no models yet: modelgit add NAME PATH</text>')
    out.append("</g></g></svg>")
    return "\n".join(out)


def _legend(links: list[Link], lossy: bool) -> str:
    rels = sorted({"version" if e.kind == "version" else e.relation for e in links})
    items = []
    for r in rels:
        c = relation_color(r)
        dash = ' stroke-dasharray="4,3"' if r == "version" else ""
        items.append(
            f'<li><svg width="22" height="10"><line x1="0" y1="5" x2="22" y2="5" stroke="{c}" '
            f'stroke-width="2.5"{dash}/></svg>{esc(r)}</li>'
        )
    if lossy:
        items.append(
            f'<li><svg width="22" height="12"><rect x="1" y="1" width="20" height="10" rx="3" '
            f'fill="#fff4e5" stroke="{LOSSY_COLOR}" stroke-dasharray="4,2"/></svg>lossy</li>'
        )
    items.append(
        '<li><svg width="14" height="14"><circle cx="7" cy="7" r="5" class="pick-key"/></svg>'
        "picked</li>"
    )
    return f'<ul id="legend">{"".join(items)}</ul>'


def _toolbar(view: str) -> str:
    views = []
    for key, (href, _) in PAGES.items():
        cls = ' class="current"' if key == view else ""
        views.append(f'<a href="{href}"{cls}>{key}</a>')
    return (
        '<div id="toolbar"><input id="search" type="search" placeholder="filter by name or tag" '
        'autocomplete="off" aria-label="filter the graph"> <span id="search-count"></span>'
        '<button id="zoom-in" type="button" title="zoom in">+</button>'
        '<button id="zoom-out" type="button" title="zoom out">−</button>'
        '<button id="fit" type="button" title="the whole graph">fit</button>'
        '<button id="expand-all" type="button">expand all</button>'
        '<button id="compare" type="button" disabled>compare</button> <span id="picked"></span>'
        f'<span class="views">view: {" · ".join(views)}</span></div>'
        '<p id="compare-note" hidden></p>'
    )


def _render(snap: Snapshot, view: str, mode: str) -> tuple[str, str]:
    boxes, links, info = _model_boxes(snap) if view == "models" else _version_boxes(snap)
    svg = _svg(boxes, links, info, view)
    st = snap.repo_stats
    nversions = sum(len(m.versions) for m in snap.models.values())
    what = "models" if view == "models" else "versions"
    summary = (
        f'<p class="summary">{len(snap.models)} models, {nversions} versions, '
        f"{len(snap.graph.edges())} lineage edges; {human(st.logical_bytes)} stored in "
        f"{human(st.stored_bytes)} ({ratio(st.logical_bytes, st.stored_bytes)}). "
        "Drag to pan, Ctrl+wheel or +/− to zoom; pick two nodes (the circle) to compare them.</p>"
    )
    body = (
        f"<h1>Lineage graph: {what}</h1>{summary}{_toolbar(view)}"
        f'<div id="graph-frame">{svg}</div>{_legend(links, any(b.lossy for b in boxes))}'
        "<noscript><p>Zoom, search, collapse and compare need JavaScript; every model page "
        "is a plain link.</p></noscript>"
    )
    href, data_file = PAGES[view]
    html = page(f"lineage graph ({what})", body, root="", current="graph", mode=mode,
                scripts=[data_file, "static/graph.js"])  # fmt: skip
    data = {
        "view": view,
        "nodes": {
            k: {f: v[f] for f in ("href", "children", "parents", "ref", "search")}
            for k, v in info.items()
        },
        "diffs": [[a, b, f"diff/{f}"] for f, (a, b) in snap.diffs.items()],
    }
    return html, js_data("MODELGIT_GRAPH", data)


def graph_page(snap: Snapshot, mode: str) -> tuple[str, str]:
    """(``index.html``, ``data/graph.js``): one node per model."""
    return _render(snap, "models", mode)


def versions_page(snap: Snapshot, mode: str) -> tuple[str, str]:
    """(``versions.html``, ``data/versions.js``): one node per version."""
    return _render(snap, "versions", mode)
