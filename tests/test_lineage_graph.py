"""LineageGraph algorithms and drawings, on graphs built in memory (no repository)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from modelgit.errors import LineageError, UnknownModel
from modelgit.lineage.graph import Edge, LineageGraph, Node, VersionInfo, check_no_cycle
from modelgit.lineage.render import layout, to_dot, to_html, to_svg, to_text


def _node(name: str, versions: int = 1, lossy: bool = False, t: float = 0.0) -> Node:
    vs = tuple(
        VersionInfo(i, f"{name}{i:014d}", 1000 * i, lossy and i == versions, t + i, f"msg {i}")
        for i in range(1, versions + 1)
    )
    return Node(name, t, vs)


def make(
    names: list[str], edges: list[tuple[str, str, str]], versions: dict[str, int] | None = None
) -> LineageGraph:
    versions = versions or {}
    nodes = [_node(n, versions.get(n, 1), lossy=n.endswith("-q"), t=i) for i, n in enumerate(names)]
    v_edges = []
    for n in names:
        for i in range(2, versions.get(n, 1) + 1):
            v_edges.append(Edge(f"{n}@{i - 1}", f"{n}@{i}", "version", "version"))
    v_edges += [Edge(f"{p}@1", f"{c}@1", r, "provenance") for p, c, r in edges]
    return LineageGraph(nodes, [Edge(p, c, r) for p, c, r in edges], v_edges)


@pytest.fixture
def family() -> LineageGraph:
    #   base -> ft-a -> merged <- ft-b <- base ; base -> base-q (quantize); other (alone)
    return make(
        ["base", "ft-a", "ft-b", "merged", "base-q", "other"],
        [
            ("base", "ft-a", "finetune"),
            ("base", "ft-b", "finetune"),
            ("ft-a", "merged", "merge"),
            ("ft-b", "merged", "merge"),
            ("base", "base-q", "quantize"),
        ],
        versions={"base": 3},
    )


def test_parents_children(family: LineageGraph) -> None:
    assert family.parents("merged") == ["ft-a", "ft-b"]
    assert family.parents("base") == []
    assert family.children("base") == ["ft-a", "ft-b", "base-q"]
    assert family.children("merged") == []


def test_ancestors_descendants(family: LineageGraph) -> None:
    assert family.ancestors("merged") == ["ft-a", "ft-b", "base"]
    assert family.descendants("base") == ["ft-a", "ft-b", "base-q", "merged"]
    assert family.ancestors("other") == [] and family.descendants("other") == []


def test_roots_leaves(family: LineageGraph) -> None:
    assert family.roots() == ["base", "other"]
    assert family.leaves() == ["merged", "base-q", "other"]


def test_edges_with_relations(family: LineageGraph) -> None:
    rels = {(e.parent, e.child): e.relation for e in family.edges()}
    assert rels[("base", "base-q")] == "quantize"
    assert rels[("ft-b", "merged")] == "merge"
    assert all(e.kind == "provenance" for e in family.edges())
    assert family.edge("base", "ft-a") == Edge("base", "ft-a", "finetune")
    assert family.edge("ft-a", "base") is None
    version_edges = family.edges(kind="version")
    pairs = [(e.parent, e.child) for e in version_edges]
    assert pairs == [("base@1", "base@2"), ("base@2", "base@3")]
    assert len(family.edges(kind=None)) == 2 + 5
    with pytest.raises(ValueError):
        family.edges(kind="bogus")


def test_topological_order(family: LineageGraph) -> None:
    order = family.topological_order()
    assert sorted(order) == sorted(family.models)
    pos = {n: i for i, n in enumerate(order)}
    for e in family.edges():
        assert pos[e.parent] < pos[e.child]
    assert order[0] == "base"  # ties broken by creation order


def test_layers_and_depth(family: LineageGraph) -> None:
    assert family.layers() == {
        "base": 0, "ft-a": 1, "ft-b": 1, "merged": 2, "base-q": 1, "other": 0
    }  # fmt: skip
    assert family.depth("merged") == 2


def test_path(family: LineageGraph) -> None:
    assert family.path("base", "merged", directed=True) == ["base", "ft-a", "merged"]
    assert family.path("merged", "base", directed=True) is None
    assert family.path("ft-a", "ft-b") == ["ft-a", "base", "ft-b"]
    assert family.path("base-q", "merged") == ["base-q", "base", "ft-a", "merged"]
    assert family.path("base", "other") is None
    assert family.path("base", "base") == ["base"]


def test_cycle_detection(family: LineageGraph) -> None:
    assert family.would_create_cycle("merged", "base") == ["base", "ft-a", "merged", "base"]
    assert family.would_create_cycle("base", "other") is None
    assert family.would_create_cycle("ft-a", "ft-a") == ["ft-a", "ft-a"]
    with pytest.raises(LineageError, match="cycle"):
        check_no_cycle(family, "merged", "base")
    with pytest.raises(LineageError, match="its own parent"):
        check_no_cycle(family, "ft-a", "ft-a")
    check_no_cycle(family, "other", "base")  # fine: no path base -> other


def test_components(family: LineageGraph) -> None:
    assert family.components() == [["base", "ft-a", "ft-b", "merged", "base-q"], ["other"]]


def test_unknown_model(family: LineageGraph) -> None:
    for call in (family.parents, family.children, family.ancestors, family.descendants):
        with pytest.raises(UnknownModel, match="nope"):
            call("nope")
    assert "nope" not in family and "base" in family
    assert len(family) == 6 and list(family) == family.models


def test_edges_to_missing_models_are_ignored() -> None:
    g = LineageGraph([_node("a")], [Edge("gone", "a", "finetune")])
    assert g.parents("a") == [] and g.edges() == []


def test_cyclic_damaged_graph_reports() -> None:
    g = make(["a", "b"], [("a", "b", "finetune"), ("b", "a", "finetune")])
    with pytest.raises(LineageError, match="cycle"):
        g.topological_order()
    # drawing still works on a damaged graph
    ET.fromstring(to_svg(g))
    assert "a" in to_text(g)


def test_empty_graph() -> None:
    g = LineageGraph([], [])
    assert g.roots() == [] and g.topological_order() == [] and g.components() == []
    assert to_text(g) == "(no models)"
    ET.fromstring(to_svg(g))
    assert "digraph" in to_dot(g)


def test_to_json(family: LineageGraph) -> None:
    d = family.to_json()
    assert [m["name"] for m in d["models"]] == family.models
    assert {"parent": "base", "child": "base-q", "relation": "quantize", "kind": "provenance"} in d[
        "edges"
    ]
    base = next(m for m in d["models"] if m["name"] == "base")
    assert base["latest"] == 3 and len(base["versions"]) == 3


# -- drawings --------------------------------------------------------------------------


def test_dot(family: LineageGraph) -> None:
    dot = to_dot(family)
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert '"base" -> "base-q"' in dot and 'label="quantize"' in dot
    assert "dashed" in dot  # base-q is lossy
    vdot = to_dot(family, versions=True)
    assert '"base@1" -> "base@2"' in vdot and "style=dashed" in vdot


def test_dot_escapes_names() -> None:
    g = make(['we"ird\\name', "b"], [('we"ird\\name', "b", 'rel"x')])
    dot = to_dot(g)
    assert '"we\\"ird\\\\name" -> "b"' in dot


def _svg_root(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def test_svg_is_self_contained_and_valid(family: LineageGraph) -> None:
    svg = to_svg(family)
    root = _svg_root(svg)
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{ns}text")]
    for name in family.models:
        assert name in texts
    assert "lossy" in texts  # the lossy node is marked
    assert "quantize" in texts and "merge" in texts  # edge labels
    nodes = [g for g in root.iter(f"{ns}g") if "node" in (g.get("class") or "").split()]
    assert len(nodes) == 6
    assert sum(1 for g in nodes if "lossy" in g.get("class", "")) == 1
    edges = [p for p in root.iter(f"{ns}path") if "edge" in (p.get("class") or "")]
    assert len(edges) == 5
    assert "http://" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing external
    assert "<script" not in svg


def test_svg_layout_keeps_layers_and_no_overlap(family: LineageGraph) -> None:
    from modelgit.lineage.render import _boxes

    boxes, links = _boxes(family, versions=False)
    layers, width, height = layout(boxes, links)
    assert [b.id for b in layers[0]] == ["base", "other"] or set(b.id for b in layers[0]) == {
        "base",
        "other",
    }
    for layer in layers:
        xs = sorted(layer, key=lambda b: b.x)
        for a, b in zip(xs, xs[1:], strict=False):
            assert a.x + a.width / 2 <= b.x - b.width / 2  # no overlap
    y = {b.id: b.y for lay in layers for b in lay}
    for e in family.edges():
        assert y[e.parent] < y[e.child]  # parents above children
    for lk in links:
        assert lk.points and all(0 <= x <= width and 0 <= yy <= height for x, yy in lk.points)


def test_layout_left_to_right(family: LineageGraph) -> None:
    """horizontal=True: layers are columns (parents left of children), the boxes of a
    column do not overlap, each keeps its own size, and edges run from a parent's right
    side to a child's left side."""
    from modelgit.lineage.render import _boxes

    boxes, links = _boxes(family, versions=False)
    boxes[0].width, boxes[0].height = 300.0, 90.0  # a size set by the caller is kept
    layers, width, height = layout(boxes, links, horizontal=True, gap_across=10, gap_along=70)
    by_id = {b.id: b for lay in layers for b in lay}
    assert (by_id[boxes[0].id].width, by_id[boxes[0].id].height) == (300.0, 90.0)
    for layer in layers:
        assert len({b.x for b in layer}) == 1  # a column: boxes centred on one x
        ys = sorted(layer, key=lambda b: b.y)
        for a, b in zip(ys, ys[1:], strict=False):
            assert a.y + a.height + 10 - 1e-6 <= b.y  # no overlap, the gap kept
    for e in family.edges():
        p, c = by_id[e.parent], by_id[e.child]
        assert p.x + p.width / 2 + 70 - 1e-6 <= c.x - c.width / 2  # parents left
    for lk in links:
        (x0, _), (x1, _) = lk.points[0], lk.points[-1]
        p, c = by_id[lk.parent], by_id[lk.child]
        assert x0 == pytest.approx(p.x + p.width / 2) and x1 == pytest.approx(c.x - c.width / 2)
        assert all(0 <= x <= width and 0 <= y <= height for x, y in lk.points)


