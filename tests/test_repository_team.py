"""Team repositories: modelgit.init/open("postgresql://...", objects=...) with real parts.

A throwaway PostgreSQL server (initdb + pg_ctl, Debian's postgresql package) and moto's
S3 server (PyPI) are started once per session on free loopback ports
(modelgit.localservers); each test gets a fresh database and bucket. Without the
PostgreSQL programs or moto these tests skip, saying why (CI installs both).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import modelgit as mg
import team_worker
from conftest import assert_same_state
from modelgit.catalog.postgres import REPO_LOCK_KEY, CatalogUnavailable
from modelgit.localservers import LocalPostgres, LocalS3, ServerUnavailable, free_port
from modelgit.storage.objects import StorageUnavailable, open_objects
from team_worker import state as worker_state
from wf_funcs import tiny


# -- servers ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg() -> Iterator[LocalPostgres]:
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install modelgit[team])")
    try:
        server = LocalPostgres().start()
    except ServerUnavailable as exc:
        pytest.skip(f"no local PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[LocalS3]:
    """moto's server; its endpoint and dummy credentials are in the environment (as
    AWS_ENDPOINT_URL etc.), so repositories opened by URL alone reach it too."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install modelgit[team])")
    try:
        server = LocalS3().start()
    except ServerUnavailable as exc:
        pytest.skip(f"no local S3 server: {exc}")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in server.env.items():
            mp.setenv(k, v)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELGIT_CACHE", str(tmp_path / "cache"))


def _bucket(s3: LocalS3) -> str:
    return s3.new_bucket(f"mg-{uuid.uuid4().hex[:12]}") + "/team"


@pytest.fixture(params=["folder", "s3"])
def team(
    request: pytest.FixtureRequest, pg: LocalPostgres, tmp_path: Path
) -> Iterator[mg.Repository]:
    """A fresh team repository: packs in a shared folder, or in S3 (moto)."""
    url = pg.new_database()
    if request.param == "folder":
        repo = mg.init(url, objects=str(tmp_path / "shared" / "packs"))
    else:
        s3 = request.getfixturevalue("s3")
        repo = mg.init(url, objects=_bucket(s3), storage_options=s3.storage_options)
    try:
        yield repo
    finally:
        repo.close()


def state(seed: int, n: int = 192) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "embed.weight": torch.randn(n, 128, generator=g),
        "layer.weight": torch.randn(n, n, generator=g).to(torch.bfloat16),
        "layer.bias": torch.tensor([0.0, -0.0, float("nan"), float("inf")]),
        "steps": torch.arange(7, dtype=torch.int64),
    }


def finetune(sd: dict[str, torch.Tensor], row: int) -> dict[str, torch.Tensor]:
    out = {k: v.clone() for k, v in sd.items()}
    out["embed.weight"][row] += 0.5
    return out


# -- the repository API on a team repository ---------------------------------------------
def test_team_repack(team: mg.Repository) -> None:
    """Repack on a PostgreSQL catalog with packs in a shared folder or S3."""
    base = state(2)
    models = {"base": base, "ft": finetune(base, 5), "ft2": finetune(finetune(base, 5), 9)}
    for name, sd in models.items():
        team.add(name, sd, base="parent")
    before = team.stats().stored_bytes
    report = team.repack()
    assert report.rewritten > 0 and team.stats().stored_bytes < before
    for name, sd in models.items():
        got = team.load(name)
        for k in sd:
            assert torch.equal(got[k].view(torch.uint8), sd[k].view(torch.uint8)), (name, k)
    assert team.fsck().ok


def test_team_repack_makes_stars(team: mg.Repository) -> None:
    """The star pass on a PostgreSQL catalog: a run of small random steps, committed as
    a chain, becomes a star (depths and storage bases rewritten there)."""
    g = torch.Generator().manual_seed(5)
    run = [{"w": torch.randn(200_000, generator=g) * 0.05}]
    for _ in range(15):
        run.append({"w": run[-1]["w"] + 1e-4 * torch.randn(200_000, generator=g)})
    team.add("run", run[0])
    for sd in run[1:]:
        team.commit("run", sd)
    report = team.repack()
    assert report.stars > 0 and (report.deepest_before, report.deepest_after) == (4, 1)
    assert any(team.storage_bases("run@1"))  # coded against a newer checkpoint
    for i, sd in enumerate(run, 1):
        assert torch.equal(team.load(f"run@{i}")["w"], sd["w"])
    assert team.fsck().ok


