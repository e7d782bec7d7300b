"""A repository's physical parts: its catalog, its chunk store, the repository lock and
the format mark. A folder (``catalog.db``, ``packs/``, ``locks/``, ``MODELGIT``) or a
team repository (a PostgreSQL catalog and an object store; ``team``).

:func:`init_folder` creates a folder repository and :func:`open_folder` opens one; the
team ones are :func:`modelgit.storage.team.init_team` and ``open_team``. The layers
above work on the :class:`Backend` they return and never on files or URLs.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog import SCHEMA_VERSION, Catalog, SqliteCatalog, checks
from ..errors import (
    CorruptObject,
    FormatVersionError,
    ModelgitError,
    NotARepository,
    ReadOnlyRepository,
    RepositoryExists,
)
from .packs import fsync_dir
from .store import ChunkStore

if TYPE_CHECKING:
    from .team import TeamBackend

__all__ = [
    "Backend",
    "init_folder",
    "open_folder",
    "FORMAT_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CATALOG_FILE",
]

FORMAT_FILE = "MODELGIT"
FORMAT_NAME = "modelgit repository"
FORMAT_VERSION = 5  # 2: rANS; 3: linear predictors; 4: row checks; 5: runs, Huffman
CATALOG_FILE = "catalog.db"


class Backend:
    """The catalog, chunk store, lock and format of one open repository.

    ``root`` is the repository folder (for a team repository: this host's local folder
    for it, which stages packs and holds host-local locks). ``format`` is the format
    number the repository is marked with."""

    def __init__(
        self,
        root: Path,
        catalog: Catalog,
        store: ChunkStore,
        format: int,  # noqa: A002 - the repository's format number
        team: TeamBackend | None = None,
    ) -> None:
        self.root = root
        self.catalog = catalog
        self.store = store
        self.format = format
        self.team = team

    @property
    def location(self) -> str:
        """Where the repository is: its folder, or its catalog URL (password masked)."""
        return self.team.url if self.team is not None else str(self.root)

    @contextmanager
    def lock(self, exclusive: bool, writes: bool = True) -> Iterator[None]:
        """The repository lock: writers hold it shared, gc exclusively. ``writes``: the
        holder may write records, so the repository is brought to the current format
        first (a reader that only guards against gc passes False)."""
        if self.team is not None:  # across hosts: a PostgreSQL advisory lock
            if writes and self.catalog.read_only:  # before any pack is uploaded
                raise ReadOnlyRepository(
                    f"{self.location} was opened read-only: reads work, writes do not"
                )
            with self.team.catalog.repo_lock(exclusive):
                if writes:
                    self.upgrade_format()
                yield
            return
        fd = self._lock_file(writes)
        if fd is None:  # a repository this user cannot write: nobody here can gc it
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if writes:
                self.upgrade_format()
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _lock_file(self, writes: bool) -> int | None:
        """The lock file, opened for writing (created if missing); for a reader of a
        repository this user cannot write, read-only (flock works on it) or None."""
        path = self.root / "locks" / "repo.lock"
        if self.catalog.read_only:  # opened read-only: create nothing
            if writes:
                raise ReadOnlyRepository(
                    f"{self.root} was opened read-only: reads work, writes do not"
                )
        else:
            try:
                return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except (PermissionError, OSError) as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                if writes:
                    raise ReadOnlyRepository(
                        f"{self.root} is read-only for this user ({exc.strerror}): reads "
                        "work, writes need write access"
                    ) from None
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            return None

    def upgrade_format(self) -> None:
        """Mark a repository of an older format as FORMAT_VERSION before a write that may
        use what that format added (rANS sections, linear predictors): an older modelgit
        then refuses the repository with FormatVersionError instead of failing on records
        it cannot decode. Nothing else changes: every older record stays valid."""
        if self.format >= FORMAT_VERSION:
            return
        with self.catalog.transaction() as db:
            checks.backfill(db)  # format 4: every row has its digest from now on
            if self.team is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('format', ?)",
                    (str(FORMAT_VERSION),),
                )
        if self.team is None:
            _write_format_file(self.root)
        self.format = FORMAT_VERSION

    def close(self) -> None:
        """Release every file and connection."""
        self.store.close()
        self.catalog.close()


def _format_text() -> str:
    return f"{FORMAT_NAME}\nformat {FORMAT_VERSION}\n"


def _write_format_file(root: Path) -> None:
    """Write ``MODELGIT`` atomically: a temp file, fsync, rename, fsync of the folder."""
    tmp = root / (FORMAT_FILE + ".tmp")
    with tmp.open("w") as f:
        f.write(_format_text())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / FORMAT_FILE)
    fsync_dir(root)


def init_folder(root: Path) -> None:
    """Create an empty repository in ``root`` (a new or empty folder)."""
    if (root / FORMAT_FILE).exists():
        raise RepositoryExists(f"{root} is already a modelgit repository; use modelgit.open()")
    if root.exists() and not root.is_dir():
        raise NotARepository(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    if any(p.name not in {".DS_Store"} for p in root.iterdir()):
        raise RepositoryExists(f"{root} is not empty; choose a new or empty folder")
    (root / "packs").mkdir()
    (root / "locks").mkdir()
    catalog = SqliteCatalog(root / CATALOG_FILE, create=True)
    try:
        with catalog.transaction() as db:
            checks.backfill(db)  # an empty repository: every row checked from the start
    finally:
        catalog.close()
    _write_format_file(root)  # the repository exists once this file does


def _read_format(root: Path) -> int:
    fmt = root / FORMAT_FILE
    if not fmt.is_file():
        raise NotARepository(
            f"{root} is not a modelgit repository (no {FORMAT_FILE} file); "
            "create one with `modelgit init` or modelgit.init()"
        )
    lines = fmt.read_text(errors="replace").splitlines()
    if len(lines) < 2 or lines[0] != FORMAT_NAME or not lines[1].startswith("format "):
        raise NotARepository(f"{fmt} is not a modelgit format file")
    try:
        version = int(lines[1].split()[1])
    except (IndexError, ValueError):
        raise NotARepository(f"{fmt} has no readable format version") from None
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{root} uses format {version}; this modelgit reads format "
            f"{FORMAT_VERSION} and older: upgrade modelgit"
        )
    return version


def open_folder(root: Path, cache_bytes: int, read_only: bool = False) -> Backend:
    """Open the folder repository at ``root``; ``cache_bytes`` bounds its cache of
    decoded delta bases. ``read_only``: the catalog is opened for reading only (every
    write raises ReadOnlyRepository) and no lock file is created."""
    version = _read_format(root)
    catalog = SqliteCatalog(root / CATALOG_FILE, read_only=read_only)
    try:
        schema = catalog.one("SELECT value FROM meta WHERE key = 'schema'")
    except ModelgitError:  # damaged (with the advice to restore it), unreadable, busy
        catalog.close()
        raise
    if schema is not None and not str(schema[0]).isdigit():
        catalog.close()
        raise CorruptObject(f"{root / CATALOG_FILE}: its schema number {schema[0]!r} is damaged")
    if schema is None or int(schema[0]) > SCHEMA_VERSION:
        catalog.close()
        raise FormatVersionError(
            f"{root / CATALOG_FILE} has catalog schema {schema and schema[0]}; "
            f"this modelgit reads schema {SCHEMA_VERSION}"
        )
    return Backend(root, catalog, ChunkStore(root, catalog, cache_bytes=cache_bytes), version)
