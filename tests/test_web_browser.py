"""The web UI in a real browser (issue #20): headless Chromium, driven by selenium, against
``modelgit serve`` running as a subprocess on a free loopback port over a real zoo
repository, and against the static site of ``modelgit site`` opened from file://.

Every page visited is checked for what the UI promises: its DOM per the contract of the
pages (ids and classes), relative links only, no request to a host other than 127.0.0.1,
no XSS payload run (the zoo carries them in names, messages, metadata and README), no
alert. Each page is also photographed into the test's temporary folder.

One browser, one server and one site per module (a few seconds of start-up, shared).
The tests skip only where Chromium or chromedriver is absent; .ci/run installs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import pytest

from browser import (
    HOSTILE_NAME,
    HOSTILE_TAG,
    XSS_ATTR,
    XSS_CLOSE,
    XSS_SCRIPT,
    Browser,
    Server,
    Zoo,
    build_zoo,
    check_page,
    click,
    missing_browser,
    model_href,
    node,
    open_graph,
    png_summary,
    write_site,
)

ROOT = Path(__file__).resolve().parent.parent
NO_BROWSER = missing_browser()
needs_browser = pytest.mark.skipif(NO_BROWSER is not None, reason=str(NO_BROWSER))
STATUSES = {"same", "changed", "renamed", "added", "removed", "mixed"}

# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    return build_zoo(tmp_path_factory.mktemp("web") / "zoo")


@pytest.fixture(scope="module")
def server(zoo: Zoo) -> Iterator[Server]:
    if NO_BROWSER:
        pytest.skip(NO_BROWSER)
    srv = Server(zoo.root)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if NO_BROWSER:
        pytest.skip(NO_BROWSER)
    b = Browser()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def site(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_site(zoo.root, tmp_path_factory.mktemp("web") / "site")


# -- helpers ----------------------------------------------------------------------------------


def trees(b: Browser) -> dict[str, dict[str, set[str]]]:
    """The structure panel of a diff page: for "left" and "right", each tree node's
    ``data-path`` -> its status classes (every node checked: class ``tnode``, exactly one
    status)."""
    b.one("#structure")
    out: dict[str, dict[str, set[str]]] = {}
    for side in ("left", "right"):
        b.one(f"#structure .tree-{side}")
        nodes = b.css(f"#structure .tree-{side} .tnode")
        assert nodes, f"no .tnode in .tree-{side} of {b.driver.current_url}"
        out[side] = {}
        for t in nodes:
            classes = set(t.get_attribute("class").split())
            assert len(classes & STATUSES) == 1, classes
            path = t.get_attribute("data-path")
            assert path is not None, classes
            out[side][path] = classes & STATUSES
    return out


# -- the served pages -------------------------------------------------------------------------


@needs_browser
def test_graph_page(browser: Browser, server: Server, zoo: Zoo, tmp_path: Path) -> None:
    """`/` is the graph: one node per model with its stored size and a relative link to
    its page, coloured edges by relation, the search box, the compare button (off)."""
    open_graph(browser, server.url, zoo)
    check_page(browser, tmp_path, "graph")
    nodes = browser.css("#graph .node")
    assert sorted(n.get_attribute("data-name") for n in nodes) == sorted(zoo.models)
    stored = {n.get_attribute("data-name"): int(n.get_attribute("data-stored")) for n in nodes}
    assert stored["renamed"] == 0  # base@2's tensors under new names: nothing new stored
    assert all(v > 0 for k, v in stored.items() if k != "renamed"), stored
    for n in nodes:
        (link,) = n.find_elements("css selector", "a.model-link")
        href = browser.href(link)
        assert urlsplit(href).path.startswith("/model/") and href.endswith(".html"), href
    relations = {e.get_attribute("data-relation") for e in browser.css("#graph path.edge")}
    assert {"finetune", "merge", "cast", "distill", "prune"} <= relations, relations
    edges = len(browser.css("#graph path.edge"))
    assert edges >= len(zoo.models) - 2, edges  # every non-root has an edge; merged has two
    assert browser.one("#compare").get_attribute("disabled") is not None
    assert browser.one("input#search")
    # the same page under its file name
    browser.open(urljoin(server.url, "index.html"))
    browser.wait(f"return document.querySelectorAll('#graph .node').length === {len(zoo.models)}")
    check_page(browser)


@needs_browser
def test_click_graph_to_model_to_diff(
    browser: Browser, server: Server, zoo: Zoo, tmp_path: Path
) -> None:
    """Graph → model page (a click on the node's link) → diff page (a click on a
    version's diff link): each page as the contract says."""
    open_graph(browser, server.url, zoo)
    link = node(browser, "base").find_element("css selector", "a.model-link")
    click(browser, link)
    browser.wait_url(r"/model/[^/]+\.html$")
    check_page(browser, tmp_path, "model")
    assert browser.one("h1#model-name").text == "base"
    rows = browser.css("table#versions tr.version")
    assert [r.get_attribute("data-number") for r in rows] == ["1", "2", "3"]
    assert "continued training" in rows[1].text
    assert not rows[0].find_elements("css selector", "a.diff-link")
    for section in ("#metadata", "#tags", "#side-files", "#tests", "#storage"):
        browser.one(section)
    assert "stable" in browser.one("#tags").text
    assert "digits" in browser.one("#metadata").text
    files = browser.one("#side-files").text
    assert "README.md" in files and "config.json" in files
    assert "A digits MLP" in files  # the model card shown as text
    tests = browser.one("#tests").text
    assert "accuracy" in tests and "0.1" in tests
    assert browser.one("#storage").text.strip()
    (diff_link,) = rows[2].find_elements("css selector", "a.diff-link")
    click(browser, diff_link)
    browser.wait_url(r"/diff")
    check_page(browser, tmp_path, "diff")
    changes = browser.one("table#tensor-changes").text
    assert "layers.0.weight" in changes, changes
    browser.one("#file-changes")
    got = trees(browser)  # base@2 -> base@3: the same modules, values changed
    assert got["left"]["layers.0"] == got["right"]["layers.0"] == {"changed"}, got


@needs_browser
def test_pick_two_nodes_and_compare(browser: Browser, server: Server, zoo: Zoo) -> None:
    """Picking two nodes on the graph enables #compare, which opens their diff."""
    open_graph(browser, server.url, zoo)
    compare = browser.one("#compare")
    assert not compare.is_enabled()
    click(browser, node(browser, "ft-low").find_element("css selector", ".pick"))
    assert "picked" in node(browser, "ft-low").get_attribute("class").split()
    assert not compare.is_enabled()  # one is not enough
    click(browser, node(browser, "ft-high").find_element("css selector", ".pick"))
    assert "picked" in node(browser, "ft-high").get_attribute("class").split()
    assert len(browser.css("#graph .node.picked")) == 2
    assert compare.is_enabled()
    click(browser, compare)
    url = browser.wait_url(r"/diff")
    check_page(browser)
    assert "ft-low" in url and "ft-high" in url
    browser.one("table#tensor-changes")
    trees(browser)


_RECT = """
const n = [...document.querySelectorAll('#graph .node')]
  .find(n => n.getAttribute('data-name') === arguments[0]);
const r = n.getBoundingClientRect(), s = getComputedStyle(n);
return {x: r.x, y: r.y, w: r.width, h: r.height,
        shown: r.width > 0 && s.display !== 'none' && s.visibility !== 'hidden'};
"""
# a point of the graph's background inside the window (where a drag pans)
_BACKGROUND = """
const svg = document.querySelector('#graph'), r = svg.getBoundingClientRect();
const bottom = Math.min(r.bottom, innerHeight) - 60, right = Math.min(r.right, innerWidth) - 100;
for (let y = Math.max(r.top, 0) + 10; y < bottom; y += 11) {
  for (let x = r.left + 10; x < right; x += 13) {
    const e = document.elementFromPoint(x, y);
    if (e && svg.contains(e) && !e.closest('.node, .edge, a')) {
      return [Math.round(x), Math.round(y)];
    }
  }
}
return null;
"""


@needs_browser
def test_zoom_pan_and_collapse(browser: Browser, server: Server, zoo: Zoo) -> None:
    """Real input on #graph: a drag on the background pans (a node moves with the
    pointer), Ctrl+wheel zooms (nodes grow), a wheel scrolls the view; .collapse on
    base hides what derives from it only, a second click brings it back."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.keys import Keys

    open_graph(browser, server.url, zoo)
    svg = browser.one("#graph")
    browser.js("arguments[0].scrollIntoView({block: 'center'})", svg)
    start = browser.js(_RECT, "base")
    x, y = browser.js(_BACKGROUND)
    drag = ActionBuilder(browser.driver)
    drag.pointer_action.move_to_location(x, y)
    drag.pointer_action.pointer_down()
    drag.pointer_action.move_to_location(x + 80, y + 40)
    drag.pointer_action.pointer_up()
    drag.perform()
    moved = browser.js(_RECT, "base")
    assert abs(moved["x"] - start["x"] - 80) < 2 and abs(moved["y"] - start["y"] - 40) < 2, (
        start,
        moved,
    )
    assert abs(moved["w"] - start["w"]) < 0.5  # a pan does not zoom
    (
        ActionChains(browser.driver)
        .key_down(Keys.CONTROL)
        .scroll_from_origin(ScrollOrigin.from_element(svg), 0, -300)
        .key_up(Keys.CONTROL)
        .perform()
    )
    zoomed = browser.js(_RECT, "base")
    assert zoomed["w"] > moved["w"] * 1.2, (moved, zoomed)
    wheel = ActionChains(browser.driver).scroll_from_origin(ScrollOrigin.from_element(svg), 0, 100)
    wheel.perform()
    scrolled = browser.js(_RECT, "base")
    assert scrolled["y"] < zoomed["y"] - 10 and abs(scrolled["w"] - zoomed["w"]) < 0.5

    open_graph(browser, server.url, zoo)  # back to the start
    derived = [m for m in zoo.models if m not in ("base", "other-root")]
    assert all(browser.js(_RECT, m)["shown"] for m in zoo.models)
    collapse = node(browser, "base").find_element("css selector", ".collapse")
    click(browser, collapse)
    shown = {m: browser.js(_RECT, m)["shown"] for m in zoo.models}
    assert [m for m in derived if shown[m]] == [] and shown["base"] and shown["other-root"]
    hidden_edges = browser.js(
        "return [...document.querySelectorAll('#graph path.edge')]"
        ".filter(e => e.getBoundingClientRect().width > 0 &&"
        " getComputedStyle(e).display !== 'none' && getComputedStyle(e).visibility !== 'hidden')"
        ".length"
    )
    assert hidden_edges == 0  # every edge touches a hidden node
    click(browser, node(browser, "base").find_element("css selector", ".collapse"))
    assert all(browser.js(_RECT, m)["shown"] for m in zoo.models)
    assert node(browser, "student").find_elements("css selector", ".collapse") == []  # a leaf
    check_page(browser)


# how each node looks: its class and the computed styles a filter or highlight changes
_LOOKS = """
const looks = () => {
  const out = {};
  for (const n of document.querySelectorAll('#graph .node')) {
    const s = getComputedStyle(n);
    out[n.getAttribute('data-name')] =
      [n.getAttribute('class'), s.opacity, s.display, s.visibility, s.filter].join('|');
  }
  return out;
};
"""
# true once the matches all look one way and every other node another
_SPLIT = """
const now = looks(), hits = new Set(arguments[0]);
const a = new Set(), b = new Set();
for (const [name, look] of Object.entries(now)) (hits.has(name) ? a : b).add(look);
const moved = Object.keys(now).some(k => now[k] !== arguments[1][k]);
return moved && [...a].every(x => !b.has(x));
"""


@needs_browser
def test_search_box_on_the_graph(browser: Browser, server: Server, zoo: Zoo) -> None:
    """Typing in #search singles out the matching nodes (a name, then a tag); emptying
    it brings the graph back as it was."""
    from selenium.webdriver.common.keys import Keys

    open_graph(browser, server.url, zoo)
    box = browser.one("input#search")
    before = browser.js(_LOOKS + "return looks();")

    def type_in(text: str) -> None:  # replace the box's text as a user does (input events)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.BACKSPACE)
        if text:
            box.send_keys(text)

    for query, hits in (("student", ["student"]), ("stable", ["base"])):
        type_in(query)
        browser.wait(_LOOKS + _SPLIT, 5, hits, before)
    type_in("")
    browser.wait(_LOOKS + "return looks();")  # the input handler has run
    deadline = time.monotonic() + 5
    while (now := browser.js(_LOOKS + "return looks();")) != before:
        assert time.monotonic() < deadline, {k: v for k, v in now.items() if before[k] != v}
        time.sleep(0.05)
    check_page(browser)


@needs_browser
def test_search_page(browser: Browser, server: Server, zoo: Zoo, tmp_path: Path) -> None:
    """search.html?q= lists models by name, tag and metadata, links relative."""
    for query, want in (("ft-low", "ft-low"), ("stable", "base"), ("0-4", "ft-low")):
        browser.open(urljoin(server.url, f"search.html?q={quote(query)}"))
        browser.wait("return document.querySelectorAll('#results li a').length > 0")
        check_page(browser, tmp_path, f"search-{want}")
        texts = [a.text for a in browser.css("#results li a")]
        assert any(want in t for t in texts), (query, texts)
    # a query that matches nothing empties the list
    browser.open(urljoin(server.url, "search.html?q=" + quote("no-such-model-anywhere")))
    browser.wait("return document.readyState === 'complete'")
    assert browser.css("#results li a") == []


@needs_browser
def test_storage_page(browser: Browser, server: Server, zoo: Zoo, tmp_path: Path) -> None:
    browser.open(urljoin(server.url, "storage.html"))
    check_page(browser, tmp_path, "storage")
    du = browser.one("table#du").text
    for m in ("base", "ft-low", "merged"):
        assert m in du
    assert browser.one("table#layout").find_elements("css selector", "tr")


@needs_browser
def test_structure_panel(browser: Browser, server: Server, zoo: Zoo, tmp_path: Path) -> None:
    """The structure panel side by side: a block inserted after layer 0 is one added
    module on the right, the others aligned with their moved partners; layers renamed
    to blocks is one renamed module on each side."""
    browser.open(urljoin(server.url, f"diff?a={quote('base@2')}&b=deep"))
    check_page(browser, tmp_path, "structure-inserted")
    got = trees(browser)
    left, right = got["left"], got["right"]
    assert right["layers.1"] == {"added"}, right
    assert [p for p, st in right.items() if "added" in st] == ["layers.1"], right
    assert all("added" not in st and "removed" not in st for st in left.values()), left
    assert left["layers.2"] == right["layers.3"] == {"same"}, got
    browser.open(urljoin(server.url, f"diff?a={quote('base@2')}&b=renamed"))
    check_page(browser, tmp_path, "structure-renamed")
    got = trees(browser)
    assert got["left"]["layers"] == got["right"]["blocks"] == {"renamed"}, got
    assert got["right"]["blocks.0"] == {"same"}, got
    partner = browser.js(
        "const n = [...document.querySelectorAll('#structure .tree-right .tnode')]"
        ".find(n => n.getAttribute('data-path') === 'blocks');"
        "return n.getAttribute('data-partner') || n.textContent;"
    )
    assert "layers" in partner, partner


# -- security -------------------------------------------------------------------------------


@needs_browser
def test_hostile_model_renders_as_text(
    browser: Browser, server: Server, zoo: Zoo, tmp_path: Path
) -> None:
    """The model whose name, message, metadata, tag and README carry XSS payloads: its
    page shows them as text and runs none (check_page fires the events they wait for)."""
    open_graph(browser, server.url, zoo)
    check_page(browser)
    browser.open(model_href(browser, HOSTILE_NAME))
    check_page(browser, tmp_path, "hostile")
    assert browser.one("h1#model-name").text == HOSTILE_NAME
    meta = browser.one("#metadata").text
    for payload in (XSS_SCRIPT, XSS_ATTR, XSS_CLOSE):
        assert payload in meta, meta
    assert XSS_SCRIPT in browser.one("#side-files").text
    assert HOSTILE_TAG in browser.one("#tags").text
    assert XSS_SCRIPT in browser.one("table#versions").text  # the message
    assert browser.css("img[src=x]") == []
    # its diff against its parent, and a search that finds it by metadata
    browser.open(urljoin(server.url, f"diff?a=ft-high&b={quote(HOSTILE_NAME)}"))
    check_page(browser)
    browser.open(urljoin(server.url, "search.html?q=" + quote("<script>")))
    browser.wait("return document.querySelectorAll('#results li a').length > 0")
    check_page(browser)
    found = [a.text for a in browser.css("#results li a")]
    assert any(t == HOSTILE_NAME or t.startswith(HOSTILE_NAME + "@") for t in found), found


@needs_browser
@pytest.mark.parametrize("where", ["serve", "site"])
def test_models_named_like_javascript_properties(
    browser: Browser, server: Server, site: Path, zoo: Zoo, where: str
) -> None:
    """``__proto__`` and its child ``constructor`` are models like the others, served
    and from file://: the filter finds each, folding ``__proto__`` hides ``constructor``,
    their links open their pages, and the search page lists them (a data file written
    as an object literal, or a name-keyed table with a prototype, loses ``__proto__``)."""
    from selenium.webdriver.common.keys import Keys

    file = where == "site"
    root = (site.as_uri() + "/") if file else server.url
    open_graph(browser, root + "index.html", zoo)
    check_page(browser, file=file)
    has = browser.js(
        "const n = window.MODELGIT_GRAPH.nodes, own = k => Object.hasOwn(n, k);"
        "return [own('__proto__'), own('constructor'), n['__proto__'].children,"
        " Object.getPrototypeOf(n) === Object.prototype];"
    )
    assert has == [True, True, ["constructor"], True], has

    def find(name: str) -> None:  # the filter finds it alone; Enter centres it
        box = browser.one("input#search")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(name)
        browser.wait(
            "return [...document.querySelectorAll('#graph .node.match')]"
            ".map(n => n.getAttribute('data-name')).join() === arguments[0]",
            5,
            name,
        )
        assert browser.one("#search-count").text == "1 found"
        box.send_keys(Keys.ENTER)

    find("__proto__")
    click(browser, node(browser, "__proto__").find_element("css selector", ".collapse"))
    assert "hidden" in node(browser, "constructor").get_attribute("class").split()
    assert "collapsed" in node(browser, "__proto__").get_attribute("class").split()
    click(browser, node(browser, "__proto__").find_element("css selector", ".collapse"))
    assert "hidden" not in node(browser, "constructor").get_attribute("class").split()
    for name in ("__proto__", "constructor"):
        open_graph(browser, root + "index.html", zoo)
        find(name)
        click(browser, node(browser, name).find_element("css selector", "a.model-link"))
        browser.wait_url(r"/model/[^/]+\.html$")
        check_page(browser, file=file)
        assert browser.one("h1#model-name").text == name
        browser.open(root + "search.html?q=" + quote(name))
        browser.wait("return document.querySelectorAll('#results li a').length > 0")
        check_page(browser, file=file)
        (hit,) = [a for a in browser.css("#results li a") if a.text.startswith(name + "@")]
        click(browser, hit)
        browser.wait_url(r"/model/[^/]+\.html")
        assert browser.one("h1#model-name").text == name
    # picked on the graph, the two compare (the served diff, or the site's parent diff)
    open_graph(browser, root + "index.html", zoo)
    for name in ("__proto__", "constructor"):
        find(name)
        click(browser, node(browser, name).find_element("css selector", ".pick"))
    click(browser, browser.one("#compare"))
    browser.wait_url(r"/diff")
    check_page(browser, file=file)
    browser.one("table#tensor-changes")


@needs_browser
def test_request_log_sees_foreign_hosts(browser: Browser) -> None:
    """The request log is not blind: a page that fetches from another host is caught
    (so an empty list of foreign requests above means something)."""
    browser.poll_requests()
    before = len(browser.requests)
    browser.open("data:text/html,<img src='http://192.0.2.1/x.png'>")
    problems = browser.problems()
    assert any("192.0.2.1" in p for p in problems), problems
    browser.open("data:text/html,<script>window.__xss=9</script>")
    assert any("__xss = 9" in p for p in browser.problems())
    browser.open("data:text/html,<p onmouseover='window.__xss=10'>x</p>")
    problems = browser.problems()  # caught twice: the handler is there, and it ran
    assert any("P.onmouseover" in p for p in problems), problems
    assert any("__xss = 10" in p for p in problems), problems
    del browser.requests[before:]  # the probes are not the UI's requests


@needs_browser
def test_every_request_stayed_on_loopback(browser: Browser, server: Server, zoo: Zoo) -> None:
    """Every page once more, then over all the requests the served pages of this module
    made (the tests above included): many, every one to 127.0.0.1 at the server's port."""
    for path in ("", "storage.html", "search.html?q=base", f"diff?a=base&b={quote('ft-low')}"):
        browser.open(urljoin(server.url, path))
        check_page(browser)
    open_graph(browser, server.url, zoo)
    browser.open(model_href(browser, "merged"))
    check_page(browser)
    browser.poll_requests()
    served = [u for u in browser.requests if urlsplit(u).scheme not in ("data", "about", "file")]
    paths = {urlsplit(u).path for u in served}
    assert {"/", "/storage.html", "/search.html", "/diff"} <= paths, paths
    assert any(p.startswith("/model/") for p in paths) and len(served) >= 15, served
    assert {(urlsplit(u).hostname, urlsplit(u).port) for u in served} == {
        ("127.0.0.1", server.port)
    }


# -- the static site ------------------------------------------------------------------------


@needs_browser
def test_static_site_from_file_urls(browser: Browser, site: Path, zoo: Zoo, tmp_path: Path) -> None:
    """The pages of `modelgit site` work from file://: graph, a model page (by a click),
    a version's diff, search, storage; nothing goes to the network."""
    browser.poll_requests()
    open_graph(browser, (site / "index.html").as_uri(), zoo)
    check_page(browser, tmp_path, "site-graph", file=True)
    click(browser, node(browser, "ft-low").find_element("css selector", "a.model-link"))
    browser.wait_url(r"/model/[^/]+\.html$")
    check_page(browser, tmp_path, "site-model", file=True)
    assert browser.one("h1#model-name").text == "ft-low"
    assert len(browser.css("table#versions tr.version")) == 2
    click(browser, browser.one("a.diff-link"))
    browser.wait_url(r"/diff/[^/]+\.html$")
    check_page(browser, tmp_path, "site-diff", file=True)
    browser.one("table#tensor-changes")
    # two nodes picked on the static graph: the precomputed diff of a model and its parent
    open_graph(browser, (site / "index.html").as_uri(), zoo)
    click(browser, node(browser, "ft-low").find_element("css selector", ".pick"))
    click(browser, node(browser, "ft-low-2").find_element("css selector", ".pick"))
    click(browser, browser.one("#compare"))
    url = browser.wait_url(r"/diff/[^/]+\.html$")
    check_page(browser, file=True)
    assert "ft-low-2" in url.rsplit("/", 1)[1], url
    browser.one("table#tensor-changes")
    browser.open((site / "search.html").as_uri() + "?q=stable")
    browser.wait("return document.querySelectorAll('#results li a').length > 0")
    check_page(browser, file=True)
    browser.open((site / "storage.html").as_uri())
    check_page(browser, file=True)
    browser.one("table#du")
    # the hostile model's static page
    browser.open((site / "index.html").as_uri())
    browser.wait(f"return document.querySelectorAll('#graph .node').length === {len(zoo.models)}")
    browser.open(model_href(browser, HOSTILE_NAME))
    check_page(browser, file=True)
    assert browser.one("h1#model-name").text == HOSTILE_NAME
    schemes = {urlsplit(u).scheme for u in browser.poll_requests()}
    assert schemes <= {"file", "data", "blob", "about"}, schemes


# -- the documentation screenshots ------------------------------------------------------------

SHOTS = ("browser-graph.png", "browser-model.png", "browser-diff.png")


def test_checked_in_screenshots_are_small() -> None:
    """docs/guide.md shows these; each stays under 200 KB (docs/screenshots.py)."""
    for name in SHOTS:
        path = ROOT / "docs" / "img" / name
        assert path.is_file(), path
        assert 10_000 < path.stat().st_size < 200_000, (name, path.stat().st_size)
        width, height, values = png_summary(path)
        assert width >= 600 and height >= 400 and values > 32, (name, width, height, values)
        assert f"img/{name}" in (ROOT / "docs" / "guide.md").read_text()


@needs_browser
def test_screenshot_script_writes_small_pngs(tmp_path: Path) -> None:
    """`python docs/screenshots.py --out DIR` regenerates the three images."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "screenshots.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, MODELGIT_PROGRESS="0"),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for name in SHOTS:
        size = (tmp_path / name).stat().st_size
        assert 10_000 < size < 200_000, (name, size)
        assert png_summary(tmp_path / name)[2] > 32
