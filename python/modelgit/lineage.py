"""Lineage operations of a repository (graph, edges, tags, rename, diff).

Mixed into :class:`modelgit.Repository`.
"""

from __future__ import annotations


class LineageMixin:
    """Graph-level API of a repository."""
