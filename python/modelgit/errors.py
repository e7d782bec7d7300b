"""The exceptions modelgit raises. Every one derives from :class:`ModelgitError`.

Messages say what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ModelgitError",
    "NotARepository",
    "RepositoryExists",
    "UnknownModel",
    "UnknownVersion",
    "ModelExists",
    "CorruptObject",
    "InvalidName",
    "InvalidArgument",
    "UnsupportedInput",
    "LineageError",
    "FormatVersionError",
    "StorageUnavailable",
    "CatalogUnavailable",
    "ReadOnlyRepository",
    "WorkflowError",
    "DivergedHistory",
    "TargetExists",
    "ModelgitWarning",
]

TEAM_EXTRA_HINT = 'install the team backends with: pip install "modelgit[team]"'


class ModelgitError(Exception):
    """Base class of every error modelgit raises on purpose."""


class NotARepository(ModelgitError):
    """The path is not a modelgit repository (no format file, or not a folder)."""


class RepositoryExists(ModelgitError):
    """``init`` was asked to create a repository where one already exists."""


class UnknownModel(ModelgitError, KeyError):
    """No model of that name exists in the repository."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownVersion(UnknownModel):
    """The model exists but not the requested version or tag."""


class ModelExists(ModelgitError):
    """``add`` was given a name that is already taken; use ``commit`` for a new version."""


class CorruptObject(ModelgitError):
    """Stored bytes fail their checksum or cannot be decoded. Run ``modelgit fsck``."""


class InvalidName(ModelgitError, ValueError):
    """A model, tag or tensor name is refused (separators, control characters, length)."""


class InvalidArgument(ModelgitError, ValueError):
    """An argument's value is malformed or out of range (a size, a memory budget)."""


class UnsupportedInput(ModelgitError, TypeError):
    """The model given cannot be stored (unknown object, dtype or file layout)."""


class LineageError(ModelgitError, ValueError):
    """An edge would make the provenance graph cyclic, or names a missing model."""


class FormatVersionError(ModelgitError):
    """The repository was written by a newer modelgit whose format this one cannot read."""


class StorageUnavailable(ModelgitError):
    """A team repository's backend cannot be reached, refused us, or is not installed
    (``pip install "modelgit[team]"``)."""


class CatalogUnavailable(StorageUnavailable):
    """The PostgreSQL catalog of a team repository cannot be reached or refused us."""


class ReadOnlyRepository(ModelgitError, PermissionError):
    """A write was asked of a repository this user can only read (a read-only mount,
    another user's folder). Reads work."""


class WorkflowError(ModelgitError):
    """A workflow cannot run: unknown test, no creation function, cascade already running."""


class DivergedHistory(ModelgitError):
    """A push found models whose history diverged (the destination has versions the
    source lacks); nothing was uploaded. Pull and merge first, or push with
    ``allow_diverged=True`` (``--allow-diverged``) to send ours aside."""


class TargetExists(ModelgitError, FileExistsError):
    """An export would overwrite an existing file or a non-empty folder; pass
    ``force=True`` (``--force``) to replace it."""


class ModelgitWarning(UserWarning):
    """A likely mistake that modelgit carried out anyway: a commit that changes nothing,
    a relation that looks like a misspelt known one, a parent that shares no tensor names
    with its child. The command line prints these as ``modelgit: warning: ...``."""
