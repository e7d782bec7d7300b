"""The PostgreSQL catalog of team repositories (psycopg 3).

Same tables and the same semantics as the SQLite catalog (docs/FORMAT.md, "Catalog"
and "PostgreSQL catalog"): many writers on many hosts, each version published by one
transaction, one shared chunk index. Callers keep writing SQLite-dialect SQL; a small
translation layer (:func:`translate`, tested on its own) rewrites the few constructs
that differ:

- ``?`` placeholders -> ``%s``; the column ``offset`` (reserved in PostgreSQL) is quoted;
- ``INSERT OR IGNORE`` -> ``ON CONFLICT DO NOTHING``; ``INSERT OR REPLACE`` -> ``ON
  CONFLICT (primary key) DO UPDATE``; inserts into tables with an ``id`` identity get
  ``RETURNING id`` so that ``cursor.lastrowid`` works;
- ``ORDER BY rowid`` (insertion order of ``edges``) -> the identity column ``seq``;
- ``sqlite_master`` (table listings) -> a view of ``information_schema.tables``;
- DDL: ``BLOB`` -> ``BYTEA``, ``INTEGER`` -> ``BIGINT``, ``REAL`` -> ``DOUBLE PRECISION``,
  ``id INTEGER PRIMARY KEY`` -> an identity column, ``WITHOUT ROWID`` dropped;
- ``BEGIN IMMEDIATE`` (SQLite: take the writer lock now) -> ``BEGIN`` plus a
  transaction-scoped advisory lock that every writing transaction takes, so writers
  are serialized exactly as in SQLite (version numbers ``MAX(number) + 1`` are race-free
  across hosts); a plain ``BEGIN`` (a read snapshot) -> ``REPEATABLE READ``.

The repository lock (writers shared, gc exclusive; a file lock in a local repository)
is a session-level advisory lock here, held on a connection of its own.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import Any

from ..errors import (
    TEAM_EXTRA_HINT,
    CatalogUnavailable,
    ModelgitError,
    ReadOnlyRepository,
    RepositoryExists,
    StorageUnavailable,
)
from .schema import SCHEMA, SCHEMA_VERSION

__all__ = [
    "PostgresCatalog",
    "CatalogUnavailable",
    "translate",
    "translate_ddl",
    "WRITE_LOCK_KEY",
    "REPO_LOCK_KEY",
]

# advisory lock keys ("mg" + purpose); one repository per database (or per schema)
WRITE_LOCK_KEY = 0x6D67_0001  # held by every writing transaction
REPO_LOCK_KEY = 0x6D67_0002  # shared by writers during a write, exclusive by gc

# primary keys, for INSERT OR REPLACE -> ON CONFLICT (...) DO UPDATE
_PRIMARY_KEYS = {
    "meta": ("key",),
    "models": ("name",),
    "chunks": ("id",),
    "tags": ("name",),
    "edges": ("parent", "child"),
    "files": ("version", "path"),
    "tensors": ("version", "name"),
    "version_parents": ("version", "parent", "kind"),
    "tests": ("name",),
    "creators": ("model",),
    "factories": ("model",),
    "workflow_settings": ("key",),
    "remote_versions": ("version",),
    "tensor_sketches": ("version", "name"),
    "storage_bases": ("version", "base"),
    "sketch_lsh": ("version", "name", "tree"),
    "row_checks": ("kind", "key"),
    "remotes": ("name",),
}
_IDENTITY_TABLES = {"versions", "test_results"}

# what PostgreSQL adds to the translated SQLite schema
PG_EXTRA = """
ALTER TABLE edges ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE INDEX tensors_version ON tensors(version);
CREATE INDEX version_parents_parent ON version_parents(parent)
"""


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StorageUnavailable(f"PostgreSQL catalogs need psycopg 3; {TEAM_EXTRA_HINT}") from None
    return psycopg


_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.I)
_INSERT_ID = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)\b", re.I)
_OFFSET = re.compile(r'(?<!")\boffset\b(?!")')  # the chunks column, reserved in PostgreSQL
_MASTER = re.compile(r"\bsqlite_master\b")
_MASTER_PG = (
    "(SELECT table_name::text AS name, 'table' AS type FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE') AS sqlite_master"
)


@lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, bool]:
    """SQLite-dialect SQL as PostgreSQL; also whether ``RETURNING id`` was added."""
    if re.match(r"^\s*CREATE\s", sql, re.I):
        return translate_ddl(sql), False
    s = sql.rstrip().rstrip(";")
    returning = False
    m = _INSERT_OR.match(s)
    if m:
        kind, table, cols = m.group(1).upper(), m.group(2), m.group(3)
        s = f"INSERT INTO {table}({cols})" + s[m.end() :]
        if kind == "IGNORE":
            s += " ON CONFLICT DO NOTHING"
        else:
            pk = _PRIMARY_KEYS.get(table)
            if pk is None:
                raise ModelgitError(f"catalog: no primary key known for table {table!r}")
            names = [c.strip() for c in cols.split(",")]
            rest = [c for c in names if c not in pk]
            update = ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
            s += f" ON CONFLICT ({', '.join(pk)}) " + (
                f"DO UPDATE SET {update}" if rest else "DO NOTHING"
            )
    else:
        m = _INSERT_ID.match(s)
        if m and m.group(1) in _IDENTITY_TABLES and "RETURNING" not in s.upper():
            s += " RETURNING id"
            returning = True
    s = _MASTER.sub(_MASTER_PG, s)
    s = s.replace("?", "%s")
    s = _OFFSET.sub('"offset"', s)
    s = re.sub(r"\browid\b", "seq", s)
    return s, returning


def translate_ddl(sql: str) -> str:
    """A SQLite CREATE statement (or script) in PostgreSQL's types."""
    s = re.sub(r"--[^\n]*", "", sql)
    s = re.sub(r"\bid\s+INTEGER\s+PRIMARY\s+KEY\b", "id BIGINT GENERATED BY DEFAULT AS IDENTITY "
               "PRIMARY KEY", s)  # fmt: skip
    s = re.sub(r"\bINTEGER\b", "BIGINT", s)
    s = re.sub(r"\bREAL\b", "DOUBLE PRECISION", s)
    s = re.sub(r"\bBLOB\b", "BYTEA", s)
    s = re.sub(r"\)\s*WITHOUT\s+ROWID", ")", s)
    s = _OFFSET.sub('"offset"', s)
    return s


