"""``modelgit bench``: the storage-footprint harness of ``modelgit.bench``."""

from __future__ import annotations

from typing import Any

from ..bench.cli import DESCRIPTION, EPILOG, cmd_bench, configure
from ._command import command

__all__ = ["register"]


def register(sub: Any) -> None:
    p = command(
        sub,
        "bench",
        cmd_bench,
        help="measure the storage footprint of a model zoo under each strategy",
        description=DESCRIPTION,
        epilog=EPILOG,
        repo=False,
        json=False,
    )
    configure(p)
