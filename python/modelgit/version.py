"""The :class:`Version` record handed out by the repository."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = ["Version", "ParentLink"]


@dataclass(frozen=True)
class ParentLink:
    """One parent of a version: a provenance parent or the previous version."""

    model: str
    number: int
    kind: str  # "provenance" or "version"
    relation: str

    @property
    def ref(self) -> str:
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

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.number}"

    def __str__(self) -> str:
        return self.ref

    @classmethod
    def from_row(cls, row: tuple, parents: tuple[ParentLink, ...]) -> Version:
        model, number, uid, content, message, created, lossy, tol, meta, logical = row
        return cls(
            model=model,
            number=number,
            id=uid,
            content_id=content,
            message=message,
            created=datetime.fromtimestamp(created, tz=timezone.utc),
            lossy=bool(lossy),
            tolerance=json.loads(tol) if tol else None,
            metadata=json.loads(meta),
            parents=parents,
            logical_bytes=logical,
        )

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "number": self.number,
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


VERSION_COLUMNS = (
    "v.model, v.number, v.uid, v.content_id, v.message, v.created, v.lossy, v.tolerance, "
    "v.metadata, v.logical_bytes"
)
