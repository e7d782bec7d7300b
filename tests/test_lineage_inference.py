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
    # measured: precision 1.0, recall 0.92 (the distilled student has another
    # architecture: no shared tensor); base-v2 is nearer five descendants of base than
    # base itself, but lies beyond them as a sibling would
    assert precision >= 0.95 and recall >= 0.9, (got, truth)
    assert ("base", "base-v2") in got
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


# -- infer_edges: one test per signal ----------------------------------------------------
def _randn(g: torch.Generator, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.randn(s, generator=g) / s[-1] ** 0.5 for k, s in shapes.items()}


def _step(sd: dict, g: torch.Generator, sigma: float, keys=None) -> dict:
    """A random-walk training step (noise of ``sigma`` x RMS) on ``keys`` (default all)."""
    return {
        k: v + sigma * v.pow(2).mean().sqrt() * torch.randn(v.shape, generator=g)
        if keys is None or k in keys else v.clone()
        for k, v in sd.items()
    }  # fmt: skip


SHAPES = {"emb": (300, 64), "q": (64, 64), "v": (64, 64), "out": (10, 64)}


def _by_pair(edges):
    return {(e.parent, e.child): e for e in edges}


def _save_folder(path: Path, sd: dict, config: dict | None = None, readme: str | None = None,
                 metadata: dict | None = None) -> Path:  # fmt: skip
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path / "model.safetensors"),
              metadata=metadata)  # fmt: skip
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    if readme is not None:
        (path / "README.md").write_text(readme)
    return path


def test_metadata_fixes_edges_and_direction(tmp_path):
    from modelgit.lineage.inference import infer_edges

    g = torch.Generator().manual_seed(1)
    base = _save_folder(tmp_path / "base-model", _randn(g, SHAPES), {"_name_or_path": "base-model"})
    # unrelated weights: only the metadata links them
    cfg = _save_folder(tmp_path / "by-config", _randn(g, SHAPES),
                       {"_name_or_path": "some-org/base-model"})  # fmt: skip
    readme = "---\nlicense: mit\nbase_model: by-config\n---\n# card\n"
    card = _save_folder(tmp_path / "by-card", _randn(g, SHAPES), readme=readme)
    meta = tmp_path / "by-meta.safetensors"
    from safetensors.torch import save_file

    save_file(_randn(g, SHAPES), str(meta), metadata={"base_model": "base-model"})
    merged = _save_folder(tmp_path / "merged", _randn(g, SHAPES),
                          readme="---\nbase_model:\n- by-config\n- by-card\n"
                                 "base_model_relation: merge\n---\n")  # fmt: skip
    models = {"base-model": base, "by-config": cfg, "by-card": card, "by-meta": meta,
              "merged": merged}  # fmt: skip
    edges = _by_pair(infer_edges(models))
    for pair in [("base-model", "by-config"), ("by-config", "by-card"), ("base-model", "by-meta"),
                 ("by-config", "merged"), ("by-card", "merged")]:  # fmt: skip
        assert pair in edges, (pair, edges)
        assert edges[pair].directed and edges[pair].confidence >= 0.85, edges[pair]
    assert edges[("by-card", "merged")].relation == "merge"
    assert len(edges) == 5  # a self-reference (base-model's own _name_or_path) is no edge


def test_frozen_layers_find_the_parent():
    """A model that changed one tensor a lot, in a direction a sibling also took, is
    nearer the sibling by distance; the tensors it holds bit for bit with the base win."""
    g = torch.Generator().manual_seed(2)
    base = _randn(g, SHAPES)
    change = 0.3 * base["q"].pow(2).mean().sqrt() * torch.randn(64, 64, generator=g)
    sib = _step(base, g, 0.02)
    sib["q"] = base["q"] + 0.6 * change
    frozen = {k: v.clone() for k, v in base.items()}
    frozen["q"] = base["q"] + change  # only q trained: the rest bit-identical to base
    others = {f"ft{i}": _step(base, g, 0.03) for i in range(2)}
    got = infer_lineage({"base": base, "sib": sib, "frozen": frozen, **others})
    assert ("base", "frozen") in got and ("sib", "frozen") not in got, got
    assert ("base", "sib") in got


def test_casts_are_found_and_directed():
    from modelgit.lineage.inference import infer_edges

    g = torch.Generator().manual_seed(3)
    base = _randn(g, SHAPES)
    ft = _step(base, g, 0.05)
    models = {
        "base": base,
        "ft": ft,
        "ft2": _step(base, g, 0.05),
        "base-bf16": {k: v.to(torch.bfloat16) for k, v in base.items()},
        "ft-fp16": {k: v.to(torch.float16) for k, v in ft.items()},
    }
    edges = _by_pair(infer_edges(models))
    for pair in [("base", "base-bf16"), ("ft", "ft-fp16")]:
        assert pair in edges, edges
        e = edges[pair]
        assert e.relation == "cast" and e.directed and e.confidence >= 0.9, e
    # a rounded copy of ft differs from base by about as much as ft itself, but only ft
    # rounds to it exactly
    assert ("base", "ft-fp16") not in edges


