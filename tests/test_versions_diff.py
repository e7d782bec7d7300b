"""repo.diff, compare_tensors and architecture summaries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import modelgit as mg
from modelgit.versions.architecture import TensorInfo, architecture
from modelgit.versions.diff import Diff, compare_tensors, diff_versions


def base_sd() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sd = {}
    for i in range(3):
        sd[f"blocks.{i}.attn.weight"] = torch.randn(8, 8, generator=g)
        sd[f"blocks.{i}.attn.bias"] = torch.randn(8, generator=g)
    sd["head.weight"] = torch.randn(4, 8, generator=g)
    sd["scale"] = torch.ones(1)
    return sd


@pytest.fixture
def repo(tmp_path: Path) -> mg.Repository:
    r = mg.init(tmp_path / "repo")
    yield r
    r.close()


# -- compare_tensors ----------------------------------------------------------------------


def test_compare_same_dtype_counts_changed_bits() -> None:
    a = torch.tensor([1.0, 2.0, 0.0, float("nan"), 5.0])
    b = torch.tensor([1.0, 2.5, -0.0, float("nan"), 4.0])
    changed, max_abs, rel = compare_tensors(a, b)
    assert changed == 3  # 2.0->2.5, 0.0->-0.0 (bits differ), 5->4; NaN == NaN bitwise
    assert max_abs == pytest.approx(1.0)
    finite_a = torch.tensor([1.0, 2.0, 0.0, 5.0])
    assert rel == pytest.approx(math.sqrt(0.25 + 1.0) / float(finite_a.norm()))


def test_compare_identical() -> None:
    a = torch.randn(100)
    assert compare_tensors(a, a.clone()) == (0, 0.0, 0.0)


def test_compare_across_dtypes() -> None:
    a = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    b = a.to(torch.bfloat16)
    changed, max_abs, rel = compare_tensors(a, b)
    exact = (a.double() != b.double()).sum().item()
    assert changed == exact and changed > 900
    assert 0 < max_abs < 0.05 and 0 < rel < 0.01


def test_compare_integers_and_bools() -> None:
    a = torch.tensor([1, 2, 3], dtype=torch.int64)
    b = torch.tensor([1, 5, 3], dtype=torch.int64)
    assert compare_tensors(a, b)[:2] == (1, 3.0)
    x = torch.tensor([True, False, True])
    y = torch.tensor([True, True, True])
    assert compare_tensors(x, y)[0] == 1


def test_compare_zero_reference_and_all_nan() -> None:
    z = torch.zeros(4)
    assert compare_tensors(z, z + 1)[2] == math.inf
    n = torch.full((3,), float("nan"))
    assert compare_tensors(n, torch.ones(3)) == (3, None, None)
    with pytest.raises(ValueError, match="shapes"):
        compare_tensors(torch.zeros(2), torch.zeros(3))


def test_compare_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    import modelgit.versions.diff as d

    a = torch.randn(1000, generator=torch.Generator().manual_seed(2))
    b = a.clone()
    b[::7] += 0.5
    whole = compare_tensors(a, b)
    monkeypatch.setattr(d, "SLICE_ELEMENTS", 64)
    sliced = compare_tensors(a, b)
    assert sliced[0] == whole[0] and sliced[1] == whole[1]
    assert sliced[2] == pytest.approx(whole[2])


# -- architecture -------------------------------------------------------------------------


def test_architecture_tree_and_folding() -> None:
    sd = base_sd()
    arch = architecture(
        TensorInfo(k, "float32", tuple(v.shape), v.numel() * 4) for k, v in sd.items()
    )
    assert set(arch.children) == {"blocks", "head"}
    assert set(arch.params) == {"scale"}
    assert arch.numel == sum(v.numel() for v in sd.values())
    blocks = arch.children["blocks"]
    assert list(blocks.children) == ["0", "1", "2"]
    assert blocks.children["1"].children["attn"].name == "blocks.1.attn"
    text = "\n".join(arch.lines())
    assert "0..2 x3" in text  # three identical blocks folded
    assert "scale float32[1]" in text
    j = arch.to_json(max_depth=1)
    assert j["params"] == arch.numel and len(j["children"]) == 2


def test_architecture_does_not_fold_different_blocks() -> None:
    infos = [
        TensorInfo("layers.0.weight", "float32", (4, 4), 64),
        TensorInfo("layers.1.weight", "float32", (4, 8), 128),
    ]
    text = "\n".join(architecture(infos).lines())
    assert "x2" not in text and "0:" in text and "1:" in text


# -- repo.diff ----------------------------------------------------------------------------


def test_diff_kinds_of_change(repo: mg.Repository) -> None:
    a = base_sd()
    repo.add("a", a)
    b = dict(a)
    b["blocks.1.attn.weight"] = a["blocks.1.attn.weight"].clone()
    b["blocks.1.attn.weight"][0, :3] += 0.25
    b["blocks.2.attn.bias"] = a["blocks.2.attn.bias"].to(torch.float16)
    b["head.weight"] = torch.zeros(6, 8)
    del b["scale"]
    b["extra.weight"] = torch.ones(2, 2)
    repo.add("b", b, parents="a")
    d = repo.diff("a", "b")
    assert isinstance(d, Diff) and d.a == "a@1" and d.b == "b@1"
    assert [t.name for t in d.added] == ["extra.weight"]
    assert [t.name for t in d.removed] == ["scale"]
    ch = {c.name: c for c in d.changed}
    assert set(ch) == {"blocks.1.attn.weight", "blocks.2.attn.bias", "head.weight"}
    v = ch["blocks.1.attn.weight"]
    assert v.kinds == ("values",) and v.changed == 3
    assert v.max_abs == pytest.approx(0.25)
    ref = a["blocks.1.attn.weight"].double()
    assert v.rel_l2 == pytest.approx(math.sqrt(3 * 0.25**2) / float(ref.norm()), rel=1e-3)
    dt = ch["blocks.2.attn.bias"]
    assert dt.kinds == ("dtype",) and dt.new.dtype == "float16" and dt.max_abs < 0.01
    sh = ch["head.weight"]
    assert sh.kinds == ("shape",) and sh.changed is None
    assert sh.old.shape == (4, 8) and sh.new.shape == (6, 8)
    assert d.unchanged == len(a) - 1 - 3
    assert not d.identical and not d.same_architecture
    text = str(d)
    assert "+ extra.weight" in text and "- scale" in text and "shape [4, 8] -> [6, 8]" in text
    assert "architecture of a@1" in text
    j = json.loads(json.dumps(d.to_json(), allow_nan=False))
    assert j["changed"][0]["kinds"] and j["identical"] is False


def test_diff_identical_and_versions(repo: mg.Repository) -> None:
    sd = base_sd()
    repo.add("m", sd)
    with pytest.warns(mg.ModelgitWarning, match="changes nothing"):
        repo.commit("m", sd)
    d = repo.diff("m@1", "m@2")
    assert d.identical and d.unchanged == len(sd) and d.same_architecture
    assert "identical" in str(d) and "architecture: same" in str(d)
    sd2 = {k: v + 1 for k, v in sd.items()}
    repo.commit("m", sd2)
    d = repo.diff("m@1", "m")
    assert d.b == "m@3" and len(d.changed) == len(sd)
    assert all(c.changed == c.numel for c in d.changed)


def test_diff_across_models_and_tags(repo: mg.Repository) -> None:
    sd = base_sd()
    repo.add("x", sd)
    repo.add("y", {k: v.bfloat16() for k, v in sd.items()}, parents="x", relation="cast")
    repo.tag("y", "cast")
    d = repo.diff("x", "cast")
    assert d.same_architecture and len(d.changed) == len(sd)
    assert all(c.kinds == ("dtype",) for c in d.changed)


def test_diff_without_values_decodes_nothing(
    repo: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd = base_sd()
    repo.add("a", sd)
    repo.add("b", {k: v * 2 for k, v in sd.items()})

    def no_load(*a: object, **k: object) -> None:
        raise AssertionError("decoded a tensor")

    monkeypatch.setattr(repo, "load", no_load)
    d = repo.diff("a", "b", values=False)
    assert len(d.changed) == len(sd) and all(c.changed is None for c in d.changed)


def test_diff_batches_and_progress(repo: mg.Repository) -> None:
    sd = base_sd()
    repo.add("a", sd)
    repo.add("b", {k: v + 0.5 for k, v in sd.items()})
    seen: list[tuple[int, int]] = []
    d = diff_versions(repo, "a", "b", progress=lambda done, total: seen.append((done, total)),
                      batch_bytes=64)  # fmt: skip
    assert len(seen) == len(sd)
    total = 2 * sum(v.numel() * 4 for v in sd.values())
    assert seen[-1] == (total, total)
    assert all(c.max_abs == pytest.approx(0.5) for c in d.changed)


def test_diff_unknown_refs(repo: mg.Repository) -> None:
    repo.add("a", base_sd())
    with pytest.raises(mg.UnknownModel):
        repo.diff("a", "nope")
    with pytest.raises(mg.UnknownVersion):
        repo.diff("a@2", "a")
