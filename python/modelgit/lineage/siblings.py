"""Child or sibling: whether a model continues a candidate parent's training or is a
sibling that drifted the same way (step 5 of ``lineage.inference``).

Fine-tunes of one base drift in correlated directions, so of two siblings the one that
went further looks like a continuation of the other, and a sibling that drifted most of
the way is nearer the other than the base. Three points only show a triangle, and both
stories can draw any triangle; what tells them apart is what training usually does. For
``v`` under ``p``, seen from an ancestor ``a`` of ``p`` (the two steps ``p - a`` and
``v - p``), ``v`` is taken for a sibling (moved up) when

- it went further: its own step is long, ``|v - p| >= SIBLING_STEP |p - a|`` (continued
  training of a finished model takes a smaller step: a lower learning rate, a model near
  a minimum), and goes on in ``p``'s direction: the steps' cosine exceeds
  ``SIBLING_COS`` and ``SIBLING_Z`` times its own sketch noise (independent steps, as in
  a random walk, have a cosine ~0 up to that noise); or
- it falls short (the *ancestor projection*): a child of ``p`` holds all of ``p - a``,
  so ``<v - a, p - a> / |p - a|^2`` is about 1 or more; below ``1 - PATH_DEFICIT``
  (beyond ``SIBLING_Z`` times its noise) ``v`` lacks part of ``p``'s own update.

Both are measured on the sketches of the tensors all three models share (sketches are
linear, so the inner product of two steps is that of their sketch differences, with a
variance known from the sketch widths), not on pair distances that may count other
tensors (a task head the ancestor lacks). Measured on the reference zoos (small, minilm,
minilm-b) and redraws of the small zoo: true chain links have step ratios 0.26-0.67 and
projections 0.96-1.43; the confusions step ratios 0.81-1.25 with cosines 0.19-0.45, or
projections 0.48-0.85. The projection alone does not catch a sibling that went further:
it contains the other's step as well (1.16 for minilm-b's ``intent-a`` against
``intent-b``, 1.49 for the small zoo's ``base-v2`` against the merge).

The same test keeps a model that lies beyond a merge from being hung under it: the
merge of two fine-tunes of an under-trained base is a point on that base's common drift,
and a model that drifted further (continued training of the base) lies beyond it.
"""

from __future__ import annotations

import math

import numpy as np

from .signals import ModelSketch

__all__ = [
    "StepGeometry",
    "move_siblings",
    "beyond_merge",
    "SIBLING_STEP",
    "SIBLING_COS",
    "SIBLING_Z",
    "TIE",
]

SIBLING_STEP = 0.73  # v's own step at least this fraction of p's (c / b < 1.7 if independent)
SIBLING_COS = 0.1  # the steps share at least a tenth of their direction
SIBLING_Z = 4.0  # ... and that is not sketch noise
PATH_DEFICIT = 0.1  # a child keeps all but this fraction of its parent's own step
TIE = 1.05  # the grandparent explains v within the sketch noise: fewer generations win


