"""Lineage inference from tensor sketches (modelgit.lineage.inference)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from modelgit.errors import UnsupportedInput
from modelgit.lineage.inference import _edmonds, infer_lineage
from modelgit.zoo import load_manifest, parents_of


@pytest.fixture(scope="module")
def small_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelgit.zoo.small import build_small_zoo

    return build_small_zoo(tmp_path_factory.mktemp("zoo") / "small")


def precision_recall(got: list[tuple[str, str]], truth: set[tuple[str, str]]) -> tuple:
    tp = len(set(got) & truth)
    return tp / max(1, len(got)), tp / max(1, len(truth))


def test_small_zoo(small_zoo):
    man = load_manifest(small_zoo)
    truth = {(p, e["name"]) for e in man for p in parents_of(e)}
    got = infer_lineage({e["name"]: small_zoo / e["file"] for e in man})
    precision, recall = precision_recall(got, truth)
    # measured: precision 0.92, recall 0.85 (the distilled student has another
    # architecture; base-v2 is closer to a fine-tune than to base)
    assert precision >= 0.9 and recall >= 0.8, (got, truth)
    assert ("ft-low", "merge-low-high") in got and ("ft-high", "merge-low-high") in got
    assert ("base", "base-bf16") in got and ("base", "base-pruned") in got
    assert ("base", "ft-low") in got and ("ft-low-2", "ft-low-3") in got
    assert len(got) == len(set(got))


def family(seed: int, size: int, width: int = 96) -> tuple[dict, set]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    shapes = {"a.weight": (width, width), "a.bias": (width,), "b.weight": (10, width)}
    models = {f"s{seed}-0": {n: torch.randn(s, generator=g) for n, s in shapes.items()}}
    truth = set()
    casts = set()
    for j in range(1, size):
        parent = rng.choice([m for m in models if m not in casts])
        name = f"s{seed}-{j}"
        if rng.random() < 0.15:
            models[name] = {k: v.to(torch.bfloat16) for k, v in models[parent].items()}
            casts.add(name)
        else:
            sigma = rng.uniform(0.01, 0.05)
            models[name] = {
                k: v.float() + sigma * torch.randn(v.shape, generator=g)
                for k, v in models[parent].items()
            }
        truth.add((parent, name))
    return models, truth


def test_synthetic_families():
    models, truth = {}, set()
    for seed in range(3):
        m, t = family(seed, 25)
        models.update(m)
        truth |= t
    # one unrelated model with the same layout, and one with another layout
    models["loner"] = {k: torch.randn(v.shape) for k, v in models["s0-0"].items()}
    models["other"] = {"x": torch.randn(50, 50)}
    got = infer_lineage(models)
    precision, recall = precision_recall(got, truth)
    assert precision >= 0.9 and recall >= 0.9, sorted(set(got) ^ truth)
    assert not any("loner" in e or "other" in e for e in got)
    children = [c for _, c in got]
    assert len(children) == len(set(children))  # a tree: one parent each
    for a, b in got:
        assert a.split("-")[0] == b.split("-")[0]  # never across families


def test_merges_are_found():
    g = torch.Generator().manual_seed(7)
    base = {"w": torch.randn(256, 256, generator=g), "b": torch.randn(256, generator=g)}
    a = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    b = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    c = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    m = {k: 0.3 * a[k] + 0.7 * b[k] for k in base}
    got = set(infer_lineage({"base": base, "a": a, "b": b, "c": c, "m": m}))
    assert got == {("base", "a"), ("base", "b"), ("base", "c"), ("a", "m"), ("b", "m")}


def test_inputs():
    assert infer_lineage({}) == []
    assert infer_lineage({"x": {"w": torch.ones(3)}}) == []
    with pytest.raises(UnsupportedInput):
        infer_lineage([("x", {})])  # type: ignore[arg-type]
    with pytest.raises(UnsupportedInput):
        infer_lineage({"x": "/nonexistent/model.safetensors"})
    # integer tensors are ignored; non-finite values do not break the norms
    d = {"w": torch.randn(40, 40), "i": torch.arange(5)}
    e = {"w": d["w"] + 0.01, "i": torch.arange(5)}
    e["w"][0, 0] = float("nan")
    assert infer_lineage({"d": d, "e": e}, k=16) in ([("d", "e")], [("e", "d")])


def brute_arborescence(W: np.ndarray, root: int) -> float:
    """Cheapest arborescence by enumerating every parent choice (tiny graphs only)."""
    import itertools

    n = W.shape[0]
    others = [v for v in range(n) if v != root]
    best = np.inf
    for choice in itertools.product(range(n), repeat=len(others)):
        parent = dict(zip(others, choice, strict=True))
        if any(parent[v] == v for v in others):
            continue
        ok = True
        for v in others:
            seen, x = set(), v
            while x != root:
                if x in seen:
                    ok = False
                    break
                seen.add(x)
                x = parent[x]
            if not ok:
                break
        if ok:
            best = min(best, sum(W[parent[v], v] for v in others))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_edmonds_is_optimal(seed):
    rng = np.random.default_rng(seed)
    n = 5
    W = rng.uniform(1, 10, (n, n))
    W[rng.uniform(size=(n, n)) < 0.2] = np.inf
    W[0, 1:] = 50.0  # the root reaches everyone
    parent = _edmonds(W, 0)
    assert parent[0] == -1
    cost = sum(W[parent[v], v] for v in range(1, n))
    assert cost == pytest.approx(brute_arborescence(W, 0))


def test_cli_infer(small_zoo, capsys):
    from modelgit.cli import main

    files = sorted(str(p) for p in small_zoo.glob("*.safetensors"))
    assert main(["infer", *files, "--json"]) == 0
    edges = json.loads(capsys.readouterr().out)
    assert {"parent": "base", "child": "base-bf16"} in edges
    assert main(["infer", files[0]]) == 0
    assert "no edges" in capsys.readouterr().out
    assert main(["infer", "/nonexistent.safetensors"]) == 1
