"""Storage strategies compared by the harness, one class each.

Every strategy stores a zoo model by model, parents first (:meth:`Strategy.encode_model`
returns the bytes that model adds to the store), and decodes any model on its own
(:meth:`Strategy.decode_model`, resolving parents and deduplicated tensors as it goes).
``encode(models)`` and ``decode(name)`` wrap both for direct use.

Baselines store in memory (no disk I/O is charged to them); modelgit writes a real
repository (chunks fsynced, catalog committed) into a temporary folder. Every
baseline that keeps an index is charged ``INDEX_BYTES + len(key)`` bytes per tensor
for it; the safetensors-based ones are charged their real header.

* ``safetensors`` — the files as they are (``save_file`` / ``load_file``).
* ``zstd-3`` — each model's safetensors file through zstd level 3.
* ``zipnn`` — ZipNN (0.5.0; later releases fail round trips) per tensor, with its dtype.
* ``bitx`` — ZipLLM's BitX: per-tensor dedup (XXH3-128), XOR of the bit patterns against
  the same-named tensor of the first parent (same shape and dtype), byte planes, zstd
  level 3 per plane; planes + zstd of the tensor itself otherwise.
* ``mgit`` — MGit's storage re-implemented (single-threaded numpy, as in MGit): per-tensor
  SHA-256 dedup against every stored tensor; a float tensor with a same-named,
  same-shaped, same-dtype tensor in the first parent is stored as
  ``q = floor((x - p) / s + 0.5)`` with ``s = 2 ln(1 + eps)``, eps = 1e-4 (the Delta-DNN
  quantizer MGit uses: |error| <= ln(1 + eps) ~ eps), int64, LZMA per tensor (preset 6),
  where ``p`` is the *decoded* parent; decoded as ``p + q * s`` in float32; other tensors
  are kept raw. MGit's test guard (accept a delta only if no test drops by more than 2%)
  is not applied: the harness reports the metric change instead.
* ``modelgit`` — modelgit lossless; ``modelgit-abs1e-4``, ``modelgit-rel1e-3``,
  ``modelgit-4bit`` (``-4bit-g128``): modelgit with ``mg.ErrorBound`` / ``mg.LowBit`` for
  every model that has a parent (roots are stored lossless, as MGit does).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import lzma
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xxhash
import zstandard

from .choices import DEFAULT_STRATEGIES, strategy_help
from .source import BenchModel, raw_view

__all__ = [
    "Strategy",
    "Safetensors",
    "Zstd",
    "ZipNN",
    "BitX",
    "MGit",
    "Modelgit",
    "DEFAULT_STRATEGIES",
    "make_strategy",
    "strategy_help",
]

INDEX_BYTES = 32  # per-tensor index entry of the in-memory baselines (plus the key)

StateDict = dict[str, torch.Tensor]


def _tensor_from_bytes(buf: Any, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    n = math.prod(shape)
    if n == 0:
        return torch.empty(shape, dtype=dtype)
    ba = buf if isinstance(buf, bytearray) else bytearray(buf)
    return torch.frombuffer(ba, dtype=torch.uint8).view(dtype).reshape(shape)


class Strategy:
    """A way to store a family of models. Subclasses fill in the four hooks."""

    name: str = "?"
    lossless: bool = True
    bound: float | None = None  # elementwise |error| bound it promises (lossy only)
    description: str = ""
    max_repeats: int | None = None  # cap on timed repeats (very slow baselines)

    # -- hooks ----------------------------------------------------------------------
    def setup(self, workdir: Path) -> None:
        """Start an empty store (``workdir`` is a fresh folder it may use)."""

    def encode_model(self, model: BenchModel, models: dict[str, BenchModel]) -> int | None:
        """Store ``model`` (its parents are stored already); return the bytes it adds,
        or None when :meth:`stored_bytes` reports them at the end."""
        raise NotImplementedError

    def decode_model(self, name: str) -> StateDict:
        raise NotImplementedError

    def stored_bytes(self) -> dict[str, int] | None:
        """Bytes added by each model, for strategies that only know them at the end."""
        return None

    def teardown(self) -> None:
        """Release the store."""

    def available(self) -> str | None:
        """None when it can run here, else why not."""
        return None

    # -- convenience ------------------------------------------------------------------
    def encode(self, models: list[BenchModel], workdir: Path | None = None) -> dict[str, int]:
        """Store ``models`` (parents first) into a new store; bytes added per model."""
        self._own_tmp = None
        if workdir is None:
            self._own_tmp = workdir = Path(tempfile.mkdtemp(prefix="modelgit-bench-"))
        self.setup(workdir)
        by_name = {m.name: m for m in models}
        sizes = {m.name: self.encode_model(m, by_name) for m in models}
        late = self.stored_bytes()
        return {k: (late[k] if v is None and late else v or 0) for k, v in sizes.items()}

    def decode(self, name: str) -> StateDict:
        return self.decode_model(name)

    def close(self) -> None:
        self.teardown()
        tmp = getattr(self, "_own_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            self._own_tmp = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# ----------------------------------------------------------------------------------------
# Per-model baselines
# ----------------------------------------------------------------------------------------


class Safetensors(Strategy):
    name = "safetensors"
    description = "raw .safetensors files (save_file / load_file)"

    def setup(self, workdir: Path) -> None:
        self.dir = workdir / "safetensors"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, Path] = {}

    def encode_model(self, model: BenchModel, models: dict[str, BenchModel]) -> int:
        from safetensors.torch import save_file

        path = self.dir / f"{len(self.files)}.safetensors"
        save_file(model.state, str(path))
        self.files[model.name] = path
        return path.stat().st_size

    def decode_model(self, name: str) -> StateDict:
        from safetensors.torch import load_file

        return load_file(str(self.files[name]))


class Zstd(Strategy):
    description = "each model's safetensors file through zstd"

    def __init__(self, level: int = 3) -> None:
        self.level = level
        self.name = f"zstd-{level}"

    def setup(self, workdir: Path) -> None:
        self.blobs: dict[str, bytes] = {}

    def encode_model(self, model: BenchModel, models: dict[str, BenchModel]) -> int:
        from safetensors.torch import save

        data = model.file_bytes if model.file_bytes is not None else save(model.state)
        blob = zstandard.ZstdCompressor(level=self.level).compress(data)
        self.blobs[model.name] = blob
        return len(blob)

    def decode_model(self, name: str) -> StateDict:
        from safetensors.torch import load

        return load(zstandard.ZstdDecompressor().decompress(self.blobs[name]))


_ZIPNN_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


class ZipNN(Strategy):
    """ZipNN per tensor (its dtype); ints and tensors under 64 bytes kept raw."""

    description = "ZipNN per tensor (lossless float coding)"

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        try:
            self.version = importlib.metadata.version("zipnn")
        except importlib.metadata.PackageNotFoundError:
            self.version = None
        self.name = f"zipnn-{self.version}" if self.version else "zipnn"

    def available(self) -> str | None:
        if self.version is None:
            return "zipnn is not installed (pip install zipnn==0.5.0)"
        return None

    def setup(self, workdir: Path) -> None:
        import warnings

        with warnings.catch_warnings():  # zipnn 0.5.0 uses torch.jit.script at import
            warnings.simplefilter("ignore", DeprecationWarning)
            from zipnn import ZipNN as _Z

        self._cls = _Z
        self.coders: dict[str, Any] = {}
        self.store: dict[str, list[tuple[str, torch.dtype, tuple, str | None, bytes]]] = {}

    def _coder(self, dt: str) -> Any:
        if dt not in self.coders:
            self.coders[dt] = self._cls(
                input_format="byte", bytearray_dtype=dt, threads=self.threads
            )
        return self.coders[dt]

    def encode_model(self, model: BenchModel, models: dict[str, BenchModel]) -> int:
        total = model.header_bytes
        recs = []
        for key, t in model.state.items():
            raw = raw_view(t).tobytes()
            dt = _ZIPNN_DTYPES.get(t.dtype)
            if dt is None or len(raw) < 64:
                recs.append((key, t.dtype, tuple(t.shape), None, raw))
                total += len(raw)
                continue
            comp = bytes(self._coder(dt).compress(raw))
            recs.append((key, t.dtype, tuple(t.shape), dt, comp))
            total += len(comp)
        self.store[model.name] = recs
        return total

    def decode_model(self, name: str) -> StateDict:
        out = {}
        for key, dtype, shape, dt, blob in self.store[name]:
            raw = blob if dt is None else self._coder(dt).decompress(blob)
            out[key] = _tensor_from_bytes(raw, dtype, shape)
        return out


# ----------------------------------------------------------------------------------------
# Lineage-aware baselines (tensor dedup + delta against the first parent)
# ----------------------------------------------------------------------------------------


class _TensorStore(Strategy):
    """Shared plumbing: records per (model, key); refs to dedup'd tensors; recursive decode."""

    def setup(self, workdir: Path) -> None:
        # model -> key -> (kind, dtype, shape, payload)
        self.records: dict[str, dict[str, tuple[str, torch.dtype, tuple, Any]]] = {}
        self.parent: dict[str, str | None] = {}
        self.seen: dict[bytes, tuple[str, str]] = {}

    def _first_parent(self, model: BenchModel) -> str | None:
        for p in model.parents:
            if p in self.records:
                return p
        return None

    def decode_model(self, name: str) -> StateDict:
        memo: dict[tuple[str, str], np.ndarray] = {}
        out = {}
        for key, (_, dtype, shape, _) in self.records[name].items():
            out[key] = _tensor_from_bytes(self._raw(name, key, memo), dtype, shape)
        return out

    def _raw(self, model: str, key: str, memo: dict) -> Any:
        """Decoded bytes of tensor ``key`` of ``model`` (decoding what it rests on)."""
        got = memo.get((model, key))
        if got is None:
            kind, dtype, shape, payload = self.records[model][key]
            if kind == "ref":
                got = self._raw(payload[0], payload[1], memo)
            else:
                got = self._decode_record(model, key, kind, dtype, shape, payload, memo)
            memo[(model, key)] = got
        return got

    def _decode_record(self, model, key, kind, dtype, shape, payload, memo) -> Any:
        raise NotImplementedError


