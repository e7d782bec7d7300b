"""A layered ("Sugiyama") layout of a lineage graph, with nothing outside the standard
library: longest-path layers, dummy boxes on long edges, barycentre ordering sweeps, then
positions pulled toward neighbours (an exact isotonic fit keeps order and gaps). Used by
the SVG and HTML drawings (``render``) and by the web UI's graph page (``modelgit.web``),
top to bottom or left to right."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Box", "Link", "layout", "place", "size_box", "edge_path"]


@dataclass
class Box:
    """A node to place: its text lines, then (after :func:`layout`) its centre ``x``,
    its top ``y`` and its size."""

    id: str
    lines: list[str]
    lossy: bool = False
    tooltip: str = ""
    dummy: bool = False
    width: float = 0.0
    height: float = 0.0
    x: float = 0.0  # centre
    y: float = 0.0  # top


@dataclass
class Link:
    """An edge from ``parent`` to ``child``; :func:`layout` fills its ``points``."""

    parent: str
    child: str
    relation: str
    kind: str
    points: list[tuple[float, float]] = field(default_factory=list)
    label: str = ""  # the relation as drawn ("finetune via removed X")

    @property
    def text(self) -> str:
        return self.label or self.relation


FONT = 12
CHAR_W = 7.0  # approximate advance of a 12px sans-serif character
NAME_CHAR_W = 8.0  # the bold 13px first line
LINE_H = 16
PAD_X = 12
PAD_Y = 8
GAP_X = 28
GAP_Y = 56
DUMMY_W = 8
MARGIN = 20


def size_box(b: Box) -> None:
    if b.dummy:
        b.width, b.height = DUMMY_W, 0
        return
    w = max([len(b.lines[0]) * NAME_CHAR_W] + [len(x) * CHAR_W for x in b.lines[1:]])
    b.width = max(80.0, w + 2 * PAD_X)
    b.height = len(b.lines) * LINE_H + 2 * PAD_Y


def place(want: list[float], seps: list[float]) -> list[float]:
    """Positions closest (least squares) to ``want`` with ``x[i+1] - x[i] >= seps[i]``.

    With y[i] = x[i] - sum(seps[:i]) the constraint is y non-decreasing: isotonic
    regression, solved exactly by pooling adjacent violators.
    """
    if not want:
        return []
    offs = [0.0]
    for sep in seps:
        offs.append(offs[-1] + sep)
    blocks: list[list[float]] = []  # [sum, count]
    for w, o in zip(want, offs, strict=True):
        blocks.append([w - o, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    ys: list[float] = []
    for total, count in blocks:
        ys.extend([total / count] * int(count))
    return [y + o for y, o in zip(ys, offs, strict=True)]


def layout(
    boxes: Sequence[Box],
    links: Sequence[Link],
    *,
    horizontal: bool = False,
    gap_across: float = GAP_X,
    gap_along: float = GAP_Y,
) -> tuple[list[list[Box]], float, float]:
    """Place ``boxes`` in layers; fill each link's ``points``. Returns (layers, w, h).

    Layers run top to bottom, or left to right with ``horizontal`` (wide families stay
    readable: a layer becomes a column). ``gap_across`` separates the boxes of a layer,
    ``gap_along`` the layers. A box already given a size keeps it; the others are sized
    from their text lines."""
    by_id = {b.id: b for b in boxes}
    links = [e for e in links if e.parent in by_id and e.child in by_id and e.parent != e.child]
    parents: dict[str, list[str]] = {b.id: [] for b in boxes}
    children: dict[str, list[str]] = {b.id: [] for b in boxes}
    for e in links:
        parents[e.child].append(e.parent)
        children[e.parent].append(e.child)
    # topological order (a damaged, cyclic catalog still draws: leftovers go last)
    indeg = {k: len(v) for k, v in parents.items()}
    order = [b.id for b in boxes if indeg[b.id] == 0]
    i = 0
    while i < len(order):
        for c in children[order[i]]:
            indeg[c] -= 1
            if indeg[c] == 0:
                order.append(c)
        i += 1
    placed = set(order)
    order += [b.id for b in boxes if b.id not in placed]
    rank: dict[str, int] = {}
    for n in order:
        rank[n] = max((rank[p] + 1 for p in parents[n] if p in rank), default=0)
    # dummy boxes on edges spanning several layers
    chains: list[list[str]] = []
    all_boxes = dict(by_id)
    for k, e in enumerate(links):
        chain = [e.parent]
        lo, hi = rank[e.parent], rank[e.child]
        if hi <= lo:  # back edge of a damaged graph: draw straight
            chains.append([e.parent, e.child])
            continue
        for r in range(lo + 1, hi):
            d = Box(f"\0dummy{k}.{r}", [], dummy=True)
            all_boxes[d.id] = d
            rank[d.id] = r
            chain.append(d.id)
        chain.append(e.child)
        chains.append(chain)
    up: dict[str, list[str]] = {k: [] for k in all_boxes}
    down: dict[str, list[str]] = {k: [] for k in all_boxes}
    for chain in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            if rank[b] == rank[a] + 1:
                up[b].append(a)
                down[a].append(b)
    nlayers = max(rank.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(nlayers)]
    for n in order:
        layers[rank[n]].append(n)
    for k in all_boxes:
        if all_boxes[k].dummy:
            layers[rank[k]].append(k)
    # crossing reduction: barycentre sweeps
    pos = {n: i for layer in layers for i, n in enumerate(layer)}

    def sweep(rng: range, nbrs: dict[str, list[str]]) -> None:
        for r in rng:
            layer = layers[r]

            def key(n: str, layer: list[str] = layer) -> tuple[float, int]:
                ps = [pos[p] for p in nbrs[n]]
                return (sum(ps) / len(ps) if ps else pos[n], pos[n])

            layer.sort(key=key)
            for i, n in enumerate(layer):
                pos[n] = i

    for _ in range(4):
        sweep(range(1, nlayers), up)
        sweep(range(nlayers - 2, -1, -1), down)
    for b in all_boxes.values():
        if not b.width:
            size_box(b)
        if horizontal and not b.dummy:  # the algorithm runs across x and along y
            b.width, b.height = b.height, b.width
    # x coordinates: pack, then pull toward neighbours, keeping order and gaps
    for layer in layers:
        x = 0.0
        for n in layer:
            b = all_boxes[n]
            b.x = x + b.width / 2
            x += b.width + gap_across

    def settle(layer: list[str], nbrs: dict[str, list[str]]) -> None:
        """Move each box toward the mean of its neighbours, keeping order and gaps."""
        want = []
        for n in layer:
            ns = nbrs[n]
            b = all_boxes[n]
            want.append(sum(all_boxes[p].x for p in ns) / len(ns) if ns else b.x)
        seps = [
            (all_boxes[u].width + all_boxes[v].width) / 2 + gap_across
            for u, v in zip(layer, layer[1:], strict=False)
        ]
        for n, x in zip(layer, place(want, seps), strict=True):
            all_boxes[n].x = x

    for _ in range(3):
        for r in range(1, nlayers):
            settle(layers[r], up)
        for r in range(nlayers - 2, -1, -1):
            settle(layers[r], down)
    # normalise, y coordinates
    left = min((all_boxes[n].x - all_boxes[n].width / 2 for lay in layers for n in lay), default=0)
    width = 0.0
    y = float(MARGIN)
    for layer in layers:
        h = max((all_boxes[n].height for n in layer), default=0)
        for n in layer:
            b = all_boxes[n]
            b.x += MARGIN - left
            b.y = y + (h - b.height) / 2
            width = max(width, b.x + b.width / 2 + MARGIN)
        y += max(h, 1) + gap_along
    height = y - gap_along + MARGIN
    # ports: several edges leaving (entering) a box are spread along its bottom (top)
    out_port: dict[int, float] = {}
    in_port: dict[int, float] = {}
    by_parent: dict[str, list[int]] = {}
    by_child: dict[str, list[int]] = {}
    for k, chain in enumerate(chains):
        by_parent.setdefault(chain[0], []).append(k)
        by_child.setdefault(chain[-1], []).append(k)
    for node, ks, near, port in (
        *((n, ks, 1, out_port) for n, ks in by_parent.items()),
        *((n, ks, -2, in_port) for n, ks in by_child.items()),
    ):
        b = all_boxes[node]
        ks = sorted(ks, key=lambda k: all_boxes[chains[k][near]].x)
        span = min(b.width * 0.6, 24.0 * (len(ks) - 1))
        for i, k in enumerate(ks):
            port[k] = b.x + (span * (i / (len(ks) - 1) - 0.5) if len(ks) > 1 else 0.0)
    for k, (e, chain) in enumerate(zip(links, chains, strict=True)):
        first, last = all_boxes[chain[0]], all_boxes[chain[-1]]
        pts = [(out_port[k], first.y + first.height)]
        for d in chain[1:-1]:
            db = all_boxes[d]
            pts.append((db.x, db.y))
        pts.append((in_port[k], last.y))
        e.points = pts
    if horizontal:  # back to the page's axes: layers become columns
        for b in all_boxes.values():
            if b.dummy:
                continue
            across, top = b.x, b.y
            b.width, b.height = b.height, b.width
            b.x, b.y = top + b.width / 2, across - b.height / 2
        for e in links:
            e.points = [(y, x) for x, y in e.points]
        width, height = height, width
    return [[all_boxes[n] for n in lay if not all_boxes[n].dummy] for lay in layers], width, height


def edge_path(points: list[tuple[float, float]], horizontal: bool = False) -> str:
    """SVG path data through a link's ``points``: cubic curves leaving each point along
    the layers' direction (down, or right with ``horizontal``)."""
    (x0, y0) = points[0]
    d = [f"M{x0:.1f},{y0:.1f}"]
    for (xa, ya), (xb, yb) in zip(points, points[1:], strict=False):
        if horizontal:
            mx = (xa + xb) / 2
            d.append(f"C{mx:.1f},{ya:.1f} {mx:.1f},{yb:.1f} {xb:.1f},{yb:.1f}")
        else:
            my = (ya + yb) / 2
            d.append(f"C{xa:.1f},{my:.1f} {xb:.1f},{my:.1f} {xb:.1f},{yb:.1f}")
    return " ".join(d)
