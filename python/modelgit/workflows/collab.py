"""Collaboration between repositories: push, pull, merge.

``push``/``pull`` move what the other side lacks (see :mod:`.transfer` for the rules:
versions matched by uid, fast-forward, divergence); ``merge`` resolves a divergence
(see :mod:`.merge` for the strategies).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import is_team_url
from ..catalog.schema import has_table
from ..errors import ModelExists, UnknownModel, UnsupportedInput
from ..names import validate_name
from ..versions import Version, VersionStore
from .merge import fetched, merge_versions
from .transfer import TransferReport, transfer

if TYPE_CHECKING:
    from collections.abc import Iterator

    _Base = VersionStore
else:
    _Base = object

__all__ = ["CollabMixin", "TransferReport"]


@contextmanager
def _other(other: VersionStore | str | os.PathLike[str]) -> Iterator[VersionStore]:
    """The other repository of a push or pull: given open, or opened here (and closed)."""
    if isinstance(other, VersionStore):
        yield other
        return
    repo = VersionStore.open_path(other if isinstance(other, str) else Path(other))
    try:
        yield repo
    finally:
        repo.close()


REMOTES_TABLE = """
CREATE TABLE IF NOT EXISTS remotes (
    name TEXT PRIMARY KEY,
    url  TEXT NOT NULL
)"""


class CollabMixin(_Base):
    """push, pull, merge, and named remotes."""

    def push(
        self, other: VersionStore | str | os.PathLike[str], *, allow_diverged: bool = False
    ) -> TransferReport:
        """Copy into the repository ``other`` (a path, a team URL, or the name of a
        remote) the versions, chunks, edges and tags it lacks.

        A model whose history diverged (``other`` has versions of it that we lack) makes
        the push raise :class:`~modelgit.DivergedHistory` before anything is uploaded:
        pull and merge first. With ``allow_diverged=True`` the push goes on: ``other``
        keeps its history and receives ours aside (reported as diverged), to be merged
        there."""
        with _other(self._remote_or(other)) as dst:
            return transfer(self, dst, allow_diverged=allow_diverged)

    def pull(self, other: VersionStore | str | os.PathLike[str]) -> TransferReport:
        """Copy from the repository ``other`` (a path, a team URL, or the name of a
        remote) what this one lacks (see :meth:`push`). Diverged models keep our history;
        theirs is fetched aside for :meth:`merge`."""
        with _other(self._remote_or(other)) as src:
            return transfer(src, self)

    # -- named remotes ----------------------------------------------------------------
    def add_remote(self, name: str, url: str | os.PathLike[str], force: bool = False) -> None:
        """Remember another repository as ``name`` (``repo.push("origin")``). A folder
        path is stored absolute; a team repository's URL as given."""
        validate_name(name, "remote name")
        if not isinstance(url, (str, os.PathLike)):
            raise UnsupportedInput(f"a remote's URL must be a path or a string, not {url!r}")
        text = str(url)
        if not is_team_url(text):
            text = str(Path(text).expanduser().resolve())
        with self.catalog.transaction() as db:
            db.execute(REMOTES_TABLE)
            old = db.execute("SELECT url FROM remotes WHERE name = ?", (name,)).fetchone()
            if old is not None and old[0] != text and not force:
                raise ModelExists(
                    f"remote {name!r} exists already ({old[0]}); pass force=True to change it"
                )
            db.execute("INSERT OR REPLACE INTO remotes(name, url) VALUES (?, ?)", (name, text))

    def remove_remote(self, name: str) -> None:
        """Forget the remote ``name``."""
        with self.catalog.transaction() as db:
            db.execute(REMOTES_TABLE)
            if db.execute("DELETE FROM remotes WHERE name = ?", (name,)).rowcount == 0:
                raise UnknownModel(f"no remote named {name!r}")

    def remotes(self) -> dict[str, str]:
        """The named remotes: ``{name: url}``."""
        if not has_table(self.catalog, "remotes"):
            return {}
        return dict(self.catalog.query("SELECT name, url FROM remotes ORDER BY name"))

    def _remote_or(self, other: object) -> object:
        """A remote's URL for its name; anything else as it is."""
        if isinstance(other, str) and other in (known := self.remotes()):
            return known[other]
        return other

    def fetched(self, name: str | None = None) -> list[Version]:
        """Versions fetched by a pull (or received by a push) that diverge from our
        history and are not merged yet. Each keeps the number it was made with, as
        ``Version.fetched_number`` (its ref is ``name@fetched:N``); ``Version.number`` is a
        local placeholder <= 0."""
        return [v for _, v, _ in fetched(self, name)]

    def merge(
        self,
        name: str,
        other_version: Version | str | None = None,
        strategy: str | Callable[..., Any] = "average",
        message: str = "",
        tolerance: object = None,
    ) -> Version:
        """Merge ``other_version`` into the latest version of ``name``.

        ``other_version``: a version uid (as in the pull report), a :class:`Version`, a
        reference (``name@N``, tag), or None for the single fetched head of ``name``.
        ``strategy``: ``"ours"``, ``"theirs"``, ``"average"``, ``"task-arithmetic"``
        (against the nearest common ancestor) or ``fn(ours, theirs, base) -> state_dict``.
        The new version's parents are our latest (kind ``version``) and the other
        version (relation ``merge``).
        """
        return merge_versions(self, name, other_version, strategy, message, tolerance)