class BitX(_TensorStore):
    name = "bitx"
    description = "ZipLLM BitX: tensor dedup + XOR vs parent + byte planes + zstd-3"

    def __init__(self, level: int = 3) -> None:
        self.level = level

    def setup(self, workdir: Path) -> None:
        super().setup(workdir)
        self.cctx = zstandard.ZstdCompressor(level=self.level)
        self.dctx = zstandard.ZstdDecompressor()

    def _planes(self, buf: Any, es: int) -> list[bytes]:
        m = len(buf) // es
        return [self.cctx.compress(memoryview(buf)[p * m : (p + 1) * m]) for p in range(es)]

    def encode_model(self, model: BenchModel, models: dict[str, BenchModel]) -> int:
        from .. import _core

        parent = self._first_parent(model)
        pstate = models[parent].state if parent else {}
        recs = {}
        total = 0
        for key, t in model.state.items():
            raw = raw_view(t)
            total += INDEX_BYTES + len(key.encode())
            h = xxhash.xxh3_128_digest(raw) + str(t.dtype).encode() + str(tuple(t.shape)).encode()
            hit = self.seen.get(h)
            if hit is not None:
                recs[key] = ("ref", t.dtype, tuple(t.shape), hit)
                continue
            self.seen[h] = (model.name, key)
            es = t.element_size()
            pt = pstate.get(key)
            if raw.size == 0:
                recs[key] = ("plain", t.dtype, tuple(t.shape), [])
            elif pt is not None and pt.dtype == t.dtype and pt.shape == t.shape:
                planes = _core.planes_encode(raw, es, base=raw_view(pt), delta=_core.DELTA_XOR)
                comp = self._planes(planes, es)
                recs[key] = ("xor", t.dtype, tuple(t.shape), comp)
                total += sum(len(c) for c in comp)
            else:
                comp = self._planes(_core.planes_encode(raw, es), es)
                recs[key] = ("plain", t.dtype, tuple(t.shape), comp)
                total += sum(len(c) for c in comp)
        self.records[model.name] = recs
        self.parent[model.name] = parent
        return total

    def _decode_record(self, model, key, kind, dtype, shape, payload, memo):
        from .. import _core

        if not payload:
            return b""
        es = torch.empty(0, dtype=dtype).element_size()
        planes = b"".join(self.dctx.decompress(c) for c in payload)
        if kind == "plain":
            return _core.planes_decode(planes, es)
        base = self._raw(self.parent[model], key, memo)
        return _core.planes_decode(planes, es, base=base, delta=_core.DELTA_XOR)


