"""modelgit: version control and compact storage for families of ML models.

>>> import modelgit as mg
>>> repo = mg.init(path)            # doctest: +SKIP
>>> repo.add("base", state_dict)    # doctest: +SKIP

Everything a user handles is importable from here: the front (:func:`init`,
:func:`open`, :class:`Repository`), the tolerances, the records and reports that
methods return, and every exception. docs/architecture.md shows the layers below.
"""

from __future__ import annotations

from importlib.metadata import version as _dist_version

from . import errors
from ._native import backends
from .errors import (
    CatalogUnavailable,
    CorruptObject,
    DivergedHistory,
    FormatVersionError,
    InvalidArgument,
    InvalidName,
    LineageError,
    ModelExists,
    ModelgitError,
    ModelgitWarning,
    NotARepository,
    ReadOnlyRepository,
    RepositoryExists,
    StorageUnavailable,
    TargetExists,
    UnknownModel,
    UnknownVersion,
    UnsupportedInput,
    WorkflowError,
)
from .lineage import Edge, LineageGraph, infer_lineage
from .repository import Repository, init, open
from .storage.maintenance import FsckReport, GcReport, ModelStats, RepoStats
from .storage.writer import WriteStats
from .tolerance import Auto, ErrorBound, LowBit
from .versions import ParentLink, Version
from .versions.diff import Diff, TensorChange, TensorInfo
from .versions.repack import RepackReport
from .workflows import (
    BisectResult,
    CascadeReport,
    CascadeStep,
    Creator,
    DivergedModel,
    ImportedModel,
    ImportReport,
    TestResult,
    TestSpec,
    TestTable,
    TransferReport,
)

__version__: str = _dist_version("modelgit")  # one source: pyproject.toml
__all__ = [
    "__version__",
    "backends",
    "errors",
    # the front
    "init",
    "open",
    "Repository",
    # lineage
    "LineageGraph",
    "Edge",
    "infer_lineage",
    # tolerances
    "ErrorBound",
    "LowBit",
    "Auto",
    # records and reports
    "Version",
    "ParentLink",
    "WriteStats",
    "Diff",
    "TensorChange",
    "TensorInfo",
    "RepoStats",
    "ModelStats",
    "FsckReport",
    "GcReport",
    "RepackReport",
    "TransferReport",
    "DivergedModel",
    "TestSpec",
    "TestResult",
    "TestTable",
    "CascadeReport",
    "CascadeStep",
    "Creator",
    "BisectResult",
    "ImportReport",
    "ImportedModel",
    # errors
    "ModelgitError",
    "NotARepository",
    "RepositoryExists",
    "UnknownModel",
    "UnknownVersion",
    "ModelExists",
    "CorruptObject",
    "InvalidName",
    "InvalidArgument",
    "ReadOnlyRepository",
    "UnsupportedInput",
    "LineageError",
    "FormatVersionError",
    "StorageUnavailable",
    "CatalogUnavailable",
    "WorkflowError",
    "DivergedHistory",
    "TargetExists",
    # warnings
    "ModelgitWarning",
]
