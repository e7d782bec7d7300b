"""Tree algorithms of lineage inference: the minimum spanning arborescence (Edmonds), the
components of a forest, and the score of every choice of root (rerooting in O(n))."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["_edmonds", "forest_components", "root_scores"]


def _edmonds(W: np.ndarray, root: int) -> np.ndarray:
    """Minimum spanning arborescence of a dense cost matrix (W[u, v]: cost of u -> v,
    inf for no edge), rooted at ``root``; returns parent indices (-1 for the root)."""
    n = W.shape[0]
    W = W.copy()
    np.fill_diagonal(W, np.inf)
    W[:, root] = np.inf
    parent = np.argmin(W, axis=0)
    parent[root] = -1
    # find cycles
    color = np.zeros(n, dtype=np.int64)  # 0 new, 1 on the current walk, 2 done
    cycles: list[list[int]] = []
    for s in range(n):
        if color[s]:
            continue
        walk = []
        v = s
        while v != -1 and color[v] == 0:
            color[v] = 1
            walk.append(v)
            v = int(parent[v])
        if v != -1 and color[v] == 1:
            cycles.append(walk[walk.index(v) :])
        for x in walk:
            color[x] = 2
    if not cycles:
        return parent
    # contract every cycle into a supernode
    comp = np.arange(n)
    in_cycle = np.full(n, -1)
    for ci, cyc in enumerate(cycles):
        in_cycle[cyc] = ci
    keep = [v for v in range(n) if in_cycle[v] < 0]
    m = len(keep) + len(cycles)
    for i, v in enumerate(keep):
        comp[v] = i
    for ci, cyc in enumerate(cycles):
        comp[cyc] = len(keep) + ci
    cost_in = W[parent.clip(0), np.arange(n)]
    cost_in[root] = 0.0
    adj = W - np.where(in_cycle >= 0, cost_in, 0.0)[None, :]  # entering a cycle node
    order = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[order], np.arange(m + 1))
    members = [order[bounds[c] : bounds[c + 1]] for c in range(m)]
    A = adj[order][:, order]
    W2 = np.minimum.reduceat(np.minimum.reduceat(A, bounds[:-1], axis=0), bounds[:-1], axis=1)
    np.fill_diagonal(W2, np.inf)
    p2 = _edmonds(W2, int(comp[root]))
    result = parent.copy()
    for cv in range(m):
        cu = p2[cv]
        if cu < 0:
            continue
        sub = adj[np.ix_(members[cu], members[cv])]
        flat = int(np.argmin(sub))
        u, v = int(members[cu][flat // sub.shape[1]]), int(members[cv][flat % sub.shape[1]])
        result[v] = u  # for a cycle: breaks it at v; others keep their cycle parent
    result[root] = -1
    return result


def forest_components(adj: dict[int, set[int]]) -> list[list[int]]:
    """The trees of an undirected forest (nodes in first-seen order)."""
    seen: set[int] = set()
    out = []
    for s in adj:
        if s in seen:
            continue
        comp, stack = [], [s]
        seen.add(s)
        while stack:
            x = stack.pop()
            comp.append(x)
            for y in sorted(adj[x]):
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        out.append(comp)
    return out


def root_scores(
    comp: list[int], adj: dict[int, set[int]], evidence: Callable[[int, int], float]
) -> tuple[dict[int, float], list[int], dict[int, int | None]]:
    """For every node of the tree ``comp``, the summed evidence of all edges oriented away
    from it as the root; also a preorder of the tree from ``comp[0]`` and the parents in
    that order (subtrees are contiguous in the preorder)."""
    root = comp[0]
    par0: dict[int, int | None] = {root: None}
    order: list[int] = []
    stack = [root]
    while stack:
        x = stack.pop()
        order.append(x)
        for y in sorted(adj[x], reverse=True):
            if y != par0[x]:
                par0[y] = x
                stack.append(y)
    fwd = {x: evidence(par0[x], x) for x in order[1:]}  # type: ignore[arg-type]
    back = {x: evidence(x, par0[x]) for x in order[1:]}  # type: ignore[arg-type]
    scores = {root: float(sum(fwd.values()))}
    for x in order[1:]:
        scores[x] = scores[par0[x]] - fwd[x] + back[x]  # type: ignore[index]
    return scores, order, par0
