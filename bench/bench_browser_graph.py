"""How long the graph page takes to render in headless Chromium (issue #20: < 2 s at 500
models), recorded in docs/benchmarks.md ("Graph page in a browser").

Builds a synthetic repository of ``--models`` models (two 8x8 tensors each: families of
50 with a wide fan-out under each root, chains below it, merges, every 10th model with a
second version) and the browser-test zoo for contrast, then opens each graph
``--runs`` times in one headless Chromium, browser cache off, from ``modelgit serve``
(a subprocess on a loopback port) and from the static ``modelgit site`` (file://).

Times are from navigation start (``performance.timeOrigin``), read by a probe installed
before the page's own scripts (``Page.addScriptToEvaluateOnNewDocument``) that looks on
every animation frame and forces layout (``getBoundingClientRect`` of every node):
"nodes laid out" is the first frame where every ``.node`` of ``#graph`` is in the DOM
and laid out; "ready" (the number the target is about) the first such frame after the
load event and the page's own load handlers, i.e. the graph as its scripts left it;
"painted" the frame after that. Medians of the runs; "first" is the first load after
the server started (nothing cached by the server either).

Run: ``python bench/bench_browser_graph.py`` (``--runs 7 --models 500``; ``--help``).
Needs Debian's ``chromium`` and ``chromium-driver`` and selenium (as the browser tests).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the browser harness: tests/browser.py

from browser import (  # noqa: E402
    Browser,
    Server,
    build_synthetic,
    build_zoo,
    missing_browser,
    write_site,
)

PROBE = """
(() => {
  const want = %d;
  let loaded = false;
  // after the load event and every load handler of the page's own scripts
  window.addEventListener('load', () => setTimeout(() => { loaded = true; }, 0));
  const tick = () => {
    const nodes = document.querySelectorAll('#graph .node');
    if (nodes.length >= want) {
      let shown = 0;
      for (const n of nodes) {  // reading every box forces the layout
        const r = n.getBoundingClientRect();
        if (r.width > 0 && r.height > 0) shown += 1;
      }
      if (window.__laidOut === undefined) window.__laidOut = performance.now();
      if (loaded) {
        window.__ready = performance.now();
        window.__shown = shown;
        requestAnimationFrame(() => { window.__painted = performance.now(); });
        return;
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""

READ = """
const nav = performance.getEntriesByType('navigation')[0] || {};
return window.__painted === undefined ? null : {
  laid_out: window.__laidOut, ready: window.__ready, painted: window.__painted,
  shown: window.__shown,
  nodes: document.querySelectorAll('#graph .node').length,
  response_end: nav.responseEnd, dom_content_loaded: nav.domContentLoadedEventEnd,
  load: nav.loadEventEnd,
};
"""


def measure(browser: Browser, url: str, nodes: int, runs: int) -> list[dict[str, float]]:
    """``runs`` cold loads of ``url`` (cache off), each timed by the probe (ms)."""
    cdp = browser.driver.execute_cdp_cmd
    cdp("Network.enable", {})
    cdp("Network.setCacheDisabled", {"cacheDisabled": True})
    probe = cdp("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE % nodes})
    out = []
    try:
        for _ in range(runs):
            browser.open("about:blank")
            browser.open(url)
            deadline = time.monotonic() + 60
            while (got := browser.js(READ)) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url}: the {nodes} nodes never appeared")
                time.sleep(0.02)
            if got["nodes"] != nodes:
                raise SystemExit(f"{url}: {got['nodes']} nodes, not {nodes}")
            out.append(got)
    finally:
        cdp("Page.removeScriptToEvaluateOnNewDocument", {"identifier": probe["identifier"]})
    browser.poll_requests()  # drain the log
    return out


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=500, help="models in the synthetic graph")
    ap.add_argument("--runs", type=int, default=7, help="loads per page (median; >= 5)")
    args = ap.parse_args(argv)
    if args.runs < 5:
        ap.error("--runs must be at least 5")
    reason = missing_browser()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="modelgit-bench-browser-") as tmp:
        t = time.perf_counter()
        zoo = build_zoo(Path(tmp) / "zoo")
        names = build_synthetic(Path(tmp) / "synthetic", args.models)
        print(f"built the repositories in {time.perf_counter() - t:.1f} s", flush=True)
        browser = Browser()
        try:
            for label, root, count in (
                (f"synthetic, {len(names)} models", Path(tmp) / "synthetic", len(names)),
                (f"browser-test zoo, {len(zoo.models)} models", zoo.root, len(zoo.models)),
            ):
                site = write_site(root, Path(tmp) / f"site-{count}")
                server = Server(root)
                try:
                    for where, url in (("serve", server.url), ("site", site.as_uri() + "/")):
                        got = measure(browser, url + "index.html", count, args.runs)
                        rows.append((label, where, got))
                        print(f"{label:32s} {where:6s} ready {median(got, 'ready'):7.0f} ms")
                finally:
                    server.stop()
        finally:
            browser.close()
    print()
    print(f"median of {args.runs} loads (browser cache off), ms from navigation start")
    print(
        "| graph | from | response end | DOMContentLoaded | nodes laid out | ready | painted "
        "| ready, first load | nodes shown |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, where, got in rows:
        print(
            f"| {label} | {where} | {median(got, 'response_end'):.0f} | "
            f"{median(got, 'dom_content_loaded'):.0f} | {median(got, 'laid_out'):.0f} | "
            f"{median(got, 'ready'):.0f} | {median(got, 'painted'):.0f} | "
            f"{got[0]['ready']:.0f} | {int(median(got, 'shown'))} |"
        )
    worst = max(
        max(median(got, "ready"), got[0]["ready"]) for label, _, got in rows if "synthetic" in label
    )
    verdict = "met" if worst < 2000 else "NOT met"
    print(f"\ntarget: {args.models} models ready in < 2000 ms: {verdict} (worst {worst:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
