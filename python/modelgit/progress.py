"""Progress reporting: long operations accept ``progress=fn`` called as fn(done, total)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressFn", "Counter"]

ProgressFn = Callable[[int, int], None]


class Counter:
    """Turns increments into ``progress(done, total)`` calls (a no-op without a hook)."""

    def __init__(self, progress: ProgressFn | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        if progress is not None:
            progress(0, total)

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)
