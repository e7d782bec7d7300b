"""The web UI's URL space, shared by the server (``modelgit serve``) and the static site
(``modelgit site``): one :class:`WebApp` answers a path with a :class:`Response`.

Every URL is matched against a fixed table, never joined onto a file path:

- ``/`` and ``/index.html`` (the graph), ``/versions.html``, ``/search.html``,
  ``/storage.html``, and their data files ``/data/graph.js``, ``/data/versions.js``,
  ``/data/search.js``;
- ``/static/NAME`` for the names of :data:`ASSETS` only (read from the package once);
- ``/model/SLUG.html``: SLUG is looked up among the repository's model slugs;
- ``/diff/A--B.html``: looked up among the diffs the static site writes (each version
  against the one before it, each model's first version against its parents);
- ``/diff?a=REF&b=REF`` (server only): any two versions, the refs resolved by the
  repository (a ref is never a path).

Anything else is a 404 page. Pages are rendered from a :class:`Snapshot` of the
catalog, read again when the catalog changes (its files' size and time; every 10 s for a
team repository); diffs, which decode tensors, are computed one at a time and kept.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from ..errors import InvalidName, ModelgitError, UnknownModel, UnknownVersion
from .data import DiffView, Snapshot, compute_diff, read_files
from .pages.diff import diff_error_page, diff_page
from .pages.errors import error_page
from .pages.graph import graph_page, versions_page
from .pages.model import model_page
from .pages.search import search_page
from .pages.storage import storage_page

if TYPE_CHECKING:
    from ..repository import Repository

__all__ = ["WebApp", "Response", "ASSETS", "CONTENT_TYPES", "asset_bytes"]

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"
CONTENT_TYPES = {".html": HTML, ".js": JS, ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}  # fmt: skip
ASSETS = ("style.css", "graph.js", "search.js", "diff.js", "favicon.svg")
PAGES = ("index.html", "versions.html", "search.html", "storage.html")
DATA = ("data/graph.js", "data/versions.js", "data/search.js")
MAX_PAGES = 256  # rendered pages kept per snapshot
MAX_DIFFS = 32  # computed diffs kept (by version ids: they never change)
TEAM_REFRESH = 10.0  # seconds between rereads of a team repository's catalog


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes


_ASSET_CACHE: dict[str, bytes] = {}


def asset_bytes(name: str) -> bytes:
    """A static asset shipped in the package (``name`` must be one of :data:`ASSETS`)."""
    if name not in ASSETS:
        raise KeyError(name)
    if name not in _ASSET_CACHE:
        _ASSET_CACHE[name] = resources.files(__package__).joinpath("static", name).read_bytes()
    return _ASSET_CACHE[name]


def _type(path: str) -> str:
    return CONTENT_TYPES[os.path.splitext(path)[1]]


class WebApp:
    """The pages of one open repository. ``mode``: ``"serve"`` (any diff on demand) or
    ``"static"`` (the site's precomputed diffs only). ``values``: diffs compare tensor
    values (decoding them), else names, shapes, dtypes and content ids only."""

    def __init__(self, repo: Repository, *, mode: str = "serve", values: bool = True) -> None:
        if mode not in ("serve", "static"):
            raise ValueError(f"mode must be 'serve' or 'static', not {mode!r}")
        self.repo = repo
        self.mode = mode
        self.values = values
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._stamp: object = None
        self._pages: OrderedDict[str, Response] = OrderedDict()
        self._diff_lock = threading.Lock()
        self._diffs: OrderedDict[tuple[str, str], DiffView] = OrderedDict()

    # -- the snapshot ---------------------------------------------------------------------
    def _fingerprint(self) -> object:
        if self.repo.team is not None:
            return int(time.monotonic() // TEAM_REFRESH)
        out = []
        for name in ("catalog.db", "catalog.db-wal"):
            try:
                st = (self.repo.root / name).stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def snapshot(self) -> Snapshot:
        """The current snapshot (read again if the catalog changed since the last one)."""
        stamp = self._fingerprint()
        with self._lock:
            if self._snap is None or stamp != self._stamp:
                self._snap = Snapshot.read(self.repo)
                self._stamp = stamp
                self._pages.clear()
            return self._snap

    # -- answering ------------------------------------------------------------------------
    def get(self, path: str, query: str = "") -> Response:
        """The response to ``GET path?query`` (``path`` as sent, not percent-decoded)."""
        if not path.startswith("/"):
            return self._missing(path, "not a path")
        rel = path[1:]
        try:
            return self._route(rel, query)
        except ModelgitError as exc:  # a damaged repository, a catalog gone away
            return self._failed(rel, exc)
        except Exception as exc:  # noqa: BLE001 - a page fails, the server stays up
            if os.environ.get("MODELGIT_DEBUG"):
                traceback.print_exc()
            return self._failed(rel, exc)

    def _route(self, rel: str, query: str) -> Response:
        if rel.startswith("static/"):
            name = rel[len("static/") :]
            if name in ASSETS:
                return Response(200, _type(name), asset_bytes(name))
            return self._missing(rel, "no such file")
        if rel == "diff" and self.mode == "serve":
            return self._query_diff(query)
        snap = self.snapshot()
        key = "index.html" if rel == "" else rel
        with self._lock:
            hit = self._pages.get(key)
        if hit is not None:
            return hit
        out = self._render(snap, key)
        if out.status == 200:
            self._keep(snap, key, out)
        return out

    def _render(self, snap: Snapshot, key: str) -> Response:
        if key in ("index.html", "data/graph.js", "versions.html", "data/versions.js"):
            models = key in ("index.html", "data/graph.js")
            html, data = (graph_page if models else versions_page)(snap, self.mode)
            self._keep(snap, "index.html" if models else "versions.html", html)
            self._keep(snap, "data/graph.js" if models else "data/versions.js", data)
            return Response(200, _type(key), (html if key.endswith(".html") else data).encode())
        if key in ("search.html", "data/search.js"):
            html, data = search_page(snap, self.mode)
            self._keep(snap, "search.html", html)
            self._keep(snap, "data/search.js", data)
            return Response(200, _type(key), (html if key.endswith(".html") else data).encode())
        if key == "storage.html":
            return Response(200, HTML, storage_page(snap, self.mode).encode())
        if key.startswith("model/") and key.endswith(".html"):
            name = snap.by_slug.get(key[len("model/") : -len(".html")])
            if name is not None:
                m = snap.models[name]
                files = read_files(self.repo, m.latest.ref) if m.latest is not None else None
                return Response(200, HTML, model_page(snap, name, files, self.mode).encode())
            return self._missing(key, "no model has this page")
        if key.startswith("diff/") and key.endswith(".html"):
            pair = snap.diffs.get(key[len("diff/") :])
            if pair is not None:
                return self._diff(snap, pair[0], pair[1], root="../")
            return self._missing(key, "no such diff page")
        return self._missing(key, "no such page")

    def _keep(self, snap: Snapshot, key: str, page: Response | str) -> None:
        """Keep a page rendered from ``snap``, unless another request has read a newer
        snapshot meanwhile (then it cleared the pages, and this one is out of date)."""
        if isinstance(page, str):
            page = Response(200, _type(key), page.encode())
        with self._lock:
            if self._snap is not snap:
                return
            self._pages[key] = page
            while len(self._pages) > MAX_PAGES:
                self._pages.popitem(last=False)

    def _query_diff(self, query: str) -> Response:
        try:
            args = parse_qs(query, keep_blank_values=True, max_num_fields=10)
        except ValueError:
            return self._missing("diff", "too many query parameters", 400)
        a, b = (args.get(k, [""])[0] for k in ("a", "b"))
        if not a or not b:
            return self._missing("diff", "a diff needs two versions: diff?a=REF&b=REF", 400)
        return self._diff(self.snapshot(), a, b, root="")

    def _diff(self, snap: Snapshot, a: str, b: str, *, root: str) -> Response:
        try:  # resolved once: a commit landing meanwhile cannot change what is compared
            va, vb = self.repo.version(a), self.repo.version(b)
        except (UnknownModel, UnknownVersion, InvalidName) as exc:
            return self._missing("diff", str(exc), root=root)
        ids = (va.id, vb.id)
        with self._diff_lock:
            view = self._diffs.get(ids)
            if view is None:
                try:  # by their refs (model@N), not as asked (a model name, a tag)
                    view = compute_diff(self.repo, va.ref, vb.ref, values=self.values)
                except ModelgitError as exc:
                    page = diff_error_page(a, b, self._hide(str(exc)), root=root, mode=self.mode)
                    return Response(500, HTML, page.encode())
                self._diffs[ids] = view
                while len(self._diffs) > MAX_DIFFS:
                    self._diffs.popitem(last=False)
        return Response(200, HTML, diff_page(snap, view, root=root, mode=self.mode).encode())

    def _hide(self, message: str) -> str:
        """A message without the repository's location (a remote reader has no use for the
        server's folders)."""
        return message.replace(self.repo.location, "the repository")

    def _missing(self, rel: str, why: str, status: int = 404, root: str | None = None) -> Response:
        why = self._hide(why)
        if root is None:
            root = "../" * rel.count("/")
        title = "Not found" if status == 404 else "Bad request"
        return Response(status, HTML, error_page(title, why, root=root, mode=self.mode).encode())

    def _failed(self, rel: str, exc: BaseException) -> Response:
        print(f"modelgit: error: {rel or '/'}: {type(exc).__name__}: {exc}", file=sys.stderr)
        message = (
            self._hide(str(exc))
            if isinstance(exc, ModelgitError)
            else "an internal error (see the log)"
        )
        page = error_page("Error", message, root="../" * rel.count("/"), mode=self.mode)
        return Response(500, HTML, page.encode())

    # -- the static site ------------------------------------------------------------------
    def site_paths(self) -> list[str]:
        """Every path of the static site, from its root."""
        snap = self.snapshot()
        return [
            *PAGES,
            *DATA,
            *(f"static/{a}" for a in ASSETS),
            *(f"model/{s}.html" for s in snap.by_slug),
            *(f"diff/{f}" for f in snap.diffs),
        ]
