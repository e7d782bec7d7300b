"""The rows of the chunk, version and tensor tables, and the one place that writes them.

Every layer reads and writes these tables through the row types and helpers here
(``versions`` when it publishes a version, ``workflows.transfer`` when it copies
versions between repositories, ``storage`` when it looks chunks up), so each table's
columns are listed once. docs/FORMAT.md section 4 describes the columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import Any

import xxhash

from .base import Catalog

__all__ = [
    "ChunkRow",
    "TensorRow",
    "VersionRow",
    "CHUNK_COLUMNS",
    "TENSOR_COLUMNS",
    "VERSION_COLUMNS",
    "split_ids",
    "tensor_content_id",
    "version_content_id",
    "chain_depths",
    "chunk_row",
    "chunk_rows",
    "tensor_rows",
    "insert_chunks",
    "insert_version",
    "insert_parent_link",
    "insert_tensors",
    "insert_files",
]

ID_BYTES = 16  # chunk ids are XXH3-128 digests


def split_ids(ids: bytes | None) -> list[bytes]:
    """The 16-byte ids of a concatenation (``chunks.base``, ``tensors.chunks``)."""
    ids = ids or b""
    return [ids[i : i + ID_BYTES] for i in range(0, len(ids), ID_BYTES)]


# -- chunks ----------------------------------------------------------------------------
CHUNK_COLUMNS = "id, pack, offset, length, raw_length, codec, base, depth, lossy"


@dataclass(frozen=True)
class ChunkRow:
    """Where a stored chunk lies (a record of ``length`` bytes at ``offset`` of ``pack``)
    and what it needs to decode: its codec and the ids of its delta bases (``base``,
    concatenated; ``depth`` is 1 + the deepest base's depth, 0 for a standalone chunk)."""

    id: bytes
    pack: str
    offset: int
    length: int
    raw_length: int
    codec: int
    base: bytes | None  # concatenated 16-byte ids of the delta bases, or None
    depth: int
    lossy: bool = False

    @property
    def bases(self) -> list[bytes]:
        return split_ids(self.base)

    def as_tuple(self) -> tuple:
        """The values in ``CHUNK_COLUMNS`` order (``lossy`` as 0/1)."""
        return (self.id, self.pack, self.offset, self.length, self.raw_length, self.codec,
                self.base, self.depth, int(self.lossy))  # fmt: skip

    @classmethod
    def from_db(cls, r: Sequence[Any]) -> ChunkRow:
        cid, pack, offset, length, raw_length, codec, base, depth, lossy = r
        return cls(cid, pack, offset, length, raw_length, codec, base, depth, bool(lossy))


def chain_depths(
    bases: Mapping[bytes, Sequence[bytes]], known: Mapping[bytes, int] | None = None
) -> dict[bytes, int]:
    """The depth of each chunk of ``bases`` (chunk id -> its base ids): 1 + its deepest
    base's, 0 without a base; the depth of a base outside ``bases`` comes from
    ``known`` (0 where unknown). Bases first, without recursion (chains may be long)."""
    known = known or {}
    depth: dict[bytes, int] = {}
    for start in bases:
        stack = [start]
        while stack:
            cid = stack[-1]
            if cid in depth:
                stack.pop()
                continue
            todo = [b for b in bases[cid] if b in bases and b not in depth]
            if todo:
                stack.extend(todo)
                continue
            depth[cid] = 1 + max(
                (depth[b] if b in depth else known.get(b, 0) for b in bases[cid]), default=-1
            )
            stack.pop()
    return depth


def chunk_row(catalog: Catalog, cid: bytes) -> ChunkRow | None:
    """The catalog's row of one chunk, or None."""
    r = catalog.one(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE id = ?", (cid,))
    return None if r is None else ChunkRow.from_db(r)


def chunk_rows(catalog: Catalog, ids: Iterable[bytes]) -> dict[bytes, ChunkRow]:
    """The catalog's rows of the given chunks (those it has), by id."""
    out: dict[bytes, ChunkRow] = {}
    unique = list(dict.fromkeys(ids))
    for i in range(0, len(unique), 500):
        part = unique[i : i + 500]
        marks = ",".join("?" * len(part))
        for r in catalog.query(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE id IN ({marks})", tuple(part)
        ):
            out[r[0]] = ChunkRow.from_db(r)
    return out


def insert_chunks(db: Any, rows: Iterable[ChunkRow]) -> None:
    """Add chunk rows; a chunk already indexed keeps its first row (its other copy is
    garbage for gc)."""
    db.executemany(
        f"INSERT OR IGNORE INTO chunks({CHUNK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
        [r.as_tuple() for r in rows],
    )


def update_chunks(db: Any, rows: Iterable[ChunkRow]) -> None:
    """Point chunks at new records (a repack: same content, another encoding)."""
    db.executemany(
        "UPDATE chunks SET pack = ?, offset = ?, length = ?, raw_length = ?, codec = ?,"
        " base = ?, depth = ?, lossy = ? WHERE id = ?",
        [(*r.as_tuple()[1:], r.id) for r in rows],
    )


# -- tensors ---------------------------------------------------------------------------
TENSOR_COLUMNS = "name, position, dtype, shape, nbytes, content, chunk_bytes, chunks, tie"


@dataclass(frozen=True)
class TensorRow:
    """One tensor of a version: its layout, its content id and its chunks (the bytes
    cut at multiples of ``chunk_bytes``). A tied tensor (``tie`` = the name of an
    earlier tensor of the version) carries the same chunks and loads as that tensor."""

    name: str
    position: int
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    content: bytes
    chunk_bytes: int
    chunks: bytes  # concatenated 16-byte ids
    tie: str | None = None

    @property
    def chunk_ids(self) -> list[bytes]:
        return split_ids(self.chunks)

    def as_tuple(self) -> tuple:
        """The values in ``TENSOR_COLUMNS`` order (the shape as JSON)."""
        return (
            self.name,
            self.position,
            self.dtype,
            json.dumps(list(self.shape)),
            self.nbytes,
            self.content,
            self.chunk_bytes,
            self.chunks,
            self.tie,
        )

    @classmethod
    def from_db(cls, r: Sequence[Any]) -> TensorRow:
        name, position, dtype, shape, nbytes, content, chunk_bytes, chunks, tie = r
        return cls(
            name, position, dtype, tuple(json.loads(shape)), nbytes, content, chunk_bytes,
            chunks, tie,
        )  # fmt: skip


def tensor_content_id(dtype: str, shape: tuple[int, ...], nbytes: int, chunks: bytes) -> bytes:
    """``tensors.content``: XXH3-128 of the layout string and the chunk ids."""
    h = xxhash.xxh3_128()
    h.update(f"{dtype}|{list(shape)}|{nbytes}|".encode())
    h.update(chunks)
    return h.digest()


def tensor_rows(catalog: Catalog, vid: int) -> list[TensorRow]:
    """The tensors of a version, in their order."""
    return [
        TensorRow.from_db(r)
        for r in catalog.query(
            f"SELECT {TENSOR_COLUMNS} FROM tensors WHERE version = ? ORDER BY position", (vid,)
        )
    ]


def insert_tensors(db: Any, vid: int, rows: Iterable[TensorRow]) -> None:
    db.executemany(
        f"INSERT INTO tensors(version, {TENSOR_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [(vid, *r.as_tuple()) for r in rows],
    )


def insert_files(db: Any, vid: int, files: Iterable[tuple[str, bytes]]) -> None:
    """Side files of a version, by path (in path order)."""
    db.executemany(
        "INSERT INTO files(version, path, data) VALUES (?,?,?)",
        [(vid, p, d) for p, d in sorted(files)],
    )


# -- versions --------------------------------------------------------------------------
VERSION_COLUMNS = (
    "v.id, v.uid, v.model, v.number, v.content_id, v.message, v.created, v.lossy, "
    "v.tolerance, v.metadata, v.logical_bytes"
)  # select from ``versions v``


@dataclass(frozen=True)
class VersionRow:
    """One row of ``versions`` (``id`` is this catalog's own key; ``uid`` the id that
    names the version in every repository)."""

    id: int
    uid: str
    model: str
    number: int
    content_id: str
    message: str
    created: float
    lossy: int
    tolerance: str | None  # JSON of the bound used, None when lossless
    metadata: str  # JSON object
    logical_bytes: int

    @classmethod
    def from_db(cls, r: Sequence[Any]) -> VersionRow:
        return cls(*r)


def version_content_id(rows: Iterable[TensorRow]) -> str:
    """``versions.content_id``: XXH3-128 (hex) over the tensors sorted by name."""
    h = xxhash.xxh3_128()
    for r in sorted(rows, key=lambda r: r.name):
        h.update(f"{r.name}\0{r.dtype}\0{list(r.shape)}\0".encode())
        h.update(r.content)
    return h.hexdigest()


def insert_version(db: Any, v: VersionRow) -> int:
    """Add a version row (its ``id`` is ignored); returns the new id."""
    return db.execute(
        "INSERT INTO versions(uid, model, number, content_id, message, created, lossy,"
        " tolerance, metadata, logical_bytes) VALUES (?,?,?,?,?,?,?,?,?,?)",
        astuple(v)[1:],
    ).lastrowid


def insert_parent_link(
    db: Any, vid: int, parent: int, kind: str, relation: str, position: int
) -> None:
    """A parent link of a version: ``kind`` is ``provenance`` or ``version``."""
    db.execute(
        "INSERT INTO version_parents(version, parent, kind, relation, position) VALUES (?,?,?,?,?)",
        (vid, parent, kind, relation, position),
    )
