"""What every catalog implements, and how a catalog is named."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Catalog", "is_team_url"]


def is_team_url(path: object) -> bool:
    """Whether ``path`` names a team repository (its PostgreSQL catalog's URL)."""
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


class Catalog(Protocol):
    """What the repository needs of a catalog. Connections are per thread; their
    ``execute``/``executemany`` take SQLite-dialect SQL with ``?`` placeholders."""

    dialect: str  # "sqlite" or "postgresql"
    read_only: bool  # every transaction raises ReadOnlyRepository

    def connection(self) -> Any: ...

    def transaction(self) -> Any:
        """A context manager: a write transaction that excludes every other writer
        (of any process or host) until it ends, yielding the connection."""
        ...

    def snapshot(self) -> Any:
        """A context manager: this thread's reads inside see one consistent state."""
        ...

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]: ...

    def one(self, sql: str, args: tuple[object, ...] = ()) -> tuple | None: ...

    def integrity_problems(self) -> list[str]: ...

    def close(self) -> None: ...
