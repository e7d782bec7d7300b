"""Drawings of a lineage graph: Graphviz DOT, self-contained SVG and HTML, and text.

SVG and HTML need nothing outside the Python standard library (no graphviz binary):
the layout is the small layered ("Sugiyama") layout of ``layout.py``. Nodes show a
model's latest version, its size and its stored size; edges are coloured by relation,
version edges are dashed; lossy models get an orange, dashed outline and a "lossy" line.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..units import human_bytes
from .layout import FONT, LINE_H, MARGIN, PAD_Y, edge_path, layout
from .layout import Box as _Box
from .layout import Link as _Link

if TYPE_CHECKING:
    from .graph import LineageGraph

__all__ = ["to_dot", "to_svg", "to_html", "to_text", "layout", "RELATION_COLORS"]

RELATION_COLORS = {
    "finetune": "#1f77b4",
    "distill": "#9467bd",
    "prune": "#8c564b",
    "quantize": "#e377c2",
    "cast": "#17a2b8",
    "adapter": "#2ca02c",
    "merge": "#d62728",
    "version": "#888888",
}
OTHER_COLOR = "#555555"
LOSSY_COLOR = "#e67e22"


def _color(relation: str) -> str:
    return RELATION_COLORS.get(relation, OTHER_COLOR)


def _human(n: float | None) -> str:
    return human_bytes(n, missing="?")


# -- what each node says -----------------------------------------------------------------


def _model_stats(graph: LineageGraph) -> dict[str, Any]:
    try:
        st = graph.stats()
    except Exception:  # drawing must not fail because statistics could not be read
        st = None
    return {m.name: m for m in st.models} if st is not None else {}


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _boxes(graph: LineageGraph, versions: bool) -> tuple[list[_Box], list[_Link]]:
    stats = _model_stats(graph)
    boxes: list[_Box] = []
    if not versions:
        for n in graph.nodes():
            ms = stats.get(n.name)
            lines = [n.name, f"v{n.latest} · {_human(n.logical_bytes)}"]
            if ms is not None:
                ratio = f" ({ms.logical_bytes / ms.stored_bytes:.1f}x)" if ms.stored_bytes else ""
                lines.append(f"stored {_human(ms.stored_bytes)}{ratio}")
            if n.lossy:
                lines.append("lossy")
            tip = "\n".join(
                f"{n.name}@{v.number}  {_date(v.created)}  {_human(v.logical_bytes)}"
                + ("  lossy" if v.lossy else "")
                + (f"  {v.message}" if v.message else "")
                for v in n.versions
            )
            boxes.append(_Box(n.name, lines, n.lossy, tip))
        links = [_Link(e.parent, e.child, e.relation, e.kind, label=e.label) for e in graph.edges()]
        return boxes, links
    for n in graph.nodes():
        for v in n.versions:
            ref = f"{n.name}@{v.number}"
            lines = [ref, _human(v.logical_bytes)]
            if v.lossy:
                lines.append("lossy")
            tip = f"{ref}  {_date(v.created)}" + (f"\n{v.message}" if v.message else "")
            boxes.append(_Box(ref, lines, v.lossy, tip))
    links = [_Link(e.parent, e.child, e.relation, e.kind) for e in graph.edges(kind=None)]
    return boxes, links


# -- DOT ---------------------------------------------------------------------------------


def _dot_id(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: LineageGraph, versions: bool = False) -> str:
    """Graphviz source; render with ``dot -Tsvg`` where graphviz is installed."""
    boxes, links = _boxes(graph, versions)
    out = [
        "digraph lineage {",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f7f9fc", '
        'fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for b in boxes:
        label = "\\n".join(x.replace("\\", "\\\\").replace('"', '\\"') for x in b.lines)
        attrs = [f'label="{label}"']
        if b.lossy:
            attrs.append(f'color="{LOSSY_COLOR}", style="rounded,filled,dashed", '
                         'fillcolor="#fff4e5"')  # fmt: skip
        out.append(f"  {_dot_id(b.id)} [{', '.join(attrs)}];")
    for e in links:
        color = _color("version" if e.kind == "version" else e.relation)
        attrs = [f'color="{color}"']
        if e.kind == "version":
            attrs.append("style=dashed")
        else:
            attrs.append(f"label={_dot_id(e.text)}, fontcolor={_dot_id(color)}")
        out.append(f"  {_dot_id(e.parent)} -> {_dot_id(e.child)} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


# -- SVG ---------------------------------------------------------------------------------


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def svg_markers(colors: set[str]) -> str:
    """One arrowhead ``<marker id="arrow-RRGGBB">`` per ``#rrggbb`` colour, for
    :func:`svg_edge` (the SVG of ``modelgit graph`` and of the web UI's graph page)."""
    return "".join(
        f'<marker id="arrow-{c[1:]}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{c}"/></marker>'
        for c in sorted(colors)
    )


def svg_edge(e: _Link, color: str, attrs: str, *, horizontal: bool = False) -> str:
    """An edge laid out by :func:`layout` as an SVG path with its arrowhead (from
    :func:`svg_markers`) and its title; ``attrs``: its other attributes, escaped."""
    return (
        f'<path {attrs} d="{edge_path(e.points, horizontal=horizontal)}" stroke="{color}" '
        f'marker-end="url(#arrow-{color[1:]})">'
        f"<title>{_esc(e.parent)} → {_esc(e.child)} ({_esc(e.text)})</title></path>"
    )


def to_svg(graph: LineageGraph, versions: bool = False) -> str:
    """A standalone SVG document of the graph."""
    boxes, links = _boxes(graph, versions)
    layers, width, height = layout(boxes, links)
    relations = sorted({e.relation if e.kind == "provenance" else "version" for e in links})
    legend_h = 28 if (relations or any(b.lossy for b in boxes)) else 0
    width = max(width, 240.0)
    total_h = height + legend_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{total_h:.0f}" '
        f'viewBox="0 0 {width:.0f} {total_h:.0f}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="{FONT}" role="img" aria-label="modelgit lineage graph">',
        "<defs>",
        svg_markers({_color(r) for r in relations} | {OTHER_COLOR}),
        "</defs>",
    ]
    out.append('<rect width="100%" height="100%" fill="#ffffff"/>')
    out.append('<g class="edges">')
    for e in links:
        if not e.points:
            continue
        rel = "version" if e.kind == "version" else e.relation
        c = _color(rel)
        dash = ' stroke-dasharray="6,4"' if e.kind == "version" else ""
        attrs = f'class="edge {_esc(e.kind)}" fill="none" stroke-width="1.6"{dash}'
        out.append(svg_edge(e, c, attrs))
        if e.kind == "provenance":
            (xa, ya), (xb, yb) = e.points[0], e.points[1]
            mx, my = (xa + xb) / 2, (ya + yb) / 2
            out.append(
                f'<text x="{mx + 4:.1f}" y="{my + 4:.1f}" fill="{c}" font-size="10" '
                f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{_esc(e.text)}</text>'
            )
    out.append("</g>")
    out.append('<g class="nodes">')
    for layer in layers:
        for b in layer:
            x0 = b.x - b.width / 2
            stroke = LOSSY_COLOR if b.lossy else "#4a5568"
            fill = "#fff4e5" if b.lossy else "#f7f9fc"
            dash = ' stroke-dasharray="5,3"' if b.lossy else ""
            cls = "node lossy" if b.lossy else "node"
            out.append(f'<g class="{cls}"><title>{_esc(b.tooltip or b.id)}</title>')
            out.append(
                f'<rect x="{x0:.1f}" y="{b.y:.1f}" width="{b.width:.1f}" height="{b.height:.1f}" '
                f'rx="6" fill="{fill}" stroke="{stroke}" stroke-width="1.4"{dash}/>'
            )
            for i, line in enumerate(b.lines):
                ty = b.y + PAD_Y + (i + 1) * LINE_H - 4
                if i == 0:
                    style = 'font-weight="bold" font-size="13" fill="#1a202c"'
                elif line == "lossy":
                    style = f'fill="{LOSSY_COLOR}" font-weight="bold"'
                else:
                    style = 'fill="#4a5568"'
                out.append(
                    f'<text x="{b.x:.1f}" y="{ty:.1f}" text-anchor="middle" {style}>'
                    f"{_esc(line)}</text>"
                )
            out.append("</g>")
    out.append("</g>")
    if legend_h:
        x = float(MARGIN)
        y = height + 12
        items = [(r, _color(r), r == "version") for r in relations]
        out.append('<g class="legend" font-size="10">')
        for name, c, dashed in items:
            dash = ' stroke-dasharray="4,3"' if dashed else ""
            out.append(
                f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 18:.1f}" y2="{y:.1f}" stroke="{c}" '
                f'stroke-width="2"{dash}/>'
            )
            out.append(f'<text x="{x + 22:.1f}" y="{y + 3:.1f}" fill="#4a5568">{_esc(name)}</text>')
            x += 30 + len(name) * 6
        if any(b.lossy for b in boxes):
            out.append(
                f'<rect x="{x:.1f}" y="{y - 6:.1f}" width="18" height="12" rx="3" fill="#fff4e5" '
                f'stroke="{LOSSY_COLOR}" stroke-dasharray="4,2"/>'
            )
            out.append(f'<text x="{x + 22:.1f}" y="{y + 3:.1f}" fill="#4a5568">lossy</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- HTML --------------------------------------------------------------------------------

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #1a202c; }
h1 { font-size: 20px; } .graph { overflow: auto; border: 1px solid #e2e8f0; padding: 8px; }
table { border-collapse: collapse; margin-top: 16px; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e2e8f0; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.lossy { color: #e67e22; font-weight: bold; }
"""


def to_html(graph: LineageGraph, versions: bool = False, title: str = "modelgit lineage") -> str:
    """A self-contained HTML page: the SVG drawing and a table of models."""
    svg = to_svg(graph, versions=versions)
    stats = _model_stats(graph)
    rows = []
    for n in graph.nodes():
        ms = stats.get(n.name)
        parents = ", ".join(
            [f"{p} ({e.label})" for p in graph.parents(n.name) if (e := graph.edge(p, n.name))]
            + [f"removed {m} ({r})" for m, r in n.removed_parents]
        )
        stored = _human(ms.stored_bytes) if ms else "?"
        ratio = f"{ms.logical_bytes / ms.stored_bytes:.2f}x" if ms and ms.stored_bytes else "-"
        lossy = '<span class="lossy">lossy</span>' if n.lossy else ""
        rows.append(
            f"<tr><td>{_esc(n.name)}</td><td>{_esc(parents) or '-'}</td><td>{len(n.versions)}</td>"
            f"<td>{_human(n.logical_bytes)}</td><td>{stored}</td><td>{ratio}</td>"
            f"<td>{lossy}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>model</th><th>parents</th><th>versions</th><th>size</th>"
        "<th>stored</th><th>ratio</th><th></th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1>"
        f"<p>{len(graph)} models, {len(graph.edges())} provenance edges</p>"
        f'<div class="graph">\n{svg}</div>\n{table}\n</body></html>\n'
    )


# -- text --------------------------------------------------------------------------------


def to_text(graph: LineageGraph, ascii_only: bool = False) -> str:
    """The graph as indented trees, one per root; a model with several parents is
    drawn under its first parent and referenced under the others."""
    stats = _model_stats(graph)
    tee, last, bar, blank = ("|-- ", "`-- ", "|   ", "    ") if ascii_only else (
        "├── ", "└── ", "│   ", "    ")  # fmt: skip
    if len(graph) == 0:
        return "(no models)"

    def label(name: str) -> str:
        n = graph.node(name)
        parts = [f"v{n.latest}", _human(n.logical_bytes)]
        ms = stats.get(name)
        if ms is not None:
            parts.append(f"stored {_human(ms.stored_bytes)}")
        if n.lossy:
            parts.append("LOSSY")
        return "  ".join(parts)

    lines: list[str] = []
    done: set[str] = set()

    def visit(name: str, prefix: str, connector: str, via: str | None, relation: str) -> None:
        parents = graph.parents(name)
        rel = f" [{relation}]" if relation else ""
        if via is not None and parents and parents[0] != via:
            lines.append(f"{prefix}{connector}{name}{rel}  (see under {parents[0]})")
            return
        if name in done:
            lines.append(f"{prefix}{connector}{name}{rel}  (see above)")
            return
        done.add(name)
        also = f"  (also from {', '.join(parents[1:])})" if len(parents) > 1 else ""
        also += "".join(f"  (from removed {m} [{r}])" for m, r in graph.node(name).removed_parents)
        lines.append(f"{prefix}{connector}{name}{rel}  {label(name)}{also}")
        if connector == "":
            child_prefix = prefix
        else:
            child_prefix = prefix + (blank if connector == last else bar)
        kids = graph.children(name)
        for i, c in enumerate(kids):
            e = graph.edge(name, c)
            conn = last if i == len(kids) - 1 else tee
            visit(c, child_prefix, conn, name, e.label if e else "")

    for r in graph.roots():
        visit(r, "", "", None, "")
    for name in graph.models:  # only with a damaged, cyclic catalog
        if name not in done:
            visit(name, "", "", None, "")
    return "\n".join(lines)
