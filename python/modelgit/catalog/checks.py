"""Digests that make damage to the catalog visible (docs/FORMAT.md, "Row checks").

Chunks verify themselves (their id is the hash of their bytes, their records carry a
checksum). What the catalog says about them does not: a damaged byte in a tensor
name, a side file, a tag or an edge would come back as data. So every version, tag
and edge has a digest in ``row_checks``, written in the transaction that writes the
row and checked where the row is used (load, load_into, export, files, tag lookup)
and by fsck:

* a version: XXH3-128 over its ``versions`` row (uid, model, number, content id,
  message, date, lossy flag, bound, metadata, logical size), its parent links (by
  parent uid), every tensor row and every side file (path and bytes);
* a tag: its name and the uid of its version;
* an edge: parent, child and relation.

``meta('row_checks')`` = ``'1'`` once every row has its digest (set by ``backfill``
when a repository is created or moved to format 4); from then on a missing digest is
damage too. A repository written by an older modelgit has none until its first write.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import xxhash

from ..errors import CorruptObject, UnknownVersion
from .schema import execute_script, has_table

__all__ = [
    "TABLE",
    "MARK",
    "version_digest",
    "version_tail",
    "version_row_matches",
    "tag_digest",
    "edge_digest",
    "refresh",
    "refresh_model",
    "backfill",
    "is_required",
    "verify_version",
    "verify_tag",
    "problems",
]

MARK = "row_checks"
TABLE = """
CREATE TABLE IF NOT EXISTS row_checks (
    kind   TEXT NOT NULL,      -- 'version', 'tag' or 'edge'
    key    TEXT NOT NULL,      -- versions.id, the tag's name, or JSON [parent, child]
    digest BLOB NOT NULL,      -- XXH3-128 of the row (catalog/checks.py)
    PRIMARY KEY (kind, key)
)"""


def _h(*parts: object) -> Any:
    h = xxhash.xxh3_128()
    for p in parts:
        data = p if isinstance(p, bytes) else json.dumps(p).encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h


_VERSION_ROW = (
    "SELECT uid, model, number, content_id, message, created, lossy, tolerance, metadata,"
    " logical_bytes FROM versions WHERE id = ?"
)


def version_digest(db: Any, vid: int) -> bytes | None:
    """The digest of version ``vid`` as the catalog holds it now (None if it is gone)."""
    row = db.execute(_VERSION_ROW, (vid,)).fetchone()
    return None if row is None else _version_hash(row, version_tail(db, vid))


def _version_hash(row: Iterable[object], tail: bytes) -> bytes:
    """A version's digest from its ``versions`` row and its ``version_tail``."""
    h = _h("version", [_plain(x) for x in row])
    h.update(tail)
    return h.digest()


def version_tail(db: Any, vid: int) -> bytes:
    """What a version's digest covers after its ``versions`` row: the digests of its
    parent links, tensor rows and side files, in order. With the version row it gives
    the digest (``version_row_matches``)."""
    parts = []
    for parent in db.execute(
        "SELECT p.uid, vp.kind, vp.relation, vp.position FROM version_parents vp"
        " LEFT JOIN versions p ON p.id = vp.parent WHERE vp.version = ?"
        " ORDER BY vp.kind, vp.position, p.uid",
        (vid,),
    ).fetchall():
        parts.append(_h("parent", list(parent)).digest())
    for t in db.execute(
        "SELECT name, position, dtype, shape, nbytes, content, chunk_bytes, chunks, tie"
        " FROM tensors WHERE version = ? ORDER BY position, name",
        (vid,),
    ).fetchall():
        parts.append(_h("tensor", [_plain(x) for x in t]).digest())
    for path, data in db.execute(
        "SELECT path, data FROM files WHERE version = ? ORDER BY path", (vid,)
    ).fetchall():
        parts.append(_h("file", path, bytes(data)).digest())
    return b"".join(parts)


def version_row_matches(catalog: Any, vid: int, tail: bytes) -> bool:
    """Whether version ``vid``'s ``versions`` row, followed by ``tail`` (its
    ``version_tail`` when it was read in full and verified), gives the version's stored
    digest: the row (its content id above all) is undamaged, without reading the
    version's other rows. False also when the version is gone or has no stored digest;
    the caller then reads and verifies it in full (``verify_version``)."""
    row = catalog.connection().execute(_VERSION_ROW, (vid,)).fetchone()
    stored = _stored(catalog, "version", str(vid))
    return row is not None and stored is not None and _version_hash(row, tail) == stored


def _plain(x: object) -> object:
    """A column value as JSON can hold it (blobs as hex, floats exactly)."""
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x).hex()
    if isinstance(x, float):
        return repr(x)
    return x


def tag_digest(db: Any, name: str) -> bytes | None:
    row = db.execute(
        "SELECT v.uid FROM tags t JOIN versions v ON v.id = t.version WHERE t.name = ?", (name,)
    ).fetchone()
    return None if row is None else _h("tag", name, row[0]).digest()


def edge_digest(db: Any, parent: str, child: str) -> bytes | None:
    row = db.execute(
        "SELECT relation FROM edges WHERE parent = ? AND child = ?", (parent, child)
    ).fetchone()
    return None if row is None else _h("edge", parent, child, row[0]).digest()


def _edge_key(parent: str, child: str) -> str:
    return json.dumps([parent, child])  # (no NUL: PostgreSQL text cannot hold one)


def _ensure(db: Any) -> None:
    execute_script(db, TABLE)


