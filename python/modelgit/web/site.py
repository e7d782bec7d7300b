"""``modelgit site -o DIR``: the pages of the web UI as static files, to publish or
attach. Links are relative, so the site works from ``file://`` as from any web server;
the diffs are those of each version against the one before it and of each model's first
version against its parents, computed once here. Search runs in the browser, as on the
server."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TargetExists
from .app import WebApp

if TYPE_CHECKING:
    from ..repository import Repository

__all__ = ["SiteReport", "write_site", "GENERATED"]

# what a site consists of at its root: --force replaces these, and nothing else
GENERATED = ("index.html", "versions.html", "search.html", "storage.html", "data", "static",
             "model", "diff")  # fmt: skip
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


@dataclass
class SiteReport:
    """What :func:`write_site` wrote."""

    out: str
    pages: int = 0  # files written (pages, data files, assets)
    models: int = 0
    diffs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)  # pages written as an error page

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        lines = [
            f"wrote {self.pages} files ({self.models} model pages, {self.diffs} diffs, "
            f"{self.bytes / 1024:.0f} KiB) to {self.out} in {self.seconds:.1f}s; open "
            f"{Path(self.out) / 'index.html'}"
        ]
        lines += [f"  failed (written as an error page): {p}" for p in self.failed]
        return "\n".join(lines)


def _check(rel: str) -> None:
    """A site path is made of our names and slugs only (never ``..``, never absolute)."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") or not set(p) <= _SAFE for p in parts):
        raise ValueError(f"unsafe site path {rel!r}")


SITE_SUFFIXES = (".html", ".json", ".js", ".css", ".svg")  # what a site writes


def _clear(out: Path) -> None:
    """Remove an earlier site's files: in its folders only files of the kinds a site
    writes (a project's own data/ or model/ folder keeps its files), then the folders
    left empty."""
    for name in GENERATED:
        p = out / name
        if p.is_symlink() or p.is_file():
            if p.suffix in SITE_SUFFIXES:
                p.unlink()
        elif p.is_dir():
            for f in sorted(p.rglob("*"), reverse=True):
                if (f.is_file() or f.is_symlink()) and f.suffix in SITE_SUFFIXES:
                    f.unlink()
                elif f.is_dir() and not f.is_symlink() and not any(f.iterdir()):
                    f.rmdir()
            if not any(p.iterdir()):
                p.rmdir()


def write_site(
    repo: Repository,
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    values: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> SiteReport:
    """Write the static site of ``repo`` into the folder ``out`` (created if missing).

    A folder that is not empty is refused with :class:`~modelgit.TargetExists` unless
    ``force``: then the files of an earlier site (:data:`GENERATED`) are replaced and
    anything else there is left alone. ``values=False``: diffs compare names, shapes,
    dtypes and content ids only (nothing is decoded). ``progress(done, total)`` counts
    files."""
    start = time.monotonic()
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise TargetExists(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise TargetExists(
                f"{target} is not empty; pass --force (force=True) to write the site into it "
                "(the files of an earlier site there are replaced, nothing else)"
            )
        _clear(target)
    target.mkdir(parents=True, exist_ok=True)
    app = WebApp(repo, mode="static", values=values)
    paths = app.site_paths()
    report = SiteReport(str(target))
    for i, rel in enumerate(paths):
        _check(rel)
        resp = app.get("/" + rel)
        if resp.status != 200:
            report.failed.append(rel)
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(resp.body)
        report.pages += 1
        report.bytes += len(resp.body)
        report.models += rel.startswith("model/")
        report.diffs += rel.startswith("diff/")
        if progress is not None:
            progress(i + 1, len(paths))
    report.seconds = time.monotonic() - start
    return report
