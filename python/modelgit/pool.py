"""The worker pool of a repository, and the one way to give up on its jobs.

The native core and zstandard release the GIL, so chunk work runs on threads. A
:class:`WorkerPool` is a ``ThreadPoolExecutor`` that says how many workers it has
(``workers``), which the write and read paths use to size their windows of chunks in
flight. :func:`settle_jobs` is the failure path of every such window.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["WorkerPool", "default_workers", "settle_jobs"]


def default_workers() -> int:
    """Threads a repository decodes and encodes with by default: the CPUs, at most 8."""
    return min(8, os.cpu_count() or 1)


class WorkerPool(ThreadPoolExecutor):
    """A thread pool that knows its size."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or default_workers())
        super().__init__(max_workers=self.workers, thread_name_prefix="modelgit")


def settle_jobs(inflight: Iterable[tuple]) -> None:
    """After a failure: cancel queued jobs and wait for running ones, so no job touches
    a buffer or store its caller has given up. ``inflight`` holds (future, ...) tuples."""
    jobs = [f for f, *_ in inflight]
    for f in jobs:
        f.cancel()
    for f in jobs:
        if not f.cancelled():
            try:
                f.result()
            except BaseException:  # noqa: S110 - the first error is the one raised
                pass
