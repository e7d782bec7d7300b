"""A sub-linear search over the sketches of the similarity index (an LSH forest).

``storage.similarity`` ranks stored versions by the distance between their tensors'
sketches and a new model's. Reading every stored sketch of the probed names costs time
in proportion to the repository; this module keeps, next to ``tensor_sketches``, a
table ``sketch_lsh`` that finds the few versions worth ranking with indexed range reads
whose cost does not grow with the number of stored versions.

The key of a sketch (K float32 sums, a vector) is a SimHash: the signs of its dot
products with ``KEY_BITS`` fixed random directions, packed most significant first. Two
sketches at angle ``a`` differ in each sign with probability ``a / pi``, so the
longer the prefix two keys share, the closer the sketches are likely to be. Each of a
version's ``INDEXED`` largest float tensors is keyed ``TREES`` times (each with its own
directions) and stored in a B-tree ordered by (name, numel, tree, key): the keys that
share the longest prefix with a query's sit next to it in that order, so the
``NEIGHBOURS`` keys on each side of the query's place (two ``LIMIT`` range reads) hold
its best matches (an LSH forest, Bawa, Condie & Ganesan, WWW 2005, on a plain SQL
index; both SQLite and PostgreSQL compare BLOBs bytewise). A version's score is the
number of key bits it shares with the query, summed over the probed tensors and trees;
the ``SHORTLIST`` best are ranked exactly by ``storage.similarity``.

The table is written with the sketches (``add_to_index``, by ``insert_sketches``: on
``add``/``commit`` and by push/pull), removed with its version (ON DELETE CASCADE), and
built for repositories written before it existed by ``backfill``: the meta key
``sketch_lsh_upto`` records the version id up to which every version with sketches is
keyed, so versions written by an older modelgit (which fills only ``tensor_sketches``)
are keyed on the next search.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import xxhash

from ..catalog.schema import execute_script, has_table

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "TREES",
    "KEY_BITS",
    "INDEXED",
    "TABLE",
    "MARK",
    "keys_of",
    "index_rows",
    "add_to_index",
    "is_current",
    "backfill",
    "shortlist",
]

TREES = 2  # keys per indexed tensor, each with its own directions
KEY_BITS = 256  # sign bits per key (32 bytes)
INDEXED = 8  # largest float tensors of a version that are keyed
LOOKUP = 4  # largest probed tensors whose keys are looked up (half of INDEXED)
NEIGHBOURS = 8  # keys read on each side of a query's place in the index
SHORTLIST = 32  # versions ranked exactly after the index has scored them
MARK = "sketch_lsh_upto"  # meta key: every version <= this with sketches is keyed

TABLE = """
CREATE TABLE IF NOT EXISTS sketch_lsh (
    version INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    tree    INTEGER NOT NULL,
    numel   INTEGER NOT NULL,
    bits    BLOB NOT NULL,
    PRIMARY KEY (version, name, tree)
);
CREATE INDEX IF NOT EXISTS sketch_lsh_lookup ON sketch_lsh(name, numel, tree, bits)"""


class Sketched(Protocol):
    """What the index needs of a tensor's sketch (``similarity.TensorSketch``)."""

    name: str
    sketch: np.ndarray
    numel: int


def _gaussian(row: int, col: int) -> float:
    """A fixed standard normal number for entry (row, col) of the directions (Box-Muller
    on the two 32-bit halves of XXH3-64("simhash\\0{row}\\0{col}"))."""
    h = xxhash.xxh3_64_intdigest(f"simhash\0{row}\0{col}".encode())
    u1 = ((h >> 32) + 0.5) / 2**32
    u2 = ((h & 0xFFFFFFFF) + 0.5) / 2**32
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@lru_cache(maxsize=4)
def _directions(k: int, rows: int) -> np.ndarray:
    """``rows`` directions in the sketch space of ``k`` sums, as the columns of a k x rows
    matrix; direction ``tree * KEY_BITS + bit`` gives that bit of that tree's keys."""
    import numpy as np

    # _gaussian of every entry, its steps spread over whole arrays (the same numbers:
    # the halves and their scaling are exact in float64, log, sqrt and cos are math's,
    # and one product rounds alike): 2.5x faster, once per process
    h = xxhash.xxh3_64_intdigest
    hs = np.array([h(f"simhash\0{r}\0{c}".encode()) for c in range(k) for r in range(rows)],
                  np.uint64)  # fmt: skip
    u1 = ((hs >> np.uint64(32)).astype(np.float64) + 0.5) / 2**32
    u2 = ((hs & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) / 2**32
    radius = np.array([math.sqrt(-2.0 * math.log(u)) for u in u1.tolist()])
    angle = np.array([math.cos(2.0 * math.pi * u) for u in u2.tolist()])
    return (radius * angle).reshape(k, rows)


def keys_of(sketch: np.ndarray) -> list[bytes]:
    """The TREES keys of a sketch, taken of its float32 rounding (as stored)."""
    import numpy as np

    return _keys(np.asarray(sketch)[None, :])[0]


def _keys(sketches: np.ndarray) -> list[list[bytes]]:
    """The TREES keys of each row of ``sketches`` (n x K): the signs of the float64 dot
    products of its float32 rounding with the directions, 1 for positive, packed most
    significant bit first."""
    import numpy as np

    s = np.asarray(sketches, "<f4").astype(np.float64)
    with np.errstate(all="ignore"):
        signs = s @ _directions(s.shape[1], TREES * KEY_BITS) > 0
    raw = np.packbits(signs, axis=1).tobytes()
    size = KEY_BITS // 8
    return [
        [raw[(i * TREES + t) * size : (i * TREES + t + 1) * size] for t in range(TREES)]
        for i in range(len(s))
    ]


def _largest(sketches: Iterable[Sketched], count: int) -> list[Sketched]:
    return sorted(sketches, key=lambda s: (-s.numel, s.name))[:count]


def index_rows(vid: int, sketches: Iterable[Sketched]) -> list[tuple]:
    """The ``sketch_lsh`` rows of a version: its INDEXED largest sketched tensors."""
    import numpy as np

    chosen = _largest(sketches, INDEXED)
    if not chosen:
        return []
    keys = _keys(np.stack([s.sketch for s in chosen]))
    return [
        (vid, s.name, tree, s.numel, key)
        for s, row in zip(chosen, keys, strict=True)
        for tree, key in enumerate(row)
    ]


def _mark(db: Any) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (MARK,)).fetchone()
    return int(row[0]) if row else 0