def test_team_open_read_only_uploads_nothing(pg: LocalPostgres, tmp_path: Path) -> None:
    """open(read_only=True) on a team repository: reads work; a write is refused before
    any pack reaches the object store."""
    url, packs = pg.new_database(), tmp_path / "shared" / "packs"
    with mg.init(url, objects=str(packs)) as repo:
        repo.add("base", state(3))
    before = sorted(p.name for p in packs.rglob("*"))
    with mg.open(url, objects=str(packs), read_only=True) as ro:
        assert torch.equal(ro.load("base")["embed.weight"], state(3)["embed.weight"])
        with pytest.raises(mg.ReadOnlyRepository, match="read-only"):
            ro.add("other", state(4))
        with pytest.raises(mg.ReadOnlyRepository):
            ro.commit("base", finetune(state(3), 1))
    assert sorted(p.name for p in packs.rglob("*")) == before
    with mg.open(url, objects=str(packs)) as repo:
        assert repo.models() == ["base"]


def test_team_add_load_versions_lineage_fsck_gc(team: mg.Repository) -> None:
    base = state(1)
    v1 = team.add("base", base, message="first")
    assert (v1.model, v1.number) == ("base", 1)
    v2 = team.commit("base", finetune(base, 3), message="second")
    assert v2.number == 2 and v2.parents[0].kind == "version"
    child = finetune(base, 5)
    team.add("child", child, parents="base@1", relation="finetune")
    team.add("other", state(2))
    assert team.models() == ["base", "child", "other"]
    assert [v.number for v in team.versions("base")] == [1, 2]
    assert_same_state(team.load("base@1"), base)
    assert_same_state(team.load("base"), finetune(base, 3))
    assert_same_state(team.load("child"), child)
    assert torch.equal(team.load_tensor("child", "steps"), child["steps"])
    assert team.graph.parents("child") == ["base"]
    team.tag("base@1", "release")
    assert team.version("release").number == 1
    assert team.stats().stored_bytes < team.stats().logical_bytes  # dedup across versions
    assert team.fsck().ok
    # reopening by URL alone finds the objects through the catalog
    again = mg.open(team.team.catalog.url, storage_options=_opts(team))
    try:
        assert_same_state(again.load("child"), child)
    finally:
        again.close()
    team.remove("other")
    before = team.stats().pack_bytes
    report = team.gc()
    assert report.chunks_removed > 0 and team.stats().pack_bytes < before
    assert team.fsck().ok
    assert_same_state(team.load("child"), child)
    assert_same_state(team.load("base@1"), base)


def _opts(repo: mg.Repository) -> dict | None:
    fs = getattr(repo.store.objects, "fs", None)
    if fs is None:
        return None
    return {"endpoint_url": fs.client_kwargs.get("endpoint_url") or fs.endpoint_url,
            "key": "testing", "secret": "testing"}  # fmt: skip


def test_team_version_numbers_and_workflow_tables(team: mg.Repository) -> None:
    team.add("m", state(3))
    for i in range(3):
        team.commit("m", finetune(state(3), i))
    assert [v.number for v in team.versions("m")] == [1, 2, 3, 4]
    team.rename("m", "n")
    assert team.models() == ["n"] and team.version("n").number == 4
    team.add("tiny", tiny(2.0))
    team.register_test("mean", "wf_funcs:mean_w", models="tiny")
    table = team.run_tests()
    assert [r.value for r in table.rows] == [2.0]
    assert [r.value for r in team.test_results("mean").rows] == [2.0]


