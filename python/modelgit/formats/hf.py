"""Hugging Face models from stored side files: a ``transformers`` model built from a
version's ``config.json``, ready for its weights (``Repository.load_model``).

``transformers`` is optional (``pip install "modelgit[hf]"``) and imported only here,
only when a model is built. The configuration goes through ``AutoConfig`` exactly as
``from_pretrained`` reads it (from a private temporary folder, never from the network);
the class is the architecture the config names (``architectures[0]``), else ``AutoModel``.
Code shipped with a model (``auto_map``, ``trust_remote_code``) is never run.

``config_modules`` builds the same model on the meta device (no weights are allocated)
to name the class of every module, for the structural diff; what it finds is cached
per config under ``$MODELGIT_CACHE/hf-modules`` (a JSON file, keyed by the config and
the transformers and torch versions), so reading it again imports neither.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import json
import os
import re
import tempfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import xxhash

from ..errors import UnsupportedInput

if TYPE_CHECKING:
    import torch

__all__ = [
    "HF_EXTRA_HINT",
    "CONFIG_FILE",
    "import_transformers",
    "build_model",
    "check_names",
    "config_modules",
    "no_disk_cache",
]

HF_EXTRA_HINT = 'install transformers with: pip install "modelgit[hf]"'
CONFIG_FILE = "config.json"


def import_transformers() -> ModuleType:
    """The ``transformers`` module, or UnsupportedInput naming the extra to install."""
    try:
        return importlib.import_module("transformers")
    except ImportError:
        raise UnsupportedInput(
            f"building a model needs the transformers package; {HF_EXTRA_HINT}"
        ) from None


def _config(transformers: ModuleType, raw: bytes, ref: str) -> Any:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise UnsupportedInput(f"the {CONFIG_FILE} stored with {ref} is not a JSON object")
    model_type = body.get("model_type")
    try:  # from the bytes themselves: no file written, no custom code ever run
        if not isinstance(model_type, str):
            raise ValueError("it names no model_type")
        return transformers.CONFIG_MAPPING[model_type].from_dict(body)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnsupportedInput(
            f"transformers cannot read the {CONFIG_FILE} stored with {ref} (model_type "
            f"{model_type!r}; custom code is never run): "
            f"{' '.join(str(exc).split())[:300]}"
        ) from None


def _model_class(transformers: ModuleType, config: Any) -> Any:
    """The class the config's ``architectures`` names, if transformers has it."""
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, str(name), None) if isinstance(name, str) else None
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
            return cls
    return None


