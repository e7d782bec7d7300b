"""Opening a repository's backend from what a user names: a folder path, or the
``postgresql://`` URL of a team repository (with its object store)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..catalog import is_team_url
from ..errors import UnsupportedInput
from .backend import Backend, init_folder, open_folder

__all__ = ["init_backend", "open_backend"]


def _no_objects(objects: object) -> None:
    if objects is not None:
        raise UnsupportedInput("objects= is for team repositories (a postgresql:// URL)")


def init_backend(
    path: str | os.PathLike[str],
    *,
    objects: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    cache_bytes: int,
) -> Backend:
    """Create a repository at ``path`` and open it (see ``modelgit.init``)."""
    if is_team_url(path):
        from . import team  # the optional team backend, loaded only when named

        return team.init_team(str(path), objects, storage_options, cache_bytes=cache_bytes)
    _no_objects(objects)
    root = Path(path)
    init_folder(root)
    return open_folder(root, cache_bytes)


def open_backend(
    path: str | os.PathLike[str],
    *,
    objects: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    cache_bytes: int,
) -> Backend:
    """Open the repository at ``path`` (see ``modelgit.open``)."""
    if is_team_url(path):
        from . import team  # the optional team backend, loaded only when named

        return team.open_team(str(path), objects, storage_options, cache_bytes=cache_bytes)
    _no_objects(objects)
    return open_folder(Path(path), cache_bytes)
