"""Validation of user-given names and parsing of model references.

A reference is ``name``, ``name@3`` (version 3), ``name@latest`` or a tag.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass

from .errors import InvalidName, ModelgitWarning

__all__ = [
    "MAX_NAME_LENGTH",
    "validate_name",
    "Ref",
    "parse_ref",
    "KNOWN_RELATIONS",
    "edit_distance",
    "warn_misspelt_relation",
]

# the relations modelgit names in its docs; any other word is allowed too
KNOWN_RELATIONS = ("finetune", "distill", "prune", "quantize", "cast", "adapter", "merge")

MAX_NAME_LENGTH = 200
MAX_VERSION = 2**63 - 1  # version numbers are SQLite INTEGERs
_FORBIDDEN = set('/\\@:*?"<>|')


def validate_name(name: object, what: str = "model name") -> str:
    """Return ``name`` if it is acceptable as a model or tag name, else raise InvalidName.

    Refused: non-strings, the empty string, '.' and '..', leading/trailing spaces or dots,
    path separators and the characters ``@ : * ? " < > |``, control characters, and names
    longer than MAX_NAME_LENGTH characters.
    """
    if not isinstance(name, str):
        raise InvalidName(f"{what} must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidName(f"{what} must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"{what} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if name in (".", "..") or name[0] in ". " or name[-1] in ". ":
        raise InvalidName(f"{what} {name!r} must not start or end with a dot or a space")
    bad = sorted({c for c in name if c in _FORBIDDEN or unicodedata.category(c)[0] == "C"})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        hint = ""
        if "@" in bad and _is_version_ref(name):
            hint = f"; {name!r} is a reference to a version, not a name"
        raise InvalidName(
            f"{what} {name!r} contains forbidden characters ({shown}): a name may hold "
            f"anything but {' '.join(sorted(_FORBIDDEN))} and control characters{hint}"
        )
    return name


def _is_version_ref(ref: str) -> bool:
    """Whether ``ref`` reads as a version reference (``name@N``, ``name@latest``)."""
    name, sep, suffix = ref.partition("@")
    return bool(sep) and bool(_VERSION_RE.match(suffix)) and "@" not in suffix and bool(name)


_VERSION_RE = re.compile(r"^(latest|[0-9]+|fetched:[0-9]+)$")


@dataclass(frozen=True)
class Ref:
    """A parsed reference: a model (or tag) name and an optional version number."""

    name: str
    version: int | None = None  # None means latest
    fetched: int | None = None  # ``name@fetched:N``: a diverged version made as number N


def parse_ref(ref: str, version: int | None = None) -> Ref:
    """Parse ``name``, ``name@N``, ``name@latest`` or ``name@fetched:N`` (a diverged
    version fetched from another repository, where it is number N; see
    docs/workflows.md); ``version`` overrides the suffix."""
    if not isinstance(ref, str):
        raise InvalidName(f"a model reference must be a string, not {type(ref).__name__}")
    name, sep, suffix = ref.partition("@")
    number: int | None = None
    if sep:
        if not _VERSION_RE.match(suffix):
            raise InvalidName(
                f"bad version {suffix!r} in {ref!r}: write name@3 (a number), name@latest "
                "or name@fetched:3"
            )
        if suffix.startswith("fetched:"):
            fetched = int(suffix.split(":", 1)[1])
            if not 1 <= fetched <= MAX_VERSION or version is not None:
                raise InvalidName(f"bad fetched version in {ref!r}")
            validate_name(name)
            return Ref(name, None, fetched)
        number = None if suffix == "latest" else int(suffix)
        if number is not None and number < 1:
            raise InvalidName(f"versions are numbered from 1; {ref!r} names version {number}")
        if number is not None and number > MAX_VERSION:
            raise InvalidName(f"version {number} in {ref!r} is out of range")
    validate_name(name)
    if version is not None:
        if (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not 1 <= version <= MAX_VERSION
        ):
            raise InvalidName(f"version must be a positive integer, not {version!r}")
        if number is not None and number != version:
            raise InvalidName(f"{ref!r} conflicts with version={version}")
        number = version
    return Ref(name, number)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two words."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def warn_misspelt_relation(relation: str) -> None:
    """A :class:`~modelgit.ModelgitWarning` when ``relation`` is not a known relation but
    within edit distance 2 of one (``finetuen``): likely a typo, recorded as given."""
    if relation in KNOWN_RELATIONS or len(relation) > 32:
        return
    close = [k for k in KNOWN_RELATIONS if edit_distance(relation.lower(), k) <= 2]
    if close:
        warnings.warn(
            f"relation {relation!r} is not a known relation; did you mean {close[0]!r}? "
            f"(recorded as {relation!r}; known: {', '.join(KNOWN_RELATIONS)})",
            ModelgitWarning,
            stacklevel=4,
        )
