"""One writer of the concurrency test in tests/test_repository_team.py (run in its own process).

Adds two models of its own (derived from the shared ``base``) and commits two versions
of the shared model ``shared``. The test runs :func:`child` in processes forked by a
multiprocessing fork server (which imports torch once for all of them); by hand:
``python team_worker.py CATALOG_URL OBJECTS_URL ENDPOINT INDEX`` prints the refs.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import torch

import modelgit as mg


def state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(256, 256, generator=g),
        "b": torch.randn(256, generator=g).to(torch.bfloat16),
    }


def write(url: str, objects: str, endpoint: str, index: int) -> list[str]:
    """The writer's work; the refs of the versions it published."""
    opts = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"} if endpoint else None
    refs = []
    with mg.open(url, objects=objects, storage_options=opts) as repo:
        base = repo.load("base")
        for j in range(2):
            sd = {k: v.clone() for k, v in base.items()}
            sd["w"][index * 7 + j] += 1.0  # shares most chunks with base
            refs.append(repo.add(f"w{index}-{j}", sd, parents="base").ref)
        for j in range(2):
            refs.append(repo.commit("shared", state(1000 + 10 * index + j)).ref)
    return refs


def child(url: str, objects: str, endpoint: str, index: int, results: Any) -> None:
    """Process target: put (index, refs or None, traceback or None) on ``results``."""
    try:
        results.put((index, write(url, objects, endpoint, index), None))
    except BaseException:
        results.put((index, None, traceback.format_exc()))


if __name__ == "__main__":
    for ref in write(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])):
        print(ref)
