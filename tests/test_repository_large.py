"""Bounded memory on a checkpoint much larger than the budget (issue: large models).

A 2 GiB sharded bf16 checkpoint and a fine-tuned sibling are written to disk; each of
add (base), add (sibling, coded against the base), export (sharded) and export runs in a
fresh process with a 256 MiB budget, and its peak RSS (VmHWM) may exceed the RSS it had
after importing torch and modelgit by at most the budget. Every export is checked
against the hashes of the generated tensors. Set MODELGIT_LARGE_TEST_GIB to change the
size (the 32 GiB run is bench/bench_large.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import modelgit as mg
from modelgit.bench.large import folder_hashes, layout_for, run_phase, write_checkpoint

BUDGET = 256 << 20
GIB = float(os.environ.get("MODELGIT_LARGE_TEST_GIB", "2"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("large")


def _check(r: object, phase: str) -> None:
    over = r.peak_rss - r.start_rss  # type: ignore[attr-defined]
    print(
        f"{phase}: {r.nbytes / 2**30:.2f} GiB in {r.seconds:.1f}s, "  # type: ignore[attr-defined]
        f"peak RSS {r.peak_rss / 2**20:.0f} MiB ({over / 2**20:.0f} MiB over start)"  # type: ignore[attr-defined]
    )
    assert over <= BUDGET, f"{phase}: peak RSS grew by {over >> 20} MiB, budget {BUDGET >> 20}"


def test_add_and_export_within_budget(work: Path) -> None:
    layout = layout_for(int(GIB * 2**30), hidden=2048)
    shard = layout.nbytes // 4 + 1
    hashes = {
        "base": write_checkpoint(work / "base", layout, shard, seed=1),
        "tuned": write_checkpoint(work / "tuned", layout, shard, seed=2, parent_seed=1),
    }
    mg.init(work / "repo").close()
    repo = str(work / "repo")
    _check(
        run_phase("add base", BUDGET, repo=repo, op="add", name="base", src=str(work / "base")),
        "add base",
    )
    r = run_phase(
        "add tuned",
        BUDGET,
        repo=repo,
        op="add",
        name="tuned",
        src=str(work / "tuned"),
        parent="base",
    )
    _check(r, "add tuned")
    assert r.nbytes == layout.nbytes
    shutil.rmtree(work / "base")
    shutil.rmtree(work / "tuned")
    with mg.open(repo) as opened:
        stats = opened.stats()
        assert opened.fsck(full=False).ok
    by_model = {m.name: m for m in stats.models}
    # the sibling is stored as a delta: much smaller than the base
    assert by_model["tuned"].stored_bytes < 0.6 * by_model["base"].stored_bytes
    for name, max_shard in (("base", layout.nbytes // 3), ("tuned", None)):
        dest = work / f"out-{name}"
        r = run_phase(
            f"export {name}",
            BUDGET,
            repo=repo,
            op="export",
            name=name,
            dest=str(dest),
            shard=max_shard,
        )
        _check(r, f"export {name}")
        assert folder_hashes(dest) == hashes[name]
        assert json.loads((dest / "config.json").read_text()) == {"model_type": "synthetic"}
        if max_shard is not None:
            assert len(list(dest.glob("model-*-of-*.safetensors"))) >= 3
        shutil.rmtree(dest)
