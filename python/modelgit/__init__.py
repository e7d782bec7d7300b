"""modelgit: version control and compact storage for families of ML models.

>>> import modelgit as mg
>>> repo = mg.init(path)            # doctest: +SKIP
>>> repo.add("base", state_dict)    # doctest: +SKIP

Everything a user handles is importable from here: the front (:func:`init`,
:func:`open`, :class:`Repository`), the tolerances, the records and reports that
methods return, and every exception. docs/architecture.md shows the layers below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from .lineage import Edge, LineageGraph
from .repository import Repository, init, open
from .storage.maintenance import FsckReport, GcReport, ModelStats, RepoStats
from .storage.writer import WriteStats
from .tolerance import Auto, ErrorBound, LowBit
from .versions import ParentLink, Version
from .versions.architecture import TensorInfo
from .versions.diff import Diff, TensorChange
from .versions.file_diff import FileChange
from .versions.repack import RepackReport
from .versions.structure import StructureChange, StructureDiff, structure_diff
from .workflows import (
    BisectResult,
    CascadeReport,
    CascadeStep,
    Creator,
    DivergedModel,
    ImportedModel,
    ImportReport,
    PruneReport,
    TestResult,
    TestSpec,
    TestTable,
    TransferReport,
)

if TYPE_CHECKING:
    from .lineage.inference import infer_lineage

    __version__: str
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
    "structure_diff",
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
    "FileChange",
    "StructureDiff",
    "StructureChange",
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
    "PruneReport",
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


# loaded on first use, so that `import modelgit` and the read-only commands stay fast:
# __version__ (importlib.metadata) and infer_lineage (numpy)
_LAZY = ("__version__", "infer_lineage")


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        value: Any = version("modelgit")  # one source: pyproject.toml
    elif name == "infer_lineage":
        from .lineage.inference import infer_lineage as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
