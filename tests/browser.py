"""A real browser against a real ``modelgit serve``: the harness of the browser tests
(tests/test_web_browser.py), the graph benchmark (bench/bench_browser_graph.py) and the
documentation screenshots (docs/screenshots.py).

- :class:`Browser`: headless Chromium driven by selenium (Debian's ``chromium`` and
  ``chromium-driver``), with a log of every network request its pages make (the
  DevTools performance log) and the checks every page must pass: no request leaves
  the loopback host, no XSS payload ran, no alert is open.
- :func:`check_page`, :func:`node`, :func:`click`, :func:`open_graph`: the checks and
  the gestures of the browser tests (every page: loaded, relative links only, no
  request off the loopback host, no XSS, no alert).
- :class:`Server` (from tests/web_zoo.py, the one harness of ``modelgit serve``):
  ``modelgit serve --port 0`` as a real subprocess, its output drained as it runs.
- :func:`build_zoo`: a small but real repository (families, versions, tags, metadata,
  side files, a registered test with results) with hostile names, metadata and README.
- :func:`build_synthetic`: ``n`` tiny models in wide families and long chains (the
  500-model graph of the benchmark), in a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch

import modelgit as mg
from web_zoo import Server

__all__ = [
    "Browser",
    "Server",
    "Zoo",
    "build_zoo",
    "build_synthetic",
    "check_page",
    "click",
    "missing_browser",
    "model_href",
    "node",
    "open_graph",
    "png_summary",
    "write_site",
]

# -- Chromium -------------------------------------------------------------------------------


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _find("chromium", "chromium-browser")
CHROMEDRIVER = _find("chromedriver")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (no Chromium or no chromedriver), or None.
    selenium is not checked: it is in the ``test`` extra, so its absence is an error."""
    absent = [n for n, p in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not p]
    if absent:
        return (
            f"{' and '.join(absent)} not installed (Debian packages `chromium` and "
            "`chromium-driver`; .ci/run installs them)"
        )
    return None


# What the pages of the zoo carry to prove that nothing taken from a model runs: each
# payload sets window.__xss if it ever executes.
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_ATTR = '"><img src=x onerror="window.__xss=2">'
XSS_CLOSE = "</script><script>window.__xss=3</script>"
# Model and tag names may not hold < > " / (modelgit.names), but ' = & # % and spaces
# pass: enough to break out of a single-quoted attribute or a JS string.
HOSTILE_NAME = "evil' onmouseover='window.__xss=4' x='&amp; #1 100%"
HOSTILE_TAG = "t' onfocus='window.__xss=5"

_XSS_CHECK = r"""
const fired = typeof window.__xss !== 'undefined';
// attributes injected into elements (an event handler carrying a payload)
const injected = [];
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) {
    if (a.name.startsWith('on') && a.value.includes('__xss')) {
      injected.push(el.tagName + '.' + a.name);
    }
  }
}
// a payload's own <script> element (whether or not a Content-Security-Policy stopped it)
for (const s of document.scripts) {
  if (/^window\.__xss=\d+$/.test(s.text.trim())) injected.push('SCRIPT ' + s.text.trim());
}
// fire the events the payloads wait for on every element, then look again
for (const el of document.querySelectorAll('*')) {
  for (const t of ['mouseover', 'focus', 'error', 'load']) {
    try { el.dispatchEvent(new Event(t)); } catch (e) {}
  }
}
return {fired: fired || typeof window.__xss !== 'undefined', value: String(window.__xss), injected};
"""


def _local(url: str, allow_file: bool) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    if parts.scheme == "file":
        return allow_file
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname == "127.0.0.1"


