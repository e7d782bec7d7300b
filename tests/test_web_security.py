"""The web UI's security, over HTTP and in-process: hostile text stays text (model names,
relations, messages, metadata, side files and their paths, creation arguments), pages
hold no inline script, style or event handler, data files cannot close a script
element, the server is read-only and loopback-only, and no URL makes it read a file
outside the repository."""

from __future__ import annotations

import builtins
import http.client
import io
import os
import re
import site
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import modelgit
from modelgit.errors import InvalidArgument
from modelgit.web import WebApp, make_server
from modelgit.web.data import warm_up
from modelgit.web.html import CSP, js_data, safe_json
from web_zoo import (
    CONFIG,
    EVIL_FILE,
    EVIL_NAME,
    EVIL_RELATION,
    README,
    XSS,
    build_zoo,
    data_file,
    parse,
    serving,
)

# markup that would run if it reached a page as is (as text, escaped, it is harmless)
RAW = [XSS["script"], XSS["img"], XSS["close"], EVIL_RELATION, "<img src=x", "<script>alert",
       "onmouseover='alert"]  # fmt: skip
TRAVERSALS = [
    "/static/../../etc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2fetc%2fpasswd",
    "/static/%2E%2E%2F%2E%2E%2Fcatalog.db",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/../MODELGIT",
    "//etc/passwd",
    "/etc/passwd",
    "/catalog.db",
    "/MODELGIT",
    "/packs/",
    "/locks/repo.lock",
    "/model/../catalog.db",
    "/model/..%2f..%2fcatalog.db.html",
    "/model/%2e%2e%2fMODELGIT.html",
    "/diff/..%2f..%2fMODELGIT.html",
    "/static/style.css/../../../MODELGIT",
    "/static/style.css%00.html",
    "/static/STYLE.CSS",
    "/static/__init__.py",
    "/static/../app.py",
    "/data/../../catalog.db",
    "/\\..\\..\\etc\\passwd",
]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_zoo(tmp_path_factory.mktemp("websec") / "zoo")


@pytest.fixture(scope="module")
def server(zoo: dict[str, Any]) -> Iterator[str]:
    with serving(zoo["path"], "--quiet") as (url, _):
        yield url


