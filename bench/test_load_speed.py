"""pytest-benchmark regressions of the load path (not part of the test suite).

Run: ``pytest bench/test_load_speed.py --benchmark-only`` (compare runs with
``--benchmark-autosave`` and ``--benchmark-compare``). A ~90 MB family of synthetic
relatives: a standalone model, a fine-tune, a fine-tune of it and a bf16 cast; loads
from the decoder (also after ``repack`` made the chain a star), from the checkout
cache, and into an existing module. The figures that
go in docs/benchmarks.md come from ``bench/bench_load.py`` (fresh processes, medians).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import modelgit as mg


def _family() -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    base = {f"w{i}": torch.randn(1536, 1536, generator=g) * 0.02 for i in range(10)}

    def tuned(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v + 1e-4 * torch.randn(v.shape, generator=g) for k, v in sd.items()}

    ft = tuned(base)
    ft2 = tuned(ft)
    return {"base": base, "ft": ft, "ft2": ft2,
            "cast": {k: v.to(torch.bfloat16) for k, v in ft2.items()}}  # fmt: skip


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    path = tmp_path_factory.mktemp("load") / "repo"
    sds = _family()
    with mg.init(path) as repo:
        repo.add("base", sds["base"])
        repo.add("ft", sds["ft"], parents="base")
        repo.add("ft2", sds["ft2"], parents="ft")
        repo.add("cast", sds["cast"], parents="ft2", relation="cast")
    yield path, sds


@pytest.fixture(scope="module")
def repacked(family: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The family after ``repack``: base, ft and ft2 one star (each at most one delta)."""
    import shutil

    path = tmp_path_factory.mktemp("repacked") / "repo"
    shutil.copytree(family[0], path)
    with mg.open(path) as repo:
        repo.repack()
    return path


@pytest.mark.parametrize("ref", ["base", "ft", "ft2", "cast"])
def test_load_after_repack(benchmark, family: tuple[Path, dict], repacked: Path, ref: str) -> None:  # noqa: ANN001
    with mg.open(repacked, memory_budget="64MiB") as repo:

        def load() -> dict[str, torch.Tensor]:
            repo.store.cache.clear()
            return repo.load(ref)

        got = benchmark(load)
    assert all(torch.equal(got[k], v) for k, v in family[1][ref].items())


@pytest.mark.parametrize("ref", ["base", "ft", "ft2", "cast"])
def test_load(benchmark, family: tuple[Path, dict], ref: str) -> None:  # noqa: ANN001
    path, sds = family
    with mg.open(path, memory_budget="64MiB") as repo:

        def load() -> dict[str, torch.Tensor]:
            repo.store.cache.clear()
            return repo.load(ref)

        got = benchmark(load)
    assert all(torch.equal(got[k], v) for k, v in sds[ref].items())


def test_load_from_the_checkout_cache(
    benchmark, family: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    monkeypatch.setenv("MODELGIT_CACHE", str(tmp_path))
    path, sds = family
    with mg.open(path, checkout_cache="1GiB") as repo:
        repo.load("ft2")
        got = benchmark(repo.load, "ft2")
    assert all(torch.equal(got[k], v) for k, v in sds["ft2"].items())


def test_load_into(benchmark, family: tuple[Path, dict]) -> None:  # noqa: ANN001
    """A delta-coded fine-tune straight into the parameters of an existing module."""
    path, sds = family
    module = torch.nn.Module()
    for k, v in sds["ft"].items():
        module.register_parameter(k, torch.nn.Parameter(torch.zeros_like(v)))
    with mg.open(path, memory_budget="64MiB") as repo:

        def load_into() -> None:
            repo.store.cache.clear()
            repo.load_into(module, "ft")

        benchmark(load_into)
    assert all(torch.equal(getattr(module, k), v) for k, v in sds["ft"].items())
