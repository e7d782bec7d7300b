"""Hugging Face models from stored side files: a ``transformers`` model built from a
version's ``config.json``, ready for its weights (``Repository.load_model``).

``transformers`` is optional (``pip install "modelgit[hf]"``) and imported only here,
only when a model is built. The configuration goes through ``AutoConfig`` exactly as
``from_pretrained`` reads it (from a private temporary folder, never from the network);
the class is the architecture the config names (``architectures[0]``), else ``AutoModel``.
Code shipped with a model (``auto_map``, ``trust_remote_code``) is never run.
"""

from __future__ import annotations

import importlib
import json
import re
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedInput

if TYPE_CHECKING:
    import torch

__all__ = ["HF_EXTRA_HINT", "CONFIG_FILE", "import_transformers", "build_model", "check_names"]

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
    with tempfile.TemporaryDirectory(prefix="modelgit-config-") as tmp:
        (Path(tmp) / CONFIG_FILE).write_bytes(raw)
        try:
            return transformers.AutoConfig.from_pretrained(tmp, trust_remote_code=False)
        except (ValueError, KeyError, OSError) as exc:
            raise UnsupportedInput(
                f"transformers cannot read the {CONFIG_FILE} stored with {ref} (model_type "
                f"{body.get('model_type')!r}; custom code is never run): "
                f"{' '.join(str(exc).split())[:300]}"
            ) from None


def _model_class(transformers: ModuleType, config: Any) -> Any:
    """The class the config's ``architectures`` names, if transformers has it."""
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, str(name), None) if isinstance(name, str) else None
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
            return cls
    return None


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
