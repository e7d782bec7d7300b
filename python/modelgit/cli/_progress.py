"""A tiny progress indicator for long commands, drawn only on a terminal.

On a TTY (stderr) it shows a bar when the total is known and a spinner with the
elapsed time otherwise; redrawn by a background thread a few times a second. When
stderr is not a terminal (pipes, CI, tests), or ``MODELGIT_PROGRESS=0``, it prints
nothing at all.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..progress import progress_wanted
from ..units import human_bytes

__all__ = ["Progress", "call_with_progress"]

_SPIN = "|/-\\"


class Progress:
    """``with Progress("adding base") as p: work(progress=p.update)``."""

    def __init__(
        self,
        desc: str,
        total: float | None = None,
        unit: str = "B",
        stream: TextIO | None = None,
        interval: float = 0.2,
    ) -> None:
        self.desc = desc
        self.total = total
        self.done = 0.0
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = progress_wanted(self.stream)
        self.interval = interval
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def update(self, done: float, total: float | None = None) -> None:
        """Record progress (absolute ``done``; ``total`` when it becomes known)."""
        self.done = done
        if total is not None:
            self.total = total

    def advance(self, n: float = 1) -> None:
        self.done += n

    def _fmt(self, x: float) -> str:
        return human_bytes(x) if self.unit == "B" else f"{x:.0f} {self.unit}"

    def _line(self) -> str:
        elapsed = time.monotonic() - self._start
        rate = f" {self._fmt(self.done / elapsed)}/s" if self.done and elapsed > 0.5 else ""
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 24)
            eta = ""
            if rate and 0 < frac < 1:
                eta = f" eta {elapsed * (1 - frac) / frac:.0f}s"
            return (
                f"{self.desc} [{bar:<24}] {frac * 100:3.0f}% "
                f"{self._fmt(self.done)}/{self._fmt(self.total)}{rate} {elapsed:.1f}s{eta}"
            )
        spin = _SPIN[int(elapsed / self.interval) % len(_SPIN)]
        done = f" {self._fmt(self.done)}" if self.done else ""
        return f"{self.desc} {spin}{done}{rate} {elapsed:.1f}s"

    def _draw(self, final: bool = False) -> None:
        line = self._line()
        pad = max(0, self._width - len(line))
        self._width = len(line)
        try:
            self.stream.write("\r" + line + " " * pad)
            if final:
                self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._draw(final=True)


def call_with_progress(fn: Callable[..., Any], *args: Any, progress: Progress, **kw: Any) -> Any:
    """Call ``fn``, handing it ``progress=progress.update`` if it takes such a hook."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "progress" in params:
        kw["progress"] = progress.update
    return fn(*args, **kw)
