"""The web app's caches and snapshots while the repository changes under it (in-process,
over a read-only handle as ``modelgit serve`` opens it, with a second, writable handle
doing what another process would): a diff is cached under the versions it compared, a
page rendered from an old snapshot is not kept once a newer one is read, and a snapshot
is read in one state of the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modelgit as mg
from modelgit.web import WebApp
from modelgit.web import app as app_module
from modelgit.web.data import Snapshot, compute_diff
from web_zoo import nudge, parse, weights


@pytest.fixture
def repos(tmp_path: Path) -> Iterator[tuple[mg.Repository, mg.Repository]]:
    """(read-only handle, writable handle) of a repository with m@1 and its child c@1."""
    path = tmp_path / "repo"
    with mg.init(path) as w:
        w.add("m", weights(0))
        w.add("c", nudge(weights(0), 0.5), parents="m")
    ro = mg.open(path, read_only=True, checkout_cache=0)
    rw = mg.open(path)
    try:
        yield ro, rw
    finally:
        ro.close()
        rw.close()


def title(body: bytes) -> str:
    """A diff page's "A → B" (each a link to its version)."""
    return " → ".join(a.text for a in parse(body.decode()).by_id("diff-title").find_all("a"))


def test_a_diff_compares_the_versions_it_resolved(
    repos: tuple[mg.Repository, mg.Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit between resolving ``diff?a=m&b=c`` and computing it: the diff is still
    m@1 against c@1, and it is cached as that (so ``a=m@1`` gets the same page)."""
    ro, rw = repos
    app = WebApp(ro)
    real = app_module.compute_diff

    def commit_first(repo: Any, a: str, b: str, **kw: Any) -> Any:
        rw.commit("m", nudge(weights(0), 2.0), message="meanwhile")
        return real(repo, a, b, **kw)

    monkeypatch.setattr(app_module, "compute_diff", commit_first)
    first = app.get("/diff", "a=m&b=c")
    monkeypatch.undo()
    assert first.status == 200
    assert title(first.body) == "m@1 → c@1"
    again = app.get("/diff", "a=m@1&b=c")  # from the cache, under m@1's id
    assert title(again.body) == "m@1 → c@1"
    assert title(app.get("/diff", "a=m&b=c").body) == "m@2 → c@1"


def test_a_page_of_an_old_snapshot_is_not_kept(
    repos: tuple[mg.Repository, mg.Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request reads a newer snapshot while this one renders from the old: the
    old page is answered, not kept, and the next request renders the new state."""
    ro, rw = repos
    app = WebApp(ro)
    real = app_module.graph_page

    def newer_meanwhile(snap: Snapshot, mode: str) -> tuple[str, str]:
        out = real(snap, mode)
        rw.add("late", weights(3), parents="c")
        app.snapshot()  # what a concurrent request does: reads the new catalog
        return out

    monkeypatch.setattr(app_module, "graph_page", newer_meanwhile)
    old = app.get("/")
    monkeypatch.undo()
    names = {n.attrs["data-name"] for n in parse(old.body.decode()).find_all("g", cls="node")}
    assert names == {"m", "c"}  # rendered from the snapshot it started with
    for path in ("/", "/data/graph.js"):
        body = app.get(path).body.decode()
        assert "late" in body, path  # rendered again, not the page of the old snapshot


def test_a_snapshot_is_one_state_of_the_catalog(
    repos: tuple[mg.Repository, mg.Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model removed while the snapshot is being read (between its queries): the
    snapshot still shows it whole, read before the removal, instead of failing."""
    ro, rw = repos
    real = type(ro).versions
    calls = []

    def remove_meanwhile(self: Any, name: str) -> Any:
        if not calls:
            rw.remove("c")
            rw.add("late", weights(3))
        calls.append(name)
        return real(self, name)

    monkeypatch.setattr(type(ro), "versions", remove_meanwhile)
    snap = Snapshot.read(ro)
    monkeypatch.undo()
    assert sorted(snap.models) == ["c", "m"]
    assert [v.ref for v in snap.models["c"].versions] == ["c@1"]
    assert snap.models["c"].parents[0].parent == "m"
    assert sorted(Snapshot.read(ro).models) == ["late", "m"]


def test_a_failing_structure_is_a_note_and_the_diff_runs_once(
    repos: tuple[mg.Repository, mg.Repository], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A structural diff that fails: the page shows the tensor diff and the reason, and
    ``repo.diff`` ran once (the tensors are decoded once); a damaged version (a
    ModelgitError) is an error page, not a page without its structure."""
    from modelgit.versions import structure

    ro, _ = repos
    calls = []
    real = type(ro).diff

    def counted(self: Any, *args: Any, **kw: Any) -> Any:
        calls.append(args)
        return real(self, *args, **kw)

    def broken(*args: object, **kw: object) -> None:
        raise RecursionError("a tree too deep")

    monkeypatch.setattr(type(ro), "diff", counted)
    monkeypatch.setattr(structure, "structure_of_versions", broken)
    view = compute_diff(ro, "m@1", "c@1")
    assert len(calls) == 1
    assert view.structure is None and view.diff.changed
    assert view.note == "structural diff failed: RecursionError: a tree too deep"
    body = WebApp(ro).get("/diff", "a=m@1&b=c@1").body.decode()
    assert "RecursionError: a tree too deep" in body and 'id="tensor-changes"' in body

    def damaged(*args: object, **kw: object) -> None:
        raise mg.CorruptObject("chunk 1234 is damaged")

    monkeypatch.setattr(structure, "structure_of_versions", damaged)
    calls.clear()
    resp = WebApp(ro).get("/diff", "a=m@1&b=c@1")
    assert resp.status == 500 and "chunk 1234 is damaged" in resp.body.decode()
    assert len(calls) == 1
