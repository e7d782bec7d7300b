"""The :class:`Version` record handed out by the repository."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..catalog.records import VersionRow

__all__ = ["Version", "ParentLink"]


@dataclass(frozen=True)
class ParentLink:
    """One parent of a version: a provenance parent or the previous version."""

    model: str
    number: int
    kind: str  # "provenance" or "version"
    relation: str
    fetched_number: int | None = None  # a fetched (diverged) version: its number where made

    @property
    def ref(self) -> str:
        if self.fetched_number is not None:
            return f"{self.model}@fetched:{self.fetched_number}"
        return f"{self.model}@{self.number}"


@dataclass(frozen=True)
class Version:
    """One immutable version of a model."""

    model: str
    number: int
    id: str
    content_id: str
    message: str
    created: datetime
    lossy: bool
    tolerance: dict | None
    metadata: dict = field(default_factory=dict)
    parents: tuple[ParentLink, ...] = ()
    logical_bytes: int = 0
    fetched_number: int | None = None  # set for a version fetched aside (diverged): its
    # number in the repository it was made in; ``number`` is then a local placeholder <= 0

    @property
    def ref(self) -> str:
        """``model@N``, or ``model@fetched:N`` for a diverged version fetched aside."""
        if self.fetched_number is not None:
            return f"{self.model}@fetched:{self.fetched_number}"
        return f"{self.model}@{self.number}"

    def __str__(self) -> str:
        return self.ref

    @classmethod
    def from_row(
        cls, row: VersionRow, parents: tuple[ParentLink, ...], fetched_number: int | None = None
    ) -> Version:
        return cls(
            model=row.model,
            number=row.number,
            id=row.uid,
            content_id=row.content_id,
            message=row.message,
            created=datetime.fromtimestamp(row.created, tz=timezone.utc),
            lossy=bool(row.lossy),
            tolerance=json.loads(row.tolerance) if row.tolerance else None,
            metadata=json.loads(row.metadata),
            parents=parents,
            logical_bytes=row.logical_bytes,
            fetched_number=fetched_number,
        )

    def to_json(self) -> dict:
        return {
            "name": self.model,
            "number": self.number,
            "ref": self.ref,
            "fetched_number": self.fetched_number,
            "id": self.id,
            "content_id": self.content_id,
            "message": self.message,
            "created": self.created.isoformat(),
            "lossy": self.lossy,
            "tolerance": self.tolerance,
            "metadata": self.metadata,
            "parents": [
                {"ref": p.ref, "kind": p.kind, "relation": p.relation} for p in self.parents
            ],
            "logical_bytes": self.logical_bytes,
        }
