"""What lineage inference keeps of each model, and the pairwise signals computed from it.

A model is read once (``sketch_model``) into a :class:`ModelSketch`:

- per floating-point tensor, keyed by ``(name, shape)``: a CountSketch
  (``modelgit._core.sketch``: ``max(k, 4 sqrt(n))`` float64 sums for ``n`` elements, so a
  model's distances are estimated to a few percent however few its tensors), the
  squared norm (float64 sums), the count of exact zeros, the dtype and its precision;
- per row of every tensor (a 1-D tensor is one row): a 32-bit hash of the row's bits,
  so two models can tell which rows they hold *bit for bit* (frozen layers, embedding
  rows of tokens a fine-tune never saw, the weights a LoRA left alone);
- a fixed sample of elements per tensor (the same positions in every model with that
  tensor: ``2 sqrt(n)`` of ``n``, at least 16), as float64: enough to tell whether one
  model is an exact cast of another and to compare a pruned model with a dense one on
  the weights it kept;
- the names its metadata gives for its base model(s): safetensors ``__metadata__``
  (``base_model``, ``base_model_name_or_path``, ``parent``, ``_name_or_path`` ...),
  ``config.json``'s ``_name_or_path``, ``adapter_config.json``'s
  ``base_model_name_or_path``, and a README front matter's ``base_model:`` (one name or
  a list) with ``base_model_relation:``.

``structural_divergence`` is the divergence of the structural diff (layers aligned by
content and name), offered to inference as one more pairwise signal; inference does not
weigh it yet.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._native import _core
from ..formats.sources import open_model
from ..versions.structure import divergence

__all__ = [
    "ModelSketch",
    "sketch_model",
    "metadata_refs",
    "matches",
    "is_cast",
    "masked_distance",
    "mask_fit",
    "identity_share",
    "structural_divergence",
]

_PRECISION_BITS = {
    "float64": 53,
    "float32": 24,
    "bfloat16": 8,
    "float16": 11,
    "float8_e4m3fn": 4,
    "float8_e5m2": 3,
}
_SKETCHABLE = set(_PRECISION_BITS) - {"float8_e4m3fn", "float8_e5m2"}
_META_KEYS = ("base_model", "base_model_name_or_path", "base_models", "parent", "parents",
              "finetuned_from", "_name_or_path")  # fmt: skip
_RELATIONS = {"finetune": "finetune", "adapter": "finetune", "quantized": "cast",
              "merge": "merge", "cast": "cast", "prune": "prune", "version": "version"}  # fmt: skip


@dataclass
class ModelSketch:
    """What inference keeps of one model: a few numbers per tensor (see the module
    docstring); the lists run parallel to ``keys``."""

    name: str
    keys: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    sketches: list[np.ndarray] = field(default_factory=list)  # k float64 each
    norm2: list[float] = field(default_factory=list)
    zeros: list[int] = field(default_factory=list)
    numel: list[int] = field(default_factory=list)
    bits: list[int] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)  # uint32 hash per row
    samples: list[np.ndarray] = field(default_factory=list)  # float64 at _positions()
    refs: list[str] = field(default_factory=list)  # base model names its metadata gives
    relation: str | None = None  # the relation its metadata gives, if any
    aliases: set[str] = field(default_factory=set)  # names others may call it by

    @property
    def signature(self) -> tuple:
        return tuple(self.keys)


def sketch_model(
    name: str,
    model: Any,
    k: int = 64,
    threads: int = 0,
    files: dict[str, bytes] | None = None,
    follow_symlinks: bool = False,
) -> ModelSketch:
    """Summarise one model (state_dict, nn.Module, .safetensors file or folder).
    ``files``: side files (``config.json``, ``README.md`` ...) when they do not come
    with the model itself (a folder brings its own)."""
    out = ModelSketch(name)
    out.aliases = {_norm(name)}
    if isinstance(model, (str, os.PathLike)):
        p = Path(model)
        out.aliases |= {_norm(p.stem if p.suffix == ".safetensors" else p.name)}
    with open_model(model, follow_symlinks) as source:
        for t in source.tensors:
            if t.tie is not None or t.dtype.name not in _SKETCHABLE:
                continue
            n = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
            if n == 0:
                continue
            view = t.view()[:]
            width = min(n, max(k, 4 * math.isqrt(n)))
            sk = np.frombuffer(_core.sketch(view, t.dtype.name, k=width, threads=threads),
                               np.float64)  # fmt: skip
            x = _as_float(view, t.dtype.name)
            out.keys.append((t.name, tuple(t.shape)))
            out.sketches.append(sk)
            out.norm2.append(_norm2(x))
            out.zeros.append(int(n - np.count_nonzero(x)))
            out.numel.append(n)
            out.bits.append(_PRECISION_BITS[t.dtype.name])
            out.dtypes.append(t.dtype.name)
            out.rows.append(_row_hashes(view, t.dtype.size, tuple(t.shape)))
            out.samples.append(x[_positions(n)].astype(np.float64))
        refs, relation = metadata_refs(source.metadata, {**(files or {}), **source.files})
    out.refs = [r for r in refs if not matches(r, out.aliases)]
    out.relation = relation
    return out


def _as_float(view: memoryview, dtype: str) -> np.ndarray:
    """The elements of a float tensor as float32 (float64 for float64), read-only views."""
    if dtype == "bfloat16":
        u = np.frombuffer(view, np.uint16).astype(np.uint32) << 16
        return u.view(np.float32)
    if dtype == "float16":
        return np.frombuffer(view, np.float16).astype(np.float32)
    return np.frombuffer(view, np.float64 if dtype == "float64" else np.float32)


def _norm2(x: np.ndarray) -> float:
    """Sum of squares in float64 (in blocks: no full float64 copy), non-finite skipped."""
    total = 0.0
    for i in range(0, x.size, 1 << 20):
        c = x[i : i + (1 << 20)].astype(np.float64)
        s = float(c @ c)
        if not math.isfinite(s):
            c = c[np.isfinite(c)]
            s = float(c @ c)
        total += s
    return total


@functools.lru_cache(maxsize=4096)
def _positions(n: int) -> np.ndarray:
    """The sampled element positions of a tensor of ``n`` elements (a function of ``n``
    only, so every model with that tensor is sampled at the same places)."""
    count = min(n, max(16, int(2 * math.sqrt(n))))
    if count == n:
        return np.arange(n)
    rng = np.random.default_rng(n)
    return np.unique(rng.integers(0, n, count))


@functools.lru_cache(maxsize=1024)
def _coefficients(cols: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"rows/{cols}".encode()))
    return rng.integers(0, 2**32, cols, dtype=np.uint64).astype(np.uint32) | np.uint32(1)


def _row_hashes(view: memoryview, itemsize: int, shape: tuple[int, ...]) -> np.ndarray:
    """A 32-bit hash of the bits of each row (``sum(word_i * c_i) mod 2**32``)."""
    words = np.frombuffer(view, np.uint16).astype(np.uint32) if itemsize == 2 else (
        np.frombuffer(view, np.uint32))  # fmt: skip
    rows = shape[0] if len(shape) >= 2 else 1
    w = words.reshape(rows, -1)
    coef = _coefficients(w.shape[1])
    out = np.empty(rows, np.uint32)
    step = max(1, (1 << 18) // w.shape[1])
    for i in range(0, rows, step):
        out[i : i + step] = (w[i : i + step] * coef).sum(axis=1, dtype=np.uint32)
    return out


# -- metadata --------------------------------------------------------------------------
def _norm(name: str) -> str:
    return name.strip().rstrip("/").lower()


def matches(ref: str, aliases: set[str]) -> bool:
    """Whether the model reference ``ref`` (``org/name``, a path, a bare name) names a
    model known by ``aliases``: the whole reference or its last path component."""
    r = _norm(ref)
    if not r:
        return False
    tail = re.split(r"[/\\]", r)[-1]
    return (
        r in aliases or tail in aliases or any(re.split(r"[/\\]", a)[-1] == tail for a in aliases)
    )


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        v = value.strip()
        if v.startswith("["):
            try:
                return _names(json.loads(v))
            except ValueError:
                v = v.strip("[]")
        return [s.strip().strip("'\"") for s in v.split(",") if s.strip().strip("'\"")]
    if isinstance(value, (list, tuple)):
        return [s for x in value for s in _names(x)]
    return []


def _front_matter(text: str) -> dict[str, Any]:
    """``base_model`` and ``base_model_relation`` of a README's YAML front matter (a
    minimal reader: ``key: value``, ``key: [a, b]`` and ``key:`` followed by ``- item``)."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    out: dict[str, Any] = {}
    key = None
    for line in lines[1:]:
        if line.strip() in ("---", "..."):
            break
        m = re.match(r"^([A-Za-z_][\w-]*):\s*(.*)$", line)
        if m:
            key, value = m.group(1), m.group(2).split(" #")[0].strip()
            out[key] = value if value else []
        elif key is not None and isinstance(out.get(key), list):
            item = re.match(r"^\s*-\s*(.+)$", line)
            if item:
                out[key].append(item.group(1).strip())
    return out


