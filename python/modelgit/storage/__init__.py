"""The storage layer: the bytes of a repository.

``packs`` (append-only pack files of chunk records), ``objects`` (where packs live: a
folder, or any fsspec object store), ``store`` (:class:`ChunkStore`: content-addressed
chunks, deduplicated, verified on every read), ``policy`` (what each chunk becomes:
which base, which codec), ``writer`` and ``reader`` (tensors to chunks and back, on a
worker pool; ``reader_cuda`` on the GPU), ``maintenance`` (stats, fsck, gc),
``backend`` (a repository's catalog, store, lock and format mark) and ``team``
(PostgreSQL catalog + object store). It never imports ``versions``, ``lineage``,
``workflows``, ``repository`` or ``cli``.
"""

from __future__ import annotations

from .backend import FORMAT_VERSION, Backend, init_folder, open_folder
from .store import ChunkStore
from .writer import DEFAULT_CHUNK_ELEMS, WriteStats

__all__ = [
    "Backend",
    "ChunkStore",
    "WriteStats",
    "DEFAULT_CHUNK_ELEMS",
    "FORMAT_VERSION",
    "init_folder",
    "open_folder",
]
