"""Lineage inference: reconstruct provenance edges among models added without parents.

``infer_edges(models)`` takes ``{name: state_dict or path}`` or a repository (anything
with ``models()`` and ``load(name)``; the latest version of each model) and returns
:class:`InferredEdge` s: parent, child, a relation guess, a confidence in [0, 1] and
whether the direction was decided. ``infer_lineage(models)`` returns the directed
ones as ``(parent, child)`` pairs. Each model is read once and summarised
(``lineage.signals``: tensor sketches, norms, zeros, dtypes, row hashes, a fixed element
sample, metadata); nothing compares two models' tensors in full.

Algorithm:

1. *Distances.* Two models are comparable when the tensors they share (same name and
   shape) hold at least half of the elements of each; their distance is the sketched
   distance over those tensors divided by the RMS of their norms (~0.002-0.3 for
   fine-tunes, ~1.4 for unrelated random weights). Models of one layout are compared at
   once with one matrix product.
2. *Merges.* A model whose sketch is an interpolation ``a s_a + (1 - a) s_b`` (0.05 <= a
   <= 0.95, residual under 5% of its nearest distance) of two of its nearest neighbours
   is a merge of both (sketches are linear). Metadata naming two models makes a merge too.
3. *Tree.* A minimum spanning forest (Edmonds over symmetric costs and a virtual root at
   ``root_cost``: a model farther than that from all others is a family of its own) of
   ``cost = distance x identity factor``, where the identity factor rewards pairs that
   hold more rows bit for bit than is usual among related pairs (frozen layers, a LoRA
   that left most tensors alone): ``(1 - share) / (1 - median share)``, clipped to
   [0.05, 1]. An exact cast (every sampled element of one equals the other's, rounded to
   its narrower dtype) costs almost nothing; a sparser model is compared with denser ones
   on the sampled weights it kept (a pruned model's distance is otherwise all pruning);
   metadata naming a model in the set forces the edge.
4. *Direction.* In a tree each model has one parent, so choosing the directions is
   choosing a root per family. Every tree edge ``u - v`` gets evidence ``L(u -> v)``
   (log-odds, antisymmetric):

   - metadata of ``v`` naming ``u`` (``config.json`` ``_name_or_path``, README
     ``base_model:``, safetensors ``base_model`` ...): +8;
   - ``v`` an exact cast of ``u``: +8; merely narrower dtype: +0.7 (fine-tunes are saved
     in other precisions too);
   - ``v`` sparser: ``6 tanh(dz / 0.05)`` for a zero-fraction gap ``dz``;
   - ``v`` holds tensors ``u`` lacks and not the reverse (a task head): +1.5;
   - training drift: an optimizer without weight decay adds updates nearly orthogonal
     to the weights, so a child's squared norm exceeds its parent's by about the squared
     distance: ``g = (|v|^2 - |u|^2) / |v - u|^2`` is ~+1 along the true direction and
     ~-1 against it (measured +0.5 to +39 on every fine-tune, continued-training and
     LoRA edge of the three reference zoos); ``2 tanh(g / 2)``.

   The tree itself is an arborescence over ``cost x exp(-0.25 L)`` (so a near tie goes
   the way the evidence points); a reversed exact cast or metadata edge is not allowed.
   The root maximises the summed evidence of the edges it orients (a rerooting pass, O(n)
   per family), plus 0.3 x the norm growth in units of a typical step (each model's
   nearest squared distance): summed along a path it telescopes to the norm difference
   of the ends, a clock that a chain of small noisy steps still reads right. Edmonds is
   re-run rooted there until the root stays. An edge's direction margin is the best
   score with the root on its parent's side minus the best with the root on the child's
   side: flipping an edge flips every edge between it and the root, so evidence
   accumulates down a chain and a deep link is as sure as the path above it. The
   direction confidence is
   ``sigmoid(margin)``; below 0.75 the edge is *undirected* (``directed=False``: the
   order shown is only the likelier one). Typical undirected cases: two models alone with
   no cast, pruning, head or metadata cue and a small norm change; weights trained with
   weight decay (norms shrink).
5. *Siblings* (``lineage.siblings``). Fine-tunes of one base move in correlated
   directions, so the one that went further looks like a continuation of the other. A
   model ``v`` under ``p`` is moved up to ``p``'s parent when, seen from ``p``'s parent
   or any ancestor ``a`` above it (the triangle ``a, p, v`` measured on the sketches of
   the tensors the three share), it is not a plausible child of ``p``: either its own
   step is as long as ``p``'s (``|v - p| >= 0.73 |p - a|``) and goes on in ``p``'s
   direction (the steps' cosine above 0.1 and 4 times its sketch noise: a random walk's
   independent steps stay a chain), or it lacks part of ``p``'s own step (the ancestor
   projection ``<v - a, p - a> / |p - a|^2`` under 0.9, beyond 4 times its noise: a child
   keeps its parent's whole update). Also moved: a model the grandparent explains
   within 5% of ``p``'s directed cost (the sketch noise; fewer generations win).
   Measured on the reference zoos and redraws of the small zoo: true chain links have
   step ratios 0.26-0.67 and projections 0.96-1.43; the confusions ratios 0.81-1.25
   with cosines 0.19-0.45, or projections 0.48-0.85. A chain that keeps going straight
   with steps as long as the first is reported as siblings. A model much nearer a merge
   than its tree parent goes under the merge unless the same tests, seen from its parent
   or the merge's ancestors, say it lies beyond the merge (it drifted further the same
   way).
6. *Confidence.* An edge's confidence is its direction confidence times the confidence
   that it exists: ``1 / (1 + r^2.5)`` for the ratio ``r`` of its directed cost to the
   cheapest other parent the child could have (1: a coin toss); forced edges (metadata,
   exact casts, exact pruning masks) 0.99; merges 0.9.

The constants were chosen by their meaning (log-odds of a cue) and checked on all three
reference zoos (small, minilm, minilm-b) and the synthetic random-walk families of
``bench/bench_inference.py``; none is fitted to one zoo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedInput
from ..formats.sources import FolderReader
from . import signals
from .pairwise import Pairwise, find_merges, pairwise, shared_tensors
from .siblings import StepGeometry, beyond_merge, move_siblings
from .signals import ModelSketch, sketch_model
from .trees import _edmonds, forest_components, root_scores

__all__ = [
    "InferredEdge",
    "infer_edges",
    "infer_lineage",
    "ModelSketch",
    "sketch_model",
    "edges_from_sketches",
    "lineage_from_sketches",
]

DEFAULT_ROOT_COST = 1.0
META_L = 8.0
CAST_L = 8.0
PRECISION_L = 0.7
SPARSITY_L, SPARSITY_SCALE, SPARSITY_GAP = 6.0, 0.05, 0.05
HEAD_L = 1.5
NORM_L, CLOCK_L = 2.0, 0.3
DIRECTED_MIN = 0.75
EXACT_MASK = 1.0 - 1e-9
EDGE_SHARPNESS = 2.5
TOPOLOGY_GAMMA = 0.25


@dataclass(frozen=True)
class InferredEdge:
    """One inferred provenance edge. ``relation``: "finetune", "cast", "prune",
    "merge", "version" or None (unknown); ``directed`` False when the direction could
    not be decided (then ``parent``/``child`` is only the likelier order)."""

    parent: str
    child: str
    relation: str | None
    confidence: float
    directed: bool


def _as_model(value: Any) -> Any:
    if isinstance(value, (str, os.PathLike)):
        p = Path(value)
        if not p.exists():
            raise UnsupportedInput(f"{p} does not exist")
        return p
    return value


def _folder(value: Any) -> Path | None:
    """The Hugging Face folder of a model given as that folder or as a ``model*``
    weights file in it."""
    if not isinstance(value, Path):
        return None
    if value.is_dir():
        return value
    return value.parent if value.is_file() and value.name.startswith("model") else None


def _hub_repo(folder: Path) -> str | None:
    """``org/name`` of a hub cache snapshot (``models--org--name/snapshots/<rev>``)."""
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.parent.parent.name[len("models--") :].replace("--", "/")
    return None


def _side_files(value: Any, follow_symlinks: bool = False) -> dict[str, bytes]:
    """config.json / README.md of a Hugging Face folder (given as the folder or by its
    weights file), read under the folder rules of ``formats.sources.FolderReader``."""
    folder = _folder(value)
    if folder is None:
        return {}
    reader = FolderReader(folder, follow_symlinks)
    out = {}
    for name in ("config.json", "adapter_config.json", "README.md"):
        f = folder / name
        if (f.exists() or f.is_symlink()) and reader.check(f).stat().st_size < 1 << 20:
            out[name] = f.read_bytes()
    return out


def _sketch_all(
    models: Any, k: int, threads: int, follow_symlinks: bool = False
) -> list[ModelSketch]:
    if isinstance(models, Mapping):
        out = []
        for n, m in models.items():
            m = _as_model(m)
            files = _side_files(m, follow_symlinks)
            s = sketch_model(str(n), m, k=k, threads=threads, files=files,
                             follow_symlinks=follow_symlinks)  # fmt: skip
            folder = _folder(m)
            if folder is not None and (m.is_dir() or files):
                s.aliases.add(signals._norm(_hub_repo(folder) or folder.name))
            out.append(s)
        return out
    if callable(getattr(models, "models", None)) and callable(getattr(models, "load", None)):
        out = []
        for name in models.models():  # a repository: the latest version of each model
            files = models.files(name) if callable(getattr(models, "files", None)) else {}
            out.append(sketch_model(str(name), models.load(name), k=k, threads=threads,
                                    files=dict(files)))  # fmt: skip
        return out
    raise UnsupportedInput(
        "infer_lineage takes a mapping {name: state_dict or path} or a repository"
    )


def infer_edges(
    models: Any,
    k: int = 64,
    *,
    root_cost: float = DEFAULT_ROOT_COST,
    detect_merges: bool = True,
    threads: int = 0,
    follow_symlinks: bool = False,
) -> list[InferredEdge]:
    """Infer provenance edges among ``models`` (``{name: state_dict or path}``, or a
    repository: its models' latest versions), with relation, confidence and direction
    (see the module docstring). ``k``: sketch width per tensor; ``root_cost``: the
    relative distance beyond which a model starts a family of its own.
    ``follow_symlinks``: read folders' symlinks that lead outside them."""
    sketches = _sketch_all(models, k, threads, follow_symlinks)
    return edges_from_sketches(sketches, root_cost=root_cost, detect_merges=detect_merges)


def infer_lineage(
    models: Any,
    k: int = 64,
    *,
    root_cost: float = DEFAULT_ROOT_COST,
    detect_merges: bool = True,
    threads: int = 0,
) -> list[tuple[str, str]]:
    """The directed edges of :func:`infer_edges` as ``(parent, child)`` pairs, parents
    before children where possible (an edge whose direction is unknown is left out)."""
    edges = infer_edges(models, k, root_cost=root_cost, detect_merges=detect_merges,
                        threads=threads)  # fmt: skip
    return [(e.parent, e.child) for e in edges if e.directed]


def lineage_from_sketches(
    sketches: list[ModelSketch],
    *,
    root_cost: float = DEFAULT_ROOT_COST,
    detect_merges: bool = True,
) -> list[tuple[str, str]]:
    """:func:`infer_lineage` on already computed sketches."""
    edges = edges_from_sketches(sketches, root_cost=root_cost, detect_merges=detect_merges)
    return [(e.parent, e.child) for e in edges if e.directed]


# -- the inference proper --------------------------------------------------------------
def _metadata_parents(sk: list[ModelSketch]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for v, s in enumerate(sk):
        found = []
        for ref in s.refs:
            hits = [u for u, t in enumerate(sk) if u != v and signals.matches(ref, t.aliases)]
            if len(hits) == 1 and hits[0] not in found:
                found.append(hits[0])
        if found:
            out[v] = found
    return out


def edges_from_sketches(
    sketches: list[ModelSketch],
    *,
    root_cost: float = DEFAULT_ROOT_COST,
    detect_merges: bool = True,
) -> list[InferredEdge]:
    """:func:`infer_edges` on already computed sketches (see the module docstring)."""
    names = [s.name for s in sketches]
    if len(set(names)) != len(names):
        raise UnsupportedInput("model names must be unique")
    n = len(sketches)
    if n < 2:
        return []
    sk = sketches
    p = pairwise(sk)
    meta = _metadata_parents(sk)
    merges = {v: (ps[0], ps[1]) for v, ps in meta.items() if len(ps) >= 2}
    if detect_merges:
        for c, ab in find_merges(p, sk).items():
            if c not in meta and not any(c in meta.get(x, ()) for x in ab):
                merges.setdefault(c, ab)
    forced = {(ps[0], v) for v, ps in meta.items() if len(ps) == 1}
    cost, casts, pruned = _tree_costs(p, sk, forced, root_cost)
    L = _evidence(p, meta, casts)
    active = [i for i in range(n) if i not in merges]
    W = np.full((len(active) + 1, len(active) + 1), np.inf)
    # the topology: a minimum spanning arborescence whose costs lean on the evidence
    with np.errstate(invalid="ignore", over="ignore"):
        directed = np.where(cost > 0, cost * np.exp(-TOPOLOGY_GAMMA * L), cost)
    for u, v in casts | forced:  # lost bits do not come back; metadata is not reversed
        directed[v, u] = np.inf
    W[: len(active), : len(active)] = directed[np.ix_(active, active)]

    R = L + CLOCK_L * _clock(p, casts)

    def evidence(u: int, v: int) -> float:
        return float(R[u, v])

    # Edmonds picks a root too; re-run it rooted where the evidence puts each family's
    # root until that root no longer moves
    pos = {v: j for j, v in enumerate(active)}
    root_w = np.full(len(active), 10.0 * root_cost + 10.0)
    for _ in range(4):
        W[len(active), : len(active)] = root_w
        par = _edmonds(W, len(active))
        adj: dict[int, set[int]] = {v: set() for v in active}
        for j, v in enumerate(active):
            u = int(par[j])
            if 0 <= u < len(active):
                adj[v].add(active[u])
                adj[active[u]].add(v)
        parent = _orient(adj, evidence)
        new_w = np.full(len(active), 1000.0 * root_cost + 1000.0)
        new_w[[pos[v] for v, u in parent.items() if u is None]] = 10.0 * root_cost + 10.0
        if np.array_equal(new_w, root_w):
            break
        root_w = new_w
    special = forced | casts | {(u, v) for u, v in pruned}
    geometry = StepGeometry(sk)
    move_siblings(parent, geometry, directed, special, adj)
    parent = _orient(adj, evidence)
    margins = _margins(adj, parent, evidence)
    # models much closer to a merge than to their tree parent go under the merge, unless
    # they lie beyond it as a sibling would (they drifted further the same way)
    for v in active:
        if parent.get(v) is None or (parent[v], v) in special:
            continue
        for c in merges:
            if (p.dist[c, v] < 0.9 * p.dist[parent[v], v] and not _below(c, v, parent, merges)
                    and not beyond_merge(geometry, v, c, parent, merges)):  # fmt: skip
                adj[parent[v]].discard(v)
                adj[v].discard(parent[v])
                parent[v] = c
    out: list[InferredEdge] = []
    for v, u in parent.items():
        if u is None:
            continue
        if u in merges:  # moved under a merge: only its own evidence orients it
            p_dir = 1.0 / (1.0 + math.exp(-2.0 * R[u, v]))
            conf = _existence(directed, u, v, parent, merges, n) * p_dir
            out.append(InferredEdge(names[u], names[v], "finetune", round(conf, 4),
                                    p_dir >= DIRECTED_MIN))  # fmt: skip
            continue
        p_dir = 1.0 / (1.0 + math.exp(-margins[(u, v)]))
        if (u, v) in special:
            p_edge = 0.99
        else:
            p_edge = _existence(directed, u, v, parent, merges, n)
        out.append(InferredEdge(names[u], names[v], _relation(p, sk, u, v, casts, pruned),
                                round(p_edge * p_dir, 4), p_dir >= DIRECTED_MIN))  # fmt: skip
    for c, (a, b) in merges.items():
        rel = sk[c].relation if c in meta else None
        for x in (a, b):
            out.append(InferredEdge(names[x], names[c], rel or "merge", 0.9, True))
    return _ordered(out, names)


def _tree_costs(
    p: Pairwise, sk: list[ModelSketch], forced: set[tuple[int, int]], root_cost: float
) -> tuple[np.ndarray, set[tuple[int, int]], set[tuple[int, int]]]:
    """Symmetric costs for the spanning forest, the exact casts and the prunings found."""
    related = np.isfinite(p.dist) & (p.dist <= root_cost)
    valid = related & np.isfinite(p.share)
    background = float(np.median(p.share[valid])) if valid.any() else 0.0
    factor = np.where(np.isfinite(p.share), (1.0 - p.share) / max(1e-9, 1.0 - background), 1.0)
    cost = p.dist * np.clip(factor, 0.05, 1.0)
    casts: set[tuple[int, int]] = set()
    pruned: set[tuple[int, int]] = set()
    for u, v in zip(*np.nonzero(related), strict=True):
        u, v = int(u), int(v)
        narrower = p.bits[u, v] > p.bits[v, u] + 0.5
        if narrower and signals.is_cast(sk[u], sk[v], shared_tensors(sk, p, u, v)):
            casts.add((u, v))
            cost[u, v] = cost[v, u] = p.dist[u, v] * 1e-3
        elif p.sparsity[v, u] > p.sparsity[u, v] + SPARSITY_GAP:
            pruned.add((u, v))
    # a sparser model is compared with denser ones on the weights it kept; scaled so its
    # cheapest such edge costs its plain distance (a pruned model is never a cheap hub)
    masked: dict[int, dict[int, float]] = {}
    for u, v in pruned:
        shared = shared_tensors(sk, p, u, v)
        m = signals.masked_distance(sk[u], sk[v], shared)
        if signals.mask_fit(sk[u], sk[v], shared) >= EXACT_MASK:
            m *= 1e-3  # zeros exactly where u's smallest weights are: pruned from u
        masked.setdefault(v, {})[u] = m
    for v, row in masked.items():
        low = min(row.values())
        for u, m in row.items():
            scale = min(p.dist[w, v] for w in row) / low if low > 0 else 1.0
            cost[u, v] = cost[v, u] = m * scale
    cost[~related] = np.inf
    for u, v in forced:
        cost[u, v] = cost[v, u] = -1.0
    np.fill_diagonal(cost, np.inf)
    return cost, casts, pruned


def _evidence(p: Pairwise, meta: dict[int, list[int]],
              casts: set[tuple[int, int]]) -> np.ndarray:  # fmt: skip
    """``L[u, v]``: log-odds that ``u`` is the parent of ``v`` rather than the reverse
    (antisymmetric; 0 for incomparable pairs without metadata)."""
    n = p.dist.shape[0]
    ok = np.isfinite(p.dist)
    db = p.bits - p.bits.T
    dz = p.sparsity.T - p.sparsity  # dz[u, v]: v's zero fraction minus u's
    L = PRECISION_L * np.sign(db) * (np.abs(db) > 0.5)
    L += SPARSITY_L * np.tanh(dz / SPARSITY_SCALE)
    L += HEAD_L * (((p.extra.T > 0) & (p.extra == 0)).astype(float)
                   - ((p.extra > 0) & (p.extra.T == 0)))  # fmt: skip
    nu, nv = p.norm, p.norm.T
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        g = np.nan_to_num((nv - nu) / (p.dist**2 * (nu + nv) / 2), posinf=0.0, neginf=0.0)
    plain = (np.abs(dz) < 0.02) & ok
    L += np.where(plain, NORM_L * np.tanh(g / 2), 0.0)
    L[~ok] = 0.0
    for u, v in casts:
        L[u, v], L[v, u] = CAST_L, -CAST_L
    for v, us in meta.items():
        for u in us:
            L[u, v] += META_L
            L[v, u] -= META_L
    np.fill_diagonal(L, 0.0)
    assert L.shape == (n, n)
    return L


def _clock(p: Pairwise, casts: set[tuple[int, int]]) -> np.ndarray:
    """``C[u, v]``: norm growth from u to v in units of a typical step (the squared
    relative distance to each one's nearest non-cast neighbour). Along a path it
    telescopes to the norm difference of the ends: a clock that a chain of noisy steps
    still reads right, used to choose roots (not to pick parents)."""
    near = p.dist.copy()
    for u, v in casts:
        near[u, v] = near[v, u] = np.inf
    step = np.min(near, axis=0) ** 2
    step = np.where(np.isfinite(step) & (step > 0), step, np.nan)
    nu, nv = p.norm, p.norm.T
    dz = p.sparsity.T - p.sparsity
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        c = (nv - nu) / ((nu + nv) / 2) / np.sqrt(step[:, None] * step[None, :])
    c = np.where((np.abs(dz) < 0.02) & np.isfinite(p.dist), np.nan_to_num(c), 0.0)
    for u, v in casts:
        c[u, v] = c[v, u] = 0.0
    return c


def _orient(adj: dict[int, set[int]], evidence: Any) -> dict[int, int | None]:
    """Parent of every node after rooting each tree where its edges' evidence is best."""
    parent: dict[int, int | None] = {}
    for comp in forest_components(adj):
        scores, _, _ = root_scores(comp, adj, evidence)
        best = max(comp, key=lambda x: (scores[x], -comp.index(x)))
        _root_at(best, adj, parent)
    return parent


def _root_at(root: int, adj: dict[int, set[int]], parent: dict[int, int | None]) -> None:
    parent[root] = None
    stack = [root]
    while stack:
        x = stack.pop()
        for y in adj[x]:
            if y != parent[x]:
                parent[y] = x
                stack.append(y)


def _margins(adj: dict[int, set[int]], parent: dict[int, int | None],
             evidence: Any) -> dict[tuple[int, int], float]:  # fmt: skip
    """For each edge u -> v: the best root score on u's side minus the best on v's side."""
    out: dict[tuple[int, int], float] = {}
    for comp in forest_components(adj):
        scores, order, par0 = root_scores(comp, adj, evidence)
        pos = {x: i for i, x in enumerate(order)}
        size = dict.fromkeys(order, 1)
        for x in reversed(order[1:]):
            size[par0[x]] += size[x]  # type: ignore[index]
        arr = np.array([scores[x] for x in order])
        pre = np.maximum.accumulate(arr)
        suf = np.maximum.accumulate(arr[::-1])[::-1]
        for v in comp:
            u = parent[v]
            if u is None:
                continue
            inside = v if par0[v] == u else u  # the side that is a subtree of the preorder
            lo, hi = pos[inside], pos[inside] + size[inside]
            in_max = float(arr[lo:hi].max())
            out_max = max(pre[lo - 1] if lo > 0 else -np.inf, suf[hi] if hi < len(arr) else -np.inf)
            out[(u, v)] = out_max - in_max if inside == v else in_max - out_max
    return out


def _existence(cost: np.ndarray, u: int, v: int, parent: dict[int, int | None],
               merges: dict[int, tuple[int, int]], n: int) -> float:  # fmt: skip
    """Confidence that v's parent is u rather than the cheapest other candidate."""
    alt = [w for w in range(n) if w not in (u, v) and w not in merges
           and np.isfinite(cost[w, v]) and not _below(w, v, parent, {})]  # fmt: skip
    if not alt:
        return 0.9
    best = min(cost[w, v] for w in alt)
    if best <= 0:
        return 0.05
    r = max(cost[u, v], 0.0) / best
    return 1.0 / (1.0 + r**EDGE_SHARPNESS)


def _below(a: int, b: int, parent: dict[int, int | None], merges: dict) -> bool:
    """Whether ``a`` is ``b`` or lies under ``b`` (through tree parents and, for a merge
    in ``merges``, both of its parents)."""
    stack, seen = [a], set()
    while stack:
        x = stack.pop()
        if x == b:
            return True
        if x in seen:
            continue
        seen.add(x)
        stack.extend(merges.get(x, ()))
        if parent.get(x) is not None:
            stack.append(parent[x])
    return False


def _relation(p: Pairwise, sk: list[ModelSketch], u: int, v: int,
              casts: set[tuple[int, int]], pruned: set[tuple[int, int]]) -> str | None:  # fmt: skip
    if sk[v].relation and any(signals.matches(r, sk[u].aliases) for r in sk[v].refs):
        return sk[v].relation
    if (u, v) in casts:
        return "cast"
    if (u, v) in pruned:
        return "prune"
    if not np.isfinite(p.dist[u, v]):
        return None
    return "finetune"


def _ordered(edges: list[InferredEdge], names: list[str]) -> list[InferredEdge]:
    """Edges in a parents-first (breadth-first) order, ties in input order."""
    pos = {n: i for i, n in enumerate(names)}
    children: dict[str, list[InferredEdge]] = {}
    has_parent = set()
    for e in edges:
        children.setdefault(e.parent, []).append(e)
        has_parent.add(e.child)
    out: list[InferredEdge] = []
    seen: set[int] = set()
    queue = [n for n in names if n not in has_parent]
    done: set[str] = set()
    while queue:
        u = queue.pop(0)
        if u in done:
            continue
        done.add(u)
        for e in sorted(children.get(u, ()), key=lambda e: pos[e.child]):
            if id(e) not in seen:
                seen.add(id(e))
                out.append(e)
                queue.append(e.child)
    out.extend(e for e in edges if id(e) not in seen)
    return out
