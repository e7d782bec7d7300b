"""A small, real lineage graph built on the spot: ``modelgit demo`` and :func:`build_demo`.

Tiny MLPs (64 -> 128 -> 64 -> 10) are trained on scikit-learn's digits data set (or,
where scikit-learn is absent, on synthetic 64-dimensional blobs) in a few seconds on a
CPU, and stored as a family::

    base (v1, then v2: continued training)
     ├─ ft-low   [finetune on digits 0-4]   ─┐
     ├─ ft-high  [finetune on digits 5-9]   ─┴─ merged [merge: average of the two]
     └─ base-bf16 [cast of base v2 to bfloat16]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .repository import Repository, init

__all__ = ["DemoResult", "build_demo", "load_data"]

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]
HIDDEN = (128, 64)
BATCH = 128
SEED = 0


@dataclass
class DemoResult:
    repo: Repository
    accuracy: dict[str, float] = field(default_factory=dict)  # ref -> held-out accuracy
    data: str = "digits"


def load_data(
    seed: int = SEED,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(x_train, y_train, x_test, y_test, source): digits, or synthetic blobs without sklearn."""
    gen = torch.Generator().manual_seed(seed)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        centers = torch.randn(10, 64, generator=gen) * 2.0
        y = torch.randint(0, 10, (1500,), generator=gen)
        x = centers[y] + torch.randn(1500, 64, generator=gen) * 1.5
        source = "synthetic blobs (scikit-learn not installed)"
    else:
        d = load_digits()
        x = torch.tensor(d.data, dtype=torch.float32) / 16.0
        y = torch.tensor(d.target, dtype=torch.int64)
        source = "scikit-learn digits"
    perm = torch.randperm(len(y), generator=gen)
    x, y = x[perm], y[perm]
    cut = int(len(y) * 0.75)
    return x[:cut], y[:cut], x[cut:], y[cut:], source


def _mlp() -> nn.Sequential:
    a, b = HIDDEN
    return nn.Sequential(nn.Linear(64, a), nn.ReLU(), nn.Linear(a, b), nn.ReLU(), nn.Linear(b, 10))


def _train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, seed: int
) -> None:
    """Adam on minibatches of 128 (a few milliseconds a step on one CPU thread)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (BATCH,), generator=gen)
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def _sd(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def build_demo(
    path: str | os.PathLike[str],
    *,
    log: Callable[[str], None] | None = None,
    seed: int = SEED,
) -> DemoResult:
    """Create a repository at ``path`` holding a small, freshly trained model family."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest and plays well with others
    try:
        return _build(Path(path), log or (lambda _msg: None), seed)
    finally:
        torch.set_num_threads(old_threads)


def _build(path: Path, say: Callable[[str], None], seed: int) -> DemoResult:
    torch.manual_seed(seed)
    xtr, ytr, xte, yte, source = load_data(seed)
    repo = init(path)
    res = DemoResult(repo, data=source)
    say(f"data: {source}, {len(ytr)} training and {len(yte)} test samples")

    def store(name: str, model: nn.Module, message: str, **kw: object) -> None:
        acc = _accuracy(model, xte, yte)
        meta = {"accuracy": round(acc, 4), "data": source}
        if kw.pop("commit", False):
            v = repo.commit(name, _sd(model), message=message, metadata=meta)
        else:
            v = repo.add(name, _sd(model), message=message, metadata=meta, **kw)  # type: ignore[arg-type]
        res.accuracy[v.ref] = acc
        say(f"stored {v.ref:<14} accuracy {acc:.3f}  {message}")

    base = _mlp()
    _train(base, xtr, ytr, steps=150, lr=1e-2, seed=seed)
    store("base", base, "trained from scratch, 150 steps")

    low, high = ytr < 5, ytr >= 5
    fts = {}
    for name, mask, what in (("ft-low", low, "digits 0-4"), ("ft-high", high, "digits 5-9")):
        m = _mlp()
        m.load_state_dict(base.state_dict())
        _train(m, xtr[mask], ytr[mask], steps=40, lr=1e-3, seed=seed + 1)
        fts[name] = m
        store(name, m, f"fine-tuned on {what}", parents="base", relation="finetune")

    _train(base, xtr, ytr, steps=50, lr=3e-3, seed=seed + 2)
    store("base", base, "continued training, 50 more steps", commit=True)

    cast = _mlp()
    cast.load_state_dict(base.state_dict())
    cast = cast.to(torch.bfloat16)
    acc_model = _mlp()
    acc_model.load_state_dict({k: v.float() for k, v in cast.state_dict().items()})
    acc = _accuracy(acc_model, xte, yte)
    v = repo.add(
        "base-bf16",
        _sd(cast),
        parents="base",
        relation="cast",
        message="bfloat16 cast of base@2",
        metadata={"accuracy": round(acc, 4), "data": source},
    )
    res.accuracy[v.ref] = acc
    say(f"stored {v.ref:<14} accuracy {acc:.3f}  bfloat16 cast of base@2")

    merged = _mlp()
    lo, hi = fts["ft-low"].state_dict(), fts["ft-high"].state_dict()
    merged.load_state_dict({k: (lo[k] + hi[k]) / 2 for k in lo})
    store("merged", merged, "uniform average of ft-low and ft-high",
          parents=["ft-low", "ft-high"], relation="merge")  # fmt: skip
    return res
