"""Progress reporting: long operations accept ``progress=fn`` called as fn(done, total)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressFn", "Counter", "ENV", "progress_off", "progress_wanted"]

ENV = "MODELGIT_PROGRESS"  # "0": never draw progress; "1": draw it even off a terminal

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


def progress_off() -> bool:
    """Whether the user turned every progress display off (``MODELGIT_PROGRESS=0``)."""
    return os.environ.get(ENV, "") == "0"


def progress_wanted(stream: TextIO) -> bool:
    """Whether to draw progress on ``stream``: ``MODELGIT_PROGRESS=0`` never, ``=1``
    always, else only on a terminal."""
    if progress_off():
        return False
    try:
        return os.environ.get(ENV, "") == "1" or stream.isatty()
    except (AttributeError, ValueError):
        return False
