"""Automatic storage bases: with or without declared parents, each tensor is coded
against the closest stored one (the similarity index), across dtypes, merges found."""

from __future__ import annotations

import pytest
import torch

import modelgit as mg
from conftest import assert_same_state


def base_model(seed: int = 0, n: int = 200_000) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(n, generator=g) * 0.05,
        "v": torch.randn(n // 2, generator=g) * 0.05,
        "b": torch.randn(300, generator=g) * 0.01,
        "ids": torch.arange(100, dtype=torch.int64),
    }


def tuned(sd: dict[str, torch.Tensor], seed: int, scale: float = 2e-4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: v + scale * torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
        for k, v in sd.items()
    }


def standalone_cost(sd: dict[str, torch.Tensor], tmp_path) -> int:  # noqa: ANN001
    with mg.init(tmp_path / "alone") as r:
        r.add("m", sd)
        assert r.last_write is not None
        return r.last_write.new_bytes


def test_a_relative_added_without_parents_is_stored_as_a_delta(
    repo: mg.Repository, tmp_path
) -> None:  # noqa: ANN001
    base = base_model()
    ft = tuned(base, 1)
    repo.add("base", base)
    v = repo.add("ft", ft)  # no parents declared
    assert v.parents == ()  # the lineage record stays empty
    assert [b.ref for b in repo.storage_bases("ft")] == ["base@1"]
    assert repo.last_write is not None and repo.last_write.delta > 0
    assert repo.last_write.new_bytes < 0.8 * standalone_cost(ft, tmp_path)
    assert_same_state(repo.load("ft"), ft)


def test_base_parent_keeps_to_declared_parents(repo: mg.Repository, tmp_path) -> None:  # noqa: ANN001
    base = base_model()
    repo.add("base", base)
    ft = tuned(base, 2)
    repo.add("ft", ft, base="parent")
    assert repo.last_write is not None and repo.last_write.delta == 0
    assert repo.storage_bases("ft") == []
    with pytest.raises(mg.UnsupportedInput, match="base must be"):
        repo.add("x", ft, base="nearest")


def test_the_closest_wins_over_a_wrongly_declared_parent(repo: mg.Repository) -> None:
    a, b = base_model(1), base_model(2)
    repo.add("a", a)
    repo.add("b", b)
    ft = tuned(b, 3)
    repo.add("ft", ft, parents="a")  # declared wrongly: the lineage record says a
    assert [p.model for p in repo.version("ft").parents] == ["a"]
    assert [v.model for v in repo.storage_bases("ft")] == ["b"]
    assert repo.last_write is not None and repo.last_write.delta > 0
    assert_same_state(repo.load("ft"), ft)


def test_a_cast_is_found_across_dtypes(repo: mg.Repository) -> None:
    base = base_model()
    repo.add("base", base)
    cast = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in base.items()}
    repo.add("bf16", cast)  # no parent: the index pairs it with its float32 source
    assert repo.last_write is not None and repo.last_write.new_bytes < 2000
    assert_same_state(repo.load("bf16"), cast)


def test_an_undeclared_merge_is_found(repo: mg.Repository) -> None:
    base = base_model()
    a, b = tuned(base, 4, 1e-2), tuned(base, 5, 1e-2)
    repo.add("base", base)
    repo.add("a", a)
    repo.add("b", b)
    merged = {k: ((a[k] + b[k]) / 2 if a[k].is_floating_point() else a[k]) for k in a}
    repo.add("merged", merged)
    assert repo.last_write is not None and repo.last_write.new_bytes < 3000
    assert {v.model for v in repo.storage_bases("merged")} >= {"a", "b"}
    assert_same_state(repo.load("merged"), merged)


@pytest.mark.parametrize("declared", [False, True])
@pytest.mark.parametrize("kind", ["weighted", "task arithmetic", "bf16 weighted"])
def test_weighted_merges_cost_almost_nothing(
    repo: mg.Repository, tmp_path, kind: str, declared: bool
) -> None:  # noqa: ANN001
    """A weighted average and a task-arithmetic merge, declared or not, are coded as a
    fitted linear combination of the stored models: a few % of a standalone copy."""
    base = base_model()
    a, b = tuned(base, 8, 1e-2), tuned(base, 9, 1e-2)
    if kind.startswith("bf16"):
        base, a, b = ({k: v.to(torch.bfloat16) if v.is_floating_point() else v
                       for k, v in m.items()} for m in (base, a, b))  # fmt: skip
    for name, sd in (("base", base), ("a", a), ("b", b)):
        repo.add(name, sd)
    if kind == "task arithmetic":
        merged = {k: base[k] + 0.7 * (a[k] - base[k]) + 0.4 * (b[k] - base[k])
                  if a[k].is_floating_point() else a[k] for k in a}  # fmt: skip
    else:
        merged = {k: 0.3 * a[k] + 0.7 * b[k] if a[k].is_floating_point() else a[k] for k in a}
    repo.add("merged", merged, parents=["a", "b"] if declared else None, relation="merge")
    assert repo.last_write is not None
    assert repo.last_write.new_bytes < 0.05 * standalone_cost(merged, tmp_path)
    assert {v.model for v in repo.storage_bases("merged")} >= {"a", "b"}
    assert_same_state(repo.load("merged"), merged)


def test_a_pruned_model_is_never_stored_larger_than_standalone(
    repo: mg.Repository, tmp_path
) -> None:  # noqa: ANN001
    """Pruned, then retrained far from its parent: each chunk keeps the cheapest of the
    masked delta, the plain delta and standalone coding."""
    base = base_model()
    pruned = {}
    for k, v in tuned(base, 10, 0.5).items():  # retraining moved every survivor far
        if v.is_floating_point():
            v = v.clone()
            v[v.abs() < v.abs().median()] = 0
        pruned[k] = v
    repo.add("base", base)
    repo.add("pruned", pruned, parents="base", relation="prune")
    assert repo.last_write is not None
    assert repo.last_write.new_bytes <= standalone_cost(pruned, tmp_path)
    assert_same_state(repo.load("pruned"), pruned)


def test_unrelated_models_are_stored_standalone(repo: mg.Repository) -> None:
    repo.add("a", base_model(1))
    repo.add("b", base_model(2))
    assert repo.storage_bases("b") == []
    assert repo.last_write is not None and repo.last_write.delta == 0


def test_removing_a_base_keeps_its_dependents_readable(repo: mg.Repository) -> None:
    base = base_model()
    ft = tuned(base, 6)
    repo.add("base", base)
    repo.add("ft", ft)
    repo.remove("base")
    repo.gc()
    assert repo.storage_bases("ft") == []  # the record went with the version
    assert_same_state(repo.load("ft"), ft)
    assert repo.fsck().ok


def test_pulled_versions_join_the_receivers_index(repo: mg.Repository, tmp_path) -> None:  # noqa: ANN001
    base = base_model()
    repo.add("base", base)
    with mg.init(tmp_path / "other") as other:
        other.pull(repo)
        ft = tuned(base, 7)
        other.add("ft", ft)  # no parents: the pulled base is found
        assert [v.ref for v in other.storage_bases("ft")] == ["base@1"]
        assert_same_state(other.load("ft"), ft)
