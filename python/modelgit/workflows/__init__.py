"""The workflows layer: what runs on the lineage graph.

Tests registered on the graph and their results (``tests_registry``), the update
cascade (``cascade``), bisect (``bisect``), push/pull between repositories
(``transfer``) and merge (``merge``), importing folders of models (``importing``),
training checkpoints (``checkpoints``, ``prune``);
``testing``, ``collab`` and ``importing`` hold the mixins of the repository front
(:class:`WorkflowMixin`). Services take the engine
(:class:`~modelgit.versions.VersionStore`), never the front class; this layer never
imports ``repository`` or ``cli``.
"""

from __future__ import annotations

from .bisect import BisectResult
from .cascade import CascadeReport, CascadeStep, Creator
from .importing import ImportedModel, ImportReport
from .mixin import WorkflowMixin
from .prune import PruneReport
from .tests_registry import TestResult, TestSpec, TestTable
from .transfer import DivergedModel, TransferReport

__all__ = [
    "WorkflowMixin",
    "BisectResult",
    "CascadeReport",
    "CascadeStep",
    "Creator",
    "TestResult",
    "TestSpec",
    "TestTable",
    "DivergedModel",
    "TransferReport",
    "ImportReport",
    "ImportedModel",
    "PruneReport",
]
