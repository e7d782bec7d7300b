"""Workflows on the lineage graph: tests, update cascade, bisect, collaboration."""

from __future__ import annotations

from .mixin import WorkflowMixin

__all__ = ["WorkflowMixin"]
