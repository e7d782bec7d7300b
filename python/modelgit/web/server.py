"""``modelgit serve``: a local, read-only web server over a repository, on the Python
standard library (``http.server``).

- Read-only: the repository is opened with ``read_only=True``; only GET and HEAD are
  answered, every other method gets 405.
- Local: it binds 127.0.0.1 unless told otherwise; binding any address that is not a
  loopback one needs ``allow_remote=True`` (``--allow-remote``). Without it, a request
  whose ``Host`` header names another machine is refused (a DNS-rebinding page cannot
  read the models).
- Every response carries the Content-Security-Policy of :data:`~modelgit.web.html.CSP`,
  ``X-Content-Type-Options: nosniff`` and ``X-Frame-Options: DENY``.
- Requests run on a fixed pool of threads (each holds one catalog connection for its
  life), and HTTP/1.0 closes each connection after its answer, so a slow client holds
  a worker for at most :data:`TIMEOUT` seconds.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidArgument
from .app import HTML, Response, WebApp
from .data import warm_up
from .html import SECURITY_HEADERS
from .pages.errors import error_page

__all__ = ["WebServer", "make_server", "run", "is_loopback", "DEFAULT_PORT"]

DEFAULT_PORT = 8470
WORKERS = 8
TIMEOUT = 30  # seconds a client may take to send its request
REASONS = {400: "Bad request", 404: "Not found", 405: "Method not allowed"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) means this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD through the :class:`WebApp`; anything else 405."""

    server: WebServer
    server_version = "modelgit"
    sys_version = ""
    protocol_version = "HTTP/1.0"
    timeout = TIMEOUT

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # POST, PUT, DELETE, PATCH, OPTIONS, any other verb
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._error(405, f"{self.command} is not allowed: this server is read-only",
                    {"Allow": "GET, HEAD"})  # fmt: skip

    def _host_ok(self) -> bool:
        if self.server.allow_remote:
            return True
        host = self.headers.get("Host")
        if host is None:
            return True
        host = host.strip().lower()
        name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        return name in self.server.local_names

    def _answer(self, body: bool) -> None:
        if not self._host_ok():
            self._error(400, "this server answers requests for this machine only (Host header)")
            return
        parts = urlsplit(self.path)
        self._send(self.server.app.get(parts.path, parts.query), body)

    def _error(self, code: int, message: str, extra: dict[str, str] | None = None) -> None:
        root = "../" * max(0, urlsplit(self.path or "/").path.count("/") - 1)
        page = error_page(REASONS.get(code, "Error"), message, root=root, mode="serve")
        self._send(Response(code, HTML, page.encode()), self.command != "HEAD", extra)

    def _send(self, resp: Response, body: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for k, v in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(resp.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, a header too long, 501):
        our page and our headers, never a reflection of the request."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # a status line and our headers, whatever came
        try:
            self.log_error("code %d, message %s", code, message)
            try:
                phrase = HTTPStatus(code).phrase  # never the request, even escaped
            except ValueError:
                phrase = "Error"
            page = error_page(f"Error {code}", phrase, root="", mode="serve")
            self._send(Response(code, HTML, page.encode()), getattr(self, "command", "") != "HEAD")
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


class WebServer(ThreadingHTTPServer):
    """The HTTP server of a :class:`WebApp` (see the module docstring)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        app: WebApp,
        *,
        allow_remote: bool = False,
        quiet: bool = False,
        workers: int = WORKERS,
    ) -> None:
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app = app
        self.allow_remote = allow_remote
        self.quiet = quiet
        self.local_names = {"localhost", "127.0.0.1", "::1", host.strip("[]").lower()}
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="modelgit-web")
        self.owned: Any = None  # a repository make_server opened: closed with the server
        super().__init__((host.strip("[]"), address[1]), Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.pool.submit(self.process_request_thread, request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.owned is not None:
            self.owned.close()
            self.owned = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}/"


def make_server(
    repo: str | Path | Any,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool = False,
    values: bool = True,
    quiet: bool = False,
) -> WebServer:
    """A server for ``repo`` (a path, opened read-only, or an open Repository) bound to
    ``host:port`` (port 0: a free one; its URL is ``server.url``), not yet serving.
    A ``host`` that is not a loopback address needs ``allow_remote=True``. A repository
    opened here is closed by ``server.server_close()``. What a diff imports is imported
    here, once (:func:`~modelgit.web.data.warm_up`), so that no request reads a file
    outside the repository, the package and Python's installation."""
    if not is_loopback(host) and not allow_remote:
        raise InvalidArgument(
            f"--host {host} makes the repository readable from other machines, with no "
            "authentication; pass --allow-remote (allow_remote=True) if that is meant"
        )
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"port {port} is out of range (0-65535; 0 picks a free one)")
    warm_up()
    owned = None
    if isinstance(repo, (str, Path)):
        from ..repository import open as open_repository

        repo = owned = open_repository(repo, read_only=True, checkout_cache=0)
    try:
        server = WebServer((host, port), WebApp(repo, values=values),
                           allow_remote=allow_remote, quiet=quiet)  # fmt: skip
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    server.owned = owned
    return server


def run(server: WebServer, announce: Callable[[str], None] | None = None) -> None:
    """Serve until Ctrl-C (or SIGTERM), then close the server. ``announce(url)`` is called
    once the socket accepts connections."""

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = {}
    if threading.current_thread() is threading.main_thread():  # also where SIGINT was ignored
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if announce is not None:
            announce(server.url)
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass  # the way to stop a server: not an error
    finally:
        server.server_close()
        for s, handler in old.items():
            signal.signal(s, handler)
