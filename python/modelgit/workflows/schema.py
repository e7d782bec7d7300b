"""Catalog tables of the test / cascade / bisect workflows.

They are created lazily (``CREATE TABLE IF NOT EXISTS``) the first time a workflow
is used, so a repository that never uses them has none, and a modelgit without
workflows reads a repository that has them (it ignores unknown tables). The catalog
schema version is unchanged. Described in docs/FORMAT.md, "Catalog".
"""

from __future__ import annotations

import json
import sqlite3

from ..errors import ModelgitError

__all__ = ["WORKFLOW_SCHEMA", "WorkflowError", "ensure_schema", "rename_model"]


class WorkflowError(ModelgitError):
    """A workflow cannot run: unknown test, no creation function, cascade already running."""


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

_TABLES = ("tests", "test_results", "creators", "factories", "workflow_settings")


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the workflow tables if they are missing (one IMMEDIATE transaction)."""
    have = {
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?,?,?,?,?)",
            _TABLES,
        )
    }
    if have == set(_TABLES):
        return
    own = not db.in_transaction
    if own:
        db.execute("BEGIN IMMEDIATE")
    try:
        for stmt in WORKFLOW_SCHEMA.split(";"):  # no ';' inside the statements
            if stmt.strip():
                db.execute(stmt)
    except BaseException:
        if own:
            db.execute("ROLLBACK")
        raise
    if own:
        db.execute("COMMIT")


def rename_model(db: sqlite3.Connection, old: str, new: str) -> None:
    """Carry a model's creator, factory and test selectors over to its new name.

    Meant to run inside ``Repository.rename``'s transaction, after the new ``models``
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
