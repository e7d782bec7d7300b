"""The harness of the web UI tests: a hostile repository, a DOM to check pages with, and
the one ``modelgit serve`` subprocess helper (:class:`Server`, also what tests/browser.py
serves with).

:func:`build_zoo` is the repository of the HTTP and in-process tests (test_web_server,
test_web_site, test_web_security, test_web_app), built in a second or two: a family
with versions, tags, metadata, side files (a README and a config.json), a lossy version,
a merge, a registered test with stored results and a creation function, and hostile
text everywhere the repository lets a user put text (model names, relations, messages,
metadata, side files and their paths, creation arguments), and models named
``__proto__`` and ``constructor``. Its payloads call ``alert`` and its checks read the
HTML; tests/browser.py has the other zoo, for a real browser: a realistic demo (the
documentation's screenshots, the structural diff's renamed and inserted layers, the
graph benchmark) whose payloads set ``window.__xss`` when they run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import torch

import modelgit as mg

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# payloads: none may reach a page unescaped, and none may run
XSS = {
    "script": "<script>alert('x1')</script>",
    "img": '"><img src=x onerror=alert(2)>',
    "close": "</script><script>alert(3)</script>",
    "path": "../../etc/passwd",
}
EVIL_NAME = "evil' onmouseover='alert(4)' x=&amp; y"  # the characters a name may hold
PCT_NAME = "enc%2e%2e%2fetc%2fpasswd"
UNICODE_NAME = "modèle-ß"
EVIL_RELATION = '"><img src=x onerror=alert(5)>'
README = (
    b"# Base model\n\n<script>alert('readme')</script>\n</pre><img src=x onerror=alert(6)>\n"
    b"Trained on ../../etc/passwd & friends.\n"
)
CONFIG = {"hidden_size": 8, "note": XSS["close"]}
EVIL_FILE = "notes/<img src=x onerror=alert(8)>.txt"


def weights(seed: int, shift: float = 0.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "encoder.layer.0.weight": torch.randn(16, 8, generator=g) + shift,
        "encoder.layer.0.bias": torch.randn(16, generator=g),
        "encoder.layer.1.weight": torch.randn(16, 16, generator=g) + shift,
        "head.weight": torch.randn(4, 16, generator=g),
    }


def nudge(sd: dict[str, torch.Tensor], by: float) -> dict[str, torch.Tensor]:
    return {k: v + by if k.startswith("encoder.layer.1") else v.clone() for k, v in sd.items()}


def mean_head(sd: dict[str, torch.Tensor]) -> float:
    """A registered test (referenced as ``web_zoo:mean_head``)."""
    return float(sd["head.weight"].mean())


def build_zoo(path: Path) -> dict[str, Any]:
    """Create the repository at ``path``; returns what the tests check against."""
    base = weights(0)
    with mg.init(path) as repo:
        repo.add("base", base, message="pretrained", metadata={"accuracy": 0.91, "data": "digits"},
                 files={"README.md": README, "config.json": json.dumps(CONFIG).encode(),
                        EVIL_FILE: XSS["img"].encode()})  # fmt: skip
        repo.commit("base", nudge(base, 0.01), message="more steps",
                    metadata={"accuracy": 0.93, "data": "digits"})  # fmt: skip
        repo.tag("base@2", "prod")
        ft = nudge(base, 0.05)
        repo.add("ft", ft, parents="base@2", message=XSS["close"],
                 metadata={"note": XSS["script"], "html": XSS["img"], "path": XSS["path"],
                           "nested": {"deep": XSS["close"]}},
                 creator="wf_funcs:finetune",
                 creator_args={"shift": 0.5, "why": XSS["script"]})  # fmt: skip
        repo.commit("ft", nudge(ft, 0.02), message="lossy", tolerance=mg.ErrorBound(abs=1e-3))
        repo.tag("ft@1", "candidate")
        repo.add(EVIL_NAME, nudge(base, 0.1), parents="base", relation=EVIL_RELATION,
                 message=XSS["img"])  # fmt: skip
        repo.add(PCT_NAME, nudge(base, 0.2), parents="ft", relation="distill")
        repo.add("merged", nudge(base, 0.07), parents=["ft", EVIL_NAME], relation="merge")
        repo.add("BASE", weights(1), message="another family")
        repo.add(UNICODE_NAME, nudge(weights(1), 0.3), parents="BASE", relation="cast")
        repo.add("__proto__", nudge(weights(1), 0.4), parents="BASE")  # JS's own property
        repo.add("constructor", nudge(weights(1), 0.5), parents="__proto__")  # names
        repo.register_test("head-mean", "web_zoo:mean_head", models=None, threshold=-10.0)
        repo.run_tests()
        models = repo.models()
        versions = {m: [v.number for v in repo.versions(m)] for m in models}
        stored = {m.name: m.stored_bytes for m in repo.stats().models}
    # the provenance edges added above (ft, EVIL_NAME, PCT_NAME, merged twice, UNICODE_NAME,
    # __proto__, constructor): the static site writes one diff for each
    return {"path": path, "models": models, "versions": versions, "stored": stored,
            "parent_edges": 8}  # fmt: skip


# -- a DOM good enough for the checks: elements with attributes, children and text -------
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Element] = []
        self.parts: list[str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(self.parts) + "".join(c.text for c in self.children)

    def iter(self) -> Iterator[Element]:
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(
        self, tag: str | None = None, cls: str | None = None, **attrs: str
    ) -> list[Element]:
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and (cls is None or cls in e.classes)
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def by_id(self, id_: str) -> Element:
        found = [e for e in self.iter() if e.attrs.get("id") == id_]
        assert len(found) == 1, f"{len(found)} elements with id {id_!r}"
        return found[0]

    def ancestors(self) -> Iterator[Element]:
        p = self.parent
        while p is not None:
            yield p
            p = p.parent


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        e = Element(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(e)
        if tag not in VOID:
            self.cur = e

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Element(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        e: Element | None = self.cur
        while e is not None and e.tag != tag:
            e = e.parent
        if e is not None and e.parent is not None:
            self.cur = e.parent

    def handle_data(self, data: str) -> None:
        self.cur.parts.append(data)


def parse(html: str) -> Element:
    b = _Builder()
    b.feed(html)
    b.close()
    return b.root


def data_file(text: str) -> Any:
    """The data of a ``window.NAME = JSON.parse("JSON");`` data file."""
    head, _, rest = text.partition(" = ")
    rest = rest.rstrip()
    assert head.startswith("window.") and rest.startswith('JSON.parse("'), text[:80]
    assert rest.endswith('");'), text[-80:]
    return json.loads(json.loads(rest[len("JSON.parse(") : -len(");")]))


# -- a `modelgit serve` subprocess ---------------------------------------------------------

_SERVING = re.compile(r"^serving (http://(?:\[[^\]]+\]|[^/:\s]+):(\d+)/)")


class Server:
    """``modelgit serve --port 0 --repo ROOT ARGS`` in a subprocess of this interpreter:
    the harness of every test (and script) that serves a repository. ``url`` and
    ``port`` come from the one line it prints (``serving http://HOST:PORT/ ...``).
    Both of its pipes are read by threads as it runs (a server without ``--quiet`` logs
    every request to stderr; a pipe nobody reads fills up and blocks it). :meth:`stop`
    sends Ctrl-C (SIGINT); then ``returncode``, ``rest`` (what it printed after the
    first line, and its stderr) and ``stopped`` (whether Ctrl-C was enough)."""

    def __init__(self, root: Path, *args: str, timeout: float = 60.0) -> None:
        env = dict(os.environ, MODELGIT_PROGRESS="0")
        env.pop("MODELGIT_DEBUG", None)
        env.setdefault("MODELGIT_CACHE", str(Path(root).parent / "serve-cache"))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
        self.argv = [sys.executable, "-m", "modelgit", "serve", "--port", "0",
                     "--repo", str(root), *args]  # fmt: skip
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=str(root))  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self.stopped = True
        first = threading.Event()

        def drain(stream: Any, into: list[str], is_out: bool) -> None:
            for line in stream:
                into.append(line)
                if is_out:
                    first.set()
            if is_out:
                first.set()  # stdout closed: the process ended without the line

        self._threads = [
            threading.Thread(
                target=drain, args=(stream, into, stream is self.proc.stdout), daemon=True
            )  # fmt: skip
            for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for t in self._threads:
            t.start()
        m = _SERVING.match(self.out[0]) if first.wait(timeout) and self.out else None
        if m is None:
            self.stop()
            raise AssertionError(
                f"`{' '.join(self.argv)}` did not print `serving http://HOST:PORT/` within "
                f"{timeout}s (exit status {self.returncode}); it printed:\n"
                f"{''.join(self.out)}{''.join(self.err)[-4000:]}"
            )
        self.url: str = m.group(1)
        self.port = int(m.group(2))

    def stop(self) -> int | None:
        """Ctrl-C (SIGINT), then SIGKILL after 20 s; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.stopped = False
                self.proc.kill()
                self.proc.wait(10)
        for t in self._threads:
            t.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def rest(self) -> tuple[str, str]:
        """(stdout after the first line, stderr), once stopped."""
        return "".join(self.out[1:]), "".join(self.err)


@contextmanager
def serving(repo: Path, *args: str, timeout: float = 60.0) -> Iterator[tuple[str, Server]]:
    """A :class:`Server` on ``repo``; yields (base URL, server). Stops it with Ctrl-C at the
    end and checks that it stopped so."""
    server = Server(repo, *args, timeout=timeout)
    try:
        yield server.url, server
    finally:
        server.stop()
        assert server.stopped, "modelgit serve did not stop on SIGINT"
