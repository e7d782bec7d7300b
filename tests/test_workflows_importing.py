"""repo.import_models and ``modelgit import`` (modelgit.workflows.importing): discovery of
files, Hugging Face folders and hub cache folders, inferred edges, dry runs, edges files,
re-runs, and an import killed with SIGKILL and run again."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import modelgit as mg
from conftest import assert_same_tensor
from modelgit.errors import LineageError, UnsupportedInput
from modelgit.workflows.importing import discover_models


def _base() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "emb.weight": torch.randn(256, 96, generator=g) * 0.05,
        "l1.weight": torch.randn(96, 96, generator=g) * 0.05,
        "l1.bias": torch.randn(96, generator=g) * 0.01,
        "head.weight": torch.randn(8, 96, generator=g) * 0.05,
    }


def _drift(sd: dict[str, torch.Tensor], seed: int, sigma: float = 2e-3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: v + sigma * torch.randn(v.shape, generator=g) for k, v in sd.items()}


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """base.safetensors -> ft (an HF folder with a config) -> ft2 (sharded HF folder);
    base -> cast (bf16 file); an unrelated model."""
    root = tmp_path / "zoo"
    root.mkdir()
    base = _base()
    ft = _drift(base, 1)
    ft2 = _drift(ft, 2)
    save_file(base, root / "base.safetensors")
    (root / "ft").mkdir()
    save_file(ft, root / "ft" / "model.safetensors")
    (root / "ft" / "config.json").write_text(json.dumps({"model_type": "toy"}))
    shard = root / "ft2"
    shard.mkdir()
    keys = sorted(ft2)
    index = {}
    for i, part in enumerate((keys[:2], keys[2:])):
        fname = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({k: ft2[k] for k in part}, shard / fname)
        index.update({k: fname for k in part})
    (shard / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))
    save_file({k: v.to(torch.bfloat16) for k, v in base.items()}, root / "cast.safetensors")
    g = torch.Generator().manual_seed(9)
    save_file({"w": torch.randn(64, 64, generator=g)}, root / "other.safetensors")
    return root


def _files(zoo: Path) -> dict[str, dict[str, torch.Tensor]]:
    out = {}
    for name in ("base", "cast", "other"):
        out[name] = load_file(zoo / f"{name}.safetensors")
    out["ft"] = load_file(zoo / "ft" / "model.safetensors")
    out["ft2"] = {}
    for f in sorted((zoo / "ft2").glob("*.safetensors")):
        out["ft2"].update(load_file(f))
    return out


def test_discover_models(zoo: Path):
    found = {name: path for name, path, _ in discover_models([zoo])}
    assert set(found) == {"base", "ft", "ft2", "cast", "other"}
    assert found["ft2"] == zoo / "ft2" and found["base"] == zoo / "base.safetensors"


def test_import_round_trip_and_inferred_edges(repo: mg.Repository, zoo: Path):
    calls = []
    report = repo.import_models(zoo, progress=lambda d, t: calls.append((d, t)))
    assert {m.status for m in report.models} == {"added"}
    names = [m.name for m in report.models]
    assert names.index("base") < names.index("ft") < names.index("ft2")
    for name, sd in _files(zoo).items():
        got = repo.load(name)
        assert set(got) == set(sd)
        for k in sd:
            assert_same_tensor(got[k], sd[k], f"{name}/{k}")
    edges = {(e.parent, e.child): e.relation for e in repo.graph.edges()}
    assert edges[("base", "ft")] == "inferred"
    assert edges[("ft", "ft2")] == "inferred"
    assert edges[("base", "cast")] == "inferred"
    assert not any(c == "other" for _, c in edges) and not any(p == "other" for p, _ in edges)
    assert repo.version("ft").metadata["imported_from"] == str(zoo / "ft")
    guess = repo.version("ft").metadata["inferred_lineage"]
    assert guess["parents"] == ["base"] and 0 < guess["confidence"] < 1
    assert repo.version("cast").metadata["inferred_lineage"]["relation"] == "cast"
    # progress covers the whole import in bytes, ends at the total, never goes back
    total = sum(f.stat().st_size for f in zoo.rglob("*.safetensors"))
    assert calls[-1] == (total, total)
    done = [d for d, _ in calls]
    assert done == sorted(done) and all(t == total for _, t in calls)
    # stored against automatically chosen bases: the family costs far less than raw
    stats = repo.stats()
    assert stats.stored_bytes < 0.8 * stats.logical_bytes


def test_dry_run_writes_nothing(repo: mg.Repository, zoo: Path):
    report = repo.import_models(zoo, dry_run=True)
    assert report.dry_run and repo.models() == []
    assert ("base", "ft") in {(e.parent, e.child) for e in report.edges}
    assert "nothing written" in str(report)
    assert json.loads(json.dumps(report.to_json()))["models"][0]["status"] == "planned"


def test_rerun_skips_what_is_present(repo: mg.Repository, zoo: Path):
    repo.import_models(zoo)
    versions = {m: len(repo.versions(m)) for m in repo.models()}
    again = repo.import_models(zoo)
    assert {m.status for m in again.models} == {"present"}
    assert {m: len(repo.versions(m)) for m in repo.models()} == versions


def test_rerun_after_a_name_clash_finds_the_renamed_model(repo: mg.Repository, zoo: Path):
    repo.add("base", {"x": torch.zeros(3)})  # an unrelated model owns the name
    planned = repo.import_models(zoo, dry_run=True)  # the name it will get, shown first
    by = {m.path.name: m for m in planned.models}
    assert by["base.safetensors"].name == "base-2" and "base-2" in by["ft"].parents
    first = repo.import_models(zoo)
    assert {m.path.name: m.name for m in first.models}["base.safetensors"] == "base-2"
    assert "5 model(s) (5 added)" in str(first)
    models = sorted(repo.models())
    for run in (repo.import_models(zoo, dry_run=True), repo.import_models(zoo)):
        assert {m.status for m in run.models} == {"present"}  # not stored again as base-3
        by = {m.path.name: m for m in run.models}
        assert by["base.safetensors"].name == "base-2" and by["base.safetensors"].version
        assert "base-2" in by["ft"].parents
        assert "(5 present)" in str(run) and "[present base-2@1]" in str(run)
    assert sorted(repo.models()) == models
    assert_same_tensor(repo.load("base")["x"], torch.zeros(3))


def test_edges_override_and_name_clash(repo: mg.Repository, zoo: Path):
    repo.add("base", {"x": torch.zeros(3)})  # an unrelated model owns the name
    # "other" shares no tensor names with ft: recorded as asked, with a warning
    with pytest.warns(mg.ModelgitWarning, match="parent ft@1 shares no tensor names"):
        report = repo.import_models(zoo, edges={"ft": None, "ft2": ["base"], "other": "ft"})
    by = {m.path.name: m for m in report.models}
    fresh = by["base.safetensors"].name
    assert fresh != "base" and fresh in repo
    assert_same_tensor(repo.load("base")["x"], torch.zeros(3))
    edges = {(e.parent, e.child) for e in repo.graph.edges()}
    assert (fresh, "ft2") in edges and ("ft", "other") in edges
    assert not any(c == "ft" for _, c in edges)
    with pytest.raises(UnsupportedInput, match="did not find"):
        repo.import_models(zoo, edges={"nope": "base"}, dry_run=True)


def test_confirming_an_inferred_edge(repo: mg.Repository, zoo: Path):
    repo.import_models(zoo)
    e = repo.add_edge("base", "ft", relation="finetune")
    assert e.relation == "finetune"
    relations = {(x.parent, x.child): x.relation for x in repo.graph.edges()}
    assert relations[("base", "ft")] == "finetune"
    with pytest.raises(LineageError, match="already recorded"):
        repo.add_edge("base", "ft", relation="distill")  # a confirmed edge stays put


def test_hub_cache_folders(repo: mg.Repository, tmp_path: Path):
    hub = tmp_path / "hub"
    snaps = hub / "models--acme--tiny" / "snapshots"
    base = _base()
    revs = {"aaa111": base, "bbb222": _drift(base, 3)}
    for i, (rev, sd) in enumerate(revs.items()):
        (snaps / rev).mkdir(parents=True)
        save_file(sd, snaps / rev / "model.safetensors")
        (snaps / rev / "config.json").write_text("{}")
        os.utime(snaps / rev, (1_000_000 + i, 1_000_000 + i))
    (hub / "models--acme--tiny" / "refs").mkdir()
    (hub / "version.txt").write_text("1")
    report = repo.import_models(hub)
    assert [m.status for m in report.models] == ["added", "committed"]
    versions = repo.versions("acme--tiny")
    assert [v.metadata["revision"] for v in versions] == ["aaa111", "bbb222"]
    assert versions[0].metadata["hf_repo"] == "acme/tiny"
    for v, sd in zip(versions, revs.values(), strict=True):
        got = repo.load(v.ref)
        for k in sd:
            assert_same_tensor(got[k], sd[k], k)
    assert {m.status for m in repo.import_models(hub).models} == {"present"}


def test_hub_repository_named_in_a_config_is_the_parent(repo: mg.Repository, tmp_path: Path):
    """A fine-tune whose config.json names the hub repository it came from is hung
    under that repository's model, whatever the weights say."""
    snap = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    base = _base()
    save_file(base, snap / "model.safetensors")
    (snap / "config.json").write_text("{}")
    ft = tmp_path / "mine" / "tuned"
    ft.mkdir(parents=True)
    g = torch.Generator().manual_seed(77)  # trained far from it: only the config tells
    save_file({k: torch.randn(v.shape, generator=g) for k, v in base.items()},
              ft / "model.safetensors")  # fmt: skip
    (ft / "config.json").write_text(json.dumps({"_name_or_path": "acme/tiny"}))
    report = repo.import_models([tmp_path / "hub", tmp_path / "mine"], dry_run=True)
    by = {m.name: m for m in report.models}
    assert by["tuned"].parents == ["acme--tiny"] and by["tuned"].directed
    assert "confidence" in str(report)