def raw_request(server: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client normalises the target), read the answer."""
    parts = urlsplit(server)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, headers, body


def request(server: str, method: str, target: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    parts = urlsplit(server)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest(method, target, skip_host=bool(headers and "Host" in headers),
                        skip_accept_encoding=True)  # fmt: skip
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def every_page(server: str) -> dict[str, str]:
    """Every page and data file of the site (the crawl of the static site's paths)."""
    out = {}
    parts = urlsplit(server)
    for rel in _site_paths(server):
        status, _, body = request(server, "GET", parts.path + rel)
        assert status == 200, rel
        out[rel] = body.decode()
    return out


def _site_paths(server: str) -> list[str]:
    _, _, body = request(server, "GET", "/data/graph.js")
    graph = data_file(body.decode())
    paths = ["index.html", "versions.html", "search.html", "storage.html", "data/graph.js",
             "data/versions.js", "data/search.js"]  # fmt: skip
    paths += sorted({n["href"].split("#")[0] for n in graph["nodes"].values()})
    paths += sorted({d[2] for d in graph["diffs"]})
    return paths


# -- hostile text stays text ----------------------------------------------------------------


def test_no_payload_reaches_a_page_unescaped(server: str) -> None:
    pages = every_page(server)
    for rel, text in pages.items():
        if rel.endswith(".js"):  # data files: JSON without a single markup character
            assert not set("<>&") & set(text), rel
            continue
        for payload in RAW:
            assert payload not in text, (rel, payload)
    joined = "\n".join(t for r, t in pages.items() if r.endswith(".html"))
    # ... and every payload is there, as escaped text
    for payload in (XSS["script"], XSS["img"], XSS["close"], EVIL_NAME, EVIL_RELATION,
                    EVIL_FILE, CONFIG["note"]):  # fmt: skip
        assert modelgit.web.html.esc(payload) in joined, payload


def test_hostile_text_reads_back_as_the_same_text(server: str) -> None:
    """Parsed as a browser does, the pages show the stored strings exactly."""
    pages = every_page(server)
    ft = next(v for k, v in pages.items() if k == "model/ft.html")
    doc = parse(ft)
    assert XSS["close"] in doc.by_id("versions").text  # the message
    meta = doc.by_id("metadata").text
    for v in (XSS["script"], XSS["img"], XSS["path"], XSS["close"]):
        assert v in meta
    assert XSS["script"] in doc.by_id("creator").text
    base = parse(pages["model/base.html"])
    files = {d.attrs["data-path"]: d for d in base.by_id("side-files").find_all("details")}
    assert set(files) == {"README.md", "config.json", EVIL_FILE}
    assert files["README.md"].find_all("pre")[0].text == README.decode()
    assert CONFIG["note"] in files["config.json"].text
    graph = parse(pages["index.html"])
    names = {g.attrs["data-name"] for g in graph.find_all("g", cls="node")}
    assert EVIL_NAME in names
    assert EVIL_RELATION in {e.attrs["data-relation"] for e in graph.find_all("path", cls="edge")}
    items = data_file(pages["data/search.js"])["items"]
    assert any(i["model"] == EVIL_NAME and i["message"] == XSS["img"] for i in items)


def test_pages_hold_no_inline_script_style_or_handler(server: str) -> None:
    for rel, text in every_page(server).items():
        if not rel.endswith(".html"):
            continue
        doc = parse(text)
        metas = [
            m
            for m in doc.find_all("meta")
            if m.attrs.get("http-equiv") == "Content-Security-Policy"
        ]
        assert [m.attrs["content"] for m in metas] == [CSP], rel
        for e in doc.iter():
            for name, value in e.attrs.items():
                assert not name.startswith("on"), (rel, e.tag, name)
                assert name != "style", (rel, e.tag)
                assert not value.strip().lower().startswith("javascript:"), (rel, value)
            if e.tag == "script":
                assert e.attrs.get("src") and e.text == "", rel
                assert not re.match(r"^([a-z]+:|/)", e.attrs["src"]), rel
            assert e.tag not in ("style", "iframe", "object", "embed", "base", "form") or (
                e.tag == "form" and e.attrs.get("action") == "search.html"
            ), (rel, e.tag)


def test_data_files_escape_markup() -> None:
    text = js_data("X", {"a": "</script><b>&amp;\u2028\u2029", "<": [">"]})
    assert not set("<>&\u2028\u2029") & set(text)
    assert text.startswith('window.X = JSON.parse("') and text.endswith('");\n')
    assert data_file(text) == {"a": "</script><b>&amp;\u2028\u2029", "<": [">"]}
    # never an object literal, where a "__proto__" key would set the prototype (the
    # browser test checks that such models have nodes, search entries and links)
    proto = js_data("X", {"__proto__": {"a": 1}, "constructor": 2})
    assert data_file(proto) == {"__proto__": {"a": 1}, "constructor": 2}
    assert "{" not in proto.partition('JSON.parse("')[0]
    assert safe_json("x") == '"x"'
    with pytest.raises(ValueError):
        safe_json(float("nan"))  # strict JSON only
    with pytest.raises(AssertionError):
        js_data("x; alert(1)//", {})


# -- read-only -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_only_get_and_head(server: str, method: str) -> None:
    status, headers, body = request(server, method, "/index.html", body=b"x=1")
    assert status == 405, method
    assert headers["Allow"] == "GET, HEAD"
    assert (
        headers["Content-Security-Policy"] == CSP and headers["X-Content-Type-Options"] == "nosniff"
    )
    assert b"read-only" in body


def test_the_server_writes_nothing(zoo: dict[str, Any], server: str) -> None:
    root = Path(zoo["path"])

    def state() -> dict[str, tuple[int, int]]:
        skip = {"catalog.db-wal", "catalog.db-shm"}  # SQLite's reader files
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in root.rglob("*") if p.is_file() and p.name not in skip}  # fmt: skip

    before = state()
    every_page(server)
    request(server, "GET", "/diff?a=base@1&b=BASE")
    request(server, "POST", "/index.html", body=b"x")
    assert state() == before


# -- local only -------------------------------------------------------------------------------


