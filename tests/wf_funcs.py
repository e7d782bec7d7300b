"""Test, factory and creation functions for the workflow tests, named by import path
(``"wf_funcs:mean_w"``): pytest puts this folder on ``sys.path``; subprocesses get it
through ``PYTHONPATH``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

CALLS: list[str] = []  # names of the functions called, in order
FAIL: set[str] = set()  # markers that make `flaky` raise
INTERRUPT: set[str] = set()  # markers that make `flaky` raise KeyboardInterrupt


@pytest.fixture(autouse=True)
def reset_state() -> Iterator[None]:
    """Autouse fixture of the workflow test modules (``_reset = wf_funcs.reset_state``)."""
    CALLS.clear()
    FAIL.clear()
    INTERRUPT.clear()
    yield
    FAIL.clear()
    INTERRUPT.clear()


def tiny(w: float, b: float = 0.0, n: int = 4) -> dict[str, torch.Tensor]:
    """A tiny state_dict shaped like nn.Linear(n, 1)."""
    return {"weight": torch.full((1, n), float(w)), "bias": torch.tensor([float(b)])}


# -- tests: fn(model) -> float | bool ----------------------------------------------------
def mean_w(sd: dict[str, torch.Tensor]) -> float:
    CALLS.append("mean_w")
    return float(sd["weight"].mean())


def loss(sd: dict[str, torch.Tensor]) -> float:
    """Loss-like: distance of the weights from 1 (lower is better)."""
    return float((sd["weight"] - 1).abs().mean())


def drift(sd: dict[str, torch.Tensor]) -> float:
    """Loss-like: distance of the weights from 16 (lower is better)."""
    return float((sd["weight"] - 16).abs().mean())


def bias_nonnegative(sd: dict[str, torch.Tensor]) -> bool:
    return bool(sd["bias"].item() >= 0)


def tensor_metric(sd: dict[str, torch.Tensor]) -> torch.Tensor:
    return sd["weight"].sum()


def broken(sd: dict[str, torch.Tensor]) -> float:
    raise RuntimeError("the evaluation data is missing")


def not_a_number(sd: dict[str, torch.Tensor]) -> float:
    return float("nan")


def returns_text(sd: dict[str, torch.Tensor]) -> str:
    return "fine"


def module_output(module: torch.nn.Module) -> float:
    assert isinstance(module, torch.nn.Linear) and not module.training
    with torch.no_grad():
        return float(module(torch.ones(1, 4)).item())


# -- model factories: fn() -> nn.Module --------------------------------------------------
def linear() -> torch.nn.Module:
    return torch.nn.Linear(4, 1)


# -- creation functions: fn(parents, **args) -> state_dict -------------------------------
def finetune(parents: dict[str, dict[str, torch.Tensor]], shift: float = 0.5) -> dict:
    """The single parent's weights plus ``shift``."""
    CALLS.append("finetune")
    (sd,) = parents.values()
    return {k: v + shift for k, v in sd.items()}


def average(parents: dict[str, dict[str, torch.Tensor]]) -> dict:
    """A merge: the mean of the parents' weights."""
    CALLS.append("average")
    sds = list(parents.values())
    return {k: sum(sd[k] for sd in sds) / len(sds) for k in sds[0]}


def first_row(parents: dict[str, dict[str, torch.Tensor]]) -> dict:
    """A creator that changes every tensor's shape (a bug a cascade must catch)."""
    (sd,) = parents.values()
    return {k: v.reshape(-1)[:3].clone() for k, v in sd.items()}


def flaky(parents: dict[str, dict[str, torch.Tensor]], marker: str, shift: float = 1.0) -> dict:
    """Like finetune, but raises while ``marker`` is in FAIL (or INTERRUPT)."""
    CALLS.append(f"flaky:{marker}")
    if marker in INTERRUPT:
        raise KeyboardInterrupt
    if marker in FAIL:
        raise RuntimeError(f"training {marker} diverged")
    (sd,) = parents.values()
    return {k: v + shift for k, v in sd.items()}