def torch_dtype(dtype: object) -> torch.dtype:
    """``load_model``'s dtype: a torch.dtype, or its name (``"bfloat16"``,
    ``"torch.float16"``); UnsupportedInput for anything else."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        got = getattr(torch, dtype.removeprefix("torch."), None)
        if isinstance(got, torch.dtype) and got.is_floating_point:
            return got
    raise UnsupportedInput(
        f"dtype must be a floating torch.dtype or its name (torch.bfloat16, 'float16'), "
        f"not {dtype!r}"
    )


def build_model(files: Mapping[str, bytes], ref: str, dtype: torch.dtype | None) -> Any:
    """A freshly initialised ``transformers`` model of the architecture in ``files``'
    ``config.json`` (in ``dtype`` when given), in eval mode; its weights are to be
    loaded. UnsupportedInput when there is no config, or transformers is missing."""
    raw = files.get(CONFIG_FILE)
    if raw is None:
        raise UnsupportedInput(
            f"{ref} has no {CONFIG_FILE} among its side files, so there is no architecture "
            "to build: store the model from a Hugging Face folder, or give its config with "
            "files= (--files DIR); repo.load_into(module, ref) fills a model you built"
        )
    transformers = import_transformers()
    config = _config(transformers, raw, ref)
    cls = _model_class(transformers, config)
    try:
        model = cls(config) if cls is not None else transformers.AutoModel.from_config(config)
    except ValueError as exc:
        raise UnsupportedInput(
            f"transformers has no model class for the {CONFIG_FILE} of {ref}: "
            f"{' '.join(str(exc).split())[:300]}"
        ) from None
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def _patterns(model: Any, attr: str) -> list[re.Pattern[str]]:
    return [re.compile(p) for p in (getattr(model, attr, None) or []) if isinstance(p, str)]


def check_names(model: Any, stored: Collection[str], ref: str) -> None:
    """Check that the stored tensor names fit ``model``: every entry of its state_dict is
    stored, or shares its memory with one that is (tied weights such as ``lm_head``), or
    may be missing by the model's own rules; every stored tensor is in the state_dict,
    or is a buffer the model makes itself (``position_ids``), or may be ignored by its
    rules. UnsupportedInput names the first misfits."""
    targets = model.state_dict(keep_vars=True)
    buffers = {n for n, _ in model.named_buffers()}
    ignore_missing = _patterns(model, "_keys_to_ignore_on_load_missing")
    ignore_unexpected = _patterns(model, "_keys_to_ignore_on_load_unexpected")
    loaded = {targets[k].data_ptr() for k in stored if k in targets and targets[k].numel()}
    missing = [
        k
        for k, t in targets.items()
        if k not in stored
        and not (t.numel() and t.data_ptr() in loaded)
        and not any(p.search(k) for p in ignore_missing)
    ]
    unexpected = [
        k
        for k in stored
        if k not in targets and k not in buffers and not any(p.search(k) for p in ignore_unexpected)
    ]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise UnsupportedInput(
            f"the tensors of {ref} do not fit the {type(model).__name__} its {CONFIG_FILE} "
            f"describes: {'; '.join(parts)}; build the model yourself and use "
            "repo.load_into(module, ref, strict=False)"
        )


@dataclass(frozen=True)
class _Skeleton:
    """What a config's model is made of, without weights: module classes, state_dict
    keys (tied ones grouped), buffers and the model's own rules on missing keys."""

    types: dict[str, str]
    keys: dict[str, int]  # state_dict key -> group (keys of one tied tensor share it)
    buffers: frozenset[str]
    ignore_missing: tuple[re.Pattern[str], ...]
    ignore_unexpected: tuple[re.Pattern[str], ...]

    def misfit(self, stored: Collection[str]) -> str | None:
        stored = set(stored)
        groups = {self.keys[k] for k in stored if k in self.keys}
        missing = [
            k
            for k, g in self.keys.items()
            if k not in stored
            and g not in groups
            and not any(p.search(k) for p in self.ignore_missing)
        ]
        unexpected = [
            k
            for k in stored
            if k not in self.keys
            and k not in self.buffers
            and not any(p.search(k) for p in self.ignore_unexpected)
        ]
        if not missing and not unexpected:
            return None
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        return "; ".join(parts)


def _skeleton(module: Any, prefix: str, rules: Any) -> _Skeleton:
    def full(name: str) -> str:
        return f"{prefix}.{name}" if prefix and name else prefix or name

    groups: dict[int, int] = {}
    keys = {
        full(k): groups.setdefault(id(t), len(groups))
        for k, t in module.state_dict(keep_vars=True).items()
    }
    return _Skeleton(
        types={full(n): type(m).__name__ for n, m in module.named_modules(remove_duplicate=False)},
        keys=keys,
        buffers=frozenset(full(n) for n, _ in module.named_buffers()),
        ignore_missing=tuple(_patterns(rules, "_keys_to_ignore_on_load_missing")),
        ignore_unexpected=tuple(_patterns(rules, "_keys_to_ignore_on_load_unexpected")),
    )


@functools.lru_cache(maxsize=8)
def _skeletons(raw: bytes) -> tuple[_Skeleton, ...] | str:
    """The skeletons a config's tensors may be named after: the model itself, its base
    model (``bert.`` stripped) and the model under its base prefix; or why there are none.
    Cached per config, in memory (versions of a model share theirs) and on disk (so that
    a command need not import transformers to read them again)."""
    cached = _read_cache(raw)
    if cached is not None:
        return cached
    import torch

    try:
        transformers = import_transformers()
        config = _config(transformers, raw, "this model")
    except UnsupportedInput as exc:
        return str(exc)
    cls = _model_class(transformers, config)
    try:
        with torch.device("meta"):
            model = cls(config) if cls is not None else transformers.AutoModel.from_config(config)
    except Exception as exc:  # noqa: BLE001 - any failure of foreign code: no tree from it
        return f"transformers cannot build its model: {' '.join(str(exc).split())[:200]}"
    out = [_skeleton(model, "", model)]
    prefix = getattr(model, "base_model_prefix", "") or ""
    base = getattr(model, prefix, None) if prefix else None
    if base is not None and base is not model:
        out.append(_skeleton(base, "", model))
    elif prefix:
        out.append(_skeleton(model, prefix, model))
    _write_cache(raw, out)
    return tuple(out)


_DISK_CACHE = contextvars.ContextVar("modelgit_hf_disk_cache", default=True)


