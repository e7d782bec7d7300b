"""The similarity index: which stored tensors a new one is closest to.

Every version written records a small sketch of each float tensor in the catalog
(``tensor_sketches``): a CountSketch (``_core.sketch``, K sums) of the first
``SAMPLE`` elements of each of up to ``CHUNKS`` of its chunks, each chunk hashed with
its own seed, and the squared norm of those elements. Sketches are linear, so ``||s(a) - s(b)||``
estimates the distance between the sampled elements of two tensors of the same name,
whatever their dtypes (a bfloat16 cast sits next to its float32 source); chunks hold
the same elements in every dtype, so the samples line up.

Finding a base (``candidates``) ranks stored versions by the distance of their sketches
of the new model's few largest tensors (``PROBES``) to the new model's. In a small
repository (at most ``SCAN_ROWS`` such sketches) every one is read; in a larger one the
LSH forest of ``storage.sketch_index`` first shortlists the versions whose sketches
point the closest way, with indexed reads whose cost does not grow with the repository,
and only theirs are read and ranked. Nothing is decoded. The choice is a proxy for
"encodes smallest": the writer still tries every plan it is given and keeps the
smallest encoding per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xxhash

from .._native import _core
from ..catalog import Catalog
from ..catalog.schema import execute_script, has_table
from ..formats.sources import ModelSource
from ..pool import settle_jobs
from . import sketch_index

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "K",
    "SAMPLE",
    "TensorSketch",
    "sketch_source",
    "ensure_tables",
    "insert_sketches",
    "sketches_of",
    "candidates",
    "relative_distance",
    "relative_distances",
    "delta_coded",
    "storage_bases_of",
    "replace_storage_bases",
    "storage_base_refs",
]

K = 32  # sums per sketch
SAMPLE = 4096  # elements sketched at the start of each sampled chunk
CHUNKS = 16  # chunks sampled per tensor at most
PROBES = 8  # largest tensors used to rank versions
SKETCHABLE = ("float64", "float32", "float16", "bfloat16")
UNRELATED = 0.8  # relative distance (squared) beyond which a tensor is no base at all
SCAN_ROWS = 512  # at most this many stored sketches of the probed names: all are ranked

TABLES = """
CREATE TABLE IF NOT EXISTS tensor_sketches (
    version INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    sketch  BLOB NOT NULL,
    norm2   REAL NOT NULL,
    numel   INTEGER NOT NULL,
    PRIMARY KEY (version, name)
);
CREATE INDEX IF NOT EXISTS tensor_sketches_name ON tensor_sketches(name);
CREATE TABLE IF NOT EXISTS storage_bases (
    version INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    base    INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    PRIMARY KEY (version, base)
);"""


@dataclass
class TensorSketch:
    """A tensor's sketch (K float64), the squared norm of the sampled elements, and its
    element count."""

    name: str
    sketch: np.ndarray
    norm2: float
    numel: int
    zero_share: float = 0.0  # of the sampled elements (not kept in the index)

    def pack(self) -> bytes:
        return self.sketch.astype("<f4").tobytes()

    @classmethod
    def unpack(cls, name: str, blob: bytes, norm2: float, numel: int) -> TensorSketch:
        import numpy as np

        return cls(name, np.frombuffer(blob, "<f4").astype(np.float64), float(norm2), numel)


def _seed(name: str, index: int) -> int:
    return xxhash.xxh3_64_intdigest(f"{name}\0{index}".encode())


def _sampled_chunks(count: int) -> list[int]:
    """Which chunks of a tensor of ``count`` chunks are sampled: all of a small tensor,
    ``CHUNKS`` evenly spaced ones of a large one (the same ones in every model)."""
    if count <= CHUNKS:
        return list(range(count))
    return sorted({(j * (count - 1)) // (CHUNKS - 1) for j in range(CHUNKS)})


def _starts(parts: list[tuple[int, int, int]]) -> list[int]:
    """Where each part begins once the parts are laid end to end."""
    out, at = [], 0
    for _, c, _ in parts:
        out.append(at)
        at += c
    return out


_Work = tuple[str, int, str, Any, list[tuple[int, int, int]]]  # name, numel, dtype, buffer, parts


def _sketch_all(work: Sequence[_Work]) -> list[tuple[bytes, float, int]]:
    """``_core.sketch_parts`` of each tensor (the GIL released for each)."""
    return [_core.sketch_parts(buf, dtype, K, parts) for _, _, dtype, buf, parts in work]


def sketch_source(
    source: ModelSource, chunk_elems: int, pool: Executor | None = None
) -> dict[str, TensorSketch]:
    """The sketch of every float tensor of ``source`` (only the sampled part of each
    sampled chunk is read; one ``_core.sketch_parts`` call per tensor). With ``pool``
    (a :class:`~modelgit.pool.WorkerPool`), the tensors are shared between it and the
    calling thread (the same sketches)."""
    import numpy as np

    work: list[_Work] = []
    for t in source.tensors:
        if t.tie is not None or t.dtype.name not in SKETCHABLE or t.nbytes == 0:
            continue
        numel = t.nbytes // t.dtype.size
        count = -(-numel // chunk_elems)
        parts = [
            (i * chunk_elems, min(numel - i * chunk_elems, chunk_elems, SAMPLE), _seed(t.name, i))
            for i in _sampled_chunks(count)
        ]
        view = t.view()
        if not isinstance(view, memoryview):  # a file's range: read the sampled parts only
            size = t.dtype.size
            view = b"".join(view[s * size : (s + c) * size] for s, c, _ in parts)
            parts = [(at, c, seed) for at, (_, c, seed) in zip(_starts(parts), parts, strict=True)]
        work.append((t.name, numel, t.dtype.name, view, parts))
    sampled = [sum(c for _, c, _ in w[4]) for w in work]  # elements sketched per tensor
    groups = max(1, getattr(pool, "workers", 1)) if pool is not None else 1
    # contiguous groups of about equal sampled elements: the first is sketched here
    bounds, total, acc_n = [0], sum(sampled), 0
    for i, n in enumerate(sampled):
        acc_n += n
        if len(bounds) < groups and acc_n * groups >= total * len(bounds):
            bounds.append(i + 1)
    bounds.append(len(work))
    jobs = [work[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    futures = [pool.submit(_sketch_all, j) for j in jobs[1:]] if pool is not None else []
    try:
        results = _sketch_all(jobs[0]) if jobs else []
        for f in futures:
            results += f.result()
    except BaseException:  # the jobs read buffers the caller may free: wait for them
        settle_jobs((f,) for f in futures)
        raise
    out: dict[str, TensorSketch] = {}
    for (name, numel, *_), count, (blob, norm2, zeros) in zip(work, sampled, results, strict=True):
        acc = np.frombuffer(blob, np.float64)
        with np.errstate(all="ignore"):
            if not (np.isfinite(norm2) and np.all(np.abs(acc) < 3e38)):
                continue  # values too large to compare (or to keep as float32): no sketch
        out[name] = TensorSketch(name, acc, norm2, numel, zeros / count)
    return out


def ensure_tables(db: Any) -> None:
    """Create the index's tables if they are missing (inside the caller's transaction)."""
    execute_script(db, TABLES + ";" + sketch_index.TABLE)


def insert_sketches(
    db: Any, vid: int, sketches: Iterable[TensorSketch], bases: Iterable[int] = ()
) -> None:
    """Record a new version's sketches (and their keys in the LSH forest of
    ``sketch_index``) and the versions it was stored against."""
    sketches = list(sketches)
    ensure_tables(db)
    db.executemany(
        "INSERT OR REPLACE INTO tensor_sketches(version, name, sketch, norm2, numel)"
        " VALUES (?,?,?,?,?)",
        [(vid, s.name, s.pack(), s.norm2, s.numel) for s in sketches],
    )
    db.executemany(
        "INSERT OR IGNORE INTO storage_bases(version, base) VALUES (?,?)",
        [(vid, b) for b in sorted(set(bases)) if b != vid],
    )
    sketch_index.add_to_index(db, vid, sketches)


def replace_storage_bases(db: Any, vid: int, bases: Iterable[int]) -> None:
    """Record that version ``vid`` is now stored against ``bases`` (after a repack)."""
    ensure_tables(db)
    db.execute("DELETE FROM storage_bases WHERE version = ?", (vid,))
    db.executemany(
        "INSERT OR IGNORE INTO storage_bases(version, base) VALUES (?,?)",
        [(vid, b) for b in sorted(set(bases)) if b != vid],
    )


def _has_tables(catalog: Catalog) -> bool:
    return has_table(catalog, "tensor_sketches")


def sketches_of(catalog: Catalog, vids: Sequence[int]) -> dict[int, dict[str, TensorSketch]]:
    """Every stored sketch of the given versions."""
    out: dict[int, dict[str, TensorSketch]] = {v: {} for v in vids}
    if not vids or not _has_tables(catalog):
        return out
    marks = ",".join("?" * len(vids))
    sql = "SELECT version, name, sketch, norm2, numel FROM tensor_sketches WHERE version IN "
    for vid, name, blob, norm2, numel in catalog.query(f"{sql}({marks})", tuple(vids)):
        out[vid][name] = TensorSketch.unpack(name, blob, norm2, numel)
    return out


def delta_coded(catalog: Catalog, vids: Sequence[int]) -> set[int]:
    """Those of ``vids`` that were stored against other versions (not standalone)."""
    if not vids or not _has_tables(catalog):
        return set()
    marks = ",".join("?" * len(vids))
    sql = f"SELECT DISTINCT version FROM storage_bases WHERE version IN ({marks})"
    return {r[0] for r in catalog.query(sql, tuple(vids))}


def storage_bases_of(catalog: Catalog, vids: Sequence[int]) -> dict[int, list[int]]:
    """The versions each of ``vids`` was stored against (as recorded when written)."""
    out: dict[int, list[int]] = {v: [] for v in vids}
    if not vids or not _has_tables(catalog):
        return out
    marks = ",".join("?" * len(vids))
    sql = f"SELECT version, base FROM storage_bases WHERE version IN ({marks}) ORDER BY base"
    for vid, base in catalog.query(sql, tuple(vids)):
        out[vid].append(base)
    return out


def storage_base_refs(catalog: Catalog) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """Every version's storage bases as (model, number) pairs, in one query (the web
    UI's storage pages); versions stored standalone are absent."""
    if not _has_tables(catalog):
        return {}
    out: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for model, number, bmodel, bnumber in catalog.query(
        "SELECT v.model, v.number, b.model, b.number FROM storage_bases s "
        "JOIN versions v ON v.id = s.version JOIN versions b ON b.id = s.base "
        "ORDER BY v.id, s.base"
    ):
        out.setdefault((model, number), []).append((bmodel, bnumber))
    return out