@dataclass
class Browser:
    """Headless Chromium with a request log. ``requests`` holds the URL of every
    network request its pages made, in order (read with :meth:`poll_requests`)."""

    window: tuple[int, int] = (1200, 800)
    driver: Any = None
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        reason = missing_browser()
        if reason:
            raise RuntimeError(reason)
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--window-size={self.window[0]},{self.window[1]}",
            "--disable-background-networking",  # no update or safe-browsing pings
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--allow-file-access-from-files",  # the static site's pages read their data files
        ):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        opts.set_capability("unhandledPromptBehavior", "ignore")  # an alert stays visible
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
        self.driver.set_page_load_timeout(30)

    # -- navigation ---------------------------------------------------------------
    def open(self, url: str) -> None:
        self.driver.get(url)

    def wait(self, condition: str, timeout: float = 10.0, *args: Any) -> Any:
        """Wait until the JavaScript expression ``condition`` (a function body that
        returns a value) returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.driver.execute_script(condition, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {condition!r} "
                    f"on {self.driver.current_url}"
                )
            time.sleep(0.05)

    def wait_url(self, pattern: str, timeout: float = 10.0) -> str:
        """Wait until the current URL matches the regular expression ``pattern``."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.driver.current_url):
            if time.monotonic() > deadline:
                raise AssertionError(f"still on {self.driver.current_url}, not /{pattern}/")
            time.sleep(0.05)
        self.wait("return document.readyState === 'complete'", timeout)
        return self.driver.current_url

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector: str) -> Any:
        found = self.css(selector)
        assert found, f"no {selector!r} on {self.driver.current_url}"
        return found[0]

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def href(self, element: Any) -> str:
        """The absolute URL an ``<a>`` (HTML or SVG) leads to."""
        return self.js(
            "const a = arguments[0];"
            "const h = a.getAttribute('href') || a.getAttributeNS('http://www.w3.org/1999/xlink',"
            " 'href');"
            "return h === null ? null : new URL(h, document.baseURI).href;",
            element,
        )

    # -- checks ---------------------------------------------------------------------
    def poll_requests(self) -> list[str]:
        """The URLs requested since the last call (also appended to ``requests``):
        every request the pages sent, web sockets included."""
        new = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            params = msg.get("params", {})
            if msg["method"] == "Network.requestWillBeSent":
                new.append(params["request"]["url"])
            elif msg["method"] == "Network.webSocketCreated":
                new.append(params["url"])
        self.requests += new
        return new

    def alert_text(self) -> str | None:
        from selenium.common.exceptions import NoAlertPresentException

        try:
            return self.driver.switch_to.alert.text
        except NoAlertPresentException:
            return None

    def problems(self, allow_file: bool = False) -> list[str]:
        """What is wrong with the page now: an alert, an XSS payload that ran or was
        injected as a handler, a request to another host (or any file:// request
        from a served page). Empty when all is well."""
        found = []
        alert = self.alert_text()
        if alert is not None:
            return [f"an alert is open: {alert!r}"]
        xss = self.js(_XSS_CHECK)
        if xss["fired"]:
            found.append(f"an XSS payload ran: window.__xss = {xss['value']}")
        if xss["injected"]:
            found.append(f"payloads injected as code: {xss['injected']}")
        if self.alert_text() is not None:
            found.append("an alert opened")
        foreign = [u for u in self.poll_requests() if not _local(u, allow_file)]
        if foreign:
            found.append(f"requests left 127.0.0.1: {foreign[:5]}")
        return found

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), f"no screenshot of {path}"
        return path

    def close(self) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None


