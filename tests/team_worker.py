"""One writer of the concurrency test in tests/test_team.py (run as its own process).

Usage: python team_worker.py CATALOG_URL OBJECTS_URL ENDPOINT INDEX
Adds two models of its own (derived from the shared ``base``) and commits two versions
of the shared model ``shared``; prints one line per version it published.
"""

from __future__ import annotations

import sys

import torch

import modelgit as mg


def state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(256, 256, generator=g),
        "b": torch.randn(256, generator=g).to(torch.bfloat16),
    }


def main() -> None:
    url, objects, endpoint, index = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    opts = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"} if endpoint else None
    with mg.open(url, objects=objects, storage_options=opts) as repo:
        base = repo.load("base")
        for j in range(2):
            sd = {k: v.clone() for k, v in base.items()}
            sd["w"][index * 7 + j] += 1.0  # shares most chunks with base
            v = repo.add(f"w{index}-{j}", sd, parents="base", message=f"writer {index}")
            print(v.ref, flush=True)
        for j in range(2):
            v = repo.commit("shared", state(1000 + 10 * index + j), message=f"writer {index}")
            print(v.ref, flush=True)


if __name__ == "__main__":
    main()
