"""Team repositories: a PostgreSQL catalog and packs in an object store.

``modelgit.init("postgresql://user@host/db", objects="s3://bucket/prefix")`` creates one;
``modelgit.open("postgresql://user@host/db")`` opens it (the objects URL is kept in the
catalog; pass ``objects=`` to override it, e.g. where a shared folder is mounted
elsewhere). The :class:`~modelgit.Repository` API is the same as for a local folder.

Each process keeps a small local folder per team repository (under
``$MODELGIT_CACHE`` or ``~/.cache/modelgit/team``): ``packs/`` stages new packs before
their upload to a remote object store, ``locks/`` holds the host-local locks of the
workflows (the cascade lock). The repository lock (writers shared, gc exclusive) is a
PostgreSQL advisory lock, so it holds across hosts.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import SCHEMA_VERSION, checks
from ..catalog.postgres import PostgresCatalog
from ..errors import FormatVersionError, ModelgitError, NotARepository, RepositoryExists
from .backend import FORMAT_VERSION, Backend
from .objects import FsspecObjects, LocalObjects, ObjectStore, open_objects
from .store import ChunkStore

__all__ = ["TeamBackend", "init_team", "open_team", "cache_root"]


@dataclass
class TeamBackend:
    """What a team repository is made of (``Backend.team``, ``Repository.team``)."""

    url: str  # the catalog URL, password masked
    catalog: PostgresCatalog
    objects: ObjectStore
    local: Path  # this host's folder for the repository (staging, local locks)


def cache_root(url: str) -> Path:
    """This host's folder for the team repository at ``url``."""
    base = os.environ.get("MODELGIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelgit", "team"
    )
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    root = Path(base) / key
    (root / "packs").mkdir(parents=True, exist_ok=True)
    (root / "locks").mkdir(parents=True, exist_ok=True)
    return root


def _objects(url: str, local: Path, storage_options: dict[str, Any] | None) -> ObjectStore:
    if not isinstance(url, str) or not url:
        raise ModelgitError("objects= must be a folder path or an object-store URL (s3://...)")
    return open_objects(url, local / "packs", **(storage_options or {}))


def _backend(team: TeamBackend, cache_bytes: int) -> Backend:
    fmt = int(team.catalog.meta("format") or 1)
    store = ChunkStore(team.local, team.catalog, team.objects, cache_bytes=cache_bytes)
    return Backend(team.local, team.catalog, store, fmt, team=team)


def init_team(
    url: str,
    objects: str | os.PathLike[str] | None,
    storage_options: dict[str, Any] | None = None,
    *,
    cache_bytes: int,
) -> Backend:
    """Create the catalog schema in the (empty) database at ``url``; packs go to ``objects``."""

    if objects is None:
        raise ModelgitError(
            "a team repository needs objects=: an object-store URL (s3://bucket/prefix) "
            "or a shared folder path"
        )
    objects_url = os.fspath(objects)
    local = cache_root(url)
    store = _objects(objects_url, local, storage_options)
    if isinstance(store, LocalObjects):
        store.folder.mkdir(parents=True, exist_ok=True)
        if store.list():
            raise RepositoryExists(f"{store.folder} holds packs already; choose an empty folder")
    elif isinstance(store, FsspecObjects):
        store.check_reachable()
        if store.list():
            raise RepositoryExists(f"{objects_url} holds packs already; choose an empty prefix")
    catalog = PostgresCatalog(url, create=True)
    try:
        with catalog.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [("objects", objects_url), ("format", str(FORMAT_VERSION))],
            )
            checks.backfill(db)  # every row checked from the start
    except BaseException:
        catalog.close()
        raise
    return _backend(TeamBackend(catalog.safe_url, catalog, store, local), cache_bytes)


def open_team(
    url: str,
    objects: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    *,
    cache_bytes: int,
) -> Backend:
    """Open the team repository whose catalog is at ``url``."""

    catalog = PostgresCatalog(url)
    try:
        if not catalog.exists():
            raise NotARepository(
                f"{catalog.safe_url} holds no modelgit catalog; create one with "
                "modelgit.init(url, objects=...)"
            )
        schema = catalog.meta("schema")
        fmt = catalog.meta("format")
        if schema is None or int(schema) > SCHEMA_VERSION or int(fmt or 1) > FORMAT_VERSION:
            raise FormatVersionError(
                f"{catalog.safe_url} has catalog schema {schema} (format {fmt}); this modelgit "
                f"reads schema {SCHEMA_VERSION}, format {FORMAT_VERSION}: upgrade modelgit"
            )
        objects_url = os.fspath(objects) if objects is not None else catalog.meta("objects")
        if objects_url is None:
            raise NotARepository(f"{catalog.safe_url}: the catalog names no object store")
        local = cache_root(url)
        store = _objects(objects_url, local, storage_options)
        if isinstance(store, LocalObjects) and not store.folder.is_dir():
            raise NotARepository(
                f"the packs folder {store.folder} of {catalog.safe_url} is missing"
            )
    except BaseException:
        catalog.close()
        raise
    return _backend(TeamBackend(catalog.safe_url, catalog, store, local), cache_bytes)