class StepGeometry:
    """The geometry of two consecutive steps ``gp -> p -> v`` measured on the sketches
    of the tensors the three models share."""

    def __init__(self, sketches: list[ModelSketch]):
        self.sk = sketches
        self._index = [{key: j for j, key in enumerate(s.keys)} for s in sketches]

    def steps(self, gp: int, p: int, v: int) -> tuple[float, float, float] | None:
        """``(|v - p| / |p - gp|, cos, sigma)``: the step ratio, the cosine of the steps
        ``p - gp`` and ``v - p``, and the standard deviation of that cosine's sketch
        estimate. None when the three share no tensor or a step is zero."""
        a, b, c = self.sk[gp], self.sk[p], self.sk[v]
        ib, ic = self._index[p], self._index[v]
        dot = 0.0
        n1: list[float] = []
        n2: list[float] = []
        var = 0.0
        for i, key in enumerate(a.keys):
            j, k = ib.get(key), ic.get(key)
            if j is None or k is None:
                continue
            s1 = b.sketches[j] - a.sketches[i]
            s2 = c.sketches[k] - b.sketches[j]
            x, y = float(s1 @ s1), float(s2 @ s2)
            dot += float(s1 @ s2)
            n1.append(x)
            n2.append(y)
            # CountSketch: Var <s1, s2> ~ |s1|^2 |s2|^2 / width per tensor
            var += x * y / s1.size
        t1, t2 = sum(n1), sum(n2)
        if not (t1 > 0 and t2 > 0 and math.isfinite(t1) and math.isfinite(t2)):
            return None
        norm = math.sqrt(t1 * t2)
        return math.sqrt(t2 / t1), dot / norm, math.sqrt(var) / norm

    def sibling_like(self, gp: int, p: int, v: int) -> bool:
        """Whether ``v`` is more likely a sibling of ``p`` (a child of ``gp``) than its
        child: a step as long as ``p``'s that goes on in ``p``'s direction, or a position
        that lacks part of ``p``'s own step (``v - gp`` projected on ``p - gp`` falls
        short of ``p`` by more than ``PATH_DEFICIT``)."""
        r = self.steps(gp, p, v)
        if r is None:
            return False
        ratio, cos, sigma = r
        further = ratio >= SIBLING_STEP and cos > max(SIBLING_COS, SIBLING_Z * sigma)
        # <v - gp, p - gp> / |p - gp|^2 = 1 + ratio * cos, with sd ratio * sigma
        short = ratio * cos < -max(PATH_DEFICIT, SIBLING_Z * ratio * sigma)
        return further or short


def move_siblings(
    parent: dict[int, int | None],
    geometry: StepGeometry,
    cost: np.ndarray,
    special: set[tuple[int, int]],
    adj: dict[int, set[int]],
) -> None:
    """Move every model that is sibling-like under its parent, seen from the grandparent
    or any ancestor above it, up to the grandparent, and those the grandparent explains
    within ``TIE`` of the parent's ``cost``; top-down, so a model moved up is tested again
    one level higher. ``adj`` (the undirected tree) is
    updated with ``parent``; ``special`` edges (metadata, casts, prunings) never move."""
    order = [v for v in parent if parent[v] is None]
    i = 0
    while i < len(order):
        x = order[i]
        i += 1
        order += [y for y in adj[x] if parent.get(y) == x]
    for v in order:
        while True:
            pv = parent[v]
            gp = parent.get(pv) if pv is not None else None
            if gp is None or (pv, v) in special or (gp, pv) in special:
                break
            if not np.isfinite(cost[gp, v]):  # gp and v not comparable
                break
            tie = 0 < cost[gp, v] <= TIE * cost[pv, v]
            if not tie and not any(geometry.sibling_like(a, pv, v) for a in _up(gp, parent)):
                break
            adj[pv].discard(v)
            adj[v].discard(pv)
            adj[gp].add(v)
            adj[v].add(gp)
            parent[v] = gp


def _up(x: int, parent: dict[int, int | None]) -> list[int]:
    """``x`` and its ancestors, nearest first."""
    out = [x]
    while parent.get(out[-1]) is not None and len(out) <= len(parent):
        out.append(parent[out[-1]])  # type: ignore[arg-type]
    return out


def beyond_merge(
    geometry: StepGeometry,
    v: int,
    merge: int,
    parent: dict[int, int | None],
    merges: dict[int, tuple[int, int]],
) -> bool:
    """Whether ``v`` is sibling-like to ``merge`` seen from its tree parent or from any
    ancestor of the merge (its parents, theirs ...): then ``v`` drifted past the merge or
    away from it and is not its child."""
    refs: list[int] = [] if parent.get(v) is None else [parent[v]]  # type: ignore[list-item]
    stack = list(merges.get(merge, ()))
    while stack:
        x = stack.pop()
        if x in refs or x in (v, merge):
            continue
        refs.append(x)
        stack.extend(merges.get(x, ()))
        if parent.get(x) is not None:
            stack.append(parent[x])  # type: ignore[arg-type]
    return any(geometry.sibling_like(a, merge, v) for a in refs)