def relative_distance(a: TensorSketch, b: TensorSketch) -> float:
    """||a - b||^2 / ||a||^2, estimated from the sketches (0: the same; ~2: unrelated)."""
    import numpy as np

    r = relative_distances(a.sketch[None], b.sketch[None], np.array([a.norm2]),
                           np.array([a.numel == b.numel]))  # fmt: skip
    return float(r[0])


def relative_distances(
    a: np.ndarray, b: np.ndarray, norm2: np.ndarray, same: np.ndarray
) -> np.ndarray:
    """:func:`relative_distance` row by row for stacked sketches: ``||a_i - b_i||^2 /
    norm2_i`` (``norm2`` of the ``a`` side, floored at 1e-300); inf where that is not
    finite or where ``same`` (the two tensors have as many elements) is False."""
    import numpy as np

    with np.errstate(all="ignore"):
        d = a - b
        r = np.einsum("ij,ij->i", d, d) / np.maximum(norm2, 1e-300)
    r[~np.isfinite(r)] = np.inf
    r[~same] = np.inf
    return r


def _probe_rows(
    catalog: Catalog, probes: list[TensorSketch]
) -> list[tuple[int, str, bytes, float, int]]:
    """The stored sketches to rank versions by: every stored sketch of the probed names
    when there are at most SCAN_ROWS, else those of the versions the index shortlists
    (every one too, should the index be out of reach: a catalog that cannot be
    written to key older versions)."""
    names = tuple(p.name for p in probes)
    marks = ",".join("?" * len(names))
    sql = "SELECT version, name, sketch, norm2, numel FROM tensor_sketches WHERE name IN "
    count = catalog.one(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM tensor_sketches WHERE name IN ({marks})"
        f" LIMIT {SCAN_ROWS + 1}) AS probed",
        names,
    )
    if count is not None and count[0] > SCAN_ROWS:
        try:
            if not sketch_index.is_current(catalog):
                sketch_index.backfill(catalog, sketch_index.TABLE)
        except Exception:  # read-only, busy: the full scan is always right
            pass
        else:
            vids = sketch_index.shortlist(catalog, probes)
            if not vids:
                return []
            vmarks = ",".join("?" * len(vids))
            return catalog.query(f"{sql}({marks}) AND version IN ({vmarks})", names + tuple(vids))
    return catalog.query(f"{sql}({marks})", names)


