"""Every table of the catalog, in SQLite's dialect (docs/FORMAT.md section 4).

``SCHEMA`` holds the tables every repository has, created by ``init``. The workflow
tables (tests, results, creation functions, factories) and the table of versions
fetched from another repository are created on first use (``CREATE TABLE IF NOT
EXISTS``), so a repository that never uses them has none, and a reader that does not
know them ignores them; the schema version is unchanged by them. The PostgreSQL
catalog translates this DDL (``postgres.translate_ddl``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA",
    "WORKFLOW_SCHEMA",
    "REMOTE_TABLE",
    "ensure_workflow_tables",
    "ensure_remote_table",
    "has_table",
    "execute_script",
    "rename_model_rows",
]

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

WORKFLOW_SCHEMA = """
CREATE TABLE IF NOT EXISTS tests (
    name             TEXT PRIMARY KEY,
    fn               TEXT NOT NULL,            -- import path 'pkg.module:function'
    selector         TEXT NOT NULL,            -- JSON list of selector terms
    higher_is_better INTEGER NOT NULL DEFAULT 1,
    threshold        REAL,                     -- NULL: any number passes
    factory          TEXT,                     -- import path of an nn.Module factory, or NULL
    created          REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS test_results (
    id               INTEGER PRIMARY KEY,
    test             TEXT NOT NULL,
    version          INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    fn               TEXT NOT NULL,            -- the function that ran
    kind             TEXT NOT NULL CHECK (kind IN ('float', 'bool', 'error')),
    value            REAL,                     -- the metric (bool: 1.0 or 0.0), NULL on error
    passed           INTEGER NOT NULL,
    higher_is_better INTEGER NOT NULL,
    threshold        REAL,
    error            TEXT,                     -- one line, when the test raised
    seconds          REAL NOT NULL,
    created          REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS test_results_version ON test_results(version, test);
CREATE INDEX IF NOT EXISTS test_results_test ON test_results(test);
CREATE TABLE IF NOT EXISTS creators (
    model   TEXT PRIMARY KEY REFERENCES models(name) ON DELETE CASCADE,
    fn      TEXT NOT NULL,                     -- import path, called fn(parents, **args)
    args    TEXT NOT NULL DEFAULT '{}',        -- JSON object
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS factories (
    model   TEXT PRIMARY KEY REFERENCES models(name) ON DELETE CASCADE,
    fn      TEXT NOT NULL                      -- import path, called fn() -> nn.Module
);
CREATE TABLE IF NOT EXISTS workflow_settings (
    key   TEXT PRIMARY KEY,                    -- 'default_factory'
    value TEXT NOT NULL
);
"""

# versions fetched from another repository and not merged yet (workflows.transfer):
# remote is the path it came from, remote_number its number there, fetched a Unix time
REMOTE_TABLE = """
CREATE TABLE IF NOT EXISTS remote_versions (
    version       INTEGER PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    remote        TEXT NOT NULL,
    remote_number INTEGER NOT NULL,
    fetched       REAL NOT NULL
)"""

_WORKFLOW_TABLES = ("tests", "test_results", "creators", "factories", "workflow_settings")


def ensure_workflow_tables(db: Any) -> None:
    """Create the workflow tables if they are missing (one IMMEDIATE transaction)."""
    have = {
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?,?,?,?,?)",
            _WORKFLOW_TABLES,
        )
    }
    if have == set(_WORKFLOW_TABLES):
        return
    own = not db.in_transaction
    if own:
        db.execute("BEGIN IMMEDIATE")
    try:
        execute_script(db, WORKFLOW_SCHEMA)
    except BaseException:
        if own:
            db.execute("ROLLBACK")
        raise
    if own:
        db.execute("COMMIT")


def has_table(db: Any, name: str) -> bool:
    """Whether the catalog holds table ``name`` (one created on first use may not exist
    yet). ``db``: a catalog (``one``) or a connection (``execute``)."""
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    if hasattr(db, "one"):
        return db.one(sql, (name,)) is not None
    return db.execute(sql, (name,)).fetchone() is not None


def execute_script(db: Any, script: str) -> None:
    """Run DDL statements separated by ``;`` on a connection (none may hold a ``;``)."""
    for stmt in script.split(";"):
        if stmt.strip():
            db.execute(stmt)


def ensure_remote_table(db: Any) -> None:
    """Create ``remote_versions`` if it is missing (inside the caller's transaction)."""
    db.execute(REMOTE_TABLE)


def rename_model_rows(db: Any, old: str, new: str) -> None:
    """Carry a model's creator, factory and test selectors over to its new name.

    Meant to run inside the rename's transaction, after the new ``models``
    row exists and before the old one is deleted. Does nothing in a repository that
    has no workflow tables.
    """
    have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "creators" in have:
        db.execute("UPDATE creators SET model = ? WHERE model = ?", (new, old))
    if "factories" in have:
        db.execute("UPDATE factories SET model = ? WHERE model = ?", (new, old))
    if "tests" in have:
        for name, selector in db.execute("SELECT name, selector FROM tests").fetchall():
            terms = json.loads(selector)
            changed = False
            for term in terms:
                for key in ("name", "of"):
                    if term.get(key) == old:
                        term[key] = new
                        changed = True
            if changed:
                db.execute(
                    "UPDATE tests SET selector = ? WHERE name = ?", (json.dumps(terms), name)
                )