def metadata_refs(
    metadata: dict[str, str], files: dict[str, bytes]
) -> tuple[list[str], str | None]:
    """The base model names and the relation that a model's metadata and side files
    declare (``([], None)`` when they declare none)."""
    refs: list[str] = []
    relation = None
    for key in _META_KEYS:
        if key in metadata:
            refs += _names(metadata[key])
    relation = metadata.get("base_model_relation") or metadata.get("relation")
    for fname, key in (("config.json", "_name_or_path"),
                       ("adapter_config.json", "base_model_name_or_path")):  # fmt: skip
        if fname in files:
            try:
                cfg = json.loads(files[fname])
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(cfg, dict):
                refs += _names(cfg.get(key))
    if "README.md" in files:
        fm = _front_matter(files["README.md"].decode("utf-8", "replace"))
        refs += _names(fm.get("base_model"))
        if isinstance(fm.get("base_model_relation"), str):
            relation = fm["base_model_relation"]
    seen: list[str] = []
    for r in refs:
        if r not in seen:
            seen.append(r)
    rel = _RELATIONS.get(str(relation).strip().lower()) if relation else None
    return seen, rel


# -- pairwise signals from two sketches --------------------------------------------------
def _decode(words: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (words.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return words.view(np.float16).astype(np.float64)


def _cast_samples(x: np.ndarray, dtype: str) -> np.ndarray:
    """Samples (float64 holding the source values) cast to ``dtype`` as torch does
    (through float32, round to nearest even), back as float64."""
    f = x.astype(np.float32)
    if dtype in ("float32", "float64"):
        return f.astype(np.float64)
    return _decode(np.frombuffer(_core.cast(f, "float32", dtype), np.uint16), dtype)


def is_cast(a: ModelSketch, b: ModelSketch, shared: list[tuple[int, int]]) -> bool:
    """Whether ``b`` is ``a`` cast to a lower precision (at least one tensor narrower, and
    every sampled element of the shared tensors equal to ``a``'s, cast to ``b``'s dtype)."""
    narrower = False
    same = total = 0
    for i, j in shared:
        da, db = a.dtypes[i], b.dtypes[j]
        if _PRECISION_BITS[db] > _PRECISION_BITS[da]:
            return False
        narrower |= _PRECISION_BITS[db] < _PRECISION_BITS[da]
        xa, xb = a.samples[i], b.samples[j]
        ca = xa if da == db else _cast_samples(xa, db)
        ok = (ca == xb) | (np.isnan(ca) & np.isnan(xb))
        same += int(np.count_nonzero(ok))
        total += ok.size
    return narrower and total > 0 and same >= 0.999 * total


def masked_distance(a: ModelSketch, b: ModelSketch, shared: list[tuple[int, int]]) -> float:
    """Relative distance of ``a`` and ``b`` on the sampled elements that ``b`` (the
    sparser) kept non-zero: a pruned model compared with a dense one on what it kept."""
    d2 = n2 = 0.0
    for i, j in shared:
        xa, xb = a.samples[i], b.samples[j]
        w = a.numel[i] / xa.size  # each sample stands for this many elements
        keep = (xb != 0) & np.isfinite(xa) & np.isfinite(xb)
        xa, xb = xa[keep], xb[keep]
        d2 += w * float(np.sum((xa - xb) ** 2))
        n2 += w * float(np.sum(xa * xa + xb * xb)) / 2
    return math.sqrt(d2 / n2) if n2 > 0 else math.inf


def mask_fit(a: ModelSketch, b: ModelSketch, shared: list[tuple[int, int]]) -> float:
    """How well ``a``'s magnitudes explain where ``b`` has zeros: over the shared tensors
    where ``b`` has both zeros and non-zeros among the sampled elements, the fraction of
    (zero, kept) sample pairs where ``a``'s magnitude is smaller at the zero. 1.0: ``b``
    is a magnitude pruning of ``a`` exactly (its retraining does not move the zeros);
    about 0.5 for any unrelated mask."""
    good = total = 0.0
    for i, j in shared:
        xa, xb = np.abs(a.samples[i]), b.samples[j]
        zero = xb == 0
        nz = int(np.count_nonzero(zero))
        if nz == 0 or nz == zero.size:
            continue
        kept = np.sort(xa[~zero])
        below = np.searchsorted(kept, xa[zero], side="left")  # kept values under each zero
        good += float(nz * kept.size - below.sum())
        total += float(nz * kept.size)
    return good / total if total else 0.5


def identity_share(a: ModelSketch, b: ModelSketch, shared: list[tuple[int, int]]) -> float:
    """Fraction of the elements of same-dtype shared tensors that lie in rows ``a`` and
    ``b`` hold bit for bit (NaN when no shared tensor has the same dtype)."""
    same = total = 0
    for i, j in shared:
        if a.dtypes[i] != b.dtypes[j]:
            continue
        ra, rb = a.rows[i], b.rows[j]
        per_row = a.numel[i] // max(1, ra.size)
        same += int(np.count_nonzero(ra == rb)) * per_row
        total += a.numel[i]
    return same / total if total else math.nan


def structural_divergence(a: object, b: object, *, values: bool = True) -> float:
    """The divergence of the structural diff of two models (``versions/structure.py``),
    in [0, 1]: the parameter-weighted share of what they do not hold in common once
    their layers are aligned by content and by name (renamed layers and shifted blocks
    count as shared; a changed tensor counts by its relative L2 difference, capped at 1).
    ``a`` and ``b`` are anything ``structure_diff`` takes. A signal for inference to
    weigh; ``infer_lineage`` does not use it yet."""
    return divergence(a, b, values=values)
