"""The engine under the repository front: versions of models over a storage backend.

:class:`VersionStore` owns a :class:`~modelgit.storage.Backend` (catalog, chunk store,
lock), the worker pool and the memory budget, and offers two faces:

* the versions API of :class:`modelgit.Repository` (``add``, ``commit``, ``versions``,
  ``load``, ``export``, ``remove``, ``stats``, ``fsck``, ``gc``, ...);
* the internal API that the lineage and workflow services build on, documented here
  and in docs/architecture.md: :meth:`resolve` (a reference to its internal id and
  :class:`Version`), :meth:`version_by_id`, :meth:`require_model`,
  :meth:`tensor_rows`, :meth:`write` (store a model as a new version with given parent
  links), :meth:`lock`, :attr:`pool` and :attr:`workers`, :attr:`catalog`,
  :attr:`store`. Services take a ``VersionStore``, never the front class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..catalog import Catalog, checks
from ..catalog.records import TensorRow
from ..catalog.schema import has_table
from ..dtypes import by_name
from ..errors import CorruptObject, ModelExists, UnknownVersion, UnsupportedInput
from ..formats import hf
from ..memory import MemoryBudget
from ..names import validate_name
from ..pool import WorkerPool
from ..progress import ProgressFn
from ..storage import maintenance
from ..storage.backend import Backend
from ..storage.opening import open_backend
from ..storage.store import DEFAULT_MAX_DEPTH, ChunkStore
from ..storage.writer import DEFAULT_CHUNK_ELEMS, WriteStats
from . import refs
from .checkout import CheckoutCache
from .export import export_link, export_version
from .load import load_arguments, load_state_dict, proof_of, served, trusted_hit
from .load_into import copy_into, load_into_module
from .remove import remove_model
from .repack import RepackReport, deepest_chain
from .repack import repack as repack_versions
from .seals import Proof
from .stars import STAR_SLACK
from .version import Version
from .write import Link, SideFiles, provenance_links, write_version

if TYPE_CHECKING:
    import torch

    from ..storage.team import TeamBackend

__all__ = ["VersionStore"]

MAX_DEPTH_LIMIT = 64


def _check_depth(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DEPTH_LIMIT:
        raise UnsupportedInput(f"max_depth must be a whole number from 0 to {MAX_DEPTH_LIMIT}")
    return value


def _weights_dtype(rows: Sequence[TensorRow]) -> torch.dtype | None:
    """The floating dtype holding most of a version's bytes (None: no float tensor)."""
    size: dict[torch.dtype, int] = {}
    for r in rows:
        dt = by_name(r.dtype).torch
        if dt.is_floating_point:
            size[dt] = size.get(dt, 0) + r.nbytes
    return max(size, key=lambda d: size[d]) if size else None


_S = TypeVar("_S", bound="VersionStore")