def test_binds_loopback_unless_allowed(zoo: dict[str, Any]) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.com"):
        with pytest.raises(InvalidArgument, match="allow-remote"):
            make_server(zoo["path"], host, 0)
    with pytest.raises(InvalidArgument, match="port"):
        make_server(zoo["path"], "127.0.0.1", 70000)
    s = make_server(zoo["path"], "127.0.0.1", 0)
    try:
        assert s.server_address[0] == "127.0.0.1" and s.url.startswith("http://127.0.0.1:")
    finally:
        s.server_close()  # closes the repository it opened
    assert s.owned is None


def test_host_header_must_name_this_machine(server: str) -> None:
    port = urlsplit(server).port
    for host, want in [(f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200), ("localhost", 200),
                       (f"[::1]:{port}", 200), ("evil.example:80", 400), ("evil.example", 400),
                       (f"127.0.0.1.evil.example:{port}", 400)]:  # fmt: skip
        status, headers, _ = request(server, "GET", "/", headers={"Host": host})
        assert status == want, host
        assert headers["Content-Security-Policy"] == CSP


# -- nothing outside the repository -------------------------------------------------------------


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_urls_are_404(server: str, target: str) -> None:
    status, headers, body = raw_request(
        server, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    )
    assert status in (400, 404), target
    assert headers["Content-Type"].startswith("text/html")
    for secret in (b"root:", b"SQLite format", b"modelgit repository", b"import ", b"def "):
        assert secret not in body, (target, secret)


def test_absolute_form_targets_are_paths_of_this_site(server: str) -> None:
    for target in ("http://127.0.0.1/etc/passwd", "http://evil.example/../../etc/passwd",
                   "file:///etc/passwd"):  # fmt: skip
        status, _, body = raw_request(
            server, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        )
        assert status in (400, 404) and b"root:" not in body


def test_malformed_requests_get_our_error_page(server: str) -> None:
    status, headers, body = raw_request(server, b"GARBAGE\r\n\r\n")
    assert status == 400 and headers["Content-Security-Policy"] == CSP
    assert b"GARBAGE" not in body  # the request is not reflected
    status, headers, body = raw_request(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert status == 414 and headers["X-Content-Type-Options"] == "nosniff"


def test_no_url_opens_a_file_outside_the_repository(
    zoo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: every file a request opens (Python's open and os.open) lies in the
    repository, the package or Python's installation. Before its spies it does what a
    server does before serving: opens the repository read-only, imports what a diff needs
    (``warm_up``, as ``make_server`` does: transformers' first import reads /proc) and
    reads the first snapshot; so it holds run alone as in the whole suite."""
    opened: list[str] = []
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def spy(fn: Any) -> Any:
        def wrapped(file: Any, *a: Any, **kw: Any) -> Any:
            if isinstance(file, (str, bytes, os.PathLike)):
                opened.append(os.path.realpath(os.fsdecode(file)))
            return fn(file, *a, **kw)

        return wrapped

    repo = modelgit.open(zoo["path"], read_only=True, checkout_cache=0)  # as serve opens it
    warm_up()  # as make_server does before serving
    app = WebApp(repo)
    app.get("/")  # the snapshot is read before the spies, like a server's first request
    monkeypatch.setattr(builtins, "open", spy(real_open))
    monkeypatch.setattr(io, "open", spy(real_io_open))
    monkeypatch.setattr(os, "open", spy(real_os_open))
    try:
        for target in TRAVERSALS:
            path, _, query = target.partition("?")
            assert app.get(path, query).status in (400, 404), target
        for rel in [
            "index.html",
            "static/style.css",
            "model/base.html",
            "diff/base@1--base@2.html",
        ]:
            assert app.get("/" + rel).status == 200
        assert app.get("/diff", "a=base@1&b=BASE").status == 200
    finally:
        monkeypatch.undo()
        repo.close()
    # the repository, the package, and Python's own installation (modules a request
    # imports for the first time, package metadata, from any site-packages folder on the
    # path); never a user's file or cache, nor /proc
    python = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(),
              *(p for p in sys.path if os.path.basename(p) == "site-packages")}  # fmt: skip
    allowed = [os.path.realpath(zoo["path"]), os.path.realpath(Path(modelgit.__file__).parent),
               *(os.path.realpath(p) for p in python)]  # fmt: skip
    outside = [p for p in opened if not any(p == a or p.startswith(a + os.sep) for a in allowed)]
    assert outside == [], outside
    assert not any(p.endswith("passwd") for p in opened)
