"""The public surface: ``modelgit.__all__`` is pinned, and everything a user meets (every
exception, every record or report a method returns) is importable from ``modelgit``."""

from __future__ import annotations

import inspect
import typing

import modelgit as mg
from modelgit import errors

PUBLIC = {
    "__version__", "backends", "errors",
    "init", "open", "Repository",
    "LineageGraph", "Edge", "infer_lineage", "structure_diff",
    "ErrorBound", "LowBit", "Auto",
    "Version", "ParentLink", "WriteStats", "Diff", "TensorChange", "TensorInfo",
    "FileChange", "StructureDiff", "StructureChange",
    "RepoStats", "ModelStats", "FsckReport", "GcReport", "RepackReport", "TransferReport",
    "DivergedModel",
    "TestSpec", "TestResult", "TestTable", "CascadeReport", "CascadeStep", "Creator",
    "BisectResult", "ImportReport", "ImportedModel", "PruneReport",
    "ModelgitError", "NotARepository", "RepositoryExists", "UnknownModel", "UnknownVersion",
    "ModelExists", "CorruptObject", "InvalidName", "InvalidArgument", "UnsupportedInput",
    "LineageError", "FormatVersionError", "StorageUnavailable", "CatalogUnavailable",
    "WorkflowError", "ReadOnlyRepository", "DivergedHistory", "TargetExists",
    "ModelgitWarning",
}  # fmt: skip

# the engine's internal API (docs/architecture.md): on Repository, but not the user's
ENGINE = {
    "resolve", "version_by_id", "require_model", "tensor_rows", "write", "new_model_links",
    "lock", "open_path", "resolve_verified", "read_verified",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert len(mg.__all__) == len(set(mg.__all__))
    assert set(mg.__all__) == PUBLIC
    for name in mg.__all__:
        assert getattr(mg, name) is not None, name


def test_every_error_class_is_exported() -> None:
    classes = {
        n
        for n, c in vars(errors).items()
        if inspect.isclass(c) and issubclass(c, errors.ModelgitError)
    }
    assert classes <= set(mg.__all__)
    assert classes <= set(errors.__all__)
    for n in classes:
        assert getattr(mg, n) is getattr(errors, n)


def _modelgit_classes(tp: object) -> set[type]:
    """The classes defined in modelgit that a type hint names (inside unions, lists...)."""
    out: set[type] = set()
    if inspect.isclass(tp) and tp.__module__.startswith("modelgit"):
        out.add(tp)
    for arg in typing.get_args(tp):
        out |= _modelgit_classes(arg)
    return out


def test_every_returned_record_is_exported() -> None:
    import torch

    from modelgit.storage.team import TeamBackend

    # named only for type checkers (torch is imported where tensors are made)
    local = {"TeamBackend": TeamBackend, "torch": torch}
    returned: dict[str, set[type]] = {}
    for name, fn in inspect.getmembers(mg.Repository, inspect.isfunction):
        if name.startswith("_") or name in ENGINE:
            continue
        hint = typing.get_type_hints(fn, localns=local).get("return")
        for cls in _modelgit_classes(hint):
            returned.setdefault(cls.__name__, set()).add(cls)
    for _, prop in inspect.getmembers(mg.Repository, lambda p: isinstance(p, property)):
        hint = typing.get_type_hints(prop.fget, localns=local).get("return")
        for cls in _modelgit_classes(hint):
            returned.setdefault(cls.__name__, set()).add(cls)
    assert {"Version", "Diff", "TransferReport", "CascadeReport", "BisectResult"} <= set(returned)
    assert {"LineageGraph", "RepoStats", "FsckReport", "GcReport", "TestTable"} <= set(returned)
    missing = {n for n, classes in returned.items() if getattr(mg, n, None) not in classes}
    # the backend's parts, for advanced use (repo.catalog, repo.store, repo.team)
    assert missing <= {"TeamBackend", "ChunkStore", "Catalog"}, missing


def test_reports_of_a_write_are_exported(repo: mg.Repository) -> None:
    import torch

    repo.add("m", {"w": torch.zeros(4)})
    assert isinstance(repo.last_write, mg.WriteStats)
    assert isinstance(repo.stats(), mg.RepoStats)
    assert isinstance(repo.stats().models[0], mg.ModelStats)
