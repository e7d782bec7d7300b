"""Fitting linear predictors to merged chunks (modelgit.storage.linear_fit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelgit import codec
from modelgit.dtypes import by_name
from modelgit.storage.linear_fit import fit_linear


def raw(t: torch.Tensor) -> memoryview:
    return memoryview(t.contiguous().view(torch.uint8).numpy().copy())


def family(dtype: torch.dtype, n: int = 1 << 18, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, generator=g) * 0.05
    a = base + 1e-3 * torch.randn(n, generator=g)
    b = base + 1e-3 * torch.randn(n, generator=g)
    return [x.to(dtype) for x in (base, a, b)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_weighted_average_is_recovered(dtype: torch.dtype) -> None:
    _, a, b = family(dtype)
    merged = 0.3 * a + 0.7 * b
    fit = fit_linear(raw(merged), by_name(str(dtype).removeprefix("torch.")), [raw(a), raw(b)])
    assert fit is not None and fit.useful
    assert fit.predictor == codec.LINEAR_SEQ and fit.coeffs == (0.3, 0.7)
    assert fit.bits == 0.0 < fit.single_bits


def test_task_arithmetic_is_recovered_in_any_order() -> None:
    base, a, b = family(torch.float32, seed=1)
    merged = base + 0.7 * (a - base) + 0.4 * (b - base)
    fit = fit_linear(raw(merged), by_name("float32"), [raw(a), raw(base), raw(b)])
    assert fit is not None and fit.predictor == codec.LINEAR_ANCHORED
    assert fit.order == (1, 0, 2) and fit.coeffs == (0.0, 0.7, 0.4)
    assert fit.bits == 0.0


def test_unrelated_and_degenerate_chunks_are_not_useful() -> None:
    base, a, b = family(torch.float32, seed=2)
    g = torch.Generator().manual_seed(9)
    sibling = base + 1e-3 * torch.randn(base.shape, generator=g)  # no merge of a and b
    fit = fit_linear(raw(sibling), by_name("float32"), [raw(a), raw(b)])
    assert fit is not None and not fit.useful
    same = fit_linear(raw(base), by_name("float32"), [raw(base), raw(base)])
    assert same is None or not same.useful  # identical bases: nothing to fit
    assert fit_linear(raw(a), by_name("float32"), [raw(a)]) is None  # one base
    ints = torch.arange(100, dtype=torch.int64)
    assert fit_linear(raw(ints), by_name("int64"), [raw(ints), raw(ints)]) is None


def test_nan_and_inf_do_not_break_the_fit() -> None:
    _, a, b = family(torch.float32, seed=3)
    a[::97] = float("nan")
    b[::89] = float("inf")
    merged = 0.25 * a + 0.75 * b
    fit = fit_linear(raw(merged), by_name("float32"), [raw(a), raw(b)])
    assert fit is not None and fit.coeffs == (0.25, 0.75)
    assert np.isfinite(fit.bits)
