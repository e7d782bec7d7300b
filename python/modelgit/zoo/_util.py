"""Helpers shared by the zoo builders (torch-side; not part of the public API)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from . import MANIFEST_NAME, load_manifest

StateDict = dict[str, torch.Tensor]


def check_seed(seed: object) -> int:
    """A zoo's ``seed`` (an integer >= 0; 0 draws the reference zoo), else ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return seed


def config_hash(config: dict[str, Any]) -> str:
    """Short, stable hash of a JSON-serialisable build configuration."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached(out_dir: Path, chash: str) -> list[dict[str, Any]] | None:
    """The manifest of ``out_dir`` if it validates and every entry has ``chash``."""
    try:
        entries = load_manifest(out_dir)
    except (OSError, ValueError):
        return None
    if not entries or any(e.get("meta", {}).get("config_hash") != chash for e in entries):
        return None
    return entries


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(str(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors creates 0600 files; use the umask
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_state_dict(sd: StateDict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a state dict to safetensors atomically (tensors made contiguous, unshared)."""
    clean = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    _atomic_write(path, lambda p: save_file(clean, p, metadata=metadata))


def write_manifest(out_dir: Path, entries: list[dict[str, Any]]) -> None:
    """Write ``manifest.json`` atomically, then validate it against the folder."""
    text = json.dumps(entries, indent=2) + "\n"

    def write(p: str) -> None:
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)

    _atomic_write(out_dir / MANIFEST_NAME, write)
    load_manifest(out_dir)


def cast(sd: StateDict, dtype: torch.dtype) -> StateDict:
    """Floating tensors cast to ``dtype``; others (e.g. int64 buffers) unchanged."""
    return {k: v.to(dtype) if v.is_floating_point() else v.clone() for k, v in sd.items()}


def average(a: StateDict, b: StateDict) -> StateDict:
    """Uniform average ``(a + b) / 2`` of floating tensors (others must be equal)."""
    if a.keys() != b.keys():
        raise ValueError("cannot average state dicts with different keys")
    out: StateDict = {}
    for k, va in a.items():
        vb = b[k]
        if va.is_floating_point():
            out[k] = (va + vb) / 2
        else:
            if not torch.equal(va, vb):
                raise ValueError(f"non-float tensor {k!r} differs between merge parents")
            out[k] = va.clone()
    return out


def weighted_average(a: StateDict, b: StateDict, wa: float) -> StateDict:
    """``wa * a + (1 - wa) * b`` of floating tensors (others must be equal)."""
    if a.keys() != b.keys():
        raise ValueError("cannot merge state dicts with different keys")
    out: StateDict = {}
    for k, va in a.items():
        vb = b[k]
        if va.is_floating_point():
            out[k] = wa * va + (1.0 - wa) * vb
        else:
            if not torch.equal(va, vb):
                raise ValueError(f"non-float tensor {k!r} differs between merge parents")
            out[k] = va.clone()
    return out


def magnitude_masks(sd: StateDict, keys: Iterable[str], sparsity: float) -> StateDict:
    """Per-tensor magnitude masks: the ``ceil(sparsity * n)`` smallest |w| become 0."""
    masks: StateDict = {}
    for k in keys:
        w = sd[k]
        n_zero = math.ceil(sparsity * w.numel())
        flat = w.detach().abs().flatten()
        # Stable ordering makes ties (and therefore the mask) deterministic.
        order = torch.argsort(flat, stable=True)
        mask = torch.ones_like(flat, dtype=torch.bool)
        mask[order[:n_zero]] = False
        masks[k] = mask.view_as(w)
    return masks


def apply_masks(sd: StateDict, masks: StateDict) -> StateDict:
    out = dict(sd)
    for k, m in masks.items():
        out[k] = torch.where(m, sd[k], torch.zeros((), dtype=sd[k].dtype))
    return out


def zero_fraction(tensors: Iterable[torch.Tensor]) -> float:
    zeros = total = 0
    for t in tensors:
        zeros += int((t == 0).sum())
        total += t.numel()
    return zeros / max(total, 1)


class LoRALinear(torch.nn.Module):
    """``y = x W^T + b + (alpha / r) * x A^T B^T`` with ``W``, ``b`` frozen."""

    def __init__(self, base: torch.nn.Linear, rank: int, alpha: float, gen: torch.Generator):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.scale = alpha / rank
        a = torch.randn(rank, base.in_features, generator=gen) / base.in_features**0.5
        self.lora_a = torch.nn.Parameter(a)
        self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    def merged_weight(self) -> torch.Tensor:
        return self.base.weight + (self.lora_b @ self.lora_a) * self.scale


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def eval_entry(value: float) -> dict[str, Any]:
    return {"metric": "accuracy", "value": round(float(value), 6), "higher_is_better": True}