def test_team_similarity_index_finds_the_base(
    pg: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LSH forest of the similarity index on PostgreSQL: keyed on add (bytea keys
    ordered bytewise), searched, rebuilt for a catalog written before it existed."""
    from modelgit.storage import similarity, sketch_index

    monkeypatch.setattr(similarity, "SCAN_ROWS", 0)  # search the index however small
    searched: list[int] = []
    shortlist = sketch_index.shortlist
    monkeypatch.setattr(
        sketch_index, "shortlist", lambda c, p: searched.append(1) or shortlist(c, p)
    )
    repo = mg.init(pg.new_database(), objects=str(tmp_path / "packs"))
    local = mg.init(tmp_path / "local")
    try:
        for i in range(6):
            for r in (repo, local):
                r.add(f"m{i}", state(10 + i), base="parent")
        rows = "SELECT name, tree, bits FROM sketch_lsh WHERE version = ? ORDER BY name, tree"
        pg_rows = repo.catalog.query(rows, (repo.resolve("m3")[0],))
        assert pg_rows and [(n, t, bytes(b)) for n, t, b in pg_rows] == local.catalog.query(
            rows, (local.resolve("m3")[0],)
        )
        child = finetune(state(13), 7)
        repo.add("child", child)  # no parents: the index finds m3
        assert searched
        assert [v.ref for v in repo.storage_bases("child")] == ["m3@1"]
        with repo.catalog.transaction() as db:  # as written before the index existed
            db.execute("DROP TABLE sketch_lsh")
            db.execute("DELETE FROM meta WHERE key = ?", (sketch_index.MARK,))
        again = finetune(state(14), 8)
        repo.add("again", again)
        assert [v.ref for v in repo.storage_bases("again")] == ["m4@1"]
        assert sketch_index.is_current(repo.catalog)
        keyed = repo.catalog.one("SELECT COUNT(DISTINCT version) FROM sketch_lsh")
        assert keyed == (len(repo.models()),)
        gone = repo.resolve("m4")[0]
        repo.remove("m4")  # its keys go with it (ON DELETE CASCADE)
        assert repo.catalog.one("SELECT COUNT(*) FROM sketch_lsh WHERE version = ?", (gone,)) == (
            0,
        )
        assert repo.catalog.one("SELECT COUNT(DISTINCT version) FROM sketch_lsh") == (
            len(repo.models()),
        )
        assert repo.fsck().ok
        assert_same_state(repo.load("again"), again)
    finally:
        repo.close()
        local.close()


def test_team_format1_catalog_is_upgraded_by_the_first_write(
    pg: LocalPostgres, tmp_path: Path
) -> None:
    url = pg.new_database()
    mg.init(url, objects=str(tmp_path / "packs")).close()
    with mg.open(url) as repo:
        with repo.catalog.transaction() as db:
            db.execute("UPDATE meta SET value = '1' WHERE key = 'format'")
    with mg.open(url) as repo:
        assert repo.format == 1 and repo.catalog.meta("format") == "1"
        repo.add("m", state(5))
        assert repo.catalog.meta("format") == str(mg.repository.FORMAT_VERSION)
    with mg.open(url) as repo:
        assert repo.format == mg.repository.FORMAT_VERSION
        assert torch.equal(repo.load("m")["embed.weight"], state(5)["embed.weight"])


def test_team_lock_excludes_gc_while_writing(team: mg.Repository) -> None:
    other = team.team.catalog.connect_raw()  # another session, as gc on another host
    try:
        with team.lock(exclusive=False):
            got = other.execute("SELECT pg_try_advisory_lock(%s)", (REPO_LOCK_KEY,)).fetchone()
            assert got == (False,)
        got = other.execute("SELECT pg_try_advisory_lock(%s)", (REPO_LOCK_KEY,)).fetchone()
        assert got == (True,)
    finally:
        other.close()


def test_team_write_fails_if_its_lock_session_ends(team: mg.Repository) -> None:
    catalog = team.team.catalog
    admin = catalog.connect_raw()
    try:
        with catalog.repo_lock(exclusive=False):
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = %s AND pid <> pg_backend_pid()",
                (REPO_LOCK_KEY,),
            )
            with pytest.raises(CatalogUnavailable, match="nothing was published"):
                with catalog.transaction() as db:
                    db.execute("INSERT INTO meta(key, value) VALUES ('probe', '1')")
    finally:
        admin.close()
    assert catalog.meta("probe") is None
    team.add("after", state(8))  # a new lock session: writes go on
    assert team.fsck().ok


# -- push / pull --------------------------------------------------------------------------
def test_push_pull_move_only_missing_chunks(pg: LocalPostgres, s3: LocalS3, tmp_path: Path) -> None:
    url = pg.new_database()
    hub = mg.init(url, objects=_bucket(s3), storage_options=s3.storage_options)
    local = mg.init(tmp_path / "local")
    try:
        base = state(4)
        local.add("base", base)
        local.add("ft", finetune(base, 1), parents="base")
        first = local.push(hub)
        assert first.chunks > 0 and sorted(first.models_added) == ["base", "ft"]
        again = local.push(hub)
        assert again.chunks == 0 and again.bytes == 0 and again.up_to_date
        local.commit("ft", finetune(base, 2))
        third = local.push(hub)
        assert 0 < third.chunks < first.chunks  # only what the new version added
        assert hub.fsck().ok
        fresh = mg.init(tmp_path / "fresh")
        try:
            pulled = fresh.pull(url)  # by URL: opened, pulled from, closed
            assert pulled.chunks == first.chunks + third.chunks
            assert_same_state(fresh.load("ft@2"), finetune(base, 2))
            assert_same_state(fresh.load("base"), base)
            assert fresh.pull(hub).chunks == 0
            assert fresh.fsck().ok
        finally:
            fresh.close()
    finally:
        local.close()
        hub.close()


# -- many writers -------------------------------------------------------------------------
def test_four_processes_add_to_one_team_repository(
    pg: LocalPostgres, s3: LocalS3, tmp_path: Path
) -> None:
    url = pg.new_database()
    objects = _bucket(s3)
    with mg.init(url, objects=objects, storage_options=s3.storage_options) as repo:
        repo.add("base", worker_state(5))
        repo.add("shared", worker_state(6))
    # four real processes, forked by a fork server that imported torch once for all
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["team_worker", "s3fs", "psycopg"])
    results = ctx.Queue()
    procs = [
        ctx.Process(target=team_worker.child, args=(url, objects, s3.endpoint, i, results))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    outs, errors = [], []
    try:
        for _ in procs:
            _, refs, err = results.get(timeout=240)
            if err is not None:
                errors.append(err)
            else:
                outs.append(refs)
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        results.close()
    assert not errors, errors[0]
    assert len({p.pid for p in procs} | {os.getpid()}) == 5
    with mg.open(url, storage_options=s3.storage_options) as repo:
        assert sorted(repo.models()) == sorted(
            ["base", "shared"] + [f"w{i}-{j}" for i in range(4) for j in range(2)]
        )
        assert [v.number for v in repo.versions("shared")] == list(range(1, 10))
        published = sorted(ref for out in outs for ref in out if ref.startswith("shared@"))
        assert published == sorted(f"shared@{n}" for n in range(2, 10))
        for i in range(4):
            sd = repo.load(f"w{i}-1")
            assert sd["w"][i * 7 + 1].sum() != repo.load("base")["w"][i * 7 + 1].sum()
        report = repo.fsck()
        assert report.ok, report.problems
        assert report.versions_checked == 2 + 8 + 8


# -- errors -------------------------------------------------------------------------------
def test_unreachable_server_is_a_clear_error() -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(CatalogUnavailable, match="cannot connect to the PostgreSQL catalog"):
        mg.open(url)
    with pytest.raises(mg.ModelgitError, match="not a usable PostgreSQL URL|cannot connect"):
        mg.open("postgresql://host:notaport/db?bogus_option=1")


def test_team_open_init_errors(pg: LocalPostgres, s3: LocalS3, tmp_path: Path) -> None:
    url = pg.new_database()
    with pytest.raises(mg.NotARepository, match="holds no modelgit catalog"):
        mg.open(url)
    with pytest.raises(mg.ModelgitError, match="needs objects="):
        mg.init(url)
    with pytest.raises(StorageUnavailable, match="does not exist"):
        mg.init(url, objects="s3://no-such-bucket/x", storage_options=s3.storage_options)
    mg.init(url, objects=str(tmp_path / "packs")).close()
    with pytest.raises(mg.RepositoryExists):
        mg.init(url, objects=str(tmp_path / "packs2"))
    with pytest.raises(mg.UnsupportedInput, match="objects= is for team"):
        mg.init(tmp_path / "local", objects="s3://x")
    with mg.open(url) as repo, pytest.raises(mg.UnknownModel, match=r"postgresql://"):
        repo.load("missing")


def test_cli_acts_on_a_team_repository_by_url(
    team: mg.Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelgit.cli import main

    team.add("m", state(7))  # S3: the endpoint and credentials come from the environment
    assert main(["--repo", team.team.catalog.url, "log", "m"]) == 0
    assert "m@1" in capsys.readouterr().out
    assert main(["--repo", team.team.catalog.url, "fsck"]) == 0


def test_missing_team_extra_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the team extra, local repositories work and team URLs say what to install."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with mg.init(tmp_path / "local") as repo:
        repo.add("m", state(9))
    with pytest.raises(StorageUnavailable, match=r'pip install "modelgit\[team\]"'):
        mg.open("postgresql://someone@127.0.0.1/db")
    with pytest.raises(StorageUnavailable, match=r'pip install "modelgit\[team\]"'):
        open_objects("s3://bucket/prefix", tmp_path / "staging")
