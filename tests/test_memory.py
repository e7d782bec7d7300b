"""The memory budget and size parsing (modelgit.memory, modelgit.units)."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelgit as mg
from modelgit.memory import DEFAULT_MEMORY_BUDGET, MemoryBudget
from modelgit.units import parse_bytes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512MiB", 512 << 20),
        ("5GB", 5 * 10**9),
        ("1.5 GiB", 3 << 29),
        ("100", 100),
        ("64kb", 64_000),
        (1234, 1234),
        ("2_048 B", 2048),
    ],
)
def test_parse_bytes(text: object, value: int) -> None:
    assert parse_bytes(text) == value  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "MiB", "12 parsecs", "-5MB", "nan", "inf GB", -1, True, 2.5])
def test_parse_bytes_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_bytes(bad)  # type: ignore[arg-type]


def test_budget_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELGIT_MEMORY_BUDGET", raising=False)
    with mg.init(tmp_path / "r") as repo:
        assert repo.budget.total == DEFAULT_MEMORY_BUDGET
        assert repo.store.cache.limit == DEFAULT_MEMORY_BUDGET // 2
    monkeypatch.setenv("MODELGIT_MEMORY_BUDGET", "96MiB")
    with mg.open(tmp_path / "r") as repo:
        assert repo.budget.total == 96 << 20
    with mg.open(tmp_path / "r", memory_budget="1GiB") as repo:  # explicit wins
        assert repo.budget.total == 1 << 30
    with pytest.raises(ValueError, match="below the minimum"):
        mg.open(tmp_path / "r", memory_budget="1MiB")
    with pytest.raises(ValueError, match="memory budget"):
        mg.open(tmp_path / "r", memory_budget="plenty")


def test_window_fits_the_budget() -> None:
    b = MemoryBudget(256 << 20)
    assert b.cache + b.window <= b.total
    # 512 KiB chunks, 3 buffers each: at most 64 MiB / 1.5 MiB = 42, capped at 4 per worker
    assert b.window_chunks(512 << 10, workers=2) == 8
    assert b.window_chunks(64 << 20, workers=2) == 2  # never below two in flight
    assert b.window_chunks(1 << 20, workers=8) == 21
