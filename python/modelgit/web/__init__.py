"""The web UI of a repository: ``modelgit serve`` (a local, read-only web server) and
``modelgit site`` (the same pages as static files).

Pages: the lineage graph (and the version graph), one page per model, diffs between
versions (tensors, side files and the structural diff), search, storage. The layers:

- ``data``: a :class:`~modelgit.web.data.Snapshot` of what the pages show, read through
  the repository's read API;
- ``pages/``: one module per page, HTML from a snapshot (``html``: escaping, the page
  shell, the CSP);
- ``app``: the URL space (a fixed table; nothing from a URL becomes a file path);
- ``server`` and ``site``: the two ways of delivering it;
- ``static/``: the stylesheet and the three small scripts (no library, no network).

>>> server = make_server("models", port=0)   # doctest: +SKIP
>>> run(server, print)                        # doctest: +SKIP
"""

from __future__ import annotations

from .app import Response, WebApp
from .server import DEFAULT_PORT, WebServer, make_server, run
from .site import SiteReport, write_site

__all__ = [
    "DEFAULT_PORT",
    "Response",
    "SiteReport",
    "WebApp",
    "WebServer",
    "make_server",
    "run",
    "write_site",
]
