"""Training checkpoints: weights plus optimizer and scheduler state in one version.

:meth:`CheckpointMixin.checkpoint` commits a version whose weights are the model's
state_dict; the optimizer's and scheduler's ``state_dict()`` go into the same version,
kept apart from the weights (docs/FORMAT.md, "Training checkpoints"):

* their tensors are tensor rows named ``@state/optimizer/...`` and
  ``@state/scheduler/...`` (``versions.refs.STATE_PREFIX``; model tensors may not start
  with it), which every reader of the weights (load, load_into, export, diff, show, the
  checkout cache) skips, and which are delta-coded against the previous checkpoint's;
* the rest of those state dicts (param_groups, Python numbers, the scheduler's fields)
  is JSON in the version's metadata under ``"@state"`` (:func:`encode_state`);
* ``step`` and ``metrics`` are in the metadata under ``"checkpoint"``.

:meth:`CheckpointMixin.restore` puts everything back; :mod:`.prune` drops old states.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

from ..errors import UnsupportedInput
from ..storage.reader import read_tensors
from ..tolerance import ErrorBound, LowBit, parse_tolerance
from ..versions.refs import STATE_PREFIX, is_state_name
from ..versions.version import Version
from .prune import PruneReport, prune_checkpoints

__all__ = [
    "CheckpointMixin",
    "CHECKPOINT_KEY",
    "STATE_KEY",
    "encode_state",
    "decode_state",
    "checkpoint_info",
]

CHECKPOINT_KEY = "checkpoint"  # metadata: {"step": int | None, "metrics": {...}}
STATE_KEY = "@state"  # metadata: {"optimizer": skeleton, "scheduler": skeleton}


def _is_tensor(x: object) -> bool:
    torch = __import__("sys").modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def encode_state(obj: Any, path: str, tensors: dict[str, Any]) -> Any:
    """The JSON skeleton of a state_dict: tensors are moved to ``tensors`` (under their
    path: ``optimizer/state/0/exp_avg``) and replaced by ``{"@t": path}``; dicts whose
    keys are not all plain strings become ``{"@d": [[key, value], ...]}``, tuples
    ``{"@tuple": [...]}``, non-finite floats ``{"@f": "nan"}``. Anything else that JSON
    cannot hold exactly is UnsupportedInput."""
    if _is_tensor(obj):
        if path in tensors:
            raise UnsupportedInput(f"two tensors of the training state map to {path!r}")
        tensors[path] = obj.detach()
        return {"@t": path}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"@f": repr(obj)}
    if isinstance(obj, tuple):
        return {"@tuple": [encode_state(x, f"{path}/{i}", tensors) for i, x in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(x, f"{path}/{i}", tensors) for i, x in enumerate(obj)]
    if isinstance(obj, Mapping):
        keys = list(obj)
        for k in keys:
            if k is not None and not isinstance(k, (bool, int, float, str)):
                raise UnsupportedInput(f"cannot store the key {k!r} of {path} in a checkpoint")
        if all(isinstance(k, str) and not k.startswith("@") for k in keys):
            return {k: encode_state(obj[k], f"{path}/{k}", tensors) for k in keys}
        return {"@d": [[k, encode_state(obj[k], f"{path}/{k}", tensors)] for k in keys]}
    raise UnsupportedInput(
        f"cannot store {type(obj).__name__} at {path} of a checkpoint's state "
        "(tensors, numbers, strings, lists, tuples and dicts are stored)"
    )


def decode_state(skeleton: Any, tensors: Mapping[str, Any]) -> Any:
    """The state_dict :func:`encode_state` took apart, with ``tensors`` put back."""
    if isinstance(skeleton, list):
        return [decode_state(x, tensors) for x in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if len(skeleton) == 1:
        ((key, val),) = skeleton.items()
        if key == "@t":
            return tensors[val]
        if key == "@tuple":
            return tuple(decode_state(x, tensors) for x in val)
        if key == "@f":
            return float(val)
        if key == "@d":
            return {k: decode_state(v, tensors) for k, v in val}
    return {k: decode_state(v, tensors) for k, v in skeleton.items()}


def checkpoint_info(v: Version) -> dict[str, Any] | None:
    """``{"step": ..., "metrics": {...}}`` of a checkpoint version, None for another."""
    info = v.metadata.get(CHECKPOINT_KEY) if isinstance(v.metadata, dict) else None
    return info if isinstance(info, dict) else None


def _metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, val in (metrics or {}).items():
        if _is_tensor(val):
            val = val.item()
        if isinstance(val, float) and not math.isfinite(val):
            val = repr(val)
        if val is not None and not isinstance(val, (bool, int, float, str)):
            raise UnsupportedInput(f"metric {k!r} must be a number or a string, not {val!r}")
        out[str(k)] = val
    return out


class CheckpointMixin:
    """Training checkpoints (mixed into the repository front)."""

    def checkpoint(
        self,
        name: str,
        model: Any,
        optimizer: Any = None,
        *,
        step: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        scheduler: Any = None,
        message: str = "",
        tolerance: object = None,
        optimizer_tolerance: object = None,
    ) -> Version:
        """Commit a training checkpoint as the next version of ``name`` (a new model on
        first use). Its weights are ``model``'s state_dict (an ``nn.Module`` or a
        state_dict); ``optimizer.state_dict()`` and ``scheduler.state_dict()`` are kept
        in the same version apart from the weights (load, export, diff and show see the
        weights only); ``step`` and ``metrics`` (numbers by name) go into its metadata,
        which ``log`` shows. :meth:`restore` resumes from it. ``optimizer_tolerance``
        (an :class:`~modelgit.ErrorBound` or :class:`~modelgit.LowBit`) stores the
        optimizer and scheduler tensors within that bound while the weights stay as
        ``tolerance`` says (lossless by default); it is kept in the checkpoint's
        metadata."""
        if step is not None:
            if isinstance(step, bool) or not hasattr(step, "__index__"):
                raise UnsupportedInput(f"step must be an integer, not {step!r}")
            step = operator.index(step)
        info: dict[str, Any] = {"step": step, "metrics": _metrics(metrics)}
        if optimizer_tolerance is not None:
            bound = parse_tolerance(optimizer_tolerance)
            if not isinstance(bound, (ErrorBound, LowBit)):
                raise UnsupportedInput("optimizer_tolerance is an ErrorBound or a LowBit")
            info["state_tolerance"] = bound.to_json()
        tensors: dict[str, Any] = {}
        skeleton: dict[str, Any] = {}
        for part, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
            if obj is not None:
                sd = obj.state_dict() if hasattr(obj, "state_dict") else obj
                if not isinstance(sd, Mapping):  # restore() could not load it back
                    raise UnsupportedInput(
                        f"{part} must be a torch {part} (with a state_dict()) or its "
                        f"state_dict, not a {type(obj).__name__}"
                    )
                skeleton[part] = encode_state(sd, part, tensors)
        meta: dict[str, Any] = {CHECKPOINT_KEY: info}
        if skeleton:
            meta[STATE_KEY] = skeleton
        if name in self:
            prev_id, prev = self.resolve(name)
            links: list[Any] = [(prev_id, prev, "version", "version")]
            new_model = False
        else:
            links, new_model = self.new_model_links(name, None, "finetune"), True
        return self.write(
            name, model, links, message, meta, tolerance, new_model,
            state=tensors if skeleton else None,
            state_tolerance=optimizer_tolerance if skeleton else None,
        )  # fmt: skip

    def checkpoints(self, name: str) -> list[Version]:
        """The checkpoint versions of model ``name``, oldest first."""
        return [v for v in self.versions(name) if checkpoint_info(v) is not None]

    def load_state(self, ref: str) -> dict[str, Any]:
        """The training state a checkpoint holds: ``{"optimizer": state_dict,
        "scheduler": state_dict}`` (the parts it has; empty when its state was pruned
        or it is no checkpoint)."""
        with self.catalog.snapshot():
            vid, v = self.resolve_verified(ref)
            rows = [r for r in self.tensor_rows(vid, state=True) if is_state_name(r.name)]
        skeleton = v.metadata.get(STATE_KEY) if isinstance(v.metadata, dict) else None
        if not isinstance(skeleton, dict):
            return {}
        decoded = read_tensors(self.store, rows, self.pool)
        tensors = {k[len(STATE_PREFIX) :]: t for k, t in decoded.items()}
        return {part: decode_state(sk, tensors) for part, sk in skeleton.items()}

    def restore(
        self,
        ref: str,
        model: Any,
        optimizer: Any = None,
        scheduler: Any = None,
        *,
        strict: bool = True,
    ) -> Version:
        """Put checkpoint ``ref`` back in place: its weights into ``model`` (an
        ``nn.Module``, via ``load_into``, or a state_dict whose tensors are overwritten),
        its optimizer and scheduler state into ``optimizer`` and ``scheduler`` (their
        ``load_state_dict``). Returns the Version (``checkpoint_info(v)["step"]`` says
        where to resume). WorkflowError-free but UnsupportedInput when the version has
        no state for an optimizer or scheduler that was given (e.g. pruned)."""
        v = self.version(ref)
        state = self.load_state(v.ref)
        for part, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
            if obj is not None and part not in state:
                raise UnsupportedInput(
                    f"{v.ref} holds no {part} state (not saved, or dropped by "
                    "prune_checkpoints); restore its weights only"
                )
        torch = __import__("sys").modules.get("torch")
        if torch is not None and isinstance(model, torch.nn.Module):
            self.load_into(model, v.ref, strict=strict)
        else:
            weights = self.load(v.ref)
            with torch.no_grad() if torch is not None else _null():
                for k, t in weights.items():
                    model[k].copy_(t)
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        return v

    def prune_checkpoints(
        self,
        name: str,
        keep_last: int = 1,
        keep_best: str | None = None,
        mode: str = "state",
        *,
        maximize: bool = False,
    ) -> PruneReport:
        """Drop what old checkpoints of ``name`` hold, keeping the last ``keep_last`` and
        the best by metric ``keep_best`` (lowest, or highest with ``maximize``) whole.
        ``mode="state"``: drop their optimizer and scheduler state, keep their weights;
        ``mode="versions"``: drop the versions themselves (see :mod:`.prune` for which
        can go). Run :meth:`gc` afterwards to reclaim the space (``mode="versions"``:
        :meth:`repack`, which re-codes what the kept versions were coded through and runs
        gc)."""
        return prune_checkpoints(self, name, keep_last, keep_best, mode, maximize)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