class VersionStore:
    """Models and their versions in one repository (see the module docstring)."""

    def __init__(
        self,
        backend: Backend,
        *,
        workers: int | None = None,
        memory_budget: MemoryBudget | int | str | None = None,
        checkout_cache: int | str | None = None,
    ) -> None:
        self.backend = backend
        self.budget = MemoryBudget.resolve(memory_budget)
        where = backend.location if backend.team is not None else str(backend.root.resolve())
        self.checkout_cache = CheckoutCache(where, checkout_cache)
        self.pool = WorkerPool(workers)
        self.chunk_elems = DEFAULT_CHUNK_ELEMS
        self.last_write: WriteStats | None = None
        self._max_depth: int | None = None  # this handle's override of the layout

    @classmethod
    def open_path(
        cls: type[_S],
        path: str | os.PathLike[str],
        *,
        objects: str | os.PathLike[str] | None = None,
        storage_options: dict[str, Any] | None = None,
        workers: int | None = None,
        memory_budget: MemoryBudget | int | str | None = None,
        checkout_cache: int | str | None = None,
        read_only: bool = False,
    ) -> _S:
        """Open the repository at ``path`` (a folder, or a team repository's URL)."""
        budget = MemoryBudget.resolve(memory_budget)
        backend = open_backend(
            path,
            objects=objects,
            storage_options=storage_options,
            cache_bytes=budget.cache,
            read_only=read_only,
        )
        return cls(backend, workers=workers, memory_budget=budget, checkout_cache=checkout_cache)

    # -- the backend's parts ----------------------------------------------------------
    @property
    def root(self) -> Path:
        """The repository folder (a team repository's local folder on this host)."""
        return self.backend.root

    @property
    def catalog(self) -> Catalog:
        return self.backend.catalog

    @property
    def store(self) -> ChunkStore:
        return self.backend.store

    @property
    def format(self) -> int:
        """The format number the repository is marked with."""
        return self.backend.format

    @property
    def team(self) -> TeamBackend | None:
        """The team backend (PostgreSQL catalog, object store), or None for a folder."""
        return self.backend.team

    @property
    def location(self) -> str:
        """Where the repository is: its folder, or its catalog URL (password masked)."""
        return self.backend.location

    @property
    def workers(self) -> int:
        """Threads of :attr:`pool`."""
        return self.pool.workers

    def lock(self, exclusive: bool, writes: bool = True) -> AbstractContextManager[None]:
        """The repository lock (writers shared, gc exclusive); see ``Backend.lock``."""
        return self.backend.lock(exclusive, writes)

    def close(self) -> None:
        """Finish background work and release every file the repository holds."""
        self.pool.shutdown(wait=True)
        self.backend.close()

    # -- layout ---------------------------------------------------------------------
    @property
    def max_depth(self) -> int:
        """The delta links a new chunk may sit above a standalone one: the repository's
        layout (:meth:`layout`), unless this handle set its own."""
        if self._max_depth is not None:
            return self._max_depth
        return self.layout()["max_depth"]

    @max_depth.setter
    def max_depth(self, value: int) -> None:
        self._max_depth = _check_depth(value)

    def layout(self, *, max_depth: int | None = None) -> dict[str, int]:
        """The storage layout new versions are written with; with ``max_depth``, change
        it for every writer of the repository (kept in the catalog).

        ``max_depth`` bounds how many delta links separate any chunk from a standalone
        one, so it bounds what a load decodes: a version at depth d decodes its bases
        too (about 1 + 0.3 d times the time of a standalone model). Deeper allows
        smaller deltas (each against its direct parent); a chain that reaches the bound
        continues as a star around its anchor instead of starting a full copy. Default
        4 (docs/guide.md, "Storage layout"). Existing chunks keep their layout."""
        if max_depth is not None:
            depth = _check_depth(max_depth)
            with self.catalog.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('max_depth', ?)",
                    (str(depth),),
                )
        row = self.catalog.one("SELECT value FROM meta WHERE key = 'max_depth'")
        try:
            stored = int(row[0]) if row is not None else DEFAULT_MAX_DEPTH
        except ValueError:
            stored = DEFAULT_MAX_DEPTH  # an unreadable setting is not data: use the default
        return {"max_depth": stored}

    # -- queries --------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of all models, in the order they were added."""
        return refs.model_names(self.catalog)

    def __contains__(self, name: object) -> bool:
        return refs.has_model(self.catalog, name)

    def require_model(self, name: str) -> None:
        """Raise :class:`~modelgit.UnknownModel` unless ``name`` is a model here."""
        refs.require_model(self.catalog, name, self.location)

    def versions(self, name: str) -> list[Version]:
        """All versions of a model, oldest first."""
        self.require_model(name)
        return refs.versions_of(self.catalog, name)

    def resolve(self, ref: str, version: int | None = None) -> tuple[int, Version]:
        """(internal id, Version) of a reference: name, name@N, name@latest or a tag."""
        return refs.resolve(self.catalog, ref, version, self.location)

    def version(self, ref: str, version: int | None = None) -> Version:
        """The :class:`Version` a reference names (latest when no version is given)."""
        return self.resolve(ref, version)[1]

    def version_by_id(self, vid: int) -> Version:
        """The version with internal id ``vid``; UnknownVersion if it is gone."""
        v = refs.version_by_id(self.catalog, vid)
        if v is None:
            raise UnknownVersion(f"version #{vid} is gone")
        return v

    def tensor_rows(
        self, vid: int, keys: Sequence[str] | None = None, *, state: bool = False
    ) -> list[TensorRow]:
        """The tensor rows of version ``vid``'s weights (of the tensors ``keys`` and those
        they are tied to, when given); a checkpoint's training state too with ``state``."""
        return refs.select_tensor_rows(self.catalog, vid, keys, state=state)

    def storage_bases(self, ref: str, version: int | None = None) -> list[Version]:
        """The versions a version's weights were coded against when it was written (its
        storage bases; its declared parents are its lineage, ``Version.parents``).
        Empty for a version stored standalone or written before bases were recorded."""
        vid, _ = self.resolve(ref, version)
        if not has_table(self.catalog, "storage_bases"):
            return []
        ids = [r[0] for r in self.catalog.query(
            "SELECT base FROM storage_bases WHERE version = ? ORDER BY base", (vid,)
        )]  # fmt: skip
        return [self.version_by_id(b) for b in ids]

    def files(self, ref: str, version: int | None = None) -> dict[str, bytes]:
        """The side files (configs, tokenizers) stored with a version."""
        return self.read_verified(ref, version)[3]

    def read_verified(
        self, ref: str, version: int | None = None, *, files: bool = True
    ) -> tuple[int, Version, list[TensorRow], dict[str, bytes]]:
        """(internal id, Version, tensor rows, side files) of a version, read in one
        snapshot of the catalog and checked against the version's digest. Decoding
        then needs the catalog no more (chunks verify themselves), so a remove, commit
        or gc landing meanwhile changes nothing it returns. ``files=False``: a caller
        that needs no side files gets ``{}`` (they are not read again)."""
        with self.catalog.snapshot():
            vid, v = self.resolve_verified(ref, version)
            rows = self.tensor_rows(vid)
            stored = (
                self.catalog.query("SELECT path, data FROM files WHERE version = ?", (vid,))
                if files
                else []
            )
        return vid, v, rows, {path: bytes(data) for path, data in stored}

    def resolve_verified(self, ref: str, version: int | None = None) -> tuple[int, Version]:
        """:meth:`resolve`, then the version's catalog rows checked against their digest
        (``catalog.checks``): CorruptObject if they were damaged, UnknownVersion if the
        version was removed meanwhile. Call inside ``catalog.snapshot()`` together with
        the reads of its rows, so that they see the version that was checked."""
        vid, v = self.resolve(ref, version)
        checks.verify_version(self.catalog, vid, v.ref)
        return vid, v

    # -- writing --------------------------------------------------------------------
    def new_model_links(
        self, name: str, parents: str | Sequence[str] | None, relation: str
    ) -> list[Link]:
        """Check that ``name`` is free and return its links to ``parents``."""
        validate_name(name)
        if name in self:
            raise ModelExists(f"model {name!r} exists already; use commit() for a new version")
        if self.catalog.one("SELECT 1 FROM tags WHERE name = ?", (name,)):
            raise ModelExists(f"{name!r} is a tag; choose another model name")
        return provenance_links(self, name, parents, relation)

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
        base: str = "auto",
        *,
        follow_symlinks: bool = False,
        files: SideFiles | None = None,
    ) -> Version:
        """Add a new model and store ``model`` as its version 1 (see ``Repository.add``)."""
        links = self.new_model_links(name, parents, relation)
        return self.write(name, model, links, message, metadata, tolerance, True, progress, base,
                          follow_symlinks=follow_symlinks, files=files)  # fmt: skip

    def commit(
        self,
        name: str,
        model: Any,
        message: str = "",
        tolerance: object = None,
        metadata: Mapping[str, Any] | None = None,
        progress: ProgressFn | None = None,
        base: str = "auto",
        *,
        follow_symlinks: bool = False,
        files: SideFiles | None = None,
    ) -> Version:
        """Store ``model`` as the next version of the existing model ``name``. ``base``:
        what its tensors are coded against, ``"auto"`` (the closest stored tensors) or
        ``"parent"`` (the previous version's), as for :meth:`add`; ``follow_symlinks``
        as for :meth:`add`. Side files (config, tokenizer): a folder's own; for a
        state_dict, an ``nn.Module`` or a single ``.safetensors`` file, the previous
        version's, unless ``files`` (a dict of path -> bytes, or a folder) gives others."""
        self.require_model(name)
        prev_id, prev = self.resolve(name)
        links: list[Link] = [(prev_id, prev, "version", "version")]
        return self.write(name, model, links, message, metadata, tolerance, False, progress,
                          base, follow_symlinks=follow_symlinks, files=files)  # fmt: skip

    def write_tolerance(self, name: str, links: list[Link], tolerance: object) -> object:
        """The tolerance a write of ``name`` with ``links`` uses, given the caller's: here
        the caller's; the front turns ``Auto(guard=True)`` into the model's registered
        tests."""
        return tolerance

    def write(
        self,
        name: str,
        model: Any,
        links: list[Link],
        message: str = "",
        metadata: Mapping[str, Any] | None = None,
        tolerance: object = None,
        new_model: bool = False,
        progress: ProgressFn | None = None,
        base: str = "auto",
        *,
        follow_symlinks: bool = False,
        files: SideFiles | None = None,
        state: Mapping[str, Any] | None = None,
        state_tolerance: object = None,
    ) -> Version:
        """Store ``model`` as a new version of ``name`` with the given parent links
        (``(internal id, Version, kind, relation)``) and publish it in one transaction;
        its chunks are coded against the stored tensors ``base`` picks (``"auto"`` or
        ``"parent"``: ``versions.bases``). Side files: ``files``, else a folder's own,
        else those of the linked version ``versions.write.inherited_from`` names.
        :attr:`last_write` tells how it was stored. ``state``: a checkpoint's training
        state tensors, stored beside the weights under ``refs.STATE_PREFIX``."""
        tolerance = self.write_tolerance(name, links, tolerance)
        return write_version(
            self, name, model, links, message, metadata, tolerance, new_model, progress, base,
            follow_symlinks=follow_symlinks, files=files, state=state,
            state_tolerance=state_tolerance,
        )  # fmt: skip

    # -- reading --------------------------------------------------------------------
    def load(
        self,
        ref: str,
        version: int | None = None,
        *,
        device: str | torch.device = "cpu",
        keys: Sequence[str] | str | None = None,
        progress: ProgressFn | None = None,
    ) -> dict[str, torch.Tensor]:
        """The tensors of a version (latest by default) as a new state_dict.

        ``keys`` limits the work to those tensors. Every chunk is verified (a sealed
        checkout-cache entry was when it was sealed, and is served while its file and
        the boot are unchanged: ``versions.checkout``). With
        ``device="cuda"`` and the CUDA module built, the transforms run on the GPU
        (see ``storage.reader_cuda``); otherwise tensors are decoded on the CPU and moved.
        """
        device, keys = load_arguments(device, keys)
        hit = trusted_hit(self, ref, version)
        if hit is not None:
            return served(hit, keys, device, progress)
        vid, v, rows, _ = self.read_verified(ref, version, files=False)
        return load_state_dict(self, vid, v, device=device, keys=keys, progress=progress, rows=rows)

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
        hit = trusted_hit(self, ref, version)
        if hit is not None:
            return copy_into(module, hit, strict, progress)
        vid, v, rows, _ = self.read_verified(ref, version, files=False)
        return load_into_module(self, vid, v, module, strict=strict, progress=progress, rows=rows)

    def load_model(
        self,
        ref: str,
        version: int | None = None,
        *,
        dtype: torch.dtype | str | None = None,
        progress: ProgressFn | None = None,
    ) -> torch.nn.Module:
        """A ready ``transformers`` model of a version stored with a Hugging Face
        ``config.json`` (from a folder, or inherited from such a parent): built from the
        config (the architecture it names, else ``AutoModel``), in ``dtype`` (a torch
        dtype or its name, ``"bfloat16"``; default: the stored weights' dtype), filled
        with :meth:`load_into`, in eval mode.

        Needs ``transformers`` (``pip install "modelgit[hf]"``); UnsupportedInput names
        it when it is missing, and says so when the version has no ``config.json`` or
        its tensors do not fit the architecture. Code shipped with a model is never run.
        """
        wanted = None if dtype is None else hf.torch_dtype(dtype)  # before any reading
        vid, v, rows, files = self.read_verified(ref, version)
        model = hf.build_model(files, v.ref, wanted if wanted is not None else _weights_dtype(rows))
        hf.check_names(model, {r.name for r in rows}, v.ref)
        load_into_module(self, vid, v, model, strict=False, progress=progress, rows=rows)
        return model

    def export(
        self,
        ref: str,
        path: str | os.PathLike[str],
        version: int | None = None,
        progress: ProgressFn | None = None,
        max_shard_size: int | str | None = None,
        link: bool = False,
        force: bool = False,
    ) -> Path:
        """Write a version as a ``.safetensors`` file, or as a folder with side files and
        the weights in shards of at most ``max_shard_size`` (default 5GB, as
        ``save_pretrained``; one ``model.safetensors`` when it fits) plus an index.

        ``link=True`` hard-links the version's checkout-cache file (made now if it is
        missing) instead of writing a copy: instant, no extra space, read-only.

        An existing file or non-empty folder is refused (TargetExists) unless
        ``force=True``; then the files an earlier export wrote there (weights, index, the
        side files its ``.modelgit-export.json`` lists) that this version lacks are
        removed, and files no export wrote are left alone. ``.pt``/``.bin`` targets are
        refused: the output is safetensors."""
        vid, v, rows, files = self.read_verified(ref, version)
        if link:
            return export_link(self, vid, v, Path(path), max_shard_size=max_shard_size,
                               rows=rows, files=files, force=force)  # fmt: skip
        return export_version(self, vid, v, Path(path), progress=progress,
                              max_shard_size=max_shard_size, rows=rows, files=files,
                              force=force)  # fmt: skip

    # -- maintenance ----------------------------------------------------------------
    def remove(self, name: str, force: bool = False) -> None:
        """Delete a model and all its versions; its chunks are reclaimed by :meth:`gc`.

        A model with descendants (models derived from it) is refused with
        :class:`~modelgit.LineageError` naming them, unless ``force=True``: they are then
        re-linked to its parents with their relation, or keep a tombstone when it had
        none; ``log``, ``ls`` and ``graph`` say "via removed NAME" (see
        :mod:`modelgit.versions.remove`). Their weights stay readable either way."""
        remove_model(self, name, force)
        self._prune_checkouts()

    def verify_checkout_cache(self) -> tuple[int, int]:
        """Hash every checkout-cache entry of this repository against its version's
        chunk ids now, as when it was written, and seal it again; delete the entries
        that fail and those of versions that are gone or damaged in the catalog.
        Returns (kept, deleted). A hit on a sealed entry skips the hashing
        (``versions.checkout``): this is the full check, for whoever suspects the disk."""

        def candidates(content_id: str) -> list[tuple[list[TensorRow], Proof]]:
            out = []
            for (vid,) in self.catalog.query(
                "SELECT id FROM versions WHERE content_id = ? ORDER BY id", (content_id,)
            ):
                try:
                    vid, v, rows, _ = self.read_verified(self.version_by_id(vid).ref, files=False)
                except (CorruptObject, UnknownVersion):
                    continue  # damaged or gone: vouches for nothing
                out.append((rows, proof_of(self, vid, v)))
            return out

        return self.checkout_cache.verify(candidates)

    def _prune_checkouts(self) -> None:
        """Drop the checkout-cache entries of versions that are gone."""
        live = {r[0] for r in self.catalog.query("SELECT content_id FROM versions")}
        self.checkout_cache.keep_only(live)

    def stats(self) -> maintenance.RepoStats:
        """Logical and stored bytes, for the repository and per model."""
        return maintenance.stats(self.catalog, self.store)

    def fsck(self, full: bool = True, progress: ProgressFn | None = None) -> maintenance.FsckReport:
        """Check the repository; ``full`` decodes and verifies every chunk. Holds the
        repository lock shared (gc waits; writes go on: fsck reads one snapshot)."""
        with self.lock(exclusive=False, writes=False):
            return maintenance.fsck(self.catalog, self.store, full=full, progress=progress)

    def repack(
        self,
        gc: bool = True,
        progress: ProgressFn | None = None,
        *,
        stars: bool = True,
        star_slack: float = STAR_SLACK,
        casts: bool = True,
    ) -> RepackReport:
        """Re-choose the bases of every stored chunk under the current policy (automatic
        bases, linear predictors), keeping new records where they are smaller; then,
        with ``stars``, re-code delta chains as stars around their medoid where that
        takes at most ``star_slack`` more space (a share: 0.01, 1%, by default; every
        version of a star then decodes at most one delta: :mod:`modelgit.versions.stars`);
        with ``casts``, code each cast of a delta against the standalone chunk that
        delta's chain ends in, where that takes at most half the cast's raw bytes (a
        chunk of at most 16 KiB whatever it takes; it then decodes one delta too:
        :mod:`modelgit.versions.casts`); then ``gc`` to reclaim the old records' space
        unless ``gc=False``. Loads keep working while it runs; adds and commits wait.
        ValueError if ``star_slack`` is not between 0 and 1. See
        :mod:`modelgit.versions.repack`."""
        report = repack_versions(
            self, progress=progress, stars=stars, star_slack=star_slack, casts=casts
        )
        if gc and report.rewritten:
            report.gc_reclaimed = self.gc().bytes_freed
            report.deepest_after = deepest_chain(self)  # chains gc dropped count no more
        return report

    def gc(self, progress: ProgressFn | None = None) -> maintenance.GcReport:
        """Reclaim the space of chunks no version needs and of torn pack tails."""
        with self.lock(exclusive=True):
            report = maintenance.gc(self.catalog, self.store, progress=progress)
        self._prune_checkouts()
        return report