def png_summary(path: Path) -> tuple[int, int, int]:
    """(width, height, number of distinct byte values in the decoded rows) of a PNG:
    a blank page gives a handful of values, a rendered page hundreds."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = (int.from_bytes(data[pos : pos + 4], "big"),)
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


# -- the checks of the browser tests -------------------------------------------------------

# the relative references of a page (attribute values as written, not resolved)
_REFS = """
const refs = [];
for (const el of document.querySelectorAll('[href], [src], [action]')) {
  for (const a of ['href', 'src', 'action']) {
    const v = el.getAttribute(a);
    if (v !== null) refs.push(v);
  }
}
for (const el of document.querySelectorAll('a')) {
  const v = el.getAttributeNS('http://www.w3.org/1999/xlink', 'href');
  if (v !== null) refs.push(v);
}
return refs;
"""


def check_page(b: Browser, shots: Path | None = None, name: str = "", file: bool = False) -> None:
    """The checks of every page: loaded, the nav bar, relative links only, nothing
    left 127.0.0.1 (or, from file://, nothing went to the network), no XSS, no alert;
    a screenshot into ``shots`` when given."""
    b.wait("return document.readyState === 'complete'")
    assert b.problems(allow_file=file) == [], b.driver.current_url
    nav = b.one("nav#nav")
    links = [b.href(a) for a in nav.find_elements("css selector", "a")]
    assert len(links) >= 3, links
    for want in ("index.html", "search.html", "storage.html"):
        assert any(urlsplit(h).path.endswith(want) or (want == "index.html" and
                   urlsplit(h).path.endswith("/")) for h in links), (want, links)  # fmt: skip
    absolute = [r for r in b.js(_REFS) if r.startswith(("/", "http:", "https:", "//", "file:"))]
    assert absolute == [], f"absolute links on {b.driver.current_url}: {absolute[:5]}"
    if shots is not None:
        png = b.screenshot(shots / f"{name}.png")
        width, height, values = png_summary(png)
        assert (width, height) == (1200, 800) or width >= 800, (width, height)
        assert values > 32, f"{png} looks blank ({values} distinct byte values)"


def node(b: Browser, name: str) -> object:
    """The graph's ``g.node`` of model ``name`` (compared in JS: names are hostile)."""
    el = b.js(
        "return [...document.querySelectorAll('#graph .node')]"
        ".find(n => n.getAttribute('data-name') === arguments[0]) || null",
        name,
    )
    assert el is not None, f"no node for {name!r}"
    return el


def model_href(b: Browser, name: str) -> str:
    return b.href(node(b, name).find_element("css selector", "a.model-link"))


def click(b: Browser, element: object) -> None:
    """A real click (mouse events at the element's centre), scrolled into view first."""
    from selenium.webdriver.common.action_chains import ActionChains

    b.js("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", element)
    ActionChains(b.driver).move_to_element(element).click().perform()


def open_graph(b: Browser, url: str, zoo: Zoo) -> None:
    """Open a graph page and wait for its nodes and its scripts (the load event)."""
    b.open(url)
    b.wait(f"return document.querySelectorAll('#graph .node').length === {len(zoo.models)}")
    b.wait("return document.readyState === 'complete'")


def write_site(root: Path, out: Path) -> Path:
    """``modelgit site -o OUT --repo ROOT`` as a subprocess; the folder of its index.html."""
    r = subprocess.run(
        [sys.executable, "-m", "modelgit", "site", "-o", str(out), "--repo", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, MODELGIT_PROGRESS="0"),
    )
    assert r.returncode == 0, f"modelgit site exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    assert (out / "index.html").is_file(), f"no index.html in {out}: {sorted(os.listdir(out))}"
    return out


# -- repositories ---------------------------------------------------------------------------

Sizes = Sequence[int]


def mlp(sizes: Sizes, seed: int, prefix: str = "layers") -> dict[str, torch.Tensor]:
    """The state_dict of an untrained ``modelgit.zoo.small.MLP`` (digits-shaped: 64 in,
    10 out) with these layer sizes; ``prefix`` renames its ``layers`` list."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        bound = 1.0 / a**0.5
        sd[f"{prefix}.{i}.weight"] = (torch.rand(b, a, generator=gen) * 2 - 1) * bound
        sd[f"{prefix}.{i}.bias"] = (torch.rand(b, generator=gen) * 2 - 1) * bound
    return sd


def nudged(sd: dict[str, torch.Tensor], seed: int, scale: float = 1e-2) -> dict[str, torch.Tensor]:
    """A "fine-tune": every float tensor moved a little."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=gen).to(v.dtype) for k, v in sd.items()}


@dataclass
class Zoo:
    root: Path
    models: list[str]
    versions: dict[str, int]  # model -> number of versions
    tags: dict[str, str]  # tag -> ref


def build_zoo(root: Path, hostile: bool = True) -> Zoo:
    """A 14-model repository in about a second: families with versions, a merge, a cast,
    a distilled student, a model with an inserted block and one with renamed layers
    (for the structural diff), tags, metadata, README and config side files, a
    registered test with results, and (``hostile``) a model whose name, tag, message,
    metadata and README carry XSS payloads, one named ``odd #1 & 100%``, and
    ``__proto__`` with its child ``constructor``. Without ``hostile``: the 10-model demo
    of the documentation's screenshots. (tests/web_zoo.py has the zoo of the tests that
    read HTML: hostile text in every field, a lossy version, a creation function.)"""
    base_files = {
        "README.md": b"# base\n\nA digits MLP (64 -> 32 -> 16 -> 10).\n",
        "config.json": json.dumps({"sizes": [64, 32, 16, 10], "task": "digits"}).encode(),
    }
    hostile_readme = f"# card\n\n{XSS_SCRIPT}\n\n{XSS_ATTR}\n\n{XSS_CLOSE}\n".encode()
    hostile_meta = {"note": XSS_SCRIPT, "attr": XSS_ATTR, "close": XSS_CLOSE, "task": "digits"}
    base = mlp((64, 32, 16, 10), 0)
    with mg.init(root) as repo:
        repo.add("base", base, message="digits MLP", metadata={"task": "digits", "lr": 1e-3},
                 files=base_files)  # fmt: skip
        base2 = nudged(base, 1)
        repo.commit("base", base2, message="continued training", metadata={"epochs": 2})
        repo.commit("base", nudged(base2, 2), message="more training", metadata={"epochs": 3})
        repo.tag("base@2", "stable")
        low = nudged(base2, 3)
        repo.add("ft-low", low, parents="base@2", message="digits 0-4", metadata={"digits": "0-4"})
        repo.commit("ft-low", nudged(low, 4), message="ft-low, more steps")
        repo.tag("ft-low", "release")
        repo.add("ft-low-2", nudged(low, 5), parents="ft-low", message="second round")
        high = nudged(base2, 6)
        repo.add("ft-high", high, parents="base", message="digits 5-9")
        merged = {k: (low[k] + high[k]) / 2 for k in low}
        repo.add("merged", merged, parents=["ft-low", "ft-high"], relation="merge",
                 message="average of ft-low and ft-high")  # fmt: skip
        repo.add("base-bf16", {k: v.to(torch.bfloat16) for k, v in base2.items()},
                 parents="base", relation="cast", message="bfloat16 cast")  # fmt: skip
        repo.add("student", mlp((64, 16, 10), 7), parents="base", relation="distill",
                 message="a smaller student")  # fmt: skip
        # an inserted block: layers.1 is new, the old layers 1 and 2 moved to 2 and 3
        inserted = mlp((32, 32), 8)
        deep = {
            "layers.0.weight": base2["layers.0.weight"],
            "layers.0.bias": base2["layers.0.bias"],
            "layers.1.weight": inserted["layers.0.weight"],
            "layers.1.bias": inserted["layers.0.bias"],
        }
        for i in (1, 2):
            deep[f"layers.{i + 1}.weight"] = base2[f"layers.{i}.weight"]
            deep[f"layers.{i + 1}.bias"] = base2[f"layers.{i}.bias"]
        repo.add("deep", deep, parents="base@2", message="one block inserted after layer 0")
        renamed = {k.replace("layers.", "blocks."): v for k, v in base2.items()}
        with warnings.catch_warnings():  # "shares no tensor names": that is the point
            warnings.simplefilter("ignore", mg.ModelgitWarning)
            repo.add("renamed", renamed, parents="base@2", relation="finetune",
                     message="the same weights under new names")  # fmt: skip
        if hostile:
            repo.add(HOSTILE_NAME, nudged(high, 9), parents="ft-high",
                     message=f"hostile message {XSS_SCRIPT} {XSS_ATTR}", metadata=hostile_meta,
                     files={"README.md": hostile_readme,
                            "config.json": json.dumps({"note": XSS_CLOSE}).encode()})  # fmt: skip
            repo.tag(HOSTILE_NAME, HOSTILE_TAG)
            repo.add("odd #1 & 100%", nudged(base2, 10), parents="base", relation="prune",
                     message="a name with # & and %")  # fmt: skip
            # names of JavaScript's own properties: each must be a node, a search entry
            # and a link like any other (not a prototype, nor a hit in every table)
            repo.add("__proto__", nudged(base2, 12), parents="base@2", message="proto")
            repo.add("constructor", nudged(base2, 13), parents="__proto__", message="ctor")
        repo.add("other-root", mlp((64, 32, 16, 10), 11), message="an unrelated root")
        repo.register_test("accuracy", "modelgit.zoo.small:evaluate_small",
                           models=["base", "ft-low", "ft-high", "merged"])  # fmt: skip
        repo.run_tests()
        models = repo.models()
        versions = {m: len(repo.versions(m)) for m in models}
        tags = {t: f"{v.model}@{v.number}" for t, v in repo.tags().items()}
    return Zoo(root, models, versions, tags)


RELATIONS = ("finetune", "finetune", "prune", "cast", "distill", "adapter")


def build_synthetic(root: Path, n: int = 500, family: int = 50, seed: int = 0) -> list[str]:
    """``n`` models of two 8x8 tensors in families of ``family``: each family has a root,
    a wide fan-out of direct children and chains below them; every 10th model has a
    second version, every 25th merges two relatives. Returns the names."""
    gen = torch.Generator().manual_seed(seed)
    names: list[str] = []
    with mg.init(root) as repo:
        for i in range(n):
            f, j = divmod(i, family)
            name = f"fam{f:02d}-m{j:03d}"
            sd = {"w": torch.randn(8, 8, generator=gen), "b": torch.randn(8, generator=gen)}
            members = names[f * family :]
            if j == 0:
                parents: str | list[str] | None = None
                relation = "finetune"
            elif j % 25 == 0 and len(members) > 2:
                parents, relation = [members[-1], members[1]], "merge"
            elif j < family // 3:  # the wide fan-out under the family root
                parents, relation = members[0], RELATIONS[j % len(RELATIONS)]
            else:  # chains hanging off the fan-out
                parents, relation = members[-1 if j % 4 else j // 3], RELATIONS[j % 3]
            repo.add(name, sd, parents=parents, relation=relation, message=f"model {i}")
            if i % 10 == 0:
                repo.commit(name, {k: v + 0.1 for k, v in sd.items()}, message="v2")
            names.append(name)
    return names