# bfloat16 <-> float32 in numpy (numpy has no bfloat16), round to nearest even.
def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def _f32_to_bf16(x: np.ndarray) -> np.ndarray:
    u = x.astype(np.float32).view(np.uint32)
    nan = np.isnan(x)
    r = ((u + np.uint32(0x7FFF) + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = (u[nan] >> 16).astype(np.uint16) | np.uint16(0x40)
    return r


_NP_FLOAT = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}


def _to_float(raw: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    if dtype == torch.bfloat16:
        return _bf16_to_f32(raw)
    return raw.view(_NP_FLOAT[dtype]).astype(np.float32, copy=False)


def _from_float(x: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    if dtype == torch.bfloat16:
        return _f32_to_bf16(x).view(np.uint8)
    return x.astype(_NP_FLOAT[dtype]).view(np.uint8)


class MGit(_TensorStore):
    """MGit's storage (Hao et al., ICML 2024), single-threaded numpy as in MGit."""

    name = "mgit"
    lossless = False
    description = "MGit: SHA-256 tensor dedup + delta quantized with step 2ln(1+eps), int64, LZMA"

    def __init__(self, eps: float = 1e-4, preset: int = 6) -> None:
        self.eps = eps
        self.preset = preset
        self.step = 2.0 * math.log(1.0 + eps)
        self.bound = math.log(1.0 + eps)  # half a step (before float32 rounding)

    def setup(self, workdir: Path) -> None:
        super().setup(workdir)
        self.decoded: dict[str, dict[str, np.ndarray]] = {}  # what decoding gives, for children

    def encode_model(self, model: BenchModel, models: dict[str, BenchModel]) -> int:
        parent = self._first_parent(model)
        pdec = self.decoded.get(parent, {}) if parent else {}
        recs = {}
        dec = {}
        total = 0
        step = np.float32(self.step)
        for key, t in model.state.items():
            raw = raw_view(t)
            total += INDEX_BYTES + len(key.encode())
            h = hashlib.sha256(raw).digest()
            hit = self.seen.get(h)
            if hit is not None:
                recs[key] = ("ref", t.dtype, tuple(t.shape), hit)
                dec[key] = self.decoded[hit[0]][hit[1]]
                continue
            self.seen[h] = (model.name, key)
            pt = models[parent].state.get(key) if parent else None
            if (
                pt is not None
                and (t.dtype in _NP_FLOAT or t.dtype == torch.bfloat16)
                and pt.dtype == t.dtype
                and pt.shape == t.shape
                and raw.size
            ):
                base = _to_float(pdec[key], t.dtype)
                delta = _to_float(raw, t.dtype) - base
                q = np.floor(delta / step + np.float32(0.5)).astype(np.int64)
                blob = lzma.compress(q.tobytes(), preset=self.preset)
                recs[key] = ("delta", t.dtype, tuple(t.shape), blob)
                dec[key] = _from_float(base + q.astype(np.float32) * step, t.dtype)
                total += len(blob)
            else:
                recs[key] = ("raw", t.dtype, tuple(t.shape), raw.tobytes())
                dec[key] = raw
                total += raw.size
        self.records[model.name] = recs
        self.parent[model.name] = parent
        self.decoded[model.name] = dec
        return total

    def _decode_record(self, model, key, kind, dtype, shape, payload, memo):
        if kind == "raw":
            return payload
        q = np.frombuffer(lzma.decompress(payload), dtype=np.int64)
        base = _to_float(np.frombuffer(self._raw(self.parent[model], key, memo), np.uint8), dtype)
        return _from_float(base + q.astype(np.float32) * np.float32(self.step), dtype)


# ----------------------------------------------------------------------------------------
# modelgit
# ----------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[/\\@:*?\"<>|\x00-\x1f\x7f]")


class Modelgit(Strategy):
    """modelgit itself: a fresh repository, ``repo.add`` parents first, ``repo.load``."""

    def __init__(self, tolerance: Any = None, name: str | None = None) -> None:
        from ..tolerance import ErrorBound, parse_tolerance

        self.tolerance = parse_tolerance(tolerance)
        self.lossless = self.tolerance is None
        if isinstance(self.tolerance, ErrorBound) and self.tolerance.abs is not None:
            self.bound = float(self.tolerance.abs)
        self.name = name or "modelgit" + ("" if self.lossless else f"[{self.tolerance}]")
        self.description = (
            "modelgit lossless" if self.lossless else f"modelgit, tolerance {self.tolerance}"
        )

    def setup(self, workdir: Path) -> None:
        import modelgit as mg

        root = workdir / "repo"
        if root.exists():
            shutil.rmtree(root)
        self.repo = mg.init(root)
        self.names: dict[str, str] = {}

    def _safe(self, name: str) -> str:
        safe = _UNSAFE.sub("_", name).strip(" .") or "model"
        base, i = safe, 1
        while safe in self.names.values():
            i += 1
            safe = f"{base}_{i}"
        return safe

    def encode_model(self, model: BenchModel, models: dict[str, BenchModel]) -> None:
        name = self.names[model.name] = self._safe(model.name)
        parents = [self.names[p] for p in model.parents if p in self.names]
        relation = model.relation or "finetune"
        if relation == "merge" and len(parents) < 2:
            relation = "finetune"
        self.repo.add(
            name,
            model.state,
            parents=parents or None,
            relation=relation,
            tolerance=self.tolerance if parents else None,
        )
        return None

    def stored_bytes(self) -> dict[str, int]:
        per = {m.name: m.stored_bytes for m in self.repo.stats().models}
        return {orig: per.get(safe, 0) for orig, safe in self.names.items()}

    def decode_model(self, name: str) -> StateDict:
        return self.repo.load(self.names[name])

    def teardown(self) -> None:
        repo = getattr(self, "repo", None)
        if repo is not None:
            repo.close()
            self.repo = None


# ----------------------------------------------------------------------------------------
# Names (DEFAULT_STRATEGIES and strategy_help live in choices.py)
# ----------------------------------------------------------------------------------------

_MG = re.compile(
    r"^modelgit(?:-(?:(?P<kind>abs|rel)(?P<bound>[0-9.eE+-]+)|(?P<bits>[1248])bit(?:-g(?P<group>\d+))?))?$"
)


def make_strategy(spec: str | Strategy) -> Strategy:
    """A strategy from its name: ``safetensors``, ``zstd-3`` (any level), ``zipnn``,
    ``bitx``, ``mgit`` (``mgit-eps1e-4``), ``modelgit``, ``modelgit-abs1e-4``,
    ``modelgit-rel1e-3``, ``modelgit-4bit``, ``modelgit-4bit-g128``."""
    from ..tolerance import ErrorBound, LowBit

    if isinstance(spec, Strategy):
        return spec
    s = spec.strip()
    if s == "safetensors":
        return Safetensors()
    if m := re.fullmatch(r"zstd(?:-(\d+))?", s):
        return Zstd(int(m.group(1) or 3))
    if s == "zipnn" or s.startswith("zipnn-"):
        return ZipNN()
    if s == "bitx":
        return BitX()
    if m := re.fullmatch(r"mgit(?:-eps([0-9.eE+-]+))?", s):
        eps = float(m.group(1)) if m.group(1) else 1e-4
        st = MGit(eps)
        if m.group(1):
            st.name = s
        return st
    if m := _MG.match(s):
        if m.group("kind"):
            v = float(m.group("bound"))
            tol = ErrorBound(abs=v) if m.group("kind") == "abs" else ErrorBound(rel=v)
        elif m.group("bits"):
            tol = LowBit(int(m.group("bits")), int(m.group("group") or 64))
        else:
            tol = None
        return Modelgit(tol, name=s)
    raise ValueError(f"unknown strategy {spec!r}; {strategy_help()}")
