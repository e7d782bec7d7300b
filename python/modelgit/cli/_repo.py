"""Finding the repository a command acts on: ``--repo PATH`` (or a ``postgresql://``
URL of a team repository), ``$MODELGIT_REPO``, or the current folder and its parents,
like git."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..catalog import is_team_url
from ..errors import NotARepository
from ..repository import FORMAT_FILE, Repository
from ..repository import open as open_repository

__all__ = ["find_root", "open_repo"]


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding a repository format file."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / FORMAT_FILE).is_file():
            return folder
    return None


def open_repo(args: Any, **options: Any) -> Repository:
    """The repository a command acts on; ``options`` go to ``modelgit.open``
    (``read_only=True``...)."""
    path = getattr(args, "repo", None) or os.environ.get("MODELGIT_REPO") or None
    if path is not None and is_team_url(path):
        return open_repository(path, **options)  # its objects URL is in its catalog
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise NotARepository(
                f"{p} does not exist; create a repository with `modelgit init {p}`"
            )
        return open_repository(p, **options)
    root = find_root(Path.cwd())
    if root is None:
        raise NotARepository(
            f"not a modelgit repository (nor any parent folder): {Path.cwd()}; "
            "run `modelgit init` or pass --repo PATH"
        )
    return open_repository(root, **options)


@contextmanager
def importable_cwd() -> Iterator[None]:
    """Let ``mymodule:fn`` name a module of the current folder, as ``python -m`` does
    (tests, creators, merge strategies given by import path)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