def test_svg_long_edges_get_routed() -> None:
    # a -> b -> c -> d and a -> d: the long edge passes through dummy points
    chain = [("a", "b", "x"), ("b", "c", "x"), ("c", "d", "x"), ("a", "d", "y")]
    g = make(["a", "b", "c", "d"], chain)
    from modelgit.lineage.render import _boxes

    boxes, links = _boxes(g, versions=False)
    layout(boxes, links)
    long = next(lk for lk in links if lk.parent == "a" and lk.child == "d")
    assert len(long.points) == 4  # start, two dummies, end
    _svg_root(to_svg(g))


def test_svg_versions_view(family: LineageGraph) -> None:
    svg = to_svg(family, versions=True)
    root = _svg_root(svg)
    ns = "{http://www.w3.org/2000/svg}"
    texts = {t.text for t in root.iter(f"{ns}text")}
    assert {"base@1", "base@2", "base@3", "merged@1"} <= texts
    dashed = [
        p
        for p in root.iter(f"{ns}path")
        if "version" in (p.get("class") or "") and p.get("stroke-dasharray")
    ]
    assert len(dashed) == 2


def test_svg_escapes_markup() -> None:
    g = make(["a&b", "c'd"], [("a&b", "c'd", "x<y>")])
    svg = to_svg(g)
    root = _svg_root(svg)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert "a&b" in texts and "x<y>" in texts


