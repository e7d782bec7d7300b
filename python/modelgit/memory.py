"""The memory budget: how much working memory long operations may hold at once.

A repository has one budget (``mg.open(path, memory_budget="256MiB")``, or the
``MODELGIT_MEMORY_BUDGET`` environment variable; default :data:`DEFAULT_MEMORY_BUDGET`).
It is split between the cache of decoded delta bases and the window of chunks in
flight on the write and streaming read paths (add, commit, export, load_into). Source
files are read a chunk at a time, so adding a checkpoint larger than memory keeps the
process within the budget plus a constant (the interpreter, torch, per-thread scratch
buffers). ``load`` returns whole tensors,
so it holds the model it returns on top of the budget.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InvalidArgument
from .units import human_bytes, parse_bytes

__all__ = ["DEFAULT_MEMORY_BUDGET", "MIN_MEMORY_BUDGET", "MemoryBudget"]

DEFAULT_MEMORY_BUDGET = 512 << 20
MIN_MEMORY_BUDGET = 32 << 20
ENV = "MODELGIT_MEMORY_BUDGET"


@dataclass(frozen=True)
class MemoryBudget:
    """A budget in bytes and its split: ``cache`` for decoded delta bases, ``window``
    for chunks in flight (source bytes, encoded records, decoded output)."""

    total: int

    @classmethod
    def resolve(cls, value: MemoryBudget | int | str | None) -> MemoryBudget:
        """The budget from an explicit value, else the environment, else the default."""
        if isinstance(value, MemoryBudget):
            return value
        if value is None:
            value = os.environ.get(ENV) or DEFAULT_MEMORY_BUDGET
        try:
            total = parse_bytes(value)
        except ValueError as exc:
            raise InvalidArgument(f"memory budget: {exc}") from None
        if total < MIN_MEMORY_BUDGET:
            raise InvalidArgument(
                f"memory budget {human_bytes(total)} is below the minimum "
                f"{human_bytes(MIN_MEMORY_BUDGET)}"
            )
        return cls(total)

    @property
    def cache(self) -> int:
        return self.total // 2

    @property
    def window(self) -> int:
        return self.total // 4

    def window_chunks(self, chunk_bytes: int, workers: int, per_chunk: int = 3) -> int:
        """Chunks in flight: enough to keep ``workers`` busy, few enough that
        ``per_chunk`` buffers of ``chunk_bytes`` each fit in the window."""
        fit = self.window // max(1, per_chunk * chunk_bytes)
        return max(2, min(4 * max(1, workers), fit))

    def __str__(self) -> str:
        return human_bytes(self.total)
