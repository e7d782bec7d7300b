"""Regenerate the screenshots of the web UI shown in docs/guide.md ("Browser screenshots").

    python docs/screenshots.py               # writes docs/img/browser-{graph,model,diff}.png
    python docs/screenshots.py --out DIR     # somewhere else

Builds a small demo repository (10 models: versions, a merge, a cast, a distilled
student, a model with an inserted block), serves it with ``modelgit serve --port 0``,
and photographs three pages in headless Chromium (Debian's ``chromium`` and
``chromium-driver``; selenium): the graph, the model page of ``base`` and the diff of
``base@2`` against ``deep`` with its structure panel. Each PNG must stay under 200 KB
(tests/test_web_browser.py checks the ones in docs/img). Takes a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote, urljoin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the browser harness: tests/browser.py

from browser import Browser, Server, build_zoo, missing_browser  # noqa: E402

LIMIT = 200_000  # bytes per image
NAMES = ("browser-graph.png", "browser-model.png", "browser-diff.png")


def shoot(out: Path, window: tuple[int, int] = (1000, 720)) -> dict[str, int]:
    """Write the three screenshots into ``out``; their sizes in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modelgit-shots-") as tmp:
        zoo = build_zoo(Path(tmp) / "demo", hostile=False)
        server = Server(zoo.root)
        browser = Browser(window=window)
        try:
            count = f"return document.querySelectorAll('#graph .node').length === {len(zoo.models)}"
            browser.open(server.url)
            browser.wait(count)
            browser.wait("return document.readyState === 'complete'")
            browser.js("const fit = document.getElementById('fit'); if (fit) fit.click();")
            browser.screenshot(out / NAMES[0])
            link = browser.js(
                "return [...document.querySelectorAll('#graph .node')]"
                ".find(n => n.getAttribute('data-name') === 'base')"
                ".querySelector('a.model-link').getAttribute('href')"
            )
            browser.open(urljoin(server.url, link))
            browser.wait("return document.querySelector('#model-name') !== null")
            browser.screenshot(out / NAMES[1])
            browser.open(urljoin(server.url, f"diff?a={quote('base@2')}&b=deep"))
            browser.wait("return document.querySelector('#structure .tnode') !== null")
            browser.js("document.querySelector('#structure').scrollIntoView()")
            browser.screenshot(out / NAMES[2])
            problems = browser.problems()
            if problems:
                raise SystemExit(f"the diff page has problems: {problems}")
        finally:
            browser.close()
            server.stop()
    return {name: (out / name).stat().st_size for name in NAMES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder to write")
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--height", type=int, default=720)
    args = ap.parse_args(argv)
    reason = missing_browser()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    sizes = shoot(args.out, (args.width, args.height))
    too_big = {n: s for n, s in sizes.items() if s >= LIMIT}
    for name, size in sizes.items():
        print(f"{args.out / name}  {size / 1000:.1f} KB")
    if too_big:
        print(f"over {LIMIT // 1000} KB: {too_big}; try a smaller window", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
