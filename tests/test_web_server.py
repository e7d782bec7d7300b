"""``modelgit serve``, over HTTP: a real server subprocess on a free loopback port, a
real repository (tests/web_zoo.py), urllib as the client. What the pages hold is
checked on their DOM (the ids and classes of the contract the browser tests rely on);
security is in test_web_security.py, the static site in test_web_site.py."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest
import torch

import modelgit as mg
from web_zoo import (
    EVIL_NAME,
    EVIL_RELATION,
    PCT_NAME,
    README,
    XSS,
    build_zoo,
    data_file,
    nudge,
    parse,
    serving,
    weights,
)

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_zoo(tmp_path_factory.mktemp("web") / "zoo")


@pytest.fixture(scope="module")
def server(zoo: dict[str, Any]) -> Iterator[str]:
    with serving(zoo["path"], "--quiet") as (url, _):
        yield url


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def page(url: str) -> Any:
    status, _, body = get(url)
    assert status == 200, (url, status, body[:300])
    return parse(body)


def slug_of(server: str, name: str) -> str:
    _, _, body = get(server + "data/graph.js")
    href = data_file(body)["nodes"][name]["href"]
    m = re.fullmatch(r"model/([A-Za-z0-9._-]+)\.html", href)
    assert m, href
    return m.group(1)


# -- the process ---------------------------------------------------------------------------


def test_prints_one_line_then_stops_cleanly_on_ctrl_c(zoo: dict[str, Any]) -> None:
    with serving(zoo["path"]) as (url, proc):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        assert get(url)[0] == 200
    assert proc.returncode == 0
    out, err = proc.rest
    assert out == ""  # the one line was all of stdout
    assert re.search(r'"GET / HTTP/1\.1" 200', err)  # the request log (no --quiet)
    assert "Traceback" not in err


def test_a_logging_server_is_drained(zoo: dict[str, Any]) -> None:
    """Without --quiet the server logs each request to stderr: more than a pipe holds
    (64 KiB) must not block it (the harness reads both pipes as it runs)."""
    with serving(zoo["path"]) as (url, server):
        for _ in range(1400):  # ~55 bytes of log each
            req = urllib.request.Request(url + "static/favicon.svg", method="HEAD")
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200
    logged = server.rest[1]
    assert len(logged) > 64 << 10 and logged.count('"HEAD /static/favicon.svg') == 1400


def test_a_port_in_use_is_a_clear_error(zoo: dict[str, Any], server: str) -> None:
    port = urlsplit(server).port
    run = subprocess.run(
        [sys.executable, "-m", "modelgit", "serve", "--port", str(port), "--repo", zoo["path"]],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.startswith("modelgit: error:") and "in use" in run.stderr
    assert "--port 0" in run.stderr and "Traceback" not in run.stderr


def test_a_remote_host_needs_allow_remote_and_warns(zoo: dict[str, Any]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "modelgit", "serve", "--host", "0.0.0.0", "--repo", zoo["path"]],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1 and "--allow-remote" in run.stderr and run.stdout == ""
    with serving(zoo["path"], "--host", "0.0.0.0", "--allow-remote", "--quiet") as (url, proc):
        assert url.startswith("http://0.0.0.0:")
        port = urlsplit(url).port
        assert get(f"http://127.0.0.1:{port}/")[0] == 200
    _, err = proc.rest
    assert "modelgit: warning: listening on 0.0.0.0" in err and "no login" in err


def test_not_a_repository(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "modelgit", "serve", "--port", "0", "--repo", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1 and "not a modelgit repository" in run.stderr


# -- the pages -------------------------------------------------------------------------------


def test_every_top_page_and_asset(server: str) -> None:
    for path, ctype in [
        ("", "text/html"), ("index.html", "text/html"), ("versions.html", "text/html"),
        ("search.html", "text/html"), ("storage.html", "text/html"),
        ("data/graph.js", "text/javascript"), ("data/versions.js", "text/javascript"),
        ("data/search.js", "text/javascript"), ("static/style.css", "text/css"),
        ("static/graph.js", "text/javascript"), ("static/search.js", "text/javascript"),
        ("static/diff.js", "text/javascript"), ("static/favicon.svg", "image/svg+xml"),
    ]:  # fmt: skip
        status, headers, body = get(server + path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(ctype), path
        assert headers["Content-Security-Policy"] == CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert int(headers["Content-Length"]) == len(body.encode())
    assert get(server)[2] == get(server + "index.html")[2]


def test_head_answers_headers_only(server: str) -> None:
    status, headers, body = get(server + "storage.html", method="HEAD")
    assert status == 200 and body == ""
    assert int(headers["Content-Length"]) == len(get(server + "storage.html")[2].encode())


def test_graph_page(zoo: dict[str, Any], server: str) -> None:
    doc = page(server)
    svg = doc.by_id("graph")
    assert svg.tag == "svg"
    nodes = svg.find_all("g", cls="node")
    assert sorted(n.attrs["data-name"] for n in nodes) == sorted(zoo["models"])
    data = data_file(get(server + "data/graph.js")[2])
    for n in nodes:
        name = n.attrs["data-name"]
        assert int(n.attrs["data-stored"]) == zoo["stored"][name]
        (link,) = n.find_all("a", cls="model-link")
        assert link.attrs["href"] == data["nodes"][name]["href"]
        assert link.attrs["href"].startswith("model/") and link.text == name
        assert len(n.find_all("circle", cls="pick")) == 1
        children = data["nodes"][name]["children"]
        assert bool(n.find_all(cls="collapse")) == bool(children), name
        dots = n.find_all("circle", cls="ver")
        assert [int(d.attrs["data-number"]) for d in dots] == zoo["versions"][name]
    rels = sorted(e.attrs["data-relation"] for e in svg.find_all("path", cls="edge"))
    assert rels == sorted(["finetune", EVIL_RELATION, "distill", "merge", "merge", "cast",
                           "finetune", "finetune"])  # fmt: skip
    assert doc.by_id("search").tag == "input"
    assert doc.by_id("compare").tag == "button" and "disabled" in doc.by_id("compare").attrs
    nav = doc.by_id("nav")
    assert [a.attrs["href"] for a in nav.find_all("a")] == [
        "index.html", "search.html", "storage.html"
    ]  # fmt: skip
    assert {s.attrs["src"] for s in doc.find_all("script")} == {"data/graph.js", "static/graph.js"}
    lossy = [n.attrs["data-name"] for n in nodes if "lossy" in n.classes]
    assert lossy == ["ft"]


def test_version_graph_page(zoo: dict[str, Any], server: str) -> None:
    doc = page(server + "versions.html")
    nodes = doc.by_id("graph").find_all("g", cls="node")
    want = sorted(f"{m}@{n}" for m, ns in zoo["versions"].items() for n in ns)
    assert sorted(n.attrs["data-name"] for n in nodes) == want
    version_edges = doc.by_id("graph").find_all("path", cls="version")
    assert sorted((e.attrs["data-from"], e.attrs["data-to"]) for e in version_edges) == [
        ("base@1", "base@2"), ("ft@1", "ft@2")
    ]  # fmt: skip


def test_model_page(zoo: dict[str, Any], server: str) -> None:
    doc = page(server + f"model/{slug_of(server, 'ft')}.html")
    assert doc.by_id("model-name").text == "ft"
    rows = doc.by_id("versions").find_all("tr", cls="version")
    assert [r.attrs["data-number"] for r in rows] == ["1", "2"]
    assert rows[0].find_all("a", cls="diff-link") == []  # the first has none
    (parent,) = rows[0].find_all("a", cls="parent-diff-link")
    assert "base@2" in parent.text
    (link,) = rows[1].find_all("a", cls="diff-link")
    assert link.attrs["href"] == "../diff/ft@1--ft@2.html"
    assert "abs<=0.001" in rows[1].text and "lossy" in rows[1].text  # the lossy bound
    assert "candidate" in rows[0].text  # its tag
    meta = doc.by_id("metadata").text
    assert XSS["script"] in meta and XSS["path"] in meta  # as text (escaped in the HTML)
    assert "candidate" in doc.by_id("tags").text
    storage = doc.by_id("storage")
    assert "base@" in storage.text  # what it was stored against
    files = doc.by_id("side-files")
    readme = [d for d in files.find_all("details") if d.attrs["data-path"] == "README.md"]
    assert readme and readme[0].find_all("pre")[0].text == README.decode()
    assert "open" in readme[0].attrs
    results = doc.by_id("tests").find_all("tr", cls="result")
    assert {r.attrs["data-number"] for r in results} == {"2"}  # run on the latest versions
    assert "head-mean" in doc.by_id("tests").text and "pass" in results[0].text
    creator = doc.by_id("creator").text
    assert "wf_funcs:finetune" in creator and '"shift": 0.5' in creator


def test_every_link_of_every_page_resolves(zoo: dict[str, Any], server: str) -> None:
    """A crawl from the graph: every relative link (a, link, script) answers 200, and no
    link is absolute (the site must work from file:// and below any prefix)."""
    seen: set[str] = set()
    todo = [server + "index.html"]
    pages = 0
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        status, headers, body = get(url)
        assert status == 200, url
        if not headers["Content-Type"].startswith("text/html"):
            continue
        pages += 1
        for e in parse(body).iter():
            ref = e.attrs.get("href") or e.attrs.get("src")
            if ref is None or e.tag not in ("a", "link", "script"):
                continue
            assert not re.match(r"^([a-z]+:|/)", ref), (url, ref)
            target = urljoin(url, ref).split("#")[0]
            if target.startswith(server):
                todo.append(target)
    n_models = len(zoo["models"])
    # each version against the one before it, each first version against its parents
    n_diffs = sum(len(v) - 1 for v in zoo["versions"].values()) + zoo["parent_edges"]
    assert pages == 4 + n_models + n_diffs


def test_diff_page_by_query(zoo: dict[str, Any], server: str) -> None:
    doc = page(server + "diff?a=base@1&b=" + quote("merged"))
    rows = doc.by_id("tensor-changes").find_all("tr", cls="changed")
    assert [r.find_all("code")[0].text for r in rows] == ["encoder.layer.1.weight"]
    assert "side files" in doc.by_id("file-changes").text.lower()
    structure = doc.by_id("structure")
    assert structure.find_all(cls="tree-left") and structure.find_all(cls="tree-right")
    nav_links = [a.attrs["href"] for a in doc.by_id("nav").find_all("a")]
    assert nav_links[0] == "index.html"  # served at /diff: the root's relative links
    title = doc.by_id("diff-title")
    assert [a.attrs["href"] for a in title.find_all("a")] == [
        f"model/{slug_of(server, 'base')}.html#v1", "model/merged.html#v1"
    ]  # fmt: skip


def test_diff_side_files_and_hostile_names(zoo: dict[str, Any], server: str) -> None:
    doc = page(server + "diff?a=" + quote("base@2") + "&b=" + quote(EVIL_NAME))
    assert [a.text for a in doc.by_id("diff-title").find_all("a")] == ["base@2", f"{EVIL_NAME}@1"]
    files = doc.by_id("file-changes")
    assert "unchanged" in files.text  # the side files were inherited
    doc = page(server + "diff?a=base&b=BASE")  # two families: weights differ, files too
    assert [li.attrs["class"] for li in doc.by_id("file-changes").find_all("li")] == [
        "removed", "removed", "removed"
    ]  # fmt: skip


def test_bad_diffs(server: str) -> None:
    status, _, body = get(server + "diff?a=nope&b=base")
    assert status == 404
    assert "no model named &#x27;nope&#x27;" in body and "Traceback" not in body
    status, _, body = get(server + "diff?a=base@9&b=base")
    assert status == 404 and "base" in body
    for q in ("", "a=base", "b=base", "a=&b=base"):
        status, _, body = get(server + "diff?" + q)
        assert status == 400 and "diff?a=REF&amp;b=REF" in body
    status, _, body = get(server + "diff?a=" + quote(XSS["script"]) + "&b=base")
    assert status == 404 and XSS["script"] not in body
    assert "&lt;script&gt;" in body


def test_unknown_pages_are_404_pages(server: str) -> None:
    for path in ("nope.html", "model/nope.html", "diff/a@1--b@1.html", "model/", "data/x.js",
                 "static/", "index.htm", "model/base.htm"):  # fmt: skip
        status, headers, body = get(server + path)
        assert status == 404, path
        assert headers["Content-Type"].startswith("text/html")
        assert headers["Content-Security-Policy"] == CSP
        doc = parse(body)
        assert doc.by_id("error-title").text == "Not found"
        links = [a.attrs["href"] for a in doc.by_id("nav").find_all("a")]
        assert urljoin(server + path, links[0]) == server + "index.html"  # relative, right


def test_search_index(zoo: dict[str, Any], server: str) -> None:
    doc = page(server + "search.html?q=prod")
    assert doc.by_id("results").tag == "ul" and doc.by_id("query").attrs["name"] == "q"
    items = data_file(get(server + "data/search.js")[2])["items"]
    refs = {i["ref"] for i in items}
    assert refs == {f"{m}@{n}" for m, ns in zoo["versions"].items() for n in ns}
    base2 = next(i for i in items if i["ref"] == "base@2")
    assert base2["tags"] == ["prod"] and "accuracy=0.93" in base2["meta"] and base2["latest"]
    ft1 = next(i for i in items if i["ref"] == "ft@1")
    assert f"nested.deep={XSS['close']}" in ft1["meta"] and ft1["message"] == XSS["close"]


def test_storage_page(zoo: dict[str, Any], server: str) -> None:
    doc = page(server + "storage.html")
    du = doc.by_id("du").find_all("tr")
    names = [r.attrs["data-name"] for r in du if "data-name" in r.attrs]
    assert names == zoo["models"]
    layout = doc.by_id("layout").find_all("tr")
    refs = [r.attrs["data-ref"] for r in layout if "data-ref" in r.attrs]
    assert refs == [f"{m}@{n}" for m in zoo["models"] for n in zoo["versions"][m]]
    depth = {
        r.attrs["data-ref"]: int(r.attrs["data-depth"]) for r in layout if "data-ref" in r.attrs
    }
    assert depth["base@1"] == 0 and depth["ft@1"] >= 1


def test_pages_follow_the_repository(tmp_path: Path) -> None:
    """A version committed while the server runs appears on the next request; the
    server itself never writes (its catalog handle is read-only)."""
    path = tmp_path / "repo"
    with mg.init(path) as repo:
        repo.add("m", weights(0))
    with serving(path, "--quiet") as (url, _):
        assert len(page(url + "model/m.html").by_id("versions").find_all("tr", cls="version")) == 1
        with mg.open(path) as repo:
            repo.commit("m", nudge(weights(0), 1.0), message="while serving")
            repo.add("m2", weights(3), parents="m")
        doc = page(url + "model/m.html")
        rows = doc.by_id("versions").find_all("tr", cls="version")
        assert [r.attrs["data-number"] for r in rows] == ["1", "2"]
        assert "while serving" in rows[1].text
        assert {n.attrs["data-name"] for n in page(url).find_all("g", cls="node")} == {"m", "m2"}
        status, _, _ = get(url + "diff/m@1--m@2.html")
        assert status == 200


def test_a_damaged_pack_gives_an_error_page_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    with mg.init(path) as repo:
        repo.add("m", {"w": torch.randn(50_000)})
        repo.commit("m", {"w": torch.randn(50_000)})
    pack = next((path / "packs").glob("*.mgp"))
    data = bytearray(pack.read_bytes())
    for i in range(200, len(data), 997):
        data[i] ^= 0xFF
    pack.write_bytes(bytes(data))
    with serving(path, "--quiet") as (url, proc):
        status, _, body = get(url + "diff/m@1--m@2.html")
        assert status == 500 and "Traceback" not in body
        assert page(url + "model/m.html").by_id("model-name").text == "m"  # the rest stands
        assert get(url + "storage.html")[0] == 200
    assert proc.returncode == 0


def test_percent_names_are_names_not_paths(server: str) -> None:
    slug = slug_of(server, PCT_NAME)
    assert "%" not in slug and slug != PCT_NAME
    doc = page(server + f"model/{slug}.html")
    assert doc.by_id("model-name").text == PCT_NAME
    status, _, _ = get(server + f"model/{quote(PCT_NAME)}.html")
    assert status == 404  # a name is looked up, never decoded into a file name