@contextlib.contextmanager
def no_disk_cache() -> Iterator[None]:
    """Within this block (in this thread), the module trees of configs are neither read
    from nor written to the disk cache: for callers that must touch no file outside
    their repository, such as ``modelgit serve``."""
    token = _DISK_CACHE.set(False)
    try:
        yield
    finally:
        _DISK_CACHE.reset(token)


def _cache_file(raw: bytes) -> Path | None:
    """``$MODELGIT_CACHE/hf-modules/KEY.json`` (default ``~/.cache/modelgit``), keyed by
    the config's bytes and the versions of transformers and torch; None without
    transformers, or inside :func:`no_disk_cache`."""
    if not _DISK_CACHE.get():
        return None
    from importlib import metadata

    try:
        versions = f"{metadata.version('transformers')}|{metadata.version('torch')}"
    except metadata.PackageNotFoundError:
        return None
    base = os.environ.get("MODELGIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelgit"
    )
    key = xxhash.xxh3_128_hexdigest(versions.encode() + b"\0" + raw)
    return Path(base) / "hf-modules" / f"{key}.json"


def _read_cache(raw: bytes) -> tuple[_Skeleton, ...] | None:
    path = _cache_file(raw)
    if path is None or not path.is_file():
        return None
    try:
        out = []
        for d in json.loads(path.read_text(encoding="utf-8")):
            sk = _Skeleton(
                types={str(k): str(v) for k, v in d["types"].items()},
                keys={str(k): int(v) for k, v in d["keys"].items()},
                buffers=frozenset(str(b) for b in d["buffers"]),
                ignore_missing=tuple(re.compile(str(p)) for p in d["ignore_missing"]),
                ignore_unexpected=tuple(re.compile(str(p)) for p in d["ignore_unexpected"]),
            )
            out.append(sk)
        return tuple(out) or None
    except (OSError, ValueError, TypeError, KeyError, AttributeError, re.error):
        return None  # unreadable or damaged: built again, and rewritten


def _write_cache(raw: bytes, skeletons: list[_Skeleton]) -> None:
    path = _cache_file(raw)
    if path is None:
        return
    body = [
        {
            "types": sk.types,
            "keys": sk.keys,
            "buffers": sorted(sk.buffers),
            "ignore_missing": [p.pattern for p in sk.ignore_missing],
            "ignore_unexpected": [p.pattern for p in sk.ignore_unexpected],
        }
        for sk in skeletons
    ]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written is only a slower next time


_LAYER_KEY = re.compile(r"(^|_)(layers?|blocks?|depths?)$")


def _layer_count(raw: bytes) -> int:
    """The layers a config asks for: the sum of its integer values (or lists of them)
    under keys such as ``num_hidden_layers``, ``n_layer``, ``encoder_layers`` or
    ``depths``, nested configs included; 0 for what is not a JSON object."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return 0

    def count(node: object, depth: int = 0) -> int:
        if not isinstance(node, dict) or depth > 8:
            return 0
        total = 0
        for key, value in node.items():
            if isinstance(value, dict):
                total += count(value, depth + 1)
            elif _LAYER_KEY.search(str(key)):
                items = value if isinstance(value, list) else [value]
                total += sum(v for v in items if isinstance(v, int) and v > 0)
        return total

    return count(body)


def config_modules(raw: bytes, stored: Collection[str], ref: str) -> dict[str, str]:
    """The class name of every module of the model a ``config.json`` describes (module
    path -> class; ``""`` is the model), built on the meta device. UnsupportedInput when
    transformers is missing, cannot build it, or its tensors are not exactly ``stored``
    (ties, buffers and the model's own ignore rules allowed).

    A config is hostile input: one that asks for more layers than there are stored
    tensors cannot describe them, and is refused before anything is built (a million
    layers would keep the caller busy for minutes)."""
    layers = _layer_count(raw)
    if layers > len(stored):
        raise UnsupportedInput(
            f"the {CONFIG_FILE} of {ref} asks for {layers} layers, more than its "
            f"{len(stored)} tensors; module tree from the tensor names"
        )
    found = _skeletons(bytes(raw))
    if isinstance(found, str):
        raise UnsupportedInput(f"no module tree from the {CONFIG_FILE} of {ref}: {found}")
    why = ""
    for sk in found:
        misfit = sk.misfit(stored)
        if misfit is None:
            return dict(sk.types)
        why = why or misfit
    raise UnsupportedInput(
        f"the {CONFIG_FILE} of {ref} does not describe its tensors ({why}); module tree "
        "from the tensor names"
    )
