"""The "small" zoo: MLPs trained from scratch on scikit-learn's digits data set.

Fast (a few seconds on two CPU cores) and fully deterministic; the test suite
builds it into a temporary folder. Models are ``64 -> 256 -> 128 -> 10`` ReLU MLPs
(about 50k parameters, ~200 KB in fp32) with keys ``layers.<i>.weight`` and
``layers.<i>.bias``, plus one smaller distilled student (``64 -> 64 -> 10``).

Lineage (``relation`` in brackets)::

    base ─┬─ ft-low [finetune] ─ ft-low-2 [finetune] ─ ft-low-3 [finetune]
          ├─ ft-high [finetune]
          ├─ ft-noisy [finetune, higher lr, noisy inputs]
          ├─ ft-frozen [finetune, first layer frozen]
          ├─ base-v2 [version of base: continued training]
          ├─ base-bf16 [cast]
          ├─ base-pruned [prune: 50% of each weight matrix, masked recovery]
          ├─ base-lora [lora: rank-8 update merged into the weights]
          └─ student [distill]
    ft-low + ft-high ─ merge-low-high [merge: uniform average]

``evaluate_small(state_dict)`` returns held-out accuracy and is importable as
``"modelgit.zoo.small:evaluate_small"``.

``build_small_zoo(out, seed=s)`` builds the same lineage with other random streams: every
seed of the build (initialisation, data order, fine-tune subsets, LoRA init) is shifted
by ``1000 * s``; the held-out split stays the same. ``seed=0`` is the reference zoo.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import _util
from ._util import StateDict

__all__ = ["MODEL_NAMES", "build_small_zoo", "evaluate_small", "mlp_from_state_dict"]

BUILD_VERSION = 1
SEED = 0
HIDDEN = (256, 128)
STUDENT_HIDDEN = (64,)
TEST_SIZE = 0.25

MODEL_NAMES = (
    "base",
    "ft-low",
    "ft-high",
    "ft-noisy",
    "ft-frozen",
    "base-v2",
    "ft-low-2",
    "ft-low-3",
    "base-bf16",
    "base-pruned",
    "merge-low-high",
    "base-lora",
    "student",
)


class MLP(nn.Module):
    def __init__(self, sizes: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.relu(x)
        return x


def mlp_from_state_dict(state_dict: StateDict) -> MLP:
    """An fp32 :class:`MLP` whose layer sizes are read from ``state_dict``."""
    n = 0
    while f"layers.{n}.weight" in state_dict:
        n += 1
    if n == 0:
        raise ValueError("state dict has no 'layers.0.weight'")
    sizes = [state_dict["layers.0.weight"].shape[1]]
    sizes += [state_dict[f"layers.{i}.weight"].shape[0] for i in range(n)]
    model = MLP(tuple(sizes))
    model.load_state_dict({k: v.to(torch.float32) for k, v in state_dict.items()})
    return model


@functools.lru_cache(maxsize=1)
def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype("float32") / 16.0
    y = digits.target.astype("int64")
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    return (
        torch.from_numpy(xtr),
        torch.from_numpy(ytr),
        torch.from_numpy(xte),
        torch.from_numpy(yte),
    )


def evaluate_small(state_dict: StateDict) -> float:
    """Accuracy of a digits MLP (any float dtype) on the held-out split."""
    _, _, xte, yte = _data()
    model = mlp_from_state_dict(state_dict).eval()
    with torch.no_grad():
        pred = model(xte).argmax(dim=1)
    return float((pred == yte).double().mean())


def _subset(y: torch.Tensor, keep: Callable[[torch.Tensor], torch.Tensor], frac: float, seed: int):
    """Indices of all samples where ``keep(y)`` plus a ``frac`` share of the others."""
    g = torch.Generator().manual_seed(seed)
    sel = keep(y) | (torch.rand(len(y), generator=g) < frac)
    return sel.nonzero().squeeze(1)


def _train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    seed: int,
    noise: float = 0.0,
    batch: int = 64,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    after_step: Callable[[], None] | None = None,
) -> None:
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    loss_fn = loss_fn or (lambda out, idx: nn.functional.cross_entropy(out, y[idx]))
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), batch):
            idx = perm[start : start + batch]
            xb = x[idx]
            if noise:
                xb = xb + noise * torch.randn(xb.shape, generator=g)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), idx)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step()
    model.eval()


def _state(model: nn.Module) -> StateDict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _finetune(parent: StateDict, seed: int, **kw: Any) -> StateDict:
    x, y = kw.pop("x"), kw.pop("y")
    torch.manual_seed(seed)
    model = mlp_from_state_dict(parent)
    freeze = kw.pop("freeze_first", False)
    if freeze:
        for p in model.layers[0].parameters():
            p.requires_grad_(False)
    _train(model, x, y, seed=seed, **kw)
    return _state(model)


def _build(config: dict[str, Any]) -> list[tuple[str, StateDict, dict[str, Any]]]:
    xtr, ytr, _, _ = _data()
    shift = 1000 * int(config["seed"])

    def sd_(seed: int) -> int:  # every random stream of the build, shifted by the zoo seed
        return seed + shift

    out: list[tuple[str, StateDict, dict[str, Any]]] = []
    sds: dict[str, StateDict] = {}

    def add(name: str, sd: StateDict, parent: Any, relation: str | None, **meta: Any) -> None:
        sds[name] = sd
        entry: dict[str, Any] = {"name": name, "parent": parent, "relation": relation}
        if relation == "version":
            entry["version_of"] = parent
        out.append((name, sd, entry | {"meta": meta}))

    # Base model, trained from scratch.
    torch.manual_seed(sd_(SEED))
    base = MLP((xtr.shape[1], *HIDDEN, 10))
    _train(base, xtr, ytr, epochs=30, lr=1e-3, seed=sd_(SEED))
    add("base", _state(base), None, None, desc="trained from scratch", epochs=30, lr=1e-3)

    low = _subset(ytr, lambda t: t < 5, 0.2, seed=sd_(11))
    high = _subset(ytr, lambda t: t >= 5, 0.2, seed=sd_(12))
    even = _subset(ytr, lambda t: t % 2 == 0, 0.2, seed=sd_(13))

    def ft(name, parent, seed, idx=None, desc="", relation="finetune", **kw):
        x, y = (xtr, ytr) if idx is None else (xtr[idx], ytr[idx])
        seed = sd_(seed)
        sd = _finetune(sds[parent], seed, x=x, y=y, **kw)
        add(name, sd, parent, relation, desc=desc, seed=seed, **kw)

    ft("ft-low", "base", 101, low, "digits 0-4 + 20% of the rest", epochs=5, lr=1e-3)
    ft("ft-high", "base", 102, high, "digits 5-9 + 20% of the rest", epochs=10, lr=3e-4)
    ft("ft-noisy", "base", 103, None, "all digits, noisy inputs", epochs=5, lr=3e-3, noise=0.1)
    ft(
        "ft-frozen", "base", 104, even, "even digits + 20%, layer 0 frozen",
        epochs=5, lr=1e-3, freeze_first=True,
    )  # fmt: skip
    ft(
        "base-v2", "base", 105, None, "continued training of base",
        epochs=10, lr=5e-4, relation="version",
    )  # fmt: skip
    ft("ft-low-2", "ft-low", 106, None, "all digits, noisy inputs", epochs=5, lr=5e-4, noise=0.05)
    ft("ft-low-3", "ft-low-2", 107, None, "all digits, low lr", epochs=5, lr=2e-4)

    add("base-bf16", _util.cast(sds["base"], torch.bfloat16), "base", "cast", dtype="bfloat16")

    # Magnitude pruning: 50% of each weight matrix, then masked recovery training.
    weight_keys = [k for k, v in sds["base"].items() if v.ndim == 2]
    masks = _util.magnitude_masks(sds["base"], weight_keys, 0.5)
    torch.manual_seed(sd_(108))
    pruned = mlp_from_state_dict(_util.apply_masks(sds["base"], masks))
    params = dict(pruned.named_parameters())

    def reapply() -> None:
        with torch.no_grad():
            for k, m in masks.items():
                params[k].mul_(m)

    _train(pruned, xtr, ytr, epochs=3, lr=3e-4, seed=sd_(108), after_step=reapply)
    add(
        "base-pruned", _state(pruned), "base", "prune",
        desc="50% magnitude pruning per weight matrix + 3 masked epochs", sparsity=0.5,
    )  # fmt: skip

    add(
        "merge-low-high", _util.average(sds["ft-low"], sds["ft-high"]),
        ["ft-low", "ft-high"], "merge", desc="uniform average",
    )  # fmt: skip

    # LoRA: rank-8 adapters on every linear layer, trained, then merged into W.
    torch.manual_seed(sd_(109))
    lora_model = mlp_from_state_dict(sds["base"])
    gen = torch.Generator().manual_seed(sd_(109))
    adapters = [_util.LoRALinear(layer, rank=8, alpha=16.0, gen=gen) for layer in lora_model.layers]
    lora_model.layers = nn.ModuleList(adapters)
    _train(lora_model, xtr, ytr, epochs=10, lr=3e-3, seed=sd_(109), noise=0.1)
    lora_sd = dict(sds["base"])
    with torch.no_grad():
        for i, ad in enumerate(adapters):
            lora_sd[f"layers.{i}.weight"] = ad.merged_weight().detach().clone()
    add("base-lora", lora_sd, "base", "lora", rank=8, alpha=16.0, epochs=10, lr=3e-3)

    # Distillation into a smaller student (different shapes: nothing to dedup).
    teacher = mlp_from_state_dict(sds["base"])
    with torch.no_grad():
        soft = torch.softmax(teacher(xtr) / 2.0, dim=1)
    torch.manual_seed(sd_(110))
    student = MLP((xtr.shape[1], *STUDENT_HIDDEN, 10))

    def kd_loss(out: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(out / 2.0, dim=1)
        kd = nn.functional.kl_div(logp, soft[idx], reduction="batchmean") * 4.0
        return 0.5 * kd + 0.5 * nn.functional.cross_entropy(out, ytr[idx])

    _train(student, xtr, ytr, epochs=30, lr=2e-3, seed=sd_(110), loss_fn=kd_loss)
    add("student", _state(student), "base", "distill", hidden=list(STUDENT_HIDDEN), temperature=2.0)

    assert tuple(n for n, _, _ in out) == MODEL_NAMES
    return out


def _config(seed: int = SEED) -> dict[str, Any]:
    return {
        "zoo": "small",
        "build_version": BUILD_VERSION,
        "seed": seed,
        "hidden": list(HIDDEN),
        "test_size": TEST_SIZE,
        "torch": torch.__version__.split("+")[0],
    }


def build_small_zoo(out_dir: str | Path, *, force: bool = False, seed: int = SEED) -> Path:
    """Build the small zoo into ``out_dir`` (created if needed); return the folder.
    ``seed``: another draw of the same lineage (see the module docstring; 0: the
    reference zoo).

    Reuses an existing build whose manifest records the same config hash unless
    ``force``. Deterministic: the same torch version gives the same bytes.
    """
    out = Path(out_dir)
    config = _config(_util.check_seed(seed))
    chash = _util.config_hash(config)
    if not force and _util.cached(out, chash) is not None:
        return out
    out.mkdir(parents=True, exist_ok=True)
    # Tiny matrices: one thread is fastest, and several stall badly on a busy machine.
    with _util.torch_threads(1):
        built = _build(config)
        evals = [evaluate_small(sd) for _, sd, _ in built]
    entries = []
    for (name, sd, entry), acc in zip(built, evals, strict=True):
        entry["eval"] = _util.eval_entry(acc)
        entry["meta"] = entry["meta"] | {"zoo": "small", "config_hash": chash}
        _util.save_state_dict(sd, out / f"{name}.safetensors", metadata={"zoo": "small"})
        entries.append(entry)
    _util.write_manifest(out, entries)
    return out
