"""The front: :func:`init`, :func:`open` and :class:`Repository`.

A repository is the engine (:class:`~modelgit.versions.VersionStore`: models, versions,
load, export, maintenance over a storage backend) plus the lineage API
(:class:`~modelgit.lineage.LineageMixin`) and the workflow API
(:class:`~modelgit.workflows.WorkflowMixin`). docs/architecture.md shows the layers;
docs/FORMAT.md the folder: ``MODELGIT`` (format file), ``catalog.db`` (SQLite, WAL),
``packs/`` (append-only chunk packs), ``locks/``. A team repository has the same API
over a PostgreSQL catalog and packs in an object store (``storage.team``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from .errors import LineageError
from .lineage import LineageMixin
from .memory import MemoryBudget
from .progress import ProgressFn
from .storage.backend import FORMAT_FILE, FORMAT_NAME, FORMAT_VERSION
from .storage.opening import open_backend
from .tolerance import Auto
from .versions import Version, VersionStore
from .versions.write import SideFiles
from .workflows import WorkflowMixin

__all__ = ["Repository", "init", "open", "FORMAT_FILE", "FORMAT_NAME", "FORMAT_VERSION"]


def init(
    path: str | os.PathLike[str],
    *,
    objects: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    memory_budget: int | str | None = None,
    checkout_cache: int | str | None = None,
) -> Repository:
    """Create a new, empty repository at ``path`` (a new or empty folder).

    With a ``postgresql://`` URL as ``path``, create a team repository: the catalog in
    that database, the packs in ``objects`` (``s3://bucket/prefix`` or a shared folder);
    see :mod:`modelgit.storage.team`. ``storage_options`` go to fsspec (e.g.
    ``endpoint_url``). The other options are those of :func:`open`."""
    budget = MemoryBudget.resolve(memory_budget)
    backend = open_backend(
        path,
        objects=objects,
        storage_options=storage_options,
        cache_bytes=budget.cache,
        create=True,
    )
    return Repository(backend, memory_budget=budget, checkout_cache=checkout_cache)


def open(  # noqa: A001 - public API name
    path: str | os.PathLike[str],
    *,
    objects: str | os.PathLike[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    memory_budget: int | str | None = None,
    checkout_cache: int | str | None = None,
    read_only: bool = False,
) -> Repository:
    """Open the existing repository at ``path`` (a folder, or a ``postgresql://`` URL of
    a team repository; ``objects`` then overrides the object store it names).

    ``read_only=True``: reads work, every write raises
    :class:`~modelgit.ReadOnlyRepository`, and no file of the repository is written
    (SQLite may leave its ``-wal``/``-shm`` reader files); ``modelgit serve`` uses it.

    ``memory_budget`` (bytes, or a string such as ``"256MiB"``) bounds the working
    memory of add, commit, export and load_into (see :mod:`modelgit.memory`); the
    default comes from ``MODELGIT_MEMORY_BUDGET`` or is 512 MiB. ``checkout_cache``
    (bytes, 0 = off) keeps decoded versions as files that later loads map instead of
    decoding (see :mod:`modelgit.versions.checkout`); the default comes from
    ``MODELGIT_CHECKOUT_CACHE`` or ``modelgit cache size``, else it is off."""
    return Repository.open_path(
        path,
        objects=objects,
        storage_options=storage_options,
        memory_budget=memory_budget,
        checkout_cache=checkout_cache,
        read_only=read_only,
    )


class Repository(VersionStore, LineageMixin, WorkflowMixin):
    """A modelgit repository. Create one with :func:`init`, open one with :func:`open`."""

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<modelgit.Repository {self.location!r}>"

    def write_tolerance(self, name: str, links: list[Any], tolerance: object) -> object:
        """``Auto(guard=True)`` becomes the check of the tests registered on the model
        (:meth:`registered_guard`); any other tolerance is kept."""
        if isinstance(tolerance, Auto) and tolerance.guard is True:
            parents = [v.model for _, v, kind, _ in links if kind == "provenance"]
            return replace(tolerance, guard=self.registered_guard(name, parents))
        return tolerance

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
        base: str = "auto",
        *,
        follow_symlinks: bool = False,
        files: SideFiles | None = None,
    ) -> Version:
        """Add a new model and store ``model`` as its version 1.

        ``model``: a state_dict, an ``nn.Module``, a ``.safetensors`` file or a Hugging
        Face folder. ``parents``: a reference (``name`` or ``name@N``) or a list of them;
        the new model is derived from them by ``relation`` (its lineage). ``tolerance``: None
        (lossless), :class:`~modelgit.ErrorBound`, :class:`~modelgit.LowBit` or
        :class:`~modelgit.Auto`. ``creator`` (``"pkg.module:function"``, called as
        ``fn(parents, **creator_args)``) lets :meth:`cascade` re-derive it. ``base``:
        what its weights are coded against, ``"auto"`` (the closest stored tensors,
        declared parents or not; the default) or ``"parent"`` (the first parent's).
        In a folder, symlinks that lead outside it are refused unless
        ``follow_symlinks=True``; special files (devices, FIFOs, /proc) are never read.
        Side files (config, tokenizer, generation config): a folder keeps its own; a
        state_dict, an ``nn.Module`` or a single ``.safetensors`` file inherits the first
        parent's, so that an exported cast or fine-tune loads with ``from_pretrained``;
        ``files`` (a dict of path -> bytes, or a folder to read them from; ``{}`` for none)
        gives others.
        """
        if creator is not None:
            links = self.new_model_links(name, parents, relation)  # the name's checks first
            if not links:
                raise LineageError("a creation function needs parents= to derive the model from")
            self._check_creator(creator, creator_args)  # a bad path or non-JSON args
        version = super().add(
            name, model, parents, relation, message, metadata, tolerance, progress, base,
            follow_symlinks=follow_symlinks, files=files,
        )  # fmt: skip
        if creator is not None:
            self.set_creator(name, creator, creator_args)
        return version