def test_html(family: LineageGraph) -> None:
    page = to_html(family, title="my <family>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "</svg>" in page and "</html>" in page
    assert "my &lt;family&gt;" in page
    assert re.search(r"<td>merged</td><td>ft-a \(merge\), ft-b \(merge\)</td>", page)
    assert "<script" not in page and 'src="http' not in page


def test_text_tree(family: LineageGraph) -> None:
    text = to_text(family)
    lines = text.splitlines()
    assert lines[0].startswith("base  v3")
    assert any("ft-a [finetune]" in ln for ln in lines)
    assert any("merged [merge]" in ln and "also from ft-b" in ln for ln in lines)
    assert any("merged [merge]  (see under ft-a)" in ln for ln in lines)
    assert any("base-q [quantize]" in ln and "LOSSY" in ln for ln in lines)
    assert any(ln.startswith("other") for ln in lines)
    ascii_text = to_text(family, ascii_only=True)
    assert ascii_text.isascii() and "`-- " in ascii_text
    assert str(family) == text


def test_place_keeps_order_gaps_and_centres() -> None:
    from modelgit.lineage.layout import place as _place

    # three boxes all wanting x=100 with gaps of 10: centred around 100
    assert _place([100.0, 100.0, 100.0], [10.0, 10.0]) == pytest.approx([90.0, 100.0, 110.0])
    # already feasible: unchanged
    assert _place([0.0, 50.0, 51.0], [10.0, 1.0]) == pytest.approx([0.0, 50.0, 51.0])
    xs = _place([5.0, 0.0, 40.0, 41.0], [10.0, 10.0, 10.0])
    assert all(b - a >= 10.0 - 1e-9 for a, b in zip(xs, xs[1:], strict=False))
    assert _place([], []) == []
