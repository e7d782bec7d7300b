"""``modelgit site -o DIR`` and the page rendering it shares with the server: the files
it writes, links that resolve on the disk (file://), the refusal of a folder that is not
empty, the structure panel (rendered from a tree of the structural diff's JSON shape),
slugs, and the size of what the package ships."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import pytest

import modelgit as mg
from modelgit.cli import main
from modelgit.web import WebApp, write_site
from modelgit.web.app import ASSETS, asset_bytes
from modelgit.web.data import compute_diff, make_slugs
from modelgit.web.pages.diff import STATUSES, structure_panel
from web_zoo import EVIL_NAME, PCT_NAME, UNICODE_NAME, XSS, build_zoo, data_file, parse

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_zoo(tmp_path_factory.mktemp("website") / "zoo")


@pytest.fixture(scope="module")
def site(zoo: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "out"
    with mg.open(zoo["path"], read_only=True) as repo:
        report = write_site(repo, out)
    assert report.failed == []
    return out


def n_diffs(zoo: dict[str, Any]) -> int:
    # each version against the one before it, each first version against its parents
    return sum(len(v) - 1 for v in zoo["versions"].values()) + zoo["parent_edges"]


def test_the_files_of_a_site(zoo: dict[str, Any], site: Path) -> None:
    files = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    top = ["data/graph.js", "data/search.js", "data/versions.js", "index.html", "search.html",
           "storage.html", "versions.html", *(f"static/{a}" for a in ASSETS)]  # fmt: skip
    assert set(top) <= set(files)
    models = [f for f in files if f.startswith("model/")]
    diffs = [f for f in files if f.startswith("diff/")]
    assert len(models) == len(zoo["models"]) and len(diffs) == n_diffs(zoo)
    assert len(files) == len(top) + len(models) + len(diffs)
    for f in files:  # names of our own making: nothing from a model name but safe slugs
        assert re.fullmatch(r"[A-Za-z0-9._@/-]+", f), f
    for a in ASSETS:
        assert (site / "static" / a).read_bytes() == asset_bytes(a)


def test_links_resolve_on_the_disk(site: Path) -> None:
    """Every href and src of every page names a file of the site, relative to the page
    (what a browser does with file://); none is absolute."""
    pages = list(site.rglob("*.html"))
    assert pages
    for page in pages:
        doc = parse(page.read_text())
        base = page.as_uri()
        for e in doc.iter():
            ref = e.attrs.get("href") or e.attrs.get("src")
            if ref is None or e.tag not in ("a", "link", "script"):
                continue
            assert not re.match(r"^([a-z]+:|/)", ref), (page, ref)
            target = Path(unquote(urlsplit(urljoin(base, ref)).path))
            assert target.is_file(), (page, ref)
            assert site in target.resolve().parents, (page, ref)
        metas = [m.attrs.get("content") for m in doc.find_all("meta")
                 if m.attrs.get("http-equiv") == "Content-Security-Policy"]  # fmt: skip
        assert metas == [CSP]
        assert doc.find_all("body")[0].attrs["data-mode"] == "static"


def test_the_model_pages_link_their_diffs(zoo: dict[str, Any], site: Path) -> None:
    graph = data_file((site / "data/graph.js").read_text())
    for name in zoo["models"]:
        page = site / graph["nodes"][name]["href"]
        doc = parse(page.read_text())
        assert doc.by_id("model-name").text == name
        rows = doc.by_id("versions").find_all("tr", cls="version")
        for r in rows[1:]:
            (a,) = r.find_all("a", cls="diff-link")
            assert (page.parent / a.attrs["href"]).is_file()
    diffs = {tuple(d[:2]) for d in graph["diffs"]}
    assert ("base@1", "base@2") in diffs and ("ft@2", "merged@1") in diffs
    assert ("base@2", "ft@1") in diffs  # ft was derived from base@2
    for a, b, href in graph["diffs"]:
        doc = parse((site / href).read_text())
        assert [x.text for x in doc.by_id("diff-title").find_all("a")] == [a, b]
        assert doc.by_id("tensor-changes") and doc.by_id("file-changes")
        structure = doc.by_id("structure")
        assert structure.find_all(cls="tree-left") and structure.find_all(cls="tree-right")


def test_site_pages_are_the_server_pages(zoo: dict[str, Any], site: Path) -> None:
    """The same pages as `modelgit serve` but for the mode (how the graph's compare
    button reaches a diff)."""
    with mg.open(zoo["path"], read_only=True) as repo:
        app = WebApp(repo, mode="serve")
        for rel in ("model/ft.html", "storage.html", "diff/ft@1--ft@2.html", "data/search.js"):
            served = app.get("/" + rel).body.decode()
            written = (site / rel).read_text()
            assert served.replace('data-mode="serve"', 'data-mode="static"') == written, rel


def test_a_folder_that_is_not_empty_needs_force(
    zoo: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    (out / "model").mkdir()
    (out / "model" / "gone.html").write_text("a page of an earlier site")
    (out / "data").mkdir()  # a project's own data/ folder: --force keeps its files
    (out / "data" / "train.csv").write_text("1,2\n")
    args = ["--repo", str(zoo["path"]), "site", "-o", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("modelgit: error:") and "--force" in err and "not empty" in err
    assert not (out / "index.html").exists()
    assert main([*args, "--force", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["models"] == len(zoo["models"]) and report["diffs"] == n_diffs(zoo)
    assert (
        report["failed"] == []
        and report["pages"] == len([p for p in out.rglob("*") if p.is_file()]) - 2
    )  # all but mine.txt and train.csv
    assert (out / "data" / "train.csv").read_text() == "1,2\n"
    assert not (out / "model" / "gone.html").exists()
    assert report["bytes"] > 0 and report["out"] == str(out)
    assert (out / "mine.txt").read_text() == "keep me"  # not ours: left alone
    assert not (out / "model" / "gone.html").exists()  # ours, of an earlier site: replaced
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["--repo", str(zoo["path"]), "site", "-o", str(file)]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_site_text_output_and_no_values(zoo: dict[str, Any], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "s"
    assert main(["--repo", str(zoo["path"]), "site", "-o", str(out), "--no-values"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("wrote ") and str(out / "index.html") in text
    doc = parse((out / "diff" / "base@1--base@2.html").read_text())
    (row,) = doc.by_id("tensor-changes").find_all("tr", cls="changed")
    assert "-" in row.text  # values not compared: no element counts


# -- the structure panel ---------------------------------------------------------------------


def _tree(side: str) -> dict[str, Any]:
    def node(name: str, path: str, status: str, partner: str | None = None,
             tensors: list[Any] | None = None, children: list[Any] | None = None,
             ) -> dict:  # fmt: skip
        return {"name": name, "path": path, "type": "Linear" if tensors else None,
                "status": status, "partner": partner, "tensors": tensors or [],
                "children": children or []}  # fmt: skip

    def t(name: str, status: str, partner: str | None = None) -> dict[str, Any]:
        return {"name": name, "shape": [4, 4], "dtype": "float32", "status": status,
                "partner": partner}  # fmt: skip

    if side == "left":
        layers = [
            node("0", "encoder.layer.0", "same", "encoder.layer.0", [t("weight", "same")]),
            node("3", "encoder.layer.3", "renamed", "encoder.block.3",
                 [t("weight", "renamed", "encoder.block.3.weight")]),
            node(XSS["img"], f"encoder.{XSS['img']}", "removed", None,
                 [t(XSS["script"], "removed")]),
        ]  # fmt: skip
    else:
        layers = [
            node("0", "encoder.layer.0", "same", "encoder.layer.0", [t("weight", "same")]),
            node("3", "encoder.block.3", "renamed", "encoder.layer.3",
                 [t("weight", "renamed", "encoder.layer.3.weight")]),
            node("new", "encoder.new", "added", None, [t("weight", "added")]),
            node("odd", "encoder.odd", "not-a-status", None, [t("weight", "changed")]),
        ]  # fmt: skip
    return node(
        "", "", "mixed", None, None, [node("encoder", "encoder", "mixed", None, None, layers)]
    )


STRUCTURE = {
    "divergence": 0.25,
    "source": {"left": "names", "right": "config"},
    "summary": {"same": 1, "changed": 0, "renamed": 1, "added": 1, "removed": 1},
    "changes": [
        {"kind": "renamed", "left": "encoder.layer.3", "right": "encoder.block.3",
         "detail": "same weights under a new name"},
        {"kind": "added", "left": None, "right": "encoder.new", "detail": "1 tensor"},
        {"kind": "removed", "left": f"encoder.{XSS['img']}", "right": None, "detail": XSS["close"]},
        {"kind": "<b>odd</b>", "left": "", "right": "", "detail": "a kind we do not know"},
    ],
    "left": _tree("left"),
    "right": _tree("right"),
}  # fmt: skip


def test_structure_panel_renders_the_contract_shape() -> None:
    html = structure_panel(STRUCTURE)
    for payload in (XSS["img"], XSS["script"], XSS["close"], "<b>odd</b>"):
        assert payload not in html
    doc = parse(html)
    panel = doc.by_id("structure")
    (left,) = panel.find_all(cls="tree-left")
    (right,) = panel.find_all(cls="tree-right")
    for tree in (left, right):
        nodes = tree.find_all(cls="tnode")
        assert nodes and all(len(n.classes & set(STATUSES)) == 1 for n in nodes)
        assert all("data-path" in n.attrs for n in nodes)
    by_path = {n.attrs["data-path"]: n for n in right.find_all(cls="tnode")}
    assert "renamed" in by_path["encoder.block.3"].classes
    assert by_path["encoder.block.3"].attrs["data-partner"] == "encoder.layer.3"
    assert "data-partner" not in by_path["encoder.layer.0"].attrs  # its own path: no partner
    assert "added" in by_path["encoder.new"].classes
    assert "mixed" in by_path["encoder.odd"].classes  # an unknown status shows as mixed
    same = by_path["encoder.layer.0"].find_all("details")[0]
    assert (
        "open" not in same.attrs and "open" in by_path["encoder.new"].find_all("details")[0].attrs
    )
    lpaths = {n.attrs["data-path"] for n in left.find_all(cls="tnode")}
    assert f"encoder.{XSS['img']}" in lpaths  # hostile text survives as text
    tensors = {e.attrs["data-path"]: e for e in left.find_all("li", cls="tensor")}
    assert "removed" in tensors[f"encoder.{XSS['img']}.{XSS['script']}"].classes
    assert "renamed" in tensors["encoder.layer.3.weight"].classes
    changes = doc.by_id("structure-changes").find_all("li")
    assert [c.attrs["class"] for c in changes] == ["renamed", "added", "removed", "changed"]
    assert "encoder.layer.3 → encoder.block.3" in changes[0].text
    assert "(model)" in changes[3].text
    assert doc.by_id("divergence").text == "0.250"
    assert "1 renamed" in panel.text and "names / config" in panel.text


def test_structure_panel_without_a_structure() -> None:
    doc = parse(structure_panel(None, "structural diff unavailable: no <config>"))
    panel = doc.by_id("structure")
    assert panel.find_all(cls="tree-left") and panel.find_all(cls="tree-right")
    assert panel.find_all(cls="tnode") == []
    assert "no <config>" in panel.text  # escaped in the HTML, text in the DOM


def test_deep_or_damaged_trees_do_not_break_the_page() -> None:
    deep: dict[str, Any] = {"name": "leaf", "path": "x", "status": "same", "children": []}
    for i in range(200):
        deep = {"name": f"n{i}", "path": f"p{i}", "status": "changed", "children": [deep]}
    html = structure_panel({**STRUCTURE, "left": deep, "right": [1, "x", None]})
    doc = parse(html)
    assert "deeper modules not shown" in html
    assert len(doc.find_all(cls="tnode")) < 100
    assert structure_panel({"left": None, "right": None, "changes": "junk"})


def test_the_diff_page_asks_for_the_structure(zoo: dict[str, Any]) -> None:
    """compute_diff gives the tensor diff and the structure JSON, with no note."""
    with mg.open(zoo["path"], read_only=True) as repo:
        view = compute_diff(repo, "base@1", "base@2")
        assert view.diff.a == "base@1" and len(view.diff.changed) == 1
        assert isinstance(view.structure, dict) and {"left", "right"} <= set(view.structure)
        assert view.note == ""


# -- slugs and sizes ---------------------------------------------------------------------------


def test_slugs_are_safe_unique_and_stable() -> None:
    names = ["base", "BASE", "Base", EVIL_NAME, PCT_NAME, UNICODE_NAME, "a b", "a_b", "-x", "x-",
             "a" * 200, "ok.name_1-2"]  # fmt: skip
    slugs = make_slugs(names)
    assert slugs == make_slugs(names)  # deterministic
    assert (
        slugs["base"] == "base" and slugs["ok.name_1-2"] == "ok.name_1-2" and slugs["a_b"] == "a_b"
    )
    assert len({s.lower() for s in slugs.values()}) == len(names)  # unique, even ignoring case
    for s in slugs.values():
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", s) and len(s) <= 80, s
        assert ".." not in s
    assert slugs["BASE"] != "BASE" and slugs["Base"] != "Base"  # "base" came first
    assert make_slugs(["a_b", "a b"])["a b"] != "a_b"  # a sanitised name never takes another's


def test_assets_are_small() -> None:
    """Everything the web UI ships (scripts, stylesheet, icon) is far under the 1 MB the
    issue allows, and no asset names an outside host."""
    sizes = {a: len(asset_bytes(a)) for a in ASSETS}
    assert sum(sizes.values()) < 100 * 1024, sizes
    static = Path(mg.__file__).parent / "web" / "static"
    assert sorted(p.name for p in static.iterdir()) == sorted(ASSETS)  # the allow-list is all
    for a in ASSETS:
        text = asset_bytes(a).decode()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), a
        assert "innerHTML" not in text and "eval(" not in text and "document.write" not in text
    # the sizes docs/guide.md states (in KB of 1000 bytes), within half a KB
    guide = (Path(__file__).parent.parent / "docs" / "guide.md").read_text()
    m = re.search(r"([\d.]+) KB of script, ([\d.]+) KB in all", " ".join(guide.split()))
    assert m, "docs/guide.md states the size of the web UI's assets"
    script = sum(n for a, n in sizes.items() if a.endswith(".js"))
    assert abs(float(m.group(1)) * 1000 - script) < 500, (m.group(1), script)
    assert abs(float(m.group(2)) * 1000 - sum(sizes.values())) < 500, (m.group(2), sizes)