def candidates(
    catalog: Catalog, new: dict[str, TensorSketch], limit: int = 3
) -> list[tuple[int, float]]:
    """The stored versions closest to the model sketched as ``new``: (version id, mean
    relative distance over its largest tensors), best first, unrelated ones left out."""
    import numpy as np

    if not new or not _has_tables(catalog):
        return []
    probes = sorted(new.values(), key=lambda s: (-s.numel, s.name))[:PROBES]
    rows = _probe_rows(catalog, probes)
    if not rows:
        return []
    # relative_distance of every row at once (a tensor of another size: inf)
    at = {p.name: i for i, p in enumerate(probes)}
    vid_of, names, blobs, _, numels = zip(*rows, strict=True)
    which = [at[n] for n in names]
    stored = np.frombuffer(b"".join(map(bytes, blobs)), "<f4").reshape(len(rows), K)
    query = np.stack([p.sketch for p in probes])
    norm2 = np.array([p.norm2 for p in probes])
    same = np.array([n == probes[w].numel for w, n in zip(which, numels, strict=True)])
    dist = relative_distances(query[which], stored, norm2[which], same)
    vids, group = np.unique(vid_of, return_inverse=True)
    count = np.bincount(group)
    with np.errstate(invalid="ignore"):
        mean = np.bincount(group, weights=dist) / count
    ranked = [
        (v, m)
        for v, m, c in zip(vids.tolist(), mean.tolist(), count.tolist(), strict=True)
        if 2 * c >= len(probes) and m < UNRELATED
    ]
    ranked.sort(key=lambda x: (x[1], -x[0]))
    return ranked[:limit]