def _set_mark(db: Any, vid: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (MARK, str(vid)))


def add_to_index(db: Any, vid: int, sketches: Sequence[Sketched]) -> None:
    """Key a version's sketches (inside the transaction that records them, after its
    ``tensor_sketches`` rows). Advances the mark when no earlier version is left
    unkeyed; otherwise the next search keys them (``backfill``)."""
    db.execute("DELETE FROM sketch_lsh WHERE version = ?", (vid,))
    db.executemany(
        "INSERT INTO sketch_lsh(version, name, tree, numel, bits) VALUES (?,?,?,?,?)",
        index_rows(vid, sketches),
    )
    mark = _mark(db)
    row = db.execute(
        "SELECT MAX(version) FROM tensor_sketches WHERE version < ?", (vid,)
    ).fetchone()
    if row is None or row[0] is None or row[0] <= mark:
        _set_mark(db, max(mark, vid))


def is_current(catalog: Any) -> bool:
    """Whether every version with sketches is keyed (two indexed reads)."""
    if not has_table(catalog, "sketch_lsh"):
        return False
    top = catalog.one("SELECT MAX(version) FROM tensor_sketches")
    if top is None or top[0] is None:
        return True
    row = catalog.one("SELECT value FROM meta WHERE key = ?", (MARK,))
    return row is not None and int(row[0]) >= top[0]


def backfill(catalog: Any, table: str) -> int:
    """Key every version with sketches that is not keyed yet (one transaction); the
    number of versions keyed. ``table`` is the DDL of ``sketch_lsh``."""
    import numpy as np

    with catalog.transaction() as db:
        execute_script(db, table)
        mark = _mark(db)
        top = db.execute("SELECT MAX(version) FROM tensor_sketches").fetchone()
        if top is None or top[0] is None or top[0] <= mark:
            return 0
        keyed = {
            r[0]
            for r in db.execute(
                "SELECT DISTINCT version FROM sketch_lsh WHERE version > ?", (mark,)
            ).fetchall()
        }
        per: dict[int, list[_Row]] = {}
        for vid, name, blob, numel in db.execute(
            "SELECT version, name, sketch, numel FROM tensor_sketches WHERE version > ?",
            (mark,),
        ).fetchall():
            if vid not in keyed:
                per.setdefault(vid, []).append(_Row(name, np.frombuffer(blob, "<f4"), numel))
        db.executemany(
            "INSERT INTO sketch_lsh(version, name, tree, numel, bits) VALUES (?,?,?,?,?)",
            [row for vid in sorted(per) for row in index_rows(vid, per[vid])],
        )
        _set_mark(db, int(top[0]))
        return len(per)


class _Row:
    __slots__ = ("name", "sketch", "numel")

    def __init__(self, name: str, sketch: np.ndarray, numel: int) -> None:
        self.name, self.sketch, self.numel = name, sketch, numel


@lru_cache(maxsize=64)
def _lookup_sql(probes: int, trees: int, neighbours: int) -> str:
    """The one statement of a lookup: for each probe and tree, the ``neighbours`` keys
    on each side of the query's (tagged with the probe and tree's number)."""
    one = (
        "SELECT * FROM (SELECT {q} AS q, version, bits FROM sketch_lsh"
        " WHERE name = ? AND numel = ? AND tree = ? AND bits {op} ?"
        " ORDER BY bits {order} LIMIT {n}) AS s{q}{side}"
    )
    return " UNION ALL ".join(
        one.format(q=q, op=op, order=order, n=neighbours, side=side)
        for q in range(probes * trees)
        for side, op, order in (("a", ">=", "ASC"), ("b", "<", "DESC"))
    )


def shortlist(catalog: Any, probes: Sequence[Sketched]) -> list[int]:
    """The SHORTLIST versions whose keyed tensors share the most key bits with those of
    the LOOKUP largest probes (best first): indexed reads of at most 2 * NEIGHBOURS keys
    per probe and tree, whatever the repository holds."""
    import numpy as np

    probes = probes[:LOOKUP]
    if not probes:
        return []
    args: list[object] = []
    want: list[int] = []
    keyed = _keys(np.stack([p.sketch for p in probes]))
    for p, keys in zip(probes, keyed, strict=True):
        for tree, key in enumerate(keys):
            args += [p.name, p.numel, tree, key, p.name, p.numel, tree, key]
            want.append(int.from_bytes(key, "big"))
    score: dict[int, int] = {}
    sql = _lookup_sql(len(probes), TREES, NEIGHBOURS)
    for q, vid, bits in catalog.query(sql, tuple(args)):
        shared = KEY_BITS - (want[q] ^ int.from_bytes(bytes(bits), "big")).bit_length()
        score[vid] = score.get(vid, 0) + shared
    best = sorted(score.items(), key=lambda x: (-x[1], -x[0]))[:SHORTLIST]
    return [vid for vid, _ in best]
