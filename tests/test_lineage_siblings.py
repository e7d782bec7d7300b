"""Child or sibling (modelgit.lineage.siblings): the step geometry measured on sketches,
and the families where a sibling that drifted the same way used to be taken for a child."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modelgit.lineage.inference import infer_edges, infer_lineage, sketch_model
from modelgit.lineage.siblings import StepGeometry

SHAPES = {"l0.weight": (256, 128), "l1.weight": (128, 128), "l1.bias": (128,)}


def _randn(g: torch.Generator, scale: float = 1.0, shapes: dict = SHAPES) -> dict:
    return {k: scale * torch.randn(s, generator=g) / math.sqrt(s[-1]) for k, s in shapes.items()}


def _plus(sd: dict, *terms: tuple[float, dict]) -> dict:
    """``sd + sum(w * d)`` over the keys of ``sd`` (a term may hold extra keys)."""
    return {k: v + sum(w * d[k] for w, d in terms if k in d) for k, v in sd.items()}


def _flat(sd: dict) -> np.ndarray:
    return np.concatenate([sd[k].double().numpy().ravel() for k in sorted(sd)])


def test_steps_match_the_exact_geometry():
    """The step ratio and cosine read from the sketches are the exact ones up to the
    sketch noise the geometry reports itself."""
    g = torch.Generator().manual_seed(1)
    gp = _randn(g)
    d, e = _randn(g, 0.05), _randn(g, 0.05)
    p = _plus(gp, (1.0, d))
    v = _plus(p, (0.6, d), (0.8, e))  # goes on in p's direction, and turns
    geo = StepGeometry([sketch_model(n, m) for n, m in (("gp", gp), ("p", p), ("v", v))])
    ratio, cos, sigma = geo.steps(0, 1, 2)
    s1, s2 = _flat(p) - _flat(gp), _flat(v) - _flat(p)
    exact_ratio = np.linalg.norm(s2) / np.linalg.norm(s1)
    exact_cos = s1 @ s2 / (np.linalg.norm(s1) * np.linalg.norm(s2))
    assert 0 < sigma < 0.05
    assert abs(cos - exact_cos) < 4 * sigma, (cos, exact_cos, sigma)
    assert abs(ratio - exact_ratio) < 0.05 * exact_ratio, (ratio, exact_ratio)
    assert geo.steps(0, 0, 1) is None  # a zero step has no direction


def test_independent_steps_are_a_chain():
    """A random walk (steps independent of each other, of any length) is never taken for
    siblings: its step cosines are ~0, within the sketch noise."""
    g = torch.Generator().manual_seed(2)
    a = _randn(g)
    b = _plus(a, (1.0, _randn(g, 0.03)))
    c = _plus(b, (1.0, _randn(g, 0.05)))  # longer than b's own step
    geo = StepGeometry([sketch_model(n, m) for n, m in (("a", a), ("b", b), ("c", c))])
    _, cos, sigma = geo.steps(0, 1, 2)
    assert abs(cos) < 4 * sigma
    assert not geo.sibling_like(0, 1, 2)


def _heads_family(seed: int, head: float = 0.1, far: float = 1.8, own: float = 0.015) -> dict:
    """A base without a head and task fine-tunes that add one (the same initial head per
    task, trained much harder than the body): ``far`` and ``near`` are two runs of one
    task with other learning rates, so ``far`` went ~1.8 times as far the same way."""
    g = torch.Generator().manual_seed(seed)
    base = _randn(g)
    head0 = {"head.weight": torch.randn(4, 128, generator=g) / math.sqrt(128)}

    def tuned(drift: dict, scale: float) -> dict:
        body = _plus(base, (scale, drift), (1.0, _randn(g, own)))
        h = {k: v + head * torch.randn(v.shape, generator=g) / math.sqrt(128)
                for k, v in head0.items()}  # fmt: skip
        return body | h

    task, other, third = _randn(g, 0.04), _randn(g, 0.04), _randn(g, 0.04)
    return {"base": base, "near": tuned(task, 1.0), "far": tuned(task, far),
            "other": tuned(other, 1.0), "third": tuned(third, 1.2)}  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_sibling_that_went_further_is_a_sibling(seed):
    """minilm-b's intent-a: two runs of one task from one base, one further than the other.
    The far run continues the near one's direction with a step as long as the near one's
    (measured on the tensors all three share: the base has no head): both are children
    of the base."""
    models = _heads_family(seed)
    got = set(infer_lineage(models))
    assert ("base", "far") in got and ("near", "far") not in got, got
    assert got == {("base", "near"), ("base", "far"), ("base", "other"), ("base", "third")}


def _drift_family(seed: int) -> dict:
    """An under-trained base whose fine-tunes all drift the same way (the small zoo):
    ``ft-a`` and ``ft-b`` are fine-tunes on other data, ``ft-a-2`` continues ``ft-a``,
    ``merge`` averages ``ft-a`` and ``ft-b``, and ``base-v2`` trains the base further
    the common way (a long step: nearer the merge than the base)."""
    g = torch.Generator().manual_seed(seed)
    base = _randn(g)
    drift = _randn(g, 0.04)

    def own(scale: float = 0.03) -> dict:
        return _randn(g, scale)

    models = {"base": base}
    models["ft-a"] = _plus(base, (1.0, drift), (1.0, own()))
    models["ft-b"] = _plus(base, (1.0, drift), (1.0, own()))
    models["ft-c"] = _plus(base, (0.5, drift), (1.0, own(0.04)))
    models["ft-a-2"] = _plus(models["ft-a"], (1.0, own(0.015)))
    models["merge"] = {k: (models["ft-a"][k] + models["ft-b"][k]) / 2 for k in base}
    models["base-v2"] = _plus(base, (1.9, drift), (1.0, own(0.02)))
    return models


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_model_beyond_a_merge_is_not_its_child(seed):
    """The small zoo's base-v2: nearer the merge of two fine-tunes than the base, but it
    lies beyond the merge with a step as long as the merge's own: not the merge's child."""
    models = _drift_family(seed)
    edges = {(e.parent, e.child): e for e in infer_edges(models)}
    assert ("merge", "base-v2") not in edges, edges
    assert ("base", "base-v2") in edges, edges
    got = set(infer_lineage(models))
    assert {("ft-a", "merge"), ("ft-b", "merge"), ("ft-a", "ft-a-2")} <= got, got


def _short_family(seed: int, along: float = 1.1, own: float = 0.03) -> dict:
    """``p`` and ``x`` are children of ``g`` drifting the same way (``x`` ``along`` times
    as far), each with an update of its own as large as ``p``'s; ``p-2`` is ``p``'s
    child."""
    g = torch.Generator().manual_seed(seed)
    base = _randn(g)
    drift = _randn(g, 0.05)
    models = {"g": base}
    models["p"] = _plus(base, (1.0, drift), (1.0, _randn(g, 0.03)))
    models["x"] = _plus(base, (along, drift), (1.0, _randn(g, own)))
    models["p-2"] = _plus(models["p"], (1.0, _randn(g, 0.02)))
    for i in range(2):
        models[f"o{i}"] = _plus(base, (1.0, _randn(g, 0.05)))
    return models


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_model_that_lacks_the_parents_own_step_is_not_its_child(seed):
    """The ancestor projection: a child keeps its parent's whole step from the
    grandparent. ``x`` drifted as far as ``p`` the common way but holds none of ``p``'s
    own update, so although it is nearer ``p`` than ``g`` it is ``g``'s child (the small
    zoo drawn with other seeds: ``base-v2`` under ``ft-low-2``, ``ft-low`` under
    ``ft-frozen``)."""
    models = _short_family(seed)
    geo_names = ["g", "p", "x"]
    geo = StepGeometry([sketch_model(n, models[n]) for n in geo_names])
    ratio, cos, _ = geo.steps(0, 1, 2)
    assert 1 + ratio * cos < 0.9  # x - g keeps under 90% of p - g
    got = set(infer_lineage(models))
    assert ("g", "x") in got and ("p", "x") not in got, got
    assert ("p", "p-2") in got, got
