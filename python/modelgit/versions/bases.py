"""Storage bases: which stored tensors a new version's tensors are coded against.

Declared parents are the lineage record; the storage base is a separate choice. With
``base="auto"`` (the default), each float tensor is coded against the stored tensor of
the same name that the similarity index (``storage.similarity``) finds closest, among
the few stored versions closest to the new model and its declared parents:

- the closest tensor, or a declared parent's when it is nearly as close (a parent is
  usually shallower: cheaper to decode, for the writer and for every load); when the
  new tensor is sparse (a pruned model: the distance of values says little about what
  a zero mask leaves to code), also the declared parent's, or else the next closest;
- two or three stored versions, when a linear combination of them (fitted on the
  sketches, which are linear) sits much closer to the new model than any one does: a
  merge (a mean, a weighted average, task arithmetic), declared or not; and the
  declared parents of a merge. The writer tries their mean and a linear predictor
  fitted chunk by chunk (``storage.linear_fit``);

and the writer keeps the smallest encoding chunk by chunk. Tensors the index knows
nothing about (other dtypes, versions written before the index existed) are coded
against the declared parent's. With ``base="parent"``, only the declared parents are
used, as before automatic bases existed.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import TYPE_CHECKING

from ..catalog.records import TensorRow
from ..errors import UnsupportedInput
from ..storage.policy import LinearOnly
from ..storage.similarity import (
    UNRELATED,
    TensorSketch,
    candidates,
    delta_coded,
    relative_distances,
    sketches_of,
)

if TYPE_CHECKING:
    import numpy as np

    from .engine import VersionStore
    from .write import Link

__all__ = ["BASE_MODES", "check_base", "choose_bases"]

BASE_MODES = ("auto", "parent")
NEARLY = 1.25  # a declared parent this close to the best candidate is taken instead
MERGE_GAIN = 0.5  # a combination this much closer than the closest single is a merge
SPARSE = 1 / 16  # share of exact zeros from which the second closest is tried too
# A version stored as deltas costs a decode more to code against (for the writer) and
# to load (for every reader of the new version): it must be this much closer to win.
DEPTH_COST = 1.5

Choices = dict[str, list[list[TensorRow]]]


def check_base(base: object) -> str:
    if base not in BASE_MODES:
        raise UnsupportedInput(f"base must be one of {', '.join(BASE_MODES)}, not {base!r}")
    return str(base)


def _merge_fit(
    new: dict[str, TensorSketch], members: list[int], sk: dict
) -> tuple[int, ...] | None:
    """Two or three of ``members`` that a linear combination of reproduces the new model
    much better than any single member does (a weighted average, a task-arithmetic
    merge: base + sum of l_i (ft_i - base)), fitted by least squares on the sketches,
    which are linear in the weights: the members and their coefficients, or None."""
    import numpy as np

    best: tuple[float, tuple[int, ...], np.ndarray] | None = None
    # the names each member has a comparable sketch of
    have = {v: {n for n, s in new.items() if n in sk[v] and sk[v][n].numel == s.numel}
            for v in members}  # fmt: skip
    for size in (2, 3):
        for combo in combinations(members, size):
            common = set.intersection(*(have[v] for v in combo))
            names = [n for n in new if n in common]
            if 2 * len(names) < len(new):
                continue
            y = np.concatenate([new[n].sketch for n in names])
            norm2 = max(sum(new[n].norm2 for n in names), 1e-300)
            singles = [
                float(np.sum((y - np.concatenate([sk[v][n].sketch for n in names])) ** 2))
                for v in members
                if common <= have[v]
            ]
            x = np.stack([np.concatenate([sk[v][n].sketch for n in names]) for v in combo], 1)
            with np.errstate(all="ignore"):
                c, *_ = np.linalg.lstsq(x, y, rcond=None)
                r = y - x @ c
                d = float(np.dot(r, r)) / norm2
                single = min(singles) / norm2
            if not np.isfinite(d) or not d < MERGE_GAIN * single:
                continue
            if best is None or d < best[0] * (0.5 if size > len(best[1]) else 1.0):
                best = (d, combo, c)  # a third member must halve what two leave
    return None if best is None else (best[1], best[2])


def _distances(
    new: dict[str, TensorSketch], pool: list[int], sk: dict, rows: dict
) -> dict[int, dict[str, float]]:
    """``relative_distance`` of each new tensor to its namesake in each version of the
    pool (that holds both a sketch and a row of that name), a version at a time."""
    import numpy as np

    out: dict[int, dict[str, float]] = {}
    for vid in pool:
        names = [n for n in new if n in sk[vid] and n in rows[vid]]
        if not names:
            out[vid] = {}
            continue
        r = relative_distances(
            np.stack([new[n].sketch for n in names]),
            np.stack([sk[vid][n].sketch for n in names]),
            np.array([new[n].norm2 for n in names]),
            np.array([new[n].numel == sk[vid][n].numel for n in names]),
        )
        out[vid] = dict(zip(names, r.tolist(), strict=True))
    return out


def choose_bases(
    engine: VersionStore,
    new: dict[str, TensorSketch],
    links: list[Link],
    limit: int = 3,
    allowed: Callable[[int], bool] | None = None,
    known: dict[int, dict[str, TensorRow]] | None = None,
) -> tuple[Choices, dict[bytes, int]]:
    """Per tensor name, the groups of stored rows to code it against (one row: a delta
    or a cast; several: their mean and a fitted linear combination, or only the latter
    for a :class:`LinearOnly` group), and which version each of their chunks belongs to
    (to record the versions the writer did code against). A tensor left out is coded
    against the declared parents', as with ``base="parent"``.
    ``allowed``: which stored versions may be bases (a repack: only older ones).
    ``known``: tensor rows by name of versions the caller has read already (the
    declared parents'), by version id."""
    import numpy as np

    parent_ids = [pid for pid, _, _, _ in links]
    ranked = candidates(engine.catalog, new, limit=limit)
    if allowed is not None:
        ranked = [(vid, d) for vid, d in ranked if allowed(vid)]
        parent_ids = [pid for pid in parent_ids if allowed(pid)]
    pool = list(dict.fromkeys([vid for vid, _ in ranked] + parent_ids))
    if not pool:
        return {}, {}
    sk = sketches_of(engine.catalog, pool)
    deep = delta_coded(engine.catalog, pool)
    rows = {vid: (known or {}).get(vid) for vid in pool}
    for vid in pool:
        if rows[vid] is None:
            rows[vid] = {r.name: r for r in engine.tensor_rows(vid, state=True)}
    distances = _distances(new, pool, sk, rows)
    fitted = _merge_fit(new, pool, sk)
    merge, mean_too = None, False
    if fitted is not None:
        merge, coeffs = fitted
        mean_too = bool(np.all(np.abs(coeffs - 1 / len(merge)) < 0.05))
    first = parent_ids[0] if parent_ids else None
    choices: Choices = {}
    owners: dict[bytes, int] = {}
    for vid in sorted(pool):  # a chunk several versions hold: the oldest's
        for r in rows[vid].values():
            for c in r.chunk_ids:
                owners.setdefault(c, vid)
    for name, s in new.items():
        scored = sorted(
            (d * (DEPTH_COST if vid in deep else 1.0), vid != first, vid)
            for vid in pool
            if (d := distances[vid].get(name, UNRELATED)) < UNRELATED
        )
        if not scored:
            continue  # nothing to judge by: the writer takes the declared parents'
        best = scored[0][0]
        declared = next((d for d, _, vid in scored if vid == first), None)
        if declared is not None and declared <= NEARLY * best:
            chosen = [first]  # the declared parent is about as close: keep to it
        else:
            chosen = [scored[0][2]]
        if s.zero_share >= SPARSE:  # a zero mask may change which base codes smallest
            extra = ([first] if first is not None else []) + [vid for _, _, vid in scored]
            for vid in extra:
                if vid not in chosen and name in rows[vid] and len(chosen) < 2:
                    chosen.append(vid)
        groups = [[rows[vid][name]] for vid in chosen]
        if first is not None and name not in sk[first] and name in rows[first]:
            groups.append([rows[first][name]])  # a declared parent the index lacks
            chosen.append(first)
        declared_merge = tuple(parent_ids) if len(parent_ids) >= 2 else None
        if merge and declared_merge and set(declared_merge) <= set(merge):
            if len(merge) > len(declared_merge) or mean_too:
                declared_merge = None  # the fitted combination covers the declared one
        for mean_of, mean in ((declared_merge, True), (merge, mean_too)):
            if mean_of and all(name in rows[v] for v in mean_of):
                group = [rows[v][name] for v in mean_of]
                groups.append(group if mean else LinearOnly(group))
                chosen += list(mean_of)
        choices[name] = groups
    return choices, owners