def _statements(script: str) -> list[str]:
    return [s.strip() for s in translate_ddl(script).split(";") if s.strip()]


class _Result:
    """The part of sqlite3.Cursor the callers use."""

    def __init__(self, cur: Any, returning: bool) -> None:
        self._cur = cur
        self.lastrowid: int | None = None
        if returning and cur is not None:
            row = cur.fetchone()
            self.lastrowid = None if row is None else row[0]

    @property
    def rowcount(self) -> int:
        return -1 if self._cur is None else self._cur.rowcount

    def fetchone(self) -> tuple | None:
        if self._cur is None or self._cur.description is None:
            return None
        return self._cur.fetchone()

    def fetchall(self) -> list[tuple]:
        if self._cur is None or self._cur.description is None:
            return []
        return self._cur.fetchall()

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection (autocommit) behind sqlite3.Connection's small surface."""

    def __init__(self, raw: Any, catalog: PostgresCatalog) -> None:
        self.raw = raw
        self._catalog = catalog

    @property
    def in_transaction(self) -> bool:
        psycopg = _psycopg()
        return bool(self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    def _run(self, fn: Any, *args: Any) -> Any:
        psycopg = _psycopg()
        try:
            return fn(*args)
        except psycopg.OperationalError as exc:
            if self.raw.broken or self.raw.closed:
                self._catalog._forget(self)
                raise CatalogUnavailable(
                    f"{self._catalog.safe_url}: lost the connection to PostgreSQL ({exc})"
                ) from None
            raise

    def execute(self, sql: str, args: Sequence[object] = ()) -> _Result:
        head = " ".join(sql.split()).upper()
        if head == "BEGIN IMMEDIATE":
            self._run(self.raw.execute, "BEGIN")
            self._run(self.raw.execute, "SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            return _Result(None, False)
        if head == "BEGIN":
            self._run(self.raw.execute, "BEGIN ISOLATION LEVEL REPEATABLE READ")
            return _Result(None, False)
        q, returning = translate(sql)
        cur = self._run(self.raw.execute, q, tuple(args) if args else None)
        return _Result(cur, returning)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        rows = list(rows)
        if not rows:
            return
        q, _ = translate(sql)
        with self.raw.cursor() as cur:
            self._run(cur.executemany, q, rows)


class PostgresCatalog:
    """One psycopg connection per thread (autocommit; explicit transactions)."""

    dialect = "postgresql"

    def __init__(self, url: str, create: bool = False) -> None:
        self.url = url
        self.safe_url = re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)
        self._local = threading.local()
        self._all: list[PgConnection] = []
        self._all_lock = threading.Lock()
        self.read_only = False  # modelgit.open(url, read_only=True): transactions refused
        if create:
            try:
                self._create()
            except BaseException:
                self.close()
                raise

    # -- connections ------------------------------------------------------------------
    def connect_raw(self) -> Any:
        psycopg = _psycopg()
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            msg = " ".join(str(exc).split())
            raise CatalogUnavailable(
                f"cannot connect to the PostgreSQL catalog {self.safe_url}: {msg}"
            ) from None
        except psycopg.ProgrammingError as exc:
            raise CatalogUnavailable(
                f"{self.safe_url} is not a usable PostgreSQL URL: {exc}"
            ) from None

    def connection(self) -> PgConnection:
        db = getattr(self._local, "db", None)
        if db is None or db.raw.closed:
            db = PgConnection(self.connect_raw(), self)
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def _forget(self, db: PgConnection) -> None:
        if getattr(self._local, "db", None) is db:
            self._local.db = None
        with self._all_lock:
            if db in self._all:
                self._all.remove(db)
        with suppress(Exception):
            db.raw.close()

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """A writing transaction, serialized with every other writer (advisory lock)."""
        if self.read_only:
            raise ReadOnlyRepository(
                f"{self.safe_url} was opened read-only: reads work, writes do not"
            )
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            with suppress(Exception):
                db.raw.execute("ROLLBACK")
            raise
        else:
            try:
                self._check_repo_locks()
            except BaseException:
                with suppress(Exception):
                    db.raw.execute("ROLLBACK")
                raise
            db._run(db.raw.execute, "COMMIT")

    def _check_repo_locks(self) -> None:
        """Before a commit: the repository locks this thread holds are still held (a
        writer whose lock session died may not publish: gc may have run meanwhile)."""
        psycopg = _psycopg()
        for raw in getattr(self._local, "locks", ()):
            try:
                raw.execute("SELECT 1")
            except psycopg.Error:
                raise CatalogUnavailable(
                    f"{self.safe_url}: the session holding the repository lock ended during "
                    "the write; nothing was published, run it again"
                ) from None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads of this thread inside see one state of the catalog (a REPEATABLE READ
        transaction; nested snapshots share the outer one)."""
        db = self.connection()
        if db.in_transaction:
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        finally:
            with suppress(Exception):
                db.raw.execute("COMMIT")

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        return self.connection().execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[object, ...] = ()) -> tuple | None:
        return self.connection().execute(sql, args).fetchone()

    def integrity_problems(self) -> list[str]:
        """PostgreSQL enforces the foreign keys itself; check that the schema is ours."""
        have = {r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        lazy = {"tests", "creators", "factories", "workflow_settings", "remote_versions",
                "tensor_sketches", "storage_bases", "sketch_lsh", "row_checks",
                "remotes"}  # fmt: skip
        missing = sorted(set(_PRIMARY_KEYS) - have - lazy)
        return [f"catalog: tables missing: {', '.join(missing)}"] if missing else []

    @contextmanager
    def repo_lock(self, exclusive: bool) -> Iterator[None]:
        """The repository lock on a session of its own (released if the process dies)."""
        raw = self.connect_raw()
        suffix = "" if exclusive else "_shared"
        held = self._local.__dict__.setdefault("locks", [])
        try:
            raw.execute(f"SELECT pg_advisory_lock{suffix}(%s)", (REPO_LOCK_KEY,))
            held.append(raw)
            try:
                yield
            finally:  # now, not when the server notices the closed session
                held.remove(raw)
                with suppress(Exception):
                    raw.execute(f"SELECT pg_advisory_unlock{suffix}(%s)", (REPO_LOCK_KEY,))
        finally:
            with suppress(Exception):
                raw.close()

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                with suppress(Exception):
                    db.raw.close()
            self._all.clear()
        self._local = threading.local()

    # -- schema -----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.one("SELECT to_regclass('meta') IS NOT NULL") == (True,)

    def _create(self) -> None:
        with self.transaction() as db:
            if db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone() == (True,):
                raise RepositoryExists(
                    f"{self.safe_url} holds a modelgit catalog already; use modelgit.open()"
                )
            for stmt in _statements(SCHEMA) + [s.strip() for s in PG_EXTRA.split(";")]:
                if stmt:
                    db.execute(stmt)
            db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )

    def meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])
