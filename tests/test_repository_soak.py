"""Concurrency soak (slow): for ``MODELGIT_SOAK_SECONDS`` (default 60) five processes
share one repository: a writer (adds and commits), a remover (removes models and adds
them again), gc, a reader (loads every version it can name) and fsck. Every load must
give a whole, self-consistent model or raise UnknownModel/UnknownVersion; fsck must
never report a problem in the healthy repository.

Each model's tensors are generated from its ``seed`` tensor, so a reader checks what
it got without asking the catalog again (a second question could race a remove)."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from pathlib import Path

import pytest
import torch

import modelgit as mg

pytestmark = pytest.mark.slow
SECONDS = float(os.environ.get("MODELGIT_SOAK_SECONDS", "60"))
CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["torch", "modelgit"])
NAMES = [f"m{i}" for i in range(6)]


def model(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(200_000, generator=g)
    return {"seed": torch.tensor([seed]), "w": w, "w16": w[:50_000].to(torch.float16)}


def consistent(sd: dict[str, torch.Tensor]) -> bool:
    if set(sd) != {"seed", "w", "w16"}:
        return False
    want = model(int(sd["seed"][0]))
    return all(sd[k].dtype == want[k].dtype and torch.equal(sd[k], want[k]) for k in want)


def _until(end: float) -> bool:
    return time.monotonic() < end


def writer(path: str, end: float, out: str) -> None:
    rng, n = random.Random(1), 0
    with mg.open(path) as repo:
        while _until(end):
            name = rng.choice(NAMES)
            seed = rng.randrange(1, 2**31)
            try:
                if name in repo:
                    repo.commit(name, model(seed))
                else:
                    repo.add(name, model(seed))
                n += 1
            except (mg.UnknownModel, mg.ModelExists):
                pass  # removed or added by the remover meanwhile
    Path(out).write_text(json.dumps({"writes": n}))


def remover(path: str, end: float, out: str) -> None:
    rng, n = random.Random(2), 0
    with mg.open(path) as repo:
        while _until(end):
            name = rng.choice(NAMES)
            try:
                repo.remove(name)
                n += 1
                repo.add(name, model(rng.randrange(1, 2**31)))
            except (mg.UnknownModel, mg.ModelExists):
                pass
            time.sleep(0.02)
    Path(out).write_text(json.dumps({"removes": n}))


def collector(path: str, end: float, out: str) -> None:
    n = 0
    with mg.open(path) as repo:
        while _until(end):
            repo.gc()
            n += 1
            time.sleep(0.2)
    Path(out).write_text(json.dumps({"gcs": n}))


def reader(path: str, end: float, out: str) -> None:
    rng = random.Random(3)
    loads = gone = 0
    wrong: list[str] = []
    with mg.open(path) as repo:
        while _until(end):
            ref = f"{rng.choice(NAMES)}@{rng.randint(1, 6)}" if rng.random() < 0.5 else (
                rng.choice(NAMES))  # fmt: skip
            try:
                sd = repo.load(ref)
                loads += 1
                if not consistent(sd):
                    wrong.append(f"{ref}: {sorted(sd)}")
            except (mg.UnknownModel, mg.UnknownVersion):
                gone += 1
            except mg.ModelgitError as exc:
                wrong.append(f"{ref}: {type(exc).__name__}: {exc}")
    Path(out).write_text(json.dumps({"loads": loads, "gone": gone, "wrong": wrong}))


def checker(path: str, end: float, out: str) -> None:
    runs = 0
    false: list[str] = []
    with mg.open(path) as repo:
        while _until(end):
            report = repo.fsck(full=runs % 5 == 0)
            runs += 1
            if not report.ok:
                false.extend(report.problems)
    Path(out).write_text(json.dumps({"fscks": runs, "false": false}))


def test_soak(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    with mg.init(path) as repo:
        for i, name in enumerate(NAMES):
            repo.add(name, model(i + 1))
    end = time.monotonic() + 5 + SECONDS  # the workers start within a few seconds
    workers = {"writer": writer, "remover": remover, "gc": collector, "reader": reader,
               "fsck": checker}  # fmt: skip
    procs = {}
    for name, fn in workers.items():
        procs[name] = CTX.Process(target=fn, args=(str(path), end, str(tmp_path / f"{name}.json")))
        procs[name].start()
    for name, proc in procs.items():
        proc.join(SECONDS + 300)
        assert proc.exitcode == 0, f"{name} failed (exit code {proc.exitcode}); see its stderr"
    got = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in workers}
    print(got["writer"], got["remover"], got["gc"],
          {k: v for k, v in got["reader"].items() if k != "wrong"},
          {"fscks": got["fsck"]["fscks"]})  # fmt: skip
    assert got["reader"]["wrong"] == []
    assert got["fsck"]["false"] == []
    assert got["writer"]["writes"] > 0 and got["reader"]["loads"] > 0
    assert got["remover"]["removes"] > 0 and got["gc"]["gcs"] > 0 and got["fsck"]["fscks"] > 0
    with mg.open(path) as repo:
        assert repo.fsck().ok
        for name in repo.models():
            for v in repo.versions(name):
                assert consistent(repo.load(v.ref))
