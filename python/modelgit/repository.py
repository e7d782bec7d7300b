"""The :class:`Repository`: models, their versions and their weights in one folder.

Layout (docs/FORMAT.md): ``MODELGIT`` (format file), ``catalog.db`` (SQLite, WAL),
``packs/`` (append-only chunk packs), ``locks/``. A team repository (``team.py``) has
the same API over a PostgreSQL catalog and packs in an object store.
Write ordering: chunk records are appended and fsynced, then one catalog transaction
publishes the version, so a crash at any point leaves every earlier version intact.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import xxhash

from . import codec, maintenance
from .auto import choose_tolerance
from .catalog import SCHEMA_VERSION, Catalog, SqliteCatalog
from .errors import (
    CorruptObject,
    FormatVersionError,
    LineageError,
    ModelExists,
    NotARepository,
    RepositoryExists,
    UnknownModel,
    UnknownVersion,
    UnsupportedInput,
)
from .lineage import LineageMixin
from .memory import MemoryBudget
from .names import parse_ref, validate_name
from .packs import fsync_dir
from .progress import Counter, ProgressFn
from .reader import read_tensors
from .sources import TensorSource, open_model, tensor_from_buffer
from .store import DEFAULT_MAX_DEPTH, ChunkStore
from .tolerance import Auto, ErrorBound, LowBit, parse_tolerance
from .version import VERSION_COLUMNS, ParentLink, Version
from .workflows import WorkflowMixin
from .writer import DEFAULT_CHUNK_ELEMS, TENSOR_COLUMNS, TensorRow, WriteStats, write_tensors

if TYPE_CHECKING:
    from .team import TeamBackend

__all__ = ["Repository", "init", "open", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_FILE = "MODELGIT"
FORMAT_NAME = "modelgit repository"
FORMAT_VERSION = 2  # 2: rANS sections (docs/FORMAT.md section 7)
CATALOG_FILE = "catalog.db"


def _format_text() -> str:
    return f"{FORMAT_NAME}\nformat {FORMAT_VERSION}\n"


def init(
    path: str | os.PathLike[str],
    *,
    objects: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    memory_budget: int | str | None = None,
) -> Repository:
    """Create a new, empty repository at ``path`` (a new or empty folder).

    With a ``postgresql://`` URL as ``path``, create a team repository: the catalog in
    that database, the packs in ``objects`` (``s3://bucket/prefix`` or a shared folder);
    see :mod:`modelgit.team`. ``storage_options`` go to fsspec (e.g. ``endpoint_url``)."""
    if _is_team_url(path):
        from .team import init_team

        return init_team(str(path), objects, storage_options, memory_budget=memory_budget)
    if objects is not None:
        raise UnsupportedInput("objects= is for team repositories (a postgresql:// URL)")
    root = Path(path)
    if (root / FORMAT_FILE).exists():
        raise RepositoryExists(f"{root} is already a modelgit repository; use modelgit.open()")
    if root.exists() and not root.is_dir():
        raise NotARepository(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    if any(p.name not in {".DS_Store"} for p in root.iterdir()):
        raise RepositoryExists(f"{root} is not empty; choose a new or empty folder")
    (root / "packs").mkdir()
    (root / "locks").mkdir()
    SqliteCatalog(root / CATALOG_FILE, create=True).close()
    _write_format_file(root)  # the repository exists once this file does
    return Repository(root, memory_budget=memory_budget)


def _write_format_file(root: Path) -> None:
    """Write ``MODELGIT`` atomically: a temp file, fsync, rename, fsync of the folder."""
    tmp = root / (FORMAT_FILE + ".tmp")
    with tmp.open("w") as f:
        f.write(_format_text())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / FORMAT_FILE)
    fsync_dir(root)


def _materialize(t: TensorSource) -> torch.Tensor:
    """A tensor holding a copy of a source tensor's bytes (for tests run on it)."""
    return tensor_from_buffer(bytearray(t.view()), t.dtype, t.shape)


def _widest(tensors: Sequence[TensorSource]) -> int:
    """The largest element size among ``tensors`` (1 when there are none)."""
    return max((t.dtype.size for t in tensors), default=1)


def _gpu_decode_available() -> bool:
    from . import cuda

    return cuda.is_available()


def _is_team_url(path: object) -> bool:
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


def open(  # noqa: A001 - public API name
    path: str | os.PathLike[str],
    *,
    objects: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    memory_budget: int | str | None = None,
) -> Repository:
    """Open the existing repository at ``path`` (a folder, or a ``postgresql://`` URL of
    a team repository; ``objects`` then overrides the object store it names).

    ``memory_budget`` (bytes, or a string such as ``"256MiB"``) bounds the working
    memory of add, commit, export and load_into (see :mod:`modelgit.memory`); the
    default comes from ``MODELGIT_MEMORY_BUDGET`` or is 512 MiB."""
    if _is_team_url(path):
        from .team import open_team

        return open_team(str(path), objects, storage_options, memory_budget=memory_budget)
    if objects is not None:
        raise UnsupportedInput("objects= is for team repositories (a postgresql:// URL)")
    return Repository(Path(path), memory_budget=memory_budget)


class Repository(LineageMixin, WorkflowMixin):
    """A modelgit repository. Create one with :func:`init`, open one with :func:`open`."""

    def __init__(
        self,
        root: Path,
        *,
        workers: int | None = None,
        team: TeamBackend | None = None,
        memory_budget: int | str | None = None,
    ) -> None:
        self.root = Path(root)
        self.budget = MemoryBudget.resolve(memory_budget)
        self.team = team
        self.catalog: Catalog
        self.format: int  # the format number the repository is marked with
        if team is None:
            self._open_local()
        else:
            self.catalog = team.catalog
            self.format = int(team.catalog.meta("format") or 1)
            self.store = ChunkStore(
                self.root, self.catalog, team.objects, cache_bytes=self.budget.cache
            )
        self.chunk_elems = DEFAULT_CHUNK_ELEMS
        self.max_depth = DEFAULT_MAX_DEPTH
        self._pool = ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1))
        self.last_write: WriteStats | None = None

    @property
    def location(self) -> str:
        """Where the repository is: its folder, or its catalog URL (password masked)."""
        return self.team.url if self.team is not None else str(self.root)

    def _open_local(self) -> None:
        fmt = self.root / FORMAT_FILE
        if not fmt.is_file():
            raise NotARepository(
                f"{self.root} is not a modelgit repository (no {FORMAT_FILE} file); "
                "create one with `modelgit init` or modelgit.init()"
            )
        lines = fmt.read_text(errors="replace").splitlines()
        if len(lines) < 2 or lines[0] != FORMAT_NAME or not lines[1].startswith("format "):
            raise NotARepository(f"{fmt} is not a modelgit format file")
        try:
            version = int(lines[1].split()[1])
        except (IndexError, ValueError):
            raise NotARepository(f"{fmt} has no readable format version") from None
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"{self.root} uses format {version}; this modelgit reads format "
                f"{FORMAT_VERSION} and older: upgrade modelgit"
            )
        self.format = version
        self.catalog = SqliteCatalog(self.root / CATALOG_FILE)
        try:
            schema = self.catalog.one("SELECT value FROM meta WHERE key = 'schema'")
        except sqlite3.DatabaseError as exc:
            self.catalog.close()
            raise CorruptObject(
                f"{self.root / CATALOG_FILE} cannot be read as a modelgit catalog ({exc}); "
                "restore it from a backup"
            ) from None
        if schema is None or int(schema[0]) > SCHEMA_VERSION:
            self.catalog.close()
            raise FormatVersionError(
                f"{self.root / CATALOG_FILE} has catalog schema {schema and schema[0]}; "
                f"this modelgit reads schema {SCHEMA_VERSION}"
            )
        self.store = ChunkStore(self.root, self.catalog, cache_bytes=self.budget.cache)

    # -- life cycle ---------------------------------------------------------------
    def close(self) -> None:
        """Finish background work and release every file the repository holds."""
        self._pool.shutdown(wait=True)
        self.store.close()
        self.catalog.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<modelgit.Repository {self.location!r}>"

    @contextmanager
    def _lock(self, exclusive: bool, writes: bool = True) -> Iterator[None]:
        """Writers hold the repository lock shared; gc holds it exclusively. ``writes``:
        the holder may write records, so the repository is brought to the current
        format first (a reader that only guards against gc passes False)."""
        if self.team is not None:  # across hosts: a PostgreSQL advisory lock
            with self.team.catalog.repo_lock(exclusive):
                if writes:
                    self._upgrade_format()
                yield
            return
        fd = os.open(self.root / "locks" / "repo.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if writes:
                self._upgrade_format()
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _upgrade_format(self) -> None:
        """Mark a repository of an older format as FORMAT_VERSION before a write that may
        use what that format added (rANS sections): an older modelgit then refuses the
        repository with FormatVersionError instead of failing on records it cannot
        decode. Nothing else changes: every older record stays valid."""
        if self.format >= FORMAT_VERSION:
            return
        if self.team is not None:
            with self.catalog.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('format', ?)",
                    (str(FORMAT_VERSION),),
                )
        else:
            _write_format_file(self.root)
        self.format = FORMAT_VERSION

    # -- queries ------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of all models, in the order they were added."""
        return [r[0] for r in self.catalog.query("SELECT name FROM models ORDER BY created, name")]

    def __contains__(self, name: object) -> bool:
        return (
            isinstance(name, str)
            and self.catalog.one("SELECT 1 FROM models WHERE name = ?", (name,)) is not None
        )

    def _require_model(self, name: str) -> None:
        validate_name(name)
        if name not in self:
            known = self.models()
            hint = f"; known models: {', '.join(known[:10])}" if known else " (it is empty)"
            raise UnknownModel(f"no model named {name!r} in {self.location}{hint}")

    def _parents_of(self, vid: int) -> tuple[ParentLink, ...]:
        rows = self.catalog.query(
            "SELECT v.model, v.number, p.kind, p.relation FROM version_parents p "
            "JOIN versions v ON v.id = p.parent WHERE p.version = ? ORDER BY p.position",
            (vid,),
        )
        return tuple(ParentLink(*r) for r in rows)

    def _version_from(self, row: tuple) -> Version:
        vid, rest = row[0], row[1:]
        return Version.from_row(rest, self._parents_of(vid))

    def versions(self, name: str) -> list[Version]:
        """All versions of a model, oldest first."""
        self._require_model(name)
        rows = self.catalog.query(
            f"SELECT v.id, {VERSION_COLUMNS} FROM versions v WHERE v.model = ? ORDER BY v.number",
            (name,),
        )
        return [self._version_from(r) for r in rows]

    def _resolve(self, ref: str, version: int | None = None) -> tuple[int, Version]:
        """(internal id, Version) of a reference: name, name@N, name@latest or a tag."""
        r = parse_ref(ref, version)
        if r.name not in self:
            tag = self.catalog.one("SELECT version FROM tags WHERE name = ?", (r.name,))
            if tag is not None and r.version is None:
                row = self.catalog.one(
                    f"SELECT v.id, {VERSION_COLUMNS} FROM versions v WHERE v.id = ?", (tag[0],)
                )
                assert row is not None
                return row[0], self._version_from(row)
            self._require_model(r.name)
        if r.version is None:
            row = self.catalog.one(
                f"SELECT v.id, {VERSION_COLUMNS} FROM versions v WHERE v.model = ? "
                "ORDER BY v.number DESC LIMIT 1",
                (r.name,),
            )
        else:
            row = self.catalog.one(
                f"SELECT v.id, {VERSION_COLUMNS} FROM versions v"
                " WHERE v.model = ? AND v.number = ?",
                (r.name, r.version),
            )
        if row is None:
            count = self.catalog.one("SELECT COUNT(*) FROM versions WHERE model = ?", (r.name,))
            raise UnknownVersion(
                f"model {r.name!r} has no version {r.version} (it has {count[0] if count else 0})"
            )
        return row[0], self._version_from(row)

    def version(self, ref: str, version: int | None = None) -> Version:
        """The :class:`Version` a reference names (latest when no version is given)."""
        return self._resolve(ref, version)[1]

    def _tensor_rows(self, vid: int, keys: Sequence[str] | None = None) -> list[TensorRow]:
        rows = [
            TensorRow.from_db(r)
            for r in self.catalog.query(
                f"SELECT {TENSOR_COLUMNS} FROM tensors WHERE version = ? ORDER BY position", (vid,)
            )
        ]
        if keys is None:
            return rows
        by_name = {r.name: r for r in rows}
        missing = [k for k in keys if k not in by_name]
        if missing:
            raise KeyError(f"no tensor named {missing[0]!r} in this version")
        wanted = {k: by_name[k] for k in keys}
        for k in list(wanted):  # a tied tensor needs the tensor it points to
            t = wanted[k].tie
            if t is not None and t not in wanted:
                wanted[t] = by_name[t]
        return list(wanted.values())

    # -- writing ------------------------------------------------------------------
    def add(
        self,
        name: str,
        model: Any,
        parents: str | Sequence[str] | None = None,
        relation: str = "finetune",
        message: str = "",
        metadata: Mapping[str, Any] | None = None,
        tolerance: object = None,
        progress: ProgressFn | None = None,
        creator: str | Callable[..., Any] | None = None,
        creator_args: Mapping[str, Any] | None = None,
    ) -> Version:
        """Add a new model and store ``model`` as its version 1.

        ``parents``: a reference (``name`` or ``name@N``) or a list of them; the new model
        is derived from them by ``relation``. Its weights are stored as deltas against
        the first parent where that is smaller. ``creator`` (``"pkg.module:function"``,
        called as ``fn(parents, **creator_args)``) lets :meth:`cascade` re-derive it.
        """
        validate_name(name)
        if name in self:
            raise ModelExists(f"model {name!r} exists already; use commit() for a new version")
        if self.catalog.one("SELECT 1 FROM tags WHERE name = ?", (name,)):
            raise ModelExists(f"{name!r} is a tag; choose another model name")
        if parents is None:
            parent_refs: list[str] = []
        elif isinstance(parents, str):
            parent_refs = [parents]
        else:
            parent_refs = list(parents)
        if not isinstance(relation, str) or not relation or len(relation) > 64:
            raise LineageError("relation must be a short non-empty string, e.g. 'finetune'")
        links = []
        for p in parent_refs:
            pid, pv = self._resolve(p)
            if pv.model == name:
                raise LineageError(f"model {name!r} cannot be its own parent")
            links.append((pid, pv, "provenance", relation))
        if len({pv.model for _, pv, _, _ in links}) != len(links):
            raise LineageError("the same parent model is listed twice")
        if creator is not None:
            if not parent_refs:
                raise LineageError("a creation function needs parents= to derive the model from")
            self._check_creator(creator, creator_args)  # a bad path or non-JSON args
        version = self._write(
            name, model, links, message, metadata, tolerance, new_model=True, progress=progress
        )
        if creator is not None:
            self.set_creator(name, creator, creator_args)
        return version

    def commit(
        self,
        name: str,
        model: Any,
        message: str = "",
        tolerance: object = None,
        metadata: Mapping[str, Any] | None = None,
        progress: ProgressFn | None = None,
    ) -> Version:
        """Store ``model`` as the next version of the existing model ``name``."""
        self._require_model(name)
        prev_id, prev = self._resolve(name)
        links = [(prev_id, prev, "version", "version")]
        return self._write(
            name, model, links, message, metadata, tolerance, new_model=False, progress=progress
        )

    def _write(
        self,
        name: str,
        model: Any,
        links: list[tuple[int, Version, str, str]],
        message: str,
        metadata: Mapping[str, Any] | None,
        tolerance: object,
        new_model: bool,
        progress: ProgressFn | None = None,
    ) -> Version:
        tol = parse_tolerance(tolerance)
        meta = dict(metadata or {})
        try:
            meta_json = json.dumps(meta, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise UnsupportedInput(f"metadata must be JSON-serialisable: {exc}") from None
        parents = [{r.name: r for r in self._tensor_rows(pid)} for pid, _, _, _ in links]
        with open_model(model) as source:
            if isinstance(tol, Auto):
                sd = {t.name: _materialize(t) for t in source.tensors}
                parent_sd = self.load(links[0][1].ref) if links else None
                tol, trials = choose_tolerance(tol, sd, parent_sd, self.chunk_elems)
                meta["auto_trials"] = [
                    {"tolerance": None if t.tolerance is None else t.tolerance.to_json(),
                     "metric": t.metric, "drop": t.drop, "accepted": t.accepted}
                    for t in trials
                ]  # fmt: skip
                meta_json = json.dumps(meta, sort_keys=True)
            with self._lock(exclusive=False):
                try:
                    rows, stats = write_tensors(
                        self.store,
                        source,
                        parents,
                        self._pool,
                        chunk_elems=self.chunk_elems,
                        max_depth=self.max_depth,
                        tolerance=tol,
                        progress=Counter(
                            progress, sum(t.nbytes for t in source.tensors if t.tie is None)
                        ),
                        window=self.budget.window_chunks(
                            self.chunk_elems * _widest(source.tensors),
                            self._pool._max_workers,
                        ),
                    )
                    self.store.sync()
                    version = self._publish(
                        name,
                        rows,
                        links,
                        message,
                        meta_json,
                        source.files,
                        stats,
                        new_model,
                        tol if stats.lossy else None,
                    )
                except BaseException:
                    self.store.abandon()
                    raise
                self.store.published()
        self.last_write = stats
        return version

    def _publish(
        self,
        name: str,
        rows: list[TensorRow],
        links: list[tuple[int, Version, str, str]],
        message: str,
        meta_json: str,
        files: dict[str, bytes],
        stats: WriteStats,
        new_model: bool,
        tolerance: ErrorBound | LowBit | None = None,
    ) -> Version:
        h = xxhash.xxh3_128()
        for r in sorted(rows, key=lambda r: r.name):
            h.update(f"{r.name}\0{r.dtype}\0{list(r.shape)}\0".encode())
            h.update(r.content)
        content_id = h.hexdigest()
        now = time.time()
        with self.catalog.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO chunks(id, pack, offset, length, raw_length, codec, base,"
                " depth, lossy) VALUES (?,?,?,?,?,?,?,?,?)",
                [r.as_tuple() for r in self.store.pending_rows()],
            )
            if new_model:
                if db.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone():
                    raise ModelExists(f"model {name!r} was added by someone else meanwhile")
                db.execute(
                    "INSERT INTO models(name, created, metadata) VALUES (?, ?, '{}')", (name, now)
                )
            number = db.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE model = ?", (name,)
            ).fetchone()[0]
            seed = f"{name}\0{number}\0{content_id}\0{now!r}\0{[v.id for _, v, _, _ in links]}"
            uid = xxhash.xxh3_128_hexdigest(seed.encode())[:16]
            vid = db.execute(
                "INSERT INTO versions(uid, model, number, content_id, message, created, lossy,"
                " tolerance, metadata, logical_bytes) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    uid,
                    name,
                    number,
                    content_id,
                    message,
                    now,
                    int(tolerance is not None),
                    None if tolerance is None else json.dumps(tolerance.to_json()),
                    meta_json,
                    stats.logical_bytes,
                ),
            ).lastrowid
            for pos, (pid, pv, kind, relation) in enumerate(links):
                db.execute(
                    "INSERT INTO version_parents(version, parent, kind, relation, position)"
                    " VALUES (?,?,?,?,?)",
                    (vid, pid, kind, relation, pos),
                )
                if kind == "provenance":
                    db.execute(
                        "INSERT OR IGNORE INTO edges(parent, child, relation) VALUES (?,?,?)",
                        (pv.model, name, relation),
                    )
            db.executemany(
                "INSERT INTO tensors(version, position, name, dtype, shape, nbytes, content,"
                " chunk_bytes, chunks, tie) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        vid,
                        r.position,
                        r.name,
                        r.dtype,
                        json.dumps(list(r.shape)),
                        r.nbytes,
                        r.content,
                        r.chunk_bytes,
                        r.chunks,
                        r.tie,
                    )
                    for r in rows
                ],
            )
            db.executemany(
                "INSERT INTO files(version, path, data) VALUES (?,?,?)",
                [(vid, p, d) for p, d in sorted(files.items())],
            )
            row = db.execute(
                f"SELECT v.id, {VERSION_COLUMNS} FROM versions v WHERE v.id = ?", (vid,)
            ).fetchone()
        return self._version_from(row)

    # -- reading ------------------------------------------------------------------
    def load(
        self,
        ref: str,
        version: int | None = None,
        *,
        device: str | torch.device = "cpu",
        keys: Sequence[str] | None = None,
        progress: ProgressFn | None = None,
    ) -> dict[str, torch.Tensor]:
        """The tensors of a version (latest by default) as a new state_dict.

        ``keys`` limits the work to those tensors. Every chunk is verified. With
        ``device="cuda"`` and the CUDA module built, the transforms run on the GPU
        (see ``reader_cuda``); otherwise tensors are decoded on the CPU and moved.
        """
        vid, _ = self._resolve(ref, version)
        rows = self._tensor_rows(vid, keys)
        dev = torch.device(device)
        if dev.type == "cuda" and _gpu_decode_available() and self._mostly_planes(rows):
            from .reader_cuda import read_tensors_cuda

            sd = read_tensors_cuda(self.store, rows, self._pool, dev)
        else:
            total = sum(r.nbytes for r in rows if r.tie is None)
            sd = read_tensors(self.store, rows, self._pool, progress=Counter(progress, total))
            if dev.type != "cpu":
                moved: dict[int, torch.Tensor] = {}
                sd = {k: moved.setdefault(id(t), t.to(dev)) for k, t in sd.items()}
        if keys is not None:
            sd = {k: sd[k] for k in keys}
        return sd

    def _mostly_planes(self, rows: Sequence[TensorRow]) -> bool:
        """Whether most chunks use the planes codec, whose transform runs on the GPU
        (other codecs decode on the CPU anyway: then CPU decode + one copy is faster)."""
        ids = [c for r in rows if r.tie is None for c in r.chunk_ids]
        found = self.store.rows(ids)
        planes = sum(1 for c in ids if (row := found.get(c)) and row.codec == codec.PLANES)
        return 2 * planes >= len(ids)

    def load_tensor(self, ref: str, key: str, version: int | None = None) -> torch.Tensor:
        """One tensor of a version, decoding only its own chunks."""
        return self.load(ref, version, keys=[key])[key]

    def load_into(
        self,
        module: torch.nn.Module,
        ref: str,
        version: int | None = None,
        strict: bool = True,
        progress: ProgressFn | None = None,
    ) -> Any:
        """Load a stored version into ``module`` like ``module.load_state_dict``.

        Chunks are decoded straight into the module's parameters and buffers (converted
        through one tensor at a time where dtype or layout differ), so no second copy
        of the model is ever held. Names and shapes are checked before anything is
        written; returns ``(missing_keys, unexpected_keys)``."""
        from .load_into import load_into_module

        vid, _ = self._resolve(ref, version)
        return load_into_module(self, vid, module, strict=strict, progress=progress)

    def files(self, ref: str, version: int | None = None) -> dict[str, bytes]:
        """The side files (configs, tokenizers) stored with a version."""
        vid, _ = self._resolve(ref, version)
        return dict(self.catalog.query("SELECT path, data FROM files WHERE version = ?", (vid,)))

    def export(
        self,
        ref: str,
        path: str | os.PathLike[str],
        version: int | None = None,
        progress: ProgressFn | None = None,
        max_shard_size: int | str | None = None,
    ) -> Path:
        """Write a version as a ``.safetensors`` file, or as a folder with side files and
        the weights in shards of at most ``max_shard_size`` (default 5GB, as
        ``save_pretrained``; one ``model.safetensors`` when it fits) plus an index."""
        from .export import export_version

        vid, v = self._resolve(ref, version)
        return export_version(
            self, vid, v, Path(path), progress=progress, max_shard_size=max_shard_size
        )

    # -- maintenance --------------------------------------------------------------
    def remove(self, name: str) -> None:
        """Delete a model and all its versions; its chunks are reclaimed by :meth:`gc`."""
        self._require_model(name)
        with self.catalog.transaction() as db:
            vids = [r[0] for r in db.execute("SELECT id FROM versions WHERE model = ?", (name,))]
            marks = ",".join("?" * len(vids))
            if vids:
                db.execute(f"DELETE FROM version_parents WHERE parent IN ({marks})", vids)
                db.execute(f"DELETE FROM tags WHERE version IN ({marks})", vids)
            db.execute("DELETE FROM models WHERE name = ?", (name,))

    def stats(self) -> maintenance.RepoStats:
        """Logical and stored bytes, for the repository and per model."""
        return maintenance.stats(self)

    def fsck(self, full: bool = True, progress: ProgressFn | None = None) -> maintenance.FsckReport:
        """Check the repository; ``full`` decodes and verifies every chunk."""
        return maintenance.fsck(self, full=full, progress=progress)

    def gc(self, progress: ProgressFn | None = None) -> maintenance.GcReport:
        """Reclaim the space of chunks no version needs and of torn pack tails."""
        with self._lock(exclusive=True):
            return maintenance.gc(self, progress=progress)
