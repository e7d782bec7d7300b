"""The catalog layer: SQL only. Models, versions, lineage, tensors and the chunk index.

``base`` (the :class:`Catalog` interface every catalog implements), ``sqlite`` (the
embedded default), ``postgres`` (team repositories; needs the ``team`` extra),
``schema`` (every table) and ``records`` (row types and the helpers that write them).
Callers write SQL in SQLite's dialect; the PostgreSQL catalog translates the few
constructs that differ (docs/FORMAT.md section 6.3). This layer imports nothing from
the layers above it.
"""

from __future__ import annotations

from .base import Catalog, is_team_url
from .schema import SCHEMA_VERSION
from .sqlite import SqliteCatalog

__all__ = ["Catalog", "SqliteCatalog", "SCHEMA_VERSION", "is_team_url"]
