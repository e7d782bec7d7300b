"""The embedded catalog: SQLite, one file ``catalog.db`` in the repository folder.

SQLite is opened in WAL mode so that readers never block the writer and never see
half a version: a version becomes visible in one transaction, after its chunks are
durable in the packs. Schema: docs/FORMAT.md, "Catalog".
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .schema import SCHEMA, SCHEMA_VERSION

__all__ = ["SqliteCatalog"]


class SqliteCatalog:
    """One SQLite connection per thread, WAL mode, foreign keys on."""

    dialect = "sqlite"

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []  # every thread's connection, to close
        self._all_lock = threading.Lock()
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
            db = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=60000")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: the writer lock is taken at the start."""
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        return self.connection().execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[object, ...] = ()) -> tuple | None:
        return self.connection().execute(sql, args).fetchone()

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
