"""Predictors for Adam's moments between training checkpoints (issue #22): does a delta in
the log domain, or a decay-aware scale, code ``exp_avg_sq`` smaller than the delta the
writer uses today?

All-MiniLM-L6-v2 with a classification head is fine-tuned on CPU with AdamW (the setup of
``bench_checkpoints.py``); the optimizer state is kept every ``--every`` steps. Each
moment tensor of checkpoint k is then coded against checkpoint k-1 in chunks of 2^18
elements (the writer's chunk size) with the core's byte planes and entropy stage, losslessly:

* ``standalone``: no base (byte planes, rotated);
* ``xor``: the XOR of the bit patterns (what BitX does);
* ``osub`` (what the writer uses for floats): the difference of order-preserving bit
  patterns, zig-zagged. For positive floats the bit pattern is a piecewise-linear
  approximation of 2^23 log2(x), so this IS a delta in the log domain, exact;
* ``log-median``: ``osub`` against the previous state scaled by exp(median log(new/old))
  of the chunk (one float per chunk): the log delta with its drift removed;
* ``adam-decay``: ``osub`` against beta^k times the previous state (beta2 for
  ``exp_avg_sq``, beta1 for ``exp_avg``; k the steps between checkpoints), the decay Adam
  applies when no new gradient arrives.

Every coding is decoded and compared bit for bit. Prints stored bytes per moment and
predictor, and the ratio against ``osub``.

Run: ``python bench/bench_optimizer_predictors.py [--steps 60] [--every 20]``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from modelgit._native import _core
from modelgit.codec import decode_into, lossless, predict
from modelgit.dtypes import by_name
from modelgit.storage.writer import DEFAULT_CHUNK_ELEMS
from modelgit.zoo import minilm

F32 = by_name("float32")
PREDICTORS = ("standalone", "xor", "osub", "log-median", "adam-decay")


def train(steps: int, every: int) -> tuple[list[dict[str, list[torch.Tensor]]], tuple]:
    """The moments (``exp_avg``, ``exp_avg_sq``: one list of tensors each) at every
    ``every`` steps, and AdamW's betas."""
    task = "sentiment"
    sd = dict(minilm.load_base()) | minilm._head_init(task)
    torch.manual_seed(0)
    model = minilm._classifier(sd)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    ids, mask, labels = minilm._encoded(task, "train")
    g = torch.Generator().manual_seed(0)
    states = []
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(len(ids), (minilm.BATCH,), generator=g)
        width = int(mask[idx].sum(1).max())
        logits = model(ids[idx, :width], mask[idx, :width])
        loss = torch.nn.functional.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0:
            st = opt.state_dict()["state"]
            states.append(
                {
                    m: [st[k][m].detach().clone().reshape(-1) for k in sorted(st)]
                    for m in ("exp_avg", "exp_avg_sq")
                }  # fmt: skip
            )
    return states, opt.param_groups[0]["betas"]


def _chunks(t: torch.Tensor):
    a = t.numpy()
    for i in range(0, len(a), DEFAULT_CHUNK_ELEMS):
        yield np.ascontiguousarray(a[i : i + DEFAULT_CHUNK_ELEMS])


def _scaled(prev: np.ndarray, c: float) -> np.ndarray:
    return (prev.astype(np.float64) * c).astype(np.float32)


def _log_median(new: np.ndarray, prev: np.ndarray) -> float:
    ok = (new > 0) & (prev > 0) & np.isfinite(new) & np.isfinite(prev)
    if not ok.any():
        return 1.0
    return float(np.exp(np.median(np.log(new[ok].astype(np.float64) / prev[ok]))))


def code(new: np.ndarray, prev: np.ndarray, how: str, decay: float) -> int:
    """Stored bytes of ``new`` coded ``how`` against ``prev``; the round trip is checked."""
    data = memoryview(new.view(np.uint8))
    if how == "standalone":
        enc = lossless.encode_standalone(data, 4, True)
        base = None
    else:
        if how == "xor":
            base, delta = prev, _core.DELTA_XOR
        elif how == "osub":
            base, delta = prev, _core.DELTA_OSUB
        elif how == "log-median":
            base, delta = _scaled(prev, _log_median(new, prev)), _core.DELTA_OSUB
        else:
            base, delta = _scaled(prev, decay), _core.DELTA_OSUB
        enc = lossless.encode_predicted(
            data, F32, predict.IDENT, [memoryview(base.view(np.uint8))], [b"\0" * 16], F32,
            delta,
        )  # fmt: skip
    out = bytearray(len(data))
    bases = {b"\0" * 16: memoryview(base.view(np.uint8))} if base is not None else {}
    decode_into(enc.codec, enc.params, memoryview(enc.payload), memoryview(out), bases.__getitem__)
    if bytes(out) != bytes(data):
        raise RuntimeError(f"{how}: round trip failed")
    # a scale factor travels as one float64 per chunk
    return len(enc.payload) + (8 if how in ("log-median", "adam-decay") else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    states, (beta1, beta2) = train(args.steps, args.every)
    totals = {m: dict.fromkeys(PREDICTORS, 0) for m in ("exp_avg", "exp_avg_sq")}
    raw = dict.fromkeys(totals, 0)
    for prev_state, new_state in zip(states, states[1:], strict=False):
        for moment, tensors in new_state.items():
            decay = (beta1 if moment == "exp_avg" else beta2) ** args.every
            for new_t, prev_t in zip(tensors, prev_state[moment], strict=True):
                for new, prev in zip(_chunks(new_t), _chunks(prev_t), strict=True):
                    raw[moment] += new.nbytes
                    for how in PREDICTORS:
                        totals[moment][how] += code(new, prev, how, decay)
    if args.json:
        print(json.dumps({"raw": raw, "stored": totals, "steps": args.steps,
                          "every": args.every}, indent=1))  # fmt: skip
        return
    print(f"AdamW moments of MiniLM, checkpoint k against k-1 ({len(states) - 1} pairs, "
          f"every {args.every} steps)\n")  # fmt: skip
    print("| moment | predictor | stored bytes | vs raw | vs osub |")
    print("|---|---|---:|---:|---:|")
    for moment, row in totals.items():
        for how, n in row.items():
            print(f"| {moment} | {how} | {n:,} | {raw[moment] / n:.2f}x | "
                  f"{n / row['osub']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
