"""Pairwise signals of lineage inference, computed from the models' sketches
(``lineage.signals``): distances, norms, sparsity, precision, missing tensors, the share
of bit-identical rows, and merges found by the linearity of the sketches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .signals import ModelSketch

__all__ = ["Pairwise", "pairwise", "shared_tensors", "find_merges"]

MERGE_TOLERANCE = 0.05
MERGE_NEIGHBOURS = 6


# -- pairwise signals ------------------------------------------------------------------
@dataclass
class Pairwise:
    dist: np.ndarray  # relative distance, inf where not comparable
    norm: np.ndarray  # norm[u, v]: squared norm of u over the tensors shared with v
    sparsity: np.ndarray  # zero fraction of u over the shared tensors
    bits: np.ndarray  # element-weighted mean precision of u over the shared tensors
    extra: np.ndarray  # extra[u, v]: fraction of u's elements in tensors v lacks
    share: np.ndarray  # fraction of same-dtype shared elements in bit-identical rows
    groups: list[list[int]]  # models with identical layout
    stacked: dict[int, np.ndarray]  # group index -> (members x K) concatenated sketches
    shared: dict[tuple[int, int], list[tuple[int, int]]]  # tensor index pairs, when asked


def pairwise(sk: list[ModelSketch]) -> Pairwise:
    n = len(sk)
    dist = np.full((n, n), np.inf)
    norm, sparsity, bits, extra = (np.zeros((n, n)) for _ in range(4))
    share = np.full((n, n), np.nan)
    by_sig: dict[tuple, list[int]] = {}
    for i, s in enumerate(sk):
        by_sig.setdefault(s.signature, []).append(i)
    groups = list(by_sig.values())
    stacked: dict[int, np.ndarray] = {}
    per_key: list[dict[tuple, int]] = [{key: j for j, key in enumerate(s.keys)} for s in sk]

    def cat(m: int, idx: list[int], what: str) -> np.ndarray:
        return np.concatenate([getattr(sk[m], what)[j] for j in idx])

    def block(ga: list[int], gb: list[int], keys: list[tuple]) -> None:
        a0, b0 = sk[ga[0]], sk[gb[0]]
        ia = [per_key[ga[0]][key] for key in keys]
        ib = [per_key[gb[0]][key] for key in keys]
        A = np.stack([cat(m, ia, "sketches") for m in ga])
        B = A if ga is gb else np.stack([cat(m, ib, "sketches") for m in gb])
        na = np.einsum("ij,ij->i", A, A)
        nb = na if ga is gb else np.einsum("ij,ij->i", B, B)
        d2 = np.maximum(na[:, None] + nb[None, :] - 2.0 * (A @ B.T), 0.0)
        ta = np.array([[sum(sk[m].norm2[j] for j in ia)] for m in ga])
        tb = np.array([[sum(sk[m].norm2[j] for j in ib)] for m in gb])
        rel = np.sqrt(d2 / np.maximum((ta + tb.T) / 2.0, 1e-300))
        gi, gj = np.ix_(ga, gb)
        dist[gi, gj] = rel
        dist[gj.T, gi.T] = rel.T
        norm[gi, gj], norm[gj.T, gi.T] = ta, tb
        numel_a = sum(a0.numel[j] for j in ia)
        numel_b = sum(b0.numel[j] for j in ib)
        for g, idx, tot, tgt in ((ga, ia, numel_a, gi), (gb, ib, numel_b, gj.T)):
            other = gj if tgt is gi else gi.T
            z = np.array([[sum(sk[m].zeros[j] for j in idx) / tot] for m in g])
            b = np.array([[sum(sk[m].bits[j] * sk[m].numel[j] for j in idx) / tot] for m in g])
            e = np.array([[1.0 - tot / max(1, sum(sk[m].numel))] for m in g])
            sparsity[tgt, other], bits[tgt, other], extra[tgt, other] = z, b, e
        # bit-identical rows, only where the dtypes agree
        per_row = np.concatenate([np.full(a0.rows[j].size, a0.numel[j] // a0.rows[j].size)
                                  for j in ia]).astype(np.float64)  # fmt: skip
        HA = np.stack([cat(m, ia, "rows") for m in ga])
        HB = HA if ga is gb else np.stack([cat(m, ib, "rows") for m in gb])
        DA = np.stack([_dtype_codes(sk[m], ia) for m in ga])
        DB = DA if ga is gb else np.stack([_dtype_codes(sk[m], ib) for m in gb])
        for x, m in enumerate(ga):
            same_dt = DB == DA[x]
            eq = (HB == HA[x]) & same_dt
            tot = same_dt @ per_row
            with np.errstate(invalid="ignore", divide="ignore"):
                s = np.where(tot > 0, (eq @ per_row) / tot, np.nan)
            share[m, gb] = s
            share[gb, m] = s
        if ga is gb:
            stacked[groups.index(ga)] = A

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
    return Pairwise(dist, norm, sparsity, bits, extra, share, groups, stacked, {})


def _dtype_codes(s: ModelSketch, idx: list[int]) -> np.ndarray:
    return np.concatenate([np.full(s.rows[j].size, s.bits[j], np.int16) for j in idx])


def shared_tensors(sk: list[ModelSketch], p: Pairwise, u: int, v: int) -> list[tuple[int, int]]:
    if (u, v) not in p.shared:
        kv = {key: j for j, key in enumerate(sk[v].keys)}
        p.shared[(u, v)] = [(i, kv[key]) for i, key in enumerate(sk[u].keys) if key in kv]
    return p.shared[(u, v)]


# -- merges ----------------------------------------------------------------------------
def find_merges(p: Pairwise, sk: list[ModelSketch]) -> dict[int, tuple[int, int]]:
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
