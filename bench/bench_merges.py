"""What merges and prunes cost to store, against storing the same model standalone.

Merges of two real MiniLM fine-tunes (``sent-a``, ``topic-a`` of the reference zoo, on
``minilm``): a weighted average 0.3/0.7, task arithmetic ``base + 0.7 (a - base) + 0.4
(b - base)`` as torch computes both in float32, the same task arithmetic computed in
float64 and rounded (as a merge tool working in higher precision would), and a
bfloat16 weighted average. Each is added to a repository holding the base and both
fine-tunes, once with its parents declared (relation ``merge``) and once with none
(automatic bases), and once alone in an empty repository (standalone). Tensors the two
fine-tunes do not share (their task heads) are taken from ``sent-a``.

Prunes: the small zoo's ``base-pruned`` (50% of each weight matrix zeroed by
magnitude, then retrained with the mask), against its parent ``base``.

Run: ``python bench/bench_merges.py`` (``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

import modelgit as mg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_zoo import zoo_folder  # noqa: E402

StateDict = dict[str, torch.Tensor]


def _combine(
    fn: Callable[..., torch.Tensor], base: StateDict, a: StateDict, b: StateDict
) -> StateDict:
    out = {}
    for k, v in a.items():
        same = k in b and k in base and b[k].shape == v.shape and v.is_floating_point()
        out[k] = fn(base[k], v, b[k]) if same else v.clone()
    return out


def merges(base: StateDict, a: StateDict, b: StateDict) -> dict[str, StateDict]:
    bf = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in base.items()}
    af = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in a.items()}
    bb = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in b.items()}
    return {
        "weighted average 0.3/0.7": _combine(lambda z, x, y: 0.3 * x + 0.7 * y, base, a, b),
        "task arithmetic 0.7/0.4": _combine(
            lambda z, x, y: z + 0.7 * (x - z) + 0.4 * (y - z), base, a, b
        ),
        "task arithmetic in float64": _combine(
            lambda z, x, y: (z.double() + 0.7 * (x.double() - z) + 0.4 * (y.double() - z)).to(
                x.dtype
            ),
            base,
            a,
            b,
        ),
        "weighted average, bfloat16": _combine(lambda z, x, y: 0.3 * x + 0.7 * y, bf, af, bb),
    }


def _stored(repo: mg.Repository, ref: str) -> int:
    return next(m.stored_bytes for m in repo.stats().models if m.name == ref)


def standalone(sd: StateDict) -> int:
    with tempfile.TemporaryDirectory() as d:
        r = mg.init(Path(d) / "r")
        r.add("m", sd)
        size = _stored(r, "m")
        r.close()
    return size


def with_relatives(
    relatives: dict[str, StateDict], sd: StateDict, parents: list[str] | None
) -> tuple[int, list[str]]:
    with tempfile.TemporaryDirectory() as d:
        r = mg.init(Path(d) / "r")
        first = next(iter(relatives))
        for name, rel in relatives.items():
            r.add(name, rel, parents=None if name == first else first)
        r.add(
            "new",
            sd,
            parents=parents,
            relation="merge" if parents and len(parents) > 1 else "prune",
        )
        got = _stored(r, "new"), sorted({v.model for v in r.storage_bases("new")})
        back = r.load("new")
        assert all(torch.equal(back[k].view(torch.uint8), sd[k].contiguous().view(torch.uint8))
                   for k in sd), "not bit-exact"  # fmt: skip
        r.close()
    return got


def _bf16(sd: StateDict) -> StateDict:
    return {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in sd.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--steps", type=int, default=50, help="fine-tune steps if the zoo is built")
    args = ap.parse_args(argv)
    rows = []
    mz = zoo_folder("minilm", args.steps)
    base, a, b = (load_file(mz / f"{n}.safetensors") for n in ("minilm", "sent-a", "topic-a"))
    for label, sd in merges(base, a, b).items():
        rel = {"minilm": base, "sent-a": a, "topic-a": b}
        if "bfloat16" in label:
            rel = {k: _bf16(v) for k, v in rel.items()}
        alone = standalone(sd)
        declared, bases_d = with_relatives(rel, sd, ["sent-a", "topic-a"])
        auto, bases_a = with_relatives(rel, sd, None)
        rows.append({"case": label, "standalone": alone, "declared": declared,
                     "auto": auto, "auto_bases": bases_a})  # fmt: skip
    sz = zoo_folder("small", args.steps)
    sbase = load_file(sz / "base.safetensors")
    pruned = load_file(sz / "base-pruned.safetensors")
    for label, sd in (("small zoo base-pruned (pruned 50%, retrained)", pruned),):
        alone = standalone(sd)
        declared, _ = with_relatives({"base": sbase}, sd, ["base"])
        auto, bases_a = with_relatives({"base": sbase}, sd, None)
        rows.append({"case": label, "standalone": alone, "declared": declared,
                     "auto": auto, "auto_bases": bases_a})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| model | standalone | parents declared | share | no parents (auto) | share |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        s = r["standalone"]
        print(f"| {r['case']} | {s:,} | {r['declared']:,} | {100 * r['declared'] / s:.1f}% "
              f"| {r['auto']:,} | {100 * r['auto'] / s:.1f}% |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