def test_pruning_finds_the_exact_parent():
    from modelgit.lineage.inference import infer_edges
    from modelgit.zoo import _util

    g = torch.Generator().manual_seed(4)
    base = _randn(g, SHAPES)
    ft = _step(base, g, 0.05)
    drift = {k: v - ft[k] for k, v in _step(ft, g, 0.02).items()}
    ft_v2 = {k: v + drift[k] for k, v in ft.items()}  # continued training of ft
    masks = _util.magnitude_masks(ft, ["q", "v", "emb"], 0.5)
    # retrained with the mask kept, in much the direction ft-v2 went: on the weights it
    # kept, the pruned model is nearer ft-v2 than ft; only ft's magnitudes explain its zeros
    pruned = _util.apply_masks({k: v + 0.8 * drift[k] for k, v in ft.items()}, masks)
    edges = _by_pair(infer_edges({"base": base, "ft": ft, "ft-v2": ft_v2, "pruned": pruned,
                                  "other": _step(base, g, 0.05)}))  # fmt: skip
    assert ("ft", "pruned") in edges, edges
    e = edges[("ft", "pruned")]
    assert e.relation == "prune" and e.directed and e.confidence >= 0.9, e


def test_chain_direction():
    """base <- ft <- ft-v2 <- ft-v3 (continued training: smaller steps), siblings off base."""
    g = torch.Generator().manual_seed(5)
    base = _randn(g, SHAPES)
    models = {"base": base}
    models["ft"] = _step(base, g, 0.06)
    models["ft-v2"] = _step(models["ft"], g, 0.03)
    models["ft-v3"] = _step(models["ft-v2"], g, 0.02)
    for i in range(3):
        models[f"sib{i}"] = _step(base, g, 0.05)
    got = infer_lineage(models)
    for pair in [("base", "ft"), ("ft", "ft-v2"), ("ft-v2", "ft-v3")]:
        assert pair in got, got
    # without siblings too: the norm growth along the chain orients it
    chain = {k: models[k] for k in ("base", "ft", "ft-v2", "ft-v3")}
    assert set(infer_lineage(chain)) == {("base", "ft"), ("ft", "ft-v2"), ("ft-v2", "ft-v3")}


def test_weak_evidence_leaves_the_edge_undirected():
    """Two models, no cast, pruning, head or metadata, and the same norm: the pair is
    found, the direction is not decided, and infer_lineage leaves it out."""
    from modelgit.lineage.inference import infer_edges

    g = torch.Generator().manual_seed(6)
    a = _randn(g, SHAPES)
    b = _step(a, g, 0.05)
    b = {k: v * (a[k].norm() / v.norm()) for k, v in b.items()}  # no norm growth
    edges = infer_edges({"a": a, "b": b})
    assert len(edges) == 1
    assert not edges[0].directed and edges[0].confidence < 0.6, edges
    assert infer_lineage({"a": a, "b": b}) == []


def test_repository_input(repo):
    from modelgit.lineage.inference import infer_edges

    g = torch.Generator().manual_seed(7)
    base = _randn(g, SHAPES)
    ft = _step(base, g, 0.05)
    repo.add("base", base)
    repo.add("ft", _step(base, g, 0.5))
    repo.commit("ft", ft)  # the latest version counts
    repo.add("ft-bf16", {k: v.to(torch.bfloat16) for k, v in ft.items()})
    repo.add("other", _step(base, g, 0.05))
    edges = _by_pair(infer_edges(repo))
    assert ("ft", "ft-bf16") in edges and edges[("ft", "ft-bf16")].relation == "cast"
    assert ("base", "ft") in edges and ("base", "other") in edges
    assert set(infer_lineage(repo)) <= set(edges)
    with pytest.raises(UnsupportedInput):
        infer_edges(42)


def test_structural_divergence_ranks_relatives() -> None:
    """The structural diff's divergence, offered to inference as a signal: a fine-tune
    is closer to its base than an unrelated model, a renamed copy is the base itself."""
    from modelgit.lineage.signals import structural_divergence

    g = torch.Generator().manual_seed(4)
    base = {f"layers.{i}.weight": torch.randn(64, 64, generator=g) for i in range(4)}
    tuned = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    other = {k: torch.randn(v.shape, generator=g) for k, v in base.items()}
    renamed = {k.replace("layers.", "blocks."): v for k, v in base.items()}
    assert structural_divergence(base, renamed) == 0.0
    assert 0.0 < structural_divergence(base, tuned) < 0.05
    assert structural_divergence(base, other) == pytest.approx(1.0)
