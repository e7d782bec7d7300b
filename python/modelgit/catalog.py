"""The catalog: models, versions, lineage, tensors and the chunk index.

:class:`Catalog` is the small interface every catalog implements; :class:`SqliteCatalog`
is the embedded default, the PostgreSQL one of team repositories is in ``catalog_pg``.
Callers write SQL in SQLite's dialect; the PostgreSQL catalog translates the few
constructs that differ (docs/FORMAT.md, "PostgreSQL catalog").

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
from typing import Any, Protocol

__all__ = ["Catalog", "SqliteCatalog", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id         BLOB PRIMARY KEY,      -- XXH3-128 of the decoded bytes (16 bytes)
    pack       TEXT NOT NULL,         -- pack file name under packs/
    offset     INTEGER NOT NULL,      -- record offset in the pack
    length     INTEGER NOT NULL,      -- record length in bytes
    raw_length INTEGER NOT NULL,      -- decoded length
    codec      INTEGER NOT NULL,
    base       BLOB,                  -- delta base chunk ids (16 bytes each), else NULL
    depth      INTEGER NOT NULL DEFAULT 0,  -- delta chain length (0 = standalone)
    lossy      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_pack ON chunks(pack);
CREATE TABLE IF NOT EXISTS models (
    name     TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS versions (
    id         INTEGER PRIMARY KEY,
    uid        TEXT NOT NULL UNIQUE,   -- public id (hex)
    model      TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    number     INTEGER NOT NULL,
    content_id TEXT NOT NULL,          -- hash of the tensors' names, types and contents
    message    TEXT NOT NULL DEFAULT '',
    created    REAL NOT NULL,
    lossy      INTEGER NOT NULL DEFAULT 0,
    tolerance  TEXT,                   -- JSON of the bound used, NULL when lossless
    metadata   TEXT NOT NULL DEFAULT '{}',
    logical_bytes INTEGER NOT NULL,
    UNIQUE (model, number)
);
CREATE TABLE IF NOT EXISTS version_parents (
    version  INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    parent   INTEGER NOT NULL REFERENCES versions(id),
    kind     TEXT NOT NULL CHECK (kind IN ('provenance', 'version')),
    relation TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (version, parent, kind)
);
CREATE TABLE IF NOT EXISTS edges (
    parent   TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    child    TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    relation TEXT NOT NULL,
    PRIMARY KEY (parent, child)
);
CREATE TABLE IF NOT EXISTS tensors (
    version     INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    dtype       TEXT NOT NULL,
    shape       TEXT NOT NULL,        -- JSON list
    nbytes      INTEGER NOT NULL,
    content     BLOB NOT NULL,        -- XXH3-128 over the chunk ids and layout
    chunk_bytes INTEGER NOT NULL,
    chunks      BLOB NOT NULL,        -- concatenated 16-byte chunk ids
    tie         TEXT,                 -- name of the tensor this one shares storage with
    PRIMARY KEY (version, name)
);
CREATE TABLE IF NOT EXISTS files (
    version INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    path    TEXT NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (version, path)
);
CREATE TABLE IF NOT EXISTS tags (
    name    TEXT PRIMARY KEY,
    version INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE
);
"""


class Catalog(Protocol):
    """What the repository needs of a catalog. Connections are per thread; their
    ``execute``/``executemany`` take SQLite-dialect SQL with ``?`` placeholders."""

    dialect: str  # "sqlite" or "postgresql"

    def connection(self) -> Any: ...

    def transaction(self) -> Any:
        """A context manager: a write transaction that excludes every other writer
        (of any process or host) until it ends, yielding the connection."""
        ...

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]: ...

    def one(self, sql: str, args: tuple[object, ...] = ()) -> tuple | None: ...

    def integrity_problems(self) -> list[str]: ...

    def close(self) -> None: ...


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
