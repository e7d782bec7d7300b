"""repo.load_into: chunks decoded straight into a module, with load_state_dict semantics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modelgit as mg
from conftest import assert_same_state, damage_a_pack


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(300, 700), nn.LayerNorm(700), nn.Linear(700, 10))
    return net


def test_fills_parameters_in_place(repo: mg.Repository) -> None:
    src = _net(1)
    repo.add("net", src)
    dst = _net(2)
    ptrs = {k: t.data_ptr() for k, t in dst.state_dict().items()}
    seen: list[tuple[int, int]] = []
    result = repo.load_into(dst, "net", progress=lambda d, t: seen.append((d, t)))
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert_same_state(dst.state_dict(), src.state_dict())
    assert {k: t.data_ptr() for k, t in dst.state_dict().items()} == ptrs  # no new storage
    assert all(p.requires_grad for p in dst.parameters())
    total = sum(t.numel() * t.element_size() for t in src.state_dict().values())
    assert seen[0] == (0, total) and seen[-1] == (total, total)


def test_what_cannot_be_filled_is_refused(repo: mg.Repository) -> None:
    """A module on the meta device has no storage (copying into it did nothing and
    reported success); a state_dict is no module. Both: a clear error, nothing loaded."""
    src = _net(1)
    repo.add("net", src)
    with torch.device("meta"):
        ghost = _net(2)
    with pytest.raises(mg.UnsupportedInput, match="meta device.*to_empty"):
        repo.load_into(ghost, "net")
    ghost.to_empty(device="cpu")  # as the message says: then it fills
    repo.load_into(ghost, "net")
    assert_same_state(ghost.state_dict(), src.state_dict())
    with pytest.raises(mg.UnsupportedInput, match="fills an nn.Module, not a dict"):
        repo.load_into({}, "net")  # type: ignore[arg-type]


def test_dtype_and_layout_conversions(repo: mg.Repository) -> None:
    src = _net(1)
    repo.add("net", src)
    dst = _net(2).to(torch.float64)
    with torch.no_grad():  # a non-contiguous parameter is filled through a copy
        w = torch.empty(700, 300, dtype=torch.float64).t()
        dst[0].weight = nn.Parameter(w.t())
    repo.load_into(dst, "net")
    for k, t in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], t.to(torch.float64)), k


def test_strict_errors_write_nothing(repo: mg.Repository) -> None:
    repo.add("net", _net(1))
    other = nn.Sequential(nn.Linear(300, 700), nn.LayerNorm(700), nn.Linear(700, 11))
    before = {k: t.clone() for k, t in other.state_dict().items()}
    with pytest.raises(RuntimeError, match="size mismatch for 2.weight"):
        repo.load_into(other, "net")
    assert_same_state(other.state_dict(), before)
    extra = nn.Sequential(nn.Linear(300, 700), nn.LayerNorm(700), nn.Linear(700, 10), nn.ReLU())
    extra.add_module("4", nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "4.weight"'):
        repo.load_into(extra, "net")
    result = repo.load_into(extra, "net", strict=False)
    assert result.missing_keys == ["4.weight", "4.bias"] and result.unexpected_keys == []


def test_tied_weights_and_custom_loaders(repo: mg.Repository) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.head = nn.Linear(16, 50, bias=False)
            self.head.weight = self.emb.weight

    a = Tied()
    repo.add("tied", a)
    b = Tied()
    repo.load_into(b, "tied")
    assert b.head.weight is b.emb.weight
    assert torch.equal(b.emb.weight, a.emb.weight)

    class Custom(nn.Linear):
        calls = 0

        def _load_from_state_dict(self, *args, **kw):  # type: ignore[no-untyped-def]
            Custom.calls += 1
            super()._load_from_state_dict(*args, **kw)

    c = Custom(4, 3)
    repo.add("custom", c)
    d = Custom(4, 3)
    repo.load_into(d, "custom")
    assert Custom.calls == 1  # went through load_state_dict, custom logic and all
    assert torch.equal(d.weight, c.weight)


def test_corrupt_chunk_raises(repo: mg.Repository) -> None:
    repo.add("net", _net(1))
    damage_a_pack(repo, 0x55)
    with pytest.raises(mg.errors.CorruptObject):
        repo.load_into(_net(2), "net")
