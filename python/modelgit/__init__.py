"""modelgit: version control and compact storage for families of ML models.

>>> import modelgit as mg
>>> repo = mg.init(path)            # doctest: +SKIP
>>> repo.add("base", state_dict)    # doctest: +SKIP
"""

from __future__ import annotations

from . import errors
from ._native import backends
from .diff import Diff
from .errors import (
    CorruptObject,
    InvalidName,
    LineageError,
    ModelExists,
    ModelgitError,
    NotARepository,
    RepositoryExists,
    UnknownModel,
    UnknownVersion,
    UnsupportedInput,
)
from .graph import Edge, LineageGraph
from .inference import infer_lineage
from .maintenance import FsckReport, GcReport, RepoStats
from .repository import Repository, init, open
from .tolerance import Auto, ErrorBound, LowBit
from .version import ParentLink, Version

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "backends",
    "errors",
    "init",
    "open",
    "Repository",
    "LineageGraph",
    "Edge",
    "Diff",
    "infer_lineage",
    "ErrorBound",
    "LowBit",
    "Auto",
    "Version",
    "ParentLink",
    "RepoStats",
    "FsckReport",
    "GcReport",
    "ModelgitError",
    "NotARepository",
    "RepositoryExists",
    "UnknownModel",
    "UnknownVersion",
    "ModelExists",
    "CorruptObject",
    "InvalidName",
    "UnsupportedInput",
    "LineageError",
]
