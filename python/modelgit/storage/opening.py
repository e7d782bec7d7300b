"""Opening a repository's backend from what a user names: a folder path, or the
``postgresql://`` URL of a team repository (with its object store)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..catalog import is_team_url
from ..errors import UnsupportedInput
from .backend import Backend, init_folder, open_folder

__all__ = ["open_backend"]


def open_backend(
    path: str | os.PathLike[str],
    *,
    objects: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    cache_bytes: int,
    create: bool = False,
    read_only: bool = False,
) -> Backend:
    """Open the repository at ``path`` (see ``modelgit.open``); with ``create``, create
    it first (see ``modelgit.init``). ``cache_bytes`` bounds its decoded-base cache.
    ``read_only``: every write raises ReadOnlyRepository."""
    if create and read_only:
        raise UnsupportedInput("a repository cannot be created read-only")
    if is_team_url(path):
        from . import team  # the optional team backend, loaded only when named

        how = team.init_team if create else team.open_team
        backend = how(str(path), objects, storage_options, cache_bytes=cache_bytes)
        backend.catalog.read_only = read_only or backend.catalog.read_only
        return backend
    if objects is not None:
        raise UnsupportedInput("objects= is for team repositories (a postgresql:// URL)")
    if create:
        init_folder(Path(path))
    return open_folder(Path(path), cache_bytes, read_only)
