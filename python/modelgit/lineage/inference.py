"""Lineage inference: reconstruct provenance edges among models added without parents.

``infer_lineage(models)`` takes ``{name: state_dict or path}`` and returns a list of
``(parent, child)`` pairs. It never compares two models' tensors in full: each model is
read once and summarised by

- a CountSketch (``modelgit._core.sketch``, ``k`` float64 sums) of every floating-point
  tensor, keyed by ``(tensor name, shape)``. Sketches are linear, so
  ``||sketch(a) - sketch(b)||`` estimates ``||a - b||`` and a comparison costs
  O(k x tensors);
- per tensor: the squared norm, the fraction of exact zeros, and the dtype's precision.

Algorithm:

1. *Distances.* Two models are comparable when the tensors they share (same name and
   shape) hold at least half of the elements of each. Their distance is the sketched
   distance over the shared tensors divided by the RMS of their norms (a relative
   distance: ~0.01-0.3 for fine-tunes, ~1.4 for unrelated models with random weights).
   Models with the same tensor layout are compared all at once with one matrix product.
2. *Merges.* A model ``c`` whose sketch is (up to 5% of its distance to its nearest
   neighbour) an interpolation ``a*s_a + (1-a)*s_b`` of two of its nearest neighbours is
   a merge of both. Sketches are linear, so an exact average is found exactly.
3. *Tree.* A minimum spanning arborescence (Chu-Liu/Edmonds) over directed costs
   ``w(u -> v) = distance(u, v) * penalty(u, v)``, with a virtual root reachable from
   every model at cost ``root_cost`` (a model farther than that from every other one
   starts a family of its own). The penalties orient the edges:

   - a parent is rarely *less precise* than its child (bf16 -> fp32): x4;
   - a parent is rarely *sparser* than its child (pruned -> dense): x2;
   - training adds independent updates, so a child's norm is usually larger than its
     parent's (random-walk growth, ``|w + d|^2 ~ |w|^2 + |d|^2``): x(1 - beta tanh(g))
     with ``g = (|v|^2 - |u|^2) / |v - u|^2`` (about +1 for a random-walk step), and
     x(1 + gamma (|u|^2 - |v|^2) / |v|^2): among near-equidistant candidates the parent
     with the smaller norm (the earlier one) wins.

   Since the spanning structure is (nearly) the same for every choice of root, these
   asymmetric factors mainly decide *which* model of a family is its root. Merge models
   are left out of this step and attached to both of their parents afterwards; a model
   much closer to a merge than to its tree parent is then moved under the merge.

This is not MGit's own procedure (which compares models pairwise on their full tensors
and orients edges with user-supplied hints); it is the same idea with sketches, plus
orientation cues that need no hints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._native import _core
from ..errors import UnsupportedInput
from ..formats.sources import open_model

__all__ = ["infer_lineage", "ModelSketch", "sketch_model", "lineage_from_sketches"]

_PRECISION_BITS = {
    "float64": 53,
    "float32": 24,
    "bfloat16": 8,
    "float16": 11,
    "float8_e4m3fn": 4,
    "float8_e5m2": 3,
}
_SKETCHABLE = set(_PRECISION_BITS) - {"float8_e4m3fn", "float8_e5m2"}

PRECISION_PENALTY = 4.0
SPARSITY_PENALTY = 2.0
NORM_BETA = 0.1
NORM_GAMMA = 2.0
MERGE_TOLERANCE = 0.05
MERGE_NEIGHBOURS = 6
DEFAULT_ROOT_COST = 1.0


@dataclass
class ModelSketch:
    """What inference keeps of one model: a few numbers per tensor."""

    name: str
    keys: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    sketches: list[np.ndarray] = field(default_factory=list)  # k float64 each
    norm2: list[float] = field(default_factory=list)
    zeros: list[int] = field(default_factory=list)
    numel: list[int] = field(default_factory=list)
    bits: list[int] = field(default_factory=list)

    @property
    def signature(self) -> tuple:
        return tuple(self.keys)


def sketch_model(name: str, model: Any, k: int = 64, threads: int = 0) -> ModelSketch:
    """Summarise one model (state_dict, nn.Module, .safetensors file or folder)."""
    out = ModelSketch(name)
    with open_model(model) as source:
        for t in source.tensors:
            if t.tie is not None or t.dtype.name not in _SKETCHABLE:
                continue
            n = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
            if n == 0:
                continue
            view = t.view()
            sk = np.frombuffer(_core.sketch(view, t.dtype.name, k=k, threads=threads), np.float64)
            x = _as_float(view, t.dtype.name)
            norm2 = float(np.dot(x, x))
            if not np.isfinite(norm2):
                y = x[np.isfinite(x)]
                norm2 = float(np.dot(y, y))
            out.keys.append((t.name, tuple(t.shape)))
            out.sketches.append(sk)
            out.norm2.append(norm2)
            out.zeros.append(int(n - np.count_nonzero(x)))
            out.numel.append(n)
            out.bits.append(_PRECISION_BITS[t.dtype.name])
    return out


def _as_float(view: memoryview, dtype: str) -> np.ndarray:
    """The elements of a float tensor as float32 (float64 for float64), read-only views."""
    if dtype == "bfloat16":
        u = np.frombuffer(view, np.uint16).astype(np.uint32) << 16
        return u.view(np.float32)
    if dtype == "float16":
        return np.frombuffer(view, np.float16).astype(np.float32)
    return np.frombuffer(view, np.float64 if dtype == "float64" else np.float32)


def _as_model(value: Any) -> Any:
    if isinstance(value, (str, os.PathLike)):
        p = Path(value)
        if not p.exists():
            raise UnsupportedInput(f"{p} does not exist")
        return p
    return value


def infer_lineage(
    models: Mapping[str, Any],
    k: int = 64,
    *,
    root_cost: float = DEFAULT_ROOT_COST,
    detect_merges: bool = True,
    threads: int = 0,
) -> list[tuple[str, str]]:
    """Infer provenance edges among ``models`` (``{name: state_dict or path}``).

    Returns ``(parent, child)`` pairs, parents before children where possible. ``k`` is
    the sketch width per tensor (larger: more accurate distances, more memory);
    ``root_cost`` the relative distance beyond which a model starts a new family.
    """
    if not isinstance(models, Mapping):
        raise UnsupportedInput("infer_lineage takes a mapping {name: state_dict or path}")
    sketches = [sketch_model(str(n), _as_model(m), k=k, threads=threads) for n, m in models.items()]
    return lineage_from_sketches(sketches, root_cost=root_cost, detect_merges=detect_merges)


# -- distances -------------------------------------------------------------------------
@dataclass
class _Pairwise:
    dist: np.ndarray  # relative distance, inf where not comparable
    norm: np.ndarray  # norm[u, v]: squared norm of u over the tensors shared with v
    sparsity: np.ndarray  # zero fraction of u over the shared tensors
    bits: np.ndarray  # element-weighted mean precision of u over the shared tensors
    groups: list[list[int]]  # models with identical layout
    stacked: dict[int, np.ndarray]  # group index -> (members x K) concatenated sketches


def _pairwise(sk: list[ModelSketch]) -> _Pairwise:
    n = len(sk)
    dist = np.full((n, n), np.inf)
    norm = np.zeros((n, n))
    sparsity = np.zeros((n, n))
    bits = np.zeros((n, n))
    by_sig: dict[tuple, list[int]] = {}
    for i, s in enumerate(sk):
        by_sig.setdefault(s.signature, []).append(i)
    groups = list(by_sig.values())
    stacked: dict[int, np.ndarray] = {}
    per_key: list[dict[tuple, int]] = [{key: j for j, key in enumerate(s.keys)} for s in sk]

    def block(ga: list[int], gb: list[int], keys: list[tuple]) -> None:
        a0, b0 = sk[ga[0]], sk[gb[0]]
        ia = [per_key[ga[0]][key] for key in keys]
        ib = [per_key[gb[0]][key] for key in keys]
        A = np.stack([np.concatenate([sk[m].sketches[j] for j in ia]) for m in ga])
        B = A if ga is gb else np.stack(
            [np.concatenate([sk[m].sketches[j] for j in ib]) for m in gb]
        )  # fmt: skip
        na = np.einsum("ij,ij->i", A, A)
        nb = na if ga is gb else np.einsum("ij,ij->i", B, B)
        d2 = np.maximum(na[:, None] + nb[None, :] - 2.0 * (A @ B.T), 0.0)
        ta = np.array([[sum(sk[m].norm2[j] for j in ia)] for m in ga])
        tb = np.array([[sum(sk[m].norm2[j] for j in ib)] for m in gb])
        scale = np.maximum((ta + tb.T) / 2.0, 1e-300)
        rel = np.sqrt(d2 / scale)
        gi, gj = np.ix_(ga, gb)
        dist[gi, gj] = rel
        norm[gi, gj] = ta
        norm[gj.T, gi.T] = tb
        numel_a = sum(a0.numel[j] for j in ia)
        numel_b = sum(b0.numel[j] for j in ib)
        za = np.array([[sum(sk[m].zeros[j] for j in ia) / numel_a] for m in ga])
        zb = np.array([[sum(sk[m].zeros[j] for j in ib) / numel_b] for m in gb])
        sparsity[gi, gj] = za
        sparsity[gj.T, gi.T] = zb
        ba = np.array([[sum(sk[m].bits[j] * sk[m].numel[j] for j in ia) / numel_a] for m in ga])
        bb = np.array([[sum(sk[m].bits[j] * sk[m].numel[j] for j in ib) / numel_b] for m in gb])
        bits[gi, gj] = ba
        bits[gj.T, gi.T] = bb
        if ga is gb:
            stacked[groups.index(ga)] = A
        else:
            dist[gj.T, gi.T] = rel.T

    for x, ga in enumerate(groups):
        block(ga, ga, list(sk[ga[0]].keys))
        for gb in groups[x + 1 :]:
            ka, kb = sk[ga[0]], sk[gb[0]]
            shared = [key for key in ka.keys if key in per_key[gb[0]]]
            if not shared:
                continue
            sa = sum(ka.numel[per_key[ga[0]][key]] for key in shared) / max(1, sum(ka.numel))
            sb = sum(kb.numel[per_key[gb[0]][key]] for key in shared) / max(1, sum(kb.numel))
            if min(sa, sb) >= 0.5:
                block(ga, gb, shared)
    np.fill_diagonal(dist, np.inf)
    return _Pairwise(dist, norm, sparsity, bits, groups, stacked)


# -- merges ----------------------------------------------------------------------------
def _find_merges(p: _Pairwise, sk: list[ModelSketch]) -> dict[int, tuple[int, int]]:
    merges: dict[int, tuple[int, int]] = {}
    for g, members in enumerate(p.groups):
        if len(members) < 3:
            continue
        S = p.stacked[g]
        scale = np.sqrt(np.array([sum(sk[m].norm2) for m in members]))
        local = {m: i for i, m in enumerate(members)}
        for c in members:
            row = p.dist[c, members]
            order = [members[i] for i in np.argsort(row)[:MERGE_NEIGHBOURS] if np.isfinite(row[i])]
            nearest = p.dist[c, order[0]] if order else np.inf
            if not np.isfinite(nearest) or nearest == 0:
                continue
            sc = S[local[c]]
            best = None
            for x, a in enumerate(order):
                for b in order[x + 1 :]:
                    sa, sb = S[local[a]], S[local[b]]
                    diff = sa - sb
                    den = float(diff @ diff)
                    if den <= 0:
                        continue
                    alpha = float((sc - sb) @ diff) / den
                    if not 0.05 <= alpha <= 0.95:
                        continue
                    r = np.linalg.norm(sc - sb - alpha * diff) / max(scale[local[c]], 1e-300)
                    if best is None or r < best[0]:
                        best = (r, a, b)
            if best is not None and best[0] < MERGE_TOLERANCE * nearest:
                merges[c] = (best[1], best[2])
    # a merge's parents must not be merges of it
    return {c: ab for c, ab in merges.items() if not any(c in merges.get(x, ()) for x in ab)}


# -- arborescence ----------------------------------------------------------------------
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


def _costs(p: _Pairwise, active: list[int]) -> np.ndarray:
    idx = np.ix_(active, active)
    d = p.dist[idx]
    bits_u = p.bits[idx]  # precision of u over the tensors shared with v
    bits_v = p.bits[idx].T
    sp_u, sp_v = p.sparsity[idx], p.sparsity[idx].T
    nu, nv = p.norm[idx], p.norm[idx].T
    w = d.copy()
    w *= np.where(bits_u < bits_v - 0.5, PRECISION_PENALTY, 1.0)
    w *= np.where(sp_u > sp_v + 0.02, SPARSITY_PENALTY, 1.0)
    # norm growth along u -> v in units of |v - u|^2: ~ +1 for a random-walk step
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        growth = np.nan_to_num((nv - nu) / np.maximum(d**2 * (nu + nv) / 2, 1e-300))
        w *= 1.0 - NORM_BETA * np.tanh(growth)
        w *= np.clip(1.0 + NORM_GAMMA * (nu - nv) / np.maximum(nv, 1e-300), 0.5, 2.0)
    w[~np.isfinite(d)] = np.inf
    return w


def lineage_from_sketches(
    sketches: list[ModelSketch],
    *,
    root_cost: float = DEFAULT_ROOT_COST,
    detect_merges: bool = True,
) -> list[tuple[str, str]]:
    """The inference proper, on already computed sketches (see the module docstring)."""
    names = [s.name for s in sketches]
    if len(set(names)) != len(names):
        raise UnsupportedInput("model names must be unique")
    n = len(sketches)
    if n < 2:
        return []
    p = _pairwise(sketches)
    merges = _find_merges(p, sketches) if detect_merges else {}
    active = [i for i in range(n) if i not in merges]
    W = np.full((len(active) + 1, len(active) + 1), np.inf)
    costs = _costs(p, active)
    costs[p.dist[np.ix_(active, active)] > root_cost] = np.inf  # too far: unrelated
    W[: len(active), : len(active)] = costs
    W[len(active), : len(active)] = root_cost * PRECISION_PENALTY * SPARSITY_PENALTY * 2
    par = _edmonds(W, len(active))
    parents: dict[int, list[int]] = {}
    for j, v in enumerate(active):
        u = int(par[j])
        if u != len(active) and u >= 0:
            parents[v] = [active[u]]
    for c, (a, b) in merges.items():
        parents[c] = [a, b]
    # reattach models much closer to a merge than to their tree parent
    for v in active:
        if v not in parents:
            continue
        cur = p.dist[parents[v][0], v]
        for c in merges:
            if p.dist[c, v] < 0.9 * cur and not _is_ancestor(v, c, parents):
                parents[v] = [c]
                cur = p.dist[c, v]
    return _ordered([(names[u], names[v]) for v, us in parents.items() for u in us], names)


def _is_ancestor(a: int, b: int, parents: dict[int, list[int]]) -> bool:
    """Whether ``a`` is ``b`` or one of its ancestors."""
    stack, seen = [b], set()
    while stack:
        x = stack.pop()
        if x == a:
            return True
        if x in seen:
            continue
        seen.add(x)
        stack.extend(parents.get(x, ()))
    return False


def _ordered(edges: list[tuple[str, str]], names: list[str]) -> list[tuple[str, str]]:
    """Edges in a parents-first (breadth-first) order, ties in input order."""
    pos = {n: i for i, n in enumerate(names)}
    children: dict[str, list[str]] = {}
    has_parent = set()
    for u, v in edges:
        children.setdefault(u, []).append(v)
        has_parent.add(v)
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    queue = [n for n in names if n not in has_parent]
    emitted_nodes: set[str] = set()
    while queue:
        u = queue.pop(0)
        if u in emitted_nodes:
            continue
        emitted_nodes.add(u)
        for v in sorted(children.get(u, ()), key=pos.__getitem__):
            if (u, v) not in seen:
                seen.add((u, v))
                out.append((u, v))
                queue.append(v)
    out.extend(e for e in edges if e not in seen)  # a cycle cannot happen; be total anyway
    return out
