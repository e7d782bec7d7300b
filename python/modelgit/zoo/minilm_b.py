"""Variant "b" of the MiniLM zoo (``modelgit.zoo.minilm``, ``python -m modelgit.zoo
minilm-b OUT``): its hyperparameters. Another task mix and shape of lineage than the
original zoo, for measuring lineage inference on a zoo it was not developed on: an
intent family with a chain of three continued-training versions, a LoRA on other
projections, a cast of a mid-chain version, a 30%-pruned and retrained fine-tune and a
weighted (0.3/0.7) merge::

    minilm (the shipped weights, root)
     ├─ intent-a [finetune, lr 5e-5] ─ intent-a-v2 [version] ─┬─ intent-a-v3 [version]
     │                                                         └─ intent-a-v2-bf16 [cast]
     ├─ intent-b [finetune, lr 3e-5] ─ intent-b-pruned [prune: 30% per encoder matrix]
     ├─ topic-frozen [finetune, embeddings + layers 0-1 frozen]
     ├─ sent-x [finetune, lr 8e-5]
     └─ intent-lora [lora: rank 4 on key/value, merged]
    0.3 intent-a + 0.7 intent-b ─ intent-merge [merge: weighted average]

``build_minilm_zoo(out_dir, variant="b", seed=s)`` draws it with other random streams
(see ``modelgit.zoo.minilm``)."""

from __future__ import annotations

from typing import Any

__all__ = ["RUNS_B", "CAST_B", "PRUNE_B", "MERGE_B"]

RUNS_B: dict[str, dict[str, Any]] = {
    "intent-a": {"parent": "minilm", "task": "intent", "lr": 5e-5, "seed": 21},
    "intent-b": {"parent": "minilm", "task": "intent", "lr": 3e-5, "seed": 22},
    "topic-frozen": {"parent": "minilm", "task": "topic", "lr": 5e-5, "seed": 23,
                     "freeze_below": 2},
    "sent-x": {"parent": "minilm", "task": "sentiment", "lr": 8e-5, "seed": 24},
    "intent-a-v2": {"parent": "intent-a", "task": "intent", "lr": 3e-5, "seed": 25,
                    "relation": "version"},
    "intent-a-v3": {"parent": "intent-a-v2", "task": "intent", "lr": 2e-5, "seed": 26,
                    "relation": "version"},
    "intent-lora": {"parent": "minilm", "task": "intent", "lr": 1e-3, "seed": 27, "lora_rank": 4,
                    "lora_on": ["key", "value"], "relation": "lora"},
}  # fmt: skip
CAST_B = {"name": "intent-a-v2-bf16", "parent": "intent-a-v2", "dtype": "bfloat16"}
PRUNE_B = {"name": "intent-b-pruned", "parent": "intent-b", "task": "intent", "sparsity": 0.3,
           "lr": 3e-5, "seed": 28, "steps_fraction": 0.5}  # fmt: skip
MERGE_B = {"name": "intent-merge", "parents": ["intent-a", "intent-b"], "weight": 0.3,
           "task": "intent"}  # fmt: skip