def _store(db: Any, kind: str, key: str, digest: bytes | None) -> None:
    if digest is None:
        db.execute("DELETE FROM row_checks WHERE kind = ? AND key = ?", (kind, key))
    else:
        db.execute(
            "INSERT OR REPLACE INTO row_checks(kind, key, digest) VALUES (?,?,?)",
            (kind, key, digest),
        )


def refresh(
    db: Any,
    versions: Iterable[int] = (),
    tags: Iterable[str] = (),
    edges: Iterable[tuple[str, str]] = (),
) -> None:
    """Write the digests of these rows as they are now, inside the caller's write
    transaction (a row that is gone loses its digest)."""
    _ensure(db)
    for vid in set(versions):
        _store(db, "version", str(vid), version_digest(db, vid))
    for name in set(tags):
        _store(db, "tag", name, tag_digest(db, name))
    for parent, child in set(edges):
        _store(db, "edge", _edge_key(parent, child), edge_digest(db, parent, child))


def refresh_model(db: Any, name: str) -> None:
    """Refresh every row that names model ``name`` or one of its versions: its versions,
    the versions linked to them, their tags and its edges."""
    vids = [r[0] for r in db.execute("SELECT id FROM versions WHERE model = ?", (name,))]
    linked: list[int] = []
    for vid in vids:
        linked += [
            r[0] for r in db.execute("SELECT version FROM version_parents WHERE parent = ?", (vid,))
        ]
    marks = ",".join("?" * len(vids))
    tags = (
        [r[0] for r in db.execute(f"SELECT name FROM tags WHERE version IN ({marks})", vids)]
        if vids
        else []
    )
    edges = db.execute(
        "SELECT parent, child FROM edges WHERE parent = ? OR child = ?", (name, name)
    ).fetchall()
    refresh(db, vids + linked, tags, [tuple(e) for e in edges])


def backfill(db: Any) -> None:
    """Give every version, tag and edge its digest and mark the repository as checked
    (inside the caller's write transaction): a repository's move to format 4."""
    _ensure(db)
    refresh(
        db,
        [r[0] for r in db.execute("SELECT id FROM versions")],
        [r[0] for r in db.execute("SELECT name FROM tags")],
        [tuple(r) for r in db.execute("SELECT parent, child FROM edges")],
    )
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, '1')", (MARK,))


def is_required(catalog: Any) -> bool:
    """Whether every row must have a digest (the mark is set, or digests exist: a
    damaged mark must not switch the checks off)."""
    if catalog.one("SELECT 1 FROM meta WHERE key = ?", (MARK,)) is not None:
        return True
    return has_table(catalog, "row_checks") and (
        catalog.one("SELECT 1 FROM row_checks LIMIT 1") is not None
    )


def _stored(catalog: Any, kind: str, key: str) -> bytes | None:
    if not has_table(catalog, "row_checks"):
        return None
    row = catalog.one("SELECT digest FROM row_checks WHERE kind = ? AND key = ?", (kind, key))
    return None if row is None else bytes(row[0])


def _check(catalog: Any, kind: str, key: str, now: bytes | None, what: str) -> None:
    stored = _stored(catalog, kind, key)
    if stored is None:
        if is_required(catalog):
            raise CorruptObject(f"{what}: its integrity record is missing (catalog damaged)")
        return
    if now != stored:
        raise CorruptObject(
            f"{what}: the catalog's rows do not match their digest (catalog damaged); "
            "run modelgit fsck"
        )


def verify_version(catalog: Any, vid: int, what: str) -> None:
    """CorruptObject unless version ``vid``'s rows match their digest; UnknownVersion if
    it is gone (removed since it was resolved). Call inside ``catalog.snapshot()``, with
    the reads that use the rows."""
    now = version_digest(catalog.connection(), vid)
    if now is None:
        raise UnknownVersion(f"{what} was removed meanwhile")
    _check(catalog, "version", str(vid), now, what)


def verify_tag(catalog: Any, name: str) -> None:
    _check(catalog, "tag", name, tag_digest(catalog.connection(), name), f"tag {name!r}")


def problems(catalog: Any) -> list[str]:
    """Every row whose digest is missing (where required) or does not match (fsck)."""
    out: list[str] = []
    required = is_required(catalog)
    stored: dict[tuple[str, str], bytes] = {}
    if has_table(catalog, "row_checks"):
        stored = {(k, key): bytes(d) for k, key, d in catalog.query("SELECT * FROM row_checks")}
    if not required and not stored:
        return out
    db = catalog.connection()
    for vid, model, number in catalog.query("SELECT id, model, number FROM versions"):
        _compare(out, stored, required, ("version", str(vid)), version_digest(db, vid),
                 f"{model}@{number}")  # fmt: skip
    for (name,) in catalog.query("SELECT name FROM tags"):
        _compare(out, stored, required, ("tag", name), tag_digest(db, name), f"tag {name!r}")
    for parent, child in catalog.query("SELECT parent, child FROM edges"):
        _compare(out, stored, required, ("edge", _edge_key(parent, child)),
                 edge_digest(db, parent, child), f"edge {parent} -> {child}")  # fmt: skip
    return out


def _compare(
    out: list[str],
    stored: dict[tuple[str, str], bytes],
    required: bool,
    key: tuple[str, str],
    now: bytes | None,
    what: str,
) -> None:
    have = stored.get(key)
    if have is None:
        if required:
            out.append(f"{what}: its integrity record is missing")
    elif have != now:
        out.append(f"{what}: the catalog's rows do not match their digest (damaged)")