def test_bad_inputs(repo: mg.Repository, tmp_path: Path):
    with pytest.raises(UnsupportedInput, match="does not exist"):
        repo.import_models(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedInput, match="no model found"):
        repo.import_models(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(mg.ModelgitError):
        repo.import_models(bad)
    assert repo.models() == []


def _cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, MODELGIT_PROGRESS="0")
    proc = subprocess.run(
        [sys.executable, "-m", "modelgit", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_import(tmp_path: Path, zoo: Path):
    mg.init(tmp_path / "r").close()
    cwd = tmp_path / "r"
    dry = json.loads(_cli("import", str(zoo), "--dry-run", "--json", cwd=cwd).stdout)
    assert dry["dry_run"] and len(dry["models"]) == 5
    with mg.open(cwd) as r:
        assert r.models() == []
    edges = tmp_path / "edges.json"
    edges.write_text(json.dumps({"cast": None}))
    out = _cli("import", str(zoo), "--edges", str(edges), cwd=cwd).stdout
    assert out.startswith("imported: 5 model(s)")
    with mg.open(cwd) as r:
        assert "cast" in r and not any(e.child == "cast" for e in r.graph.edges())
    edges.write_text("[1, 2]")
    bad = _cli("import", str(zoo), "--edges", str(edges), cwd=cwd, check=False)
    assert bad.returncode == 1 and "expected a JSON object" in bad.stderr


def _stored_models(root: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{root / 'catalog.db'}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM models").fetchone()[0]
    except sqlite3.OperationalError:  # the first add has not created the tables yet
        return 0
    finally:
        db.close()


def test_import_killed_and_rerun(tmp_path: Path):
    """SIGKILL an import at several points; the repository stays consistent, and running
    the import again completes it with every model bit-exact and none stored twice."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    sd = {k: v.repeat(16, 1) if v.dim() == 2 else v for k, v in _base().items()}
    models = {"m0": sd}
    for i in range(1, 12):
        models[f"m{i}"] = _drift(models[f"m{i - 1}"], i)
    for name, state in models.items():
        save_file(state, zoo / f"{name}.safetensors")
    root = tmp_path / "r"
    mg.init(root).close()
    env = dict(os.environ, MODELGIT_PROGRESS="0")
    cmd = [sys.executable, "-m", "modelgit", "--repo", str(root), "import", str(zoo)]
    rng = random.Random(os.environ.get("MODELGIT_CRASH_SEED", "7"))
    killed = 0
    for after in (0, 3, 6):  # kill a little after more than this many models were stored
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while _stored_models(root) <= after and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))  # mid-add, most likely
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with mg.open(root) as r:
            assert r.fsck().ok
            for name in r.models():
                assert len(r.versions(name)) == 1
        killed += _stored_models(root) < len(models)
    assert killed >= 2, "the imports ended before the kills"
    _cli("--repo", str(root), "import", str(zoo), cwd=tmp_path)
    with mg.open(root) as r:
        assert sorted(r.models()) == sorted(models)
        assert r.fsck().ok
        for name, state in models.items():
            assert len(r.versions(name)) == 1
            got = r.load(name)
            for k in state:
                assert_same_tensor(got[k], state[k], f"{name}/{k}")
