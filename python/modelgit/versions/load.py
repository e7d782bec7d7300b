"""Reading a version back: its tensors as a new state_dict, on the CPU or the GPU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import cuda
from ..catalog import checks
from ..catalog.records import TensorRow
from ..errors import ModelgitError, UnsupportedInput
from ..progress import Counter, ProgressFn
from ..storage.reader import read_tensors
from ..storage.reader_cuda import gpu_worthwhile, read_tensors_cuda
from .refs import pick_rows
from .seals import Proof

if TYPE_CHECKING:
    import torch

    from .engine import VersionStore
    from .version import Version

__all__ = ["load_state_dict", "trusted_hit", "served", "proof_of", "load_arguments"]


def load_arguments(
    device: object, keys: Sequence[str] | str | None
) -> tuple[torch.device, list[str] | None]:
    """``load``'s device and keys, checked before anything is read: a device torch can
    reach (UnsupportedInput for CUDA without a GPU, or no device at all), and one name
    taken as a list of one (a string would be read as its characters)."""
    import torch

    try:
        dev = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError) as exc:
        raise UnsupportedInput(f"not a device: {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UnsupportedInput(f"device {device!r}: torch sees no CUDA device here")
    if isinstance(keys, str):
        return dev, [keys]
    return dev, None if keys is None else list(keys)


def _moved(sd: dict[str, torch.Tensor], dev: torch.device) -> dict[str, torch.Tensor]:
    if dev.type == "cpu":
        return sd
    moved: dict[int, torch.Tensor] = {}  # tied tensors stay one tensor
    return {k: moved.setdefault(id(t), t.to(dev)) for k, t in sd.items()}


def trusted_hit(
    engine: VersionStore, ref: str, version: int | None = None
) -> dict[str, torch.Tensor] | None:
    """The tensors of the version ``ref`` names from its sealed checkout-cache entry,
    or None (the cache is off; the entry is missing, unsealed or changed; its seal does
    not vouch for this version; or the version's catalog row does not check). Only the
    version's ``versions`` row is read and checked: with the proof its seal recorded
    (the digest of the version's other rows when they were verified, and the entry
    hashed against them), it must give the version's stored digest, so a damaged row
    (a content id pointing at another version's entry) is never served from here
    (``versions.checkout``)."""
    cache = engine.checkout_cache
    if not cache.enabled:
        return None
    vid, v = engine.resolve(ref, version)
    try:
        seal = cache.read_seal(v.content_id)
    except ModelgitError:  # not a content id (a damaged row): read_verified will say so
        return None
    try:
        tail = bytes.fromhex(seal["versions"][v.id])  # type: ignore[index]
    except (TypeError, LookupError, ValueError):
        return None
    if not checks.version_row_matches(engine.catalog, vid, tail):
        return None
    return cache.trusted(v.content_id, seal=seal)


def proof_of(engine: VersionStore, vid: int, version: Version) -> Proof:
    """What a checkout-cache seal records to vouch for ``version`` (its tail computed
    only when a seal is written or extended)."""

    def holds(tail: str) -> bool:
        try:
            return checks.version_row_matches(engine.catalog, vid, bytes.fromhex(tail))
        except ValueError:
            return False

    return Proof(
        version.id, lambda: checks.version_tail(engine.catalog.connection(), vid).hex(), holds
    )


def served(
    hit: dict[str, torch.Tensor],
    keys: Sequence[str] | None,
    device: str | torch.device,
    progress: ProgressFn | None,
) -> dict[str, torch.Tensor]:
    """A checkout-cache hit as a load returns it: the tensors ``keys`` names (KeyError
    for a name the version lacks, as ``pick_rows``), on ``device``."""
    import torch

    if keys is not None:
        missing = [k for k in keys if k not in hit]
        if missing:
            raise KeyError(f"no tensor named {missing[0]!r} in this version")
    total = sum(t.nbytes for t in {id(t): t for t in hit.values()}.values())
    Counter(progress, total)(total)
    sd = hit if keys is None else {k: hit[k] for k in keys}
    return _moved(sd, torch.device(device))


def load_state_dict(
    engine: VersionStore,
    vid: int,
    version: Version,
    device: str | torch.device = "cpu",
    keys: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    rows: list[TensorRow] | None = None,
) -> dict[str, torch.Tensor]:
    """The tensors of version ``vid`` (those named ``keys``, when given), every chunk
    verified: from the checkout cache when it holds the version (``checkout``), else
    decoded (and then cached, when the cache is on and the whole version was asked
    for). With ``device="cuda"``, the CUDA module built and most chunks of a codec that
    has a GPU kernel, the transforms run on the GPU (``storage.reader_cuda``);
    otherwise tensors are decoded on the CPU and moved. ``rows``: the version's tensor
    rows when the caller has read them (``VersionStore.read_verified``)."""
    import torch

    every = engine.tensor_rows(vid) if rows is None else rows
    rows = pick_rows(every, keys)  # KeyError for a name the version lacks
    cache = engine.checkout_cache
    dev = torch.device(device)
    if cache.enabled:
        hit = cache.load(version.content_id, every, proof_of(engine, vid, version))
        if hit is not None:
            return served(hit, keys, dev, progress)
    if dev.type == "cuda" and cuda.is_available() and gpu_worthwhile(engine.store, rows):
        sd = read_tensors_cuda(engine.store, rows, engine.pool, dev)
    else:
        total = sum(r.nbytes for r in rows if r.tie is None)
        sd = read_tensors(engine.store, rows, engine.pool, progress=Counter(progress, total))
        if cache.enabled and keys is None:
            cache.store(version.content_id, rows, sd, proof_of(engine, vid, version))
        sd = _moved(sd, dev)
    if keys is not None:
        sd = {k: sd[k] for k in keys}
    return sd
