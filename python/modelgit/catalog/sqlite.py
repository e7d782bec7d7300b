"""The embedded catalog: SQLite, one file ``catalog.db`` in the repository folder.

SQLite is opened in WAL mode so that readers never block the writer and never see
half a version: a version becomes visible in one transaction, after its chunks are
durable in the packs. Schema: docs/FORMAT.md, "Catalog".
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from ..errors import CatalogUnavailable, CorruptObject, ReadOnlyRepository
from .schema import SCHEMA, SCHEMA_VERSION

__all__ = ["SqliteCatalog", "translate"]


_ERRORS = (sqlite3.DatabaseError, UnicodeDecodeError)  # the second: SQLite's message about
# a damaged schema quotes its bytes, which need not be UTF-8


def translate(exc: Exception, path: Path) -> Exception:
    """The error to raise for an SQLite error on the catalog at ``path``: a full disk is
    ENOSPC, a catalog this user cannot write is ReadOnlyRepository, a busy one
    CatalogUnavailable; damage (confirmed by SQLite's quick check) is CorruptObject with
    the advice to restore a backup, anything else CorruptObject naming the error."""
    text = str(exc)
    low = text.lower()
    if isinstance(exc, UnicodeDecodeError):
        return CorruptObject(f"{path} is damaged (unreadable text in its schema or rows); "
                             "restore catalog.db from a backup")  # fmt: skip
    if "disk is full" in low:
        return OSError(errno.ENOSPC, f"No space left on device (writing {path})")
    if "readonly" in low or "read-only" in low:
        return ReadOnlyRepository(
            f"{path.parent} is read-only for this user (permission denied or a read-only "
            "file system): reads work, writes need write access"
        )
    if "locked" in low or "busy" in low:
        return CatalogUnavailable(f"{path} is busy ({text}); try again")
    if "unable to open" in low and not path.exists():
        return CorruptObject(f"{path} is missing")
    if isinstance(exc, sqlite3.IntegrityError):
        return CorruptObject(f"{path}: a catalog constraint failed ({text}); run modelgit fsck")
    if _damaged(path):
        return CorruptObject(
            f"{path} is damaged ({text}); SQLite's integrity check fails: restore catalog.db "
            "from a backup"
        )
    return CorruptObject(f"{path}: catalog error ({text}); run modelgit fsck")


def _text(raw: bytes) -> str:
    """TEXT values as str; bytes that are not UTF-8 (damage) survive as lone surrogates,
    which then fail the row's digest check instead of raising UnicodeDecodeError."""
    return raw.decode("utf-8", "surrogateescape")


def _damaged(path: Path) -> bool:
    """Whether SQLite's quick check finds the catalog damaged (or cannot read it)."""
    try:
        db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
        try:
            row = db.execute("PRAGMA quick_check").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return True
    return not row or row[0] != "ok"


class SqliteCatalog:
    """One SQLite connection per thread, WAL mode, foreign keys on."""

    dialect = "sqlite"

    def __init__(self, path: Path, create: bool = False, read_only: bool = False) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []  # every thread's connection, to close
        self._all_lock = threading.Lock()
        # asked for (modelgit.open(read_only=True)), or found: this user cannot write it
        self.read_only = read_only
        self._asked_read_only = read_only
        if create:
            # executescript commits on its own: the whole schema is one script
            self.connection().executescript(
                f"BEGIN IMMEDIATE;{SCHEMA}"
                f"INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', '{SCHEMA_VERSION}');"
                "COMMIT;"
            )

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def _connect(self) -> sqlite3.Connection:
        """A read-write connection, or a read-only one where this user cannot write the
        repository (a read-only mount, another user's folder): reads work either way."""
        if not self.read_only:
            try:
                db = sqlite3.connect(
                    self.path, timeout=60.0, isolation_level=None, check_same_thread=False
                )
                db.text_factory = _text
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA busy_timeout=60000")
                return db
            except UnicodeDecodeError as exc:
                raise translate(exc, self.path) from exc
            except sqlite3.OperationalError as exc:
                cannot_write = "unable to open" in str(exc) or "readonly" in str(exc)
                if self._writable() or not cannot_write:
                    raise translate(exc, self.path) from exc
                self.read_only = True
        uri = f"file:{quote(str(self.path.resolve()))}"
        for mode in ("?mode=ro", "?immutable=1"):  # immutable: no -shm can be made
            db = sqlite3.connect(uri + mode, uri=True, timeout=60.0, isolation_level=None,
                                 check_same_thread=False)  # fmt: skip
            db.text_factory = _text
            try:
                db.execute("PRAGMA busy_timeout=60000")
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return db
            except _ERRORS as exc:
                db.close()
                last = exc
        raise translate(last, self.path) from last

    def _writable(self) -> bool:
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: the writer lock is taken at the start."""
        db = self.connection()
        if self._asked_read_only:
            raise ReadOnlyRepository(
                f"{self.path.parent} was opened read-only: reads work, writes do not"
            )
        if self.read_only:
            raise ReadOnlyRepository(
                f"{self.path.parent} is read-only for this user (permission denied or a "
                "read-only file system): reads work, writes need write access"
            )
        try:
            db.execute("BEGIN IMMEDIATE")
        except _ERRORS as exc:
            raise translate(exc, self.path) from exc
        try:
            yield db
        except BaseException as exc:
            try:
                db.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass  # SQLite rolled back already (disk full, I/O error)
            if isinstance(exc, _ERRORS):
                raise translate(exc, self.path) from exc
            raise
        else:
            try:
                db.execute("COMMIT")
            except _ERRORS as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise translate(exc, self.path) from exc

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads of this thread inside see one consistent state of the catalog (a read
        transaction; nested snapshots share the outer one)."""
        db = self.connection()
        if db.in_transaction:
            yield
            return
        try:
            db.execute("BEGIN")
            db.execute("SELECT 1 FROM meta LIMIT 1").fetchone()  # the snapshot starts here
        except _ERRORS as exc:
            with suppress(*_ERRORS):
                db.execute("ROLLBACK")
            raise translate(exc, self.path) from exc
        try:
            yield
        except _ERRORS as exc:  # a damaged page met by a read inside
            raise translate(exc, self.path) from exc
        finally:
            if db.in_transaction:
                try:
                    db.execute("COMMIT")  # (a read-only transaction: nothing to lose)
                except _ERRORS:
                    with suppress(*_ERRORS):
                        db.execute("ROLLBACK")

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        try:
            return self.connection().execute(sql, args).fetchall()
        except _ERRORS as exc:
            raise translate(exc, self.path) from exc

    def one(self, sql: str, args: tuple[object, ...] = ()) -> tuple | None:
        try:
            return self.connection().execute(sql, args).fetchone()
        except _ERRORS as exc:
            raise translate(exc, self.path) from exc

    def integrity_problems(self) -> list[str]:
        """What SQLite's own checks find wrong (empty when all is well)."""
        problems = []
        integrity = self.one("PRAGMA integrity_check")
        if not integrity or integrity[0] != "ok":
            problems.append(f"catalog: SQLite integrity check failed: {integrity}")
        fk = self.query("PRAGMA foreign_key_check")
        if fk:
            problems.append(f"catalog: {len(fk)} rows break foreign keys")
        return problems

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses the catalog)."""
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()
