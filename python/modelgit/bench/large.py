"""Large-model checks: synthetic sharded checkpoints and bounded-memory phases.

``write_checkpoint`` writes a Hugging Face style sharded bf16 checkpoint of any size
(``model-0000i-of-0000N.safetensors`` + ``model.safetensors.index.json``) piece by
piece, never holding more than one piece; with ``parent_seed=`` it writes a fine-tuned
sibling (the parent's weights plus small noise on every element, rounded to bf16).
``folder_hashes`` checks an export against the hashes the writer returned.

``run_phase`` runs one operation (add, export, load) in a fresh Python process and
reports its peak RSS (``VmHWM`` of /proc/self/status: ``getrusage``'s ru_maxrss would
include the parent's pages the child inherited at fork), the RSS it started from after
imports, its wall time and throughput. Used by ``bench/bench_large.py`` (32 GiB) and
by the CI test ``tests/test_repository_large.py`` (2 GiB, 256 MiB budget).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xxhash

__all__ = [
    "Layout",
    "PhaseResult",
    "folder_hashes",
    "layout_for",
    "run_phase",
    "write_checkpoint",
]

PIECE = 1 << 24  # elements generated at a time


@dataclass(frozen=True)
class Layout:
    """Tensors of a transformer-shaped model: (name, shape) in order, bf16."""

    tensors: list[tuple[str, tuple[int, ...]]]

    @property
    def nbytes(self) -> int:
        return sum(2 * int(np.prod(s)) for _, s in self.tensors)


def layout_for(total_bytes: int, hidden: int = 4096) -> Layout:
    """Layers of attention (4 h x h) and MLP (3 h x 2.75h) weights, plus norms and an
    embedding, until about ``total_bytes`` of bf16 are reached."""
    inter = hidden * 11 // 4
    tensors: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (8192, hidden))]
    layer = 0
    while True:
        block = [
            (f"model.layers.{layer}.self_attn.{p}_proj.weight", (hidden, hidden))
            for p in ("q", "k", "v", "o")
        ]
        block += [
            (f"model.layers.{layer}.mlp.gate_proj.weight", (inter, hidden)),
            (f"model.layers.{layer}.mlp.up_proj.weight", (inter, hidden)),
            (f"model.layers.{layer}.mlp.down_proj.weight", (hidden, inter)),
            (f"model.layers.{layer}.input_layernorm.weight", (hidden,)),
        ]
        size = Layout(tensors + block).nbytes
        if size > total_bytes and layer > 0:
            break
        tensors += block
        layer += 1
        if size >= total_bytes:
            break
    tensors.append(("model.norm.weight", (hidden,)))
    return Layout(tensors)


def _plan(layout: Layout, shard_bytes: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    used = 0
    for name, shape in layout.tensors:
        n = 2 * int(np.prod(shape))
        if shards[-1] and used + n > shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append((name, shape))
        used += n
    return shards


def write_checkpoint(
    folder: Path,
    layout: Layout,
    shard_bytes: int,
    seed: int = 0,
    parent_seed: int | None = None,
    noise: float = 1e-3,
) -> dict[str, str]:
    """Write a sharded bf16 checkpoint into ``folder`` and return the XXH3-128 of each
    tensor's bytes. With ``parent_seed``, write a fine-tuned sibling of the checkpoint
    that ``seed=parent_seed`` gives: its weights regenerated piece by piece (the parent
    need not be on disk) plus noise of ``noise`` times their scale, rounded to bf16."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed if parent_seed is None else parent_seed)
    tune = None if parent_seed is None else torch.Generator().manual_seed(seed)
    shards = _plan(layout, shard_bytes)
    count = len(shards)
    names = [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
    weight_map: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for shard, fname in zip(shards, names, strict=True):
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, shape in shard:
            n = 2 * int(np.prod(shape))
            header[name] = {
                "dtype": "BF16",
                "shape": list(shape),
                "data_offsets": [offset, offset + n],
            }
            offset += n
            weight_map[name] = fname
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(folder / fname, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for name, shape in shard:
                h = xxhash.xxh3_128()
                left = int(np.prod(shape))
                scale = 1.0 / float(np.sqrt(shape[-1])) if len(shape) > 1 else 1.0
                while left:
                    n = min(left, PIECE)
                    x = torch.randn(n, generator=gen).mul_(scale).to(torch.bfloat16)
                    if tune is not None:
                        d = torch.randn(n, generator=tune).mul_(noise * scale)
                        x = d.add_(x.float()).to(torch.bfloat16)
                    data = x.view(torch.int16).numpy().tobytes()
                    h.update(data)
                    f.write(data)
                    left -= n
                hashes[name] = h.hexdigest()
    index = {"metadata": {"total_size": layout.nbytes}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(json.dumps({"model_type": "synthetic"}))
    return hashes


def folder_hashes(folder: Path, piece: int = 1 << 26) -> dict[str, str]:
    """XXH3-128 of each tensor's bytes in a safetensors folder (sharded or not), read a
    piece at a time."""
    from ..formats.safetensors_io import SafetensorsFile, iter_shards

    out: dict[str, str] = {}
    for p in iter_shards(folder):
        with SafetensorsFile(p) as f:
            for e in f.entries:
                h = xxhash.xxh3_128()
                view = f.view(e)
                for s in range(0, len(view), piece):
                    h.update(view[s : s + piece])
                out[e.name] = h.hexdigest()
                del view
    return out


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    seconds: float
    nbytes: int
    peak_rss: int
    start_rss: int

    @property
    def gbps(self) -> float:
        return self.nbytes / self.seconds / 1e9 if self.seconds else float("inf")

    @property
    def peak_over_start(self) -> int:
        return self.peak_rss - self.start_rss


_CHILD = r"""
import json, sys, time
import modelgit as mg

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no " + key + " in /proc/self/status")

def rss():
    return status("VmRSS")

args = json.loads(sys.argv[1])
repo = mg.open(args["repo"], memory_budget=args["budget"])
start = rss()
t0 = time.perf_counter()
op = args["op"]
if op == "add":
    v = repo.add(args["name"], args["src"], parents=args.get("parent"))
    n = v.logical_bytes
elif op == "add_memory":
    from safetensors.torch import load_file
    from modelgit.safetensors_io import iter_shards
    from pathlib import Path
    sd = {}
    for p in iter_shards(Path(args["src"])):
        sd.update({k: t.clone() for k, t in load_file(p).items()})
    start = rss()
    t0 = time.perf_counter()
    v = repo.add(args["name"], sd, parents=args.get("parent"))
    n = v.logical_bytes
elif op == "export":
    repo.export(args["name"], args["dest"], max_shard_size=args.get("shard"))
    n = repo.version(args["name"]).logical_bytes
elif op == "export_memory":
    import os
    from pathlib import Path
    from safetensors.torch import save_file
    sd = repo.load(args["name"])
    Path(args["dest"]).mkdir(parents=True, exist_ok=True)
    out = os.path.join(args["dest"], "model.safetensors")
    save_file(sd, out)
    fd = os.open(out, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    n = repo.version(args["name"]).logical_bytes
elif op == "load":
    sd = repo.load(args["name"])
    n = sum(t.numel() * t.element_size() for t in sd.values())
else:
    raise SystemExit("unknown op " + op)
seconds = time.perf_counter() - t0
# VmHWM: the high-water mark of this process image. (getrusage's ru_maxrss would also
# count the parent's pages this process inherited at fork, before exec.)
peak = status("VmHWM")
repo.close()
print(json.dumps({"seconds": seconds, "nbytes": n, "peak": peak, "start": start}))
"""


def run_phase(phase: str, budget: str | int, **args: object) -> PhaseResult:
    """Run one operation (``op`` in args: add, add_memory, export, export_memory (load
    into memory, then safetensors ``save_file`` + fsync), load) in a new
    process against ``args['repo']`` and return its measurements."""
    payload = json.dumps({**args, "budget": budget})
    env = dict(os.environ, MODELGIT_PROGRESS="0")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, payload], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{out.stderr[-4000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return PhaseResult(phase, r["seconds"], r["nbytes"], r["peak"], r["start"])
