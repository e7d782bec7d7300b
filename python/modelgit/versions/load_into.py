"""Filling an ``nn.Module`` from a stored version, chunk by chunk.

``Repository.load_into`` behaves like ``module.load_state_dict`` (same strictness, same
errors, same return value) but never holds a second copy of the model: each chunk is
decoded straight into the memory of the parameter or buffer it belongs to. A tensor
whose dtype, device or layout differs from the stored one is decoded on its own and
copied in (one tensor at a time). When the checkout cache holds the version, its
mapped file is copied in instead. Modules that customise loading (their own
``_load_from_state_dict`` or load hooks) get the stored state_dict through
``load_state_dict`` itself, so their logic runs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from ..catalog.records import TensorRow
from ..dtypes import by_name
from ..errors import UnsupportedInput
from ..progress import Counter, ProgressFn
from ..storage.reader import decode_rows_into, read_tensors
from .load import proof_of

if TYPE_CHECKING:
    import torch

    from .engine import VersionStore
    from .version import Version

__all__ = ["load_into_module", "copy_into", "IncompatibleKeys"]


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


def _plain_loading(module: torch.nn.Module) -> bool:
    """Whether every submodule loads with torch's default per-tensor copy."""
    import torch
    from torch.nn.modules.batchnorm import _NormBase

    default = torch.nn.Module._load_from_state_dict
    norm = _NormBase._load_from_state_dict  # fills num_batches_tracked, then the default
    for m in module.modules():
        if getattr(m, "_load_state_dict_pre_hooks", None) or getattr(
            m, "_load_state_dict_post_hooks", None
        ):
            return False
        if type(m)._load_from_state_dict not in (default, norm):
            return False
    return True


def _check(
    module: torch.nn.Module,
    targets: dict[str, torch.Tensor],
    rows: Mapping[str, TensorRow] | Mapping[str, torch.Tensor],
    strict: bool,
) -> IncompatibleKeys:
    import torch

    missing = [k for k in targets if k not in rows]
    unexpected = [k for k in rows if k not in targets]
    errors: list[str] = []
    if strict:
        if unexpected:
            errors.append(
                "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected)
            )
        if missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
    for k, t in targets.items():
        r = rows.get(k)
        if r is not None and tuple(t.shape) != tuple(r.shape):
            errors.append(
                f"size mismatch for {k}: copying a param with shape {torch.Size(r.shape)} from "
                f"checkpoint, the shape in current model is {t.shape}."
            )
    if errors:
        raise RuntimeError(
            f"Error(s) in loading state_dict for {type(module).__name__}:\n\t" + "\n\t".join(errors)
        )
    return IncompatibleKeys(missing, unexpected)


def load_into_module(
    engine: VersionStore,
    vid: int,
    version: Version,
    module: torch.nn.Module,
    strict: bool = True,
    progress: ProgressFn | None = None,
    rows: list[TensorRow] | None = None,
) -> Any:
    import torch

    _check_module(module)
    rows = {r.name: r for r in (engine.tensor_rows(vid) if rows is None else rows)}
    cache = engine.checkout_cache
    hit = (
        cache.load(version.content_id, list(rows.values()), proof_of(engine, vid, version))
        if cache.enabled
        else None
    )
    if hit is not None:
        return copy_into(module, hit, strict, progress)
    if not _plain_loading(module):
        sd = read_tensors(engine.store, rows.values(), engine.pool)
        return module.load_state_dict(sd, strict=strict)
    targets = module.state_dict(keep_vars=True)
    result = _check(module, targets, rows, strict)
    todo = sorted((rows[k] for k in targets if k in rows), key=lambda r: r.position)
    count = Counter(progress, sum(r.nbytes for r in todo))
    direct: list[tuple[TensorRow, memoryview]] = []  # decoded straight into the module
    converted: list[tuple[TensorRow, torch.Tensor]] = []  # another dtype or layout
    done: set[tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype]] = set()
    with torch.no_grad():
        for r in todo:
            data = targets[r.name].detach()
            row = replace(r, tie=None)  # a tied row carries its target's chunks
            if r.nbytes == 0 or not _first_fill(data, done):  # tied in the module too
                count(r.nbytes)
            elif (
                data.device.type == "cpu"
                and data.is_contiguous()
                and data.dtype == by_name(r.dtype).torch
            ):
                direct.append((row, memoryview(data.reshape(-1).view(torch.uint8).numpy())))
            else:
                converted.append((row, data))
        decode_rows_into(engine.store, direct, engine.pool, progress=count)
        for row, data in converted:  # one tensor at a time: bounded extra memory
            data.copy_(read_tensors(engine.store, [row], engine.pool)[row.name])
            count(row.nbytes)
    return result


def _check_module(module: object) -> None:
    """UnsupportedInput for what load_into cannot fill: no nn.Module, or one whose
    tensors have no storage (the meta device: copying into them does nothing)."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise UnsupportedInput(
            f"load_into fills an nn.Module, not a {type(module).__name__}; for a state_dict "
            "use repo.load(ref)"
        )
    meta = next((k for k, t in module.state_dict(keep_vars=True).items() if t.is_meta), None)
    if meta is not None:
        raise UnsupportedInput(
            f"the module's tensor {meta!r} is on the meta device, which holds no data to fill: "
            "give it storage first (module.to_empty(device='cpu')), or use "
            "module.load_state_dict(repo.load(ref), assign=True)"
        )


def copy_into(
    module: torch.nn.Module,
    sd: dict[str, torch.Tensor],
    strict: bool = True,
    progress: ProgressFn | None = None,
) -> Any:
    """Fill ``module`` from the tensors of a checkout-cache entry (a copy, as
    ``load_state_dict`` makes), every name and shape checked before anything is
    written."""
    import torch

    if not _plain_loading(module):
        return module.load_state_dict(sd, strict=strict)
    targets = module.state_dict(keep_vars=True)
    result = _check(module, targets, sd, strict)
    todo = [k for k in targets if k in sd]
    count = Counter(progress, sum(sd[k].nbytes for k in todo))
    done: set[tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype]] = set()
    with torch.no_grad():
        for k in todo:
            data = targets[k].detach()
            if _first_fill(data, done):
                data.copy_(sd[k])
            count(sd[k].nbytes)
    return result


def _first_fill(
    data: torch.Tensor, done: set[tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype]]
) -> bool:
    """Whether ``data`` is filled for the first time in this load (False for a tensor
    the module ties to one filled already)."""
    key = (data.data_ptr(), tuple(data.shape), tuple(data.stride()), data.dtype)
    if key in done:
        return False
    done.add(key)
    return True
