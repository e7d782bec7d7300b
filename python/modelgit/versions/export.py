"""Export a stored version as a .safetensors file or a Hugging Face style folder.

A folder export is sharded like ``save_pretrained``: tensors go, in order, into
``model-00001-of-0000N.safetensors`` files of at most ``max_shard_size`` bytes each (a
tensor larger than that gets a shard of its own) plus ``model.safetensors.index.json``;
a model that fits in one shard is written as ``model.safetensors``. Tensors are decoded
and written chunk by chunk, so exporting needs no more memory than the repository's
budget, whatever the size of the model.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalog.records import TensorRow
from ..dtypes import by_name
from ..errors import InvalidArgument, TargetExists, UnsupportedInput
from ..formats.safetensors_io import SafetensorsWriter
from ..progress import Counter, ProgressFn
from ..storage.packs import fsync_dir
from ..storage.reader import iter_row_chunks
from ..units import parse_bytes
from .version import Version

if TYPE_CHECKING:
    from .engine import VersionStore

__all__ = [
    "export_version",
    "export_link",
    "DEFAULT_MAX_SHARD_SIZE",
    "INDEX_FILE",
    "plan_shards",
]

DEFAULT_MAX_SHARD_SIZE = 5 * 1000**3  # as transformers' save_pretrained
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
MANIFEST = ".modelgit-export.json"  # what a folder export wrote (its side files)
_SHARD = re.compile(r"model(-\d{5}-of-\d{5})?\.safetensors")
PICKLE_TARGETS = (".pt", ".pth", ".bin", ".ckpt", ".pkl")


def check_target(path: Path, force: bool) -> list[str]:
    """Refuse an export target that would lose data or mislead: a pickle suffix, an
    existing file, or a non-empty folder (unless ``force``). Returns the side files the
    previous export into the folder wrote (its manifest), to be removed if this version
    does not have them; files no export wrote are never removed."""
    if path.suffix.lower() in PICKLE_TARGETS:
        raise UnsupportedInput(
            f"{path}: modelgit exports safetensors, not {path.suffix} (a pickle format); "
            f"give a path ending in .safetensors (one file) or a folder path "
            f"(model.safetensors plus the side files)"
        )
    if path.suffix == ".safetensors":
        if path.is_dir():
            raise UnsupportedInput(f"{path} is a folder; give a folder path without .safetensors")
        if path.exists() and not force:
            raise TargetExists(f"{path} exists; pass --force (force=True) to overwrite it")
        return []
    if not path.exists():
        return []
    if not path.is_dir():
        raise UnsupportedInput(f"{path} exists and is not a folder")
    present = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if not p.is_dir())
    if not present:
        return []
    if not force:
        raise TargetExists(
            f"{path} is not empty; pass --force (force=True) to replace an earlier export in it"
        )
    return _previous_side_files(path)


def _previous_side_files(folder: Path) -> list[str]:
    try:
        listed = json.loads((folder / MANIFEST).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in listed if isinstance(f, str)]


def _finish_folder(folder: Path, files: dict[str, bytes], previous: list[str]) -> None:
    """Remove the side files of the previous export that this version does not have, and
    record the side files written now (the manifest, a hidden file written only when
    there are side files; a later add of the folder skips it)."""
    root = folder.resolve()
    for rel in previous:
        if rel in files:
            continue
        stale = (folder / rel).resolve()
        if root in stale.parents and stale.is_file():
            stale.unlink()
            for parent in stale.parents:  # folders left empty
                if parent == root or any(parent.iterdir()):
                    break
                parent.rmdir()
    if not files:  # weights and index are known by their names: nothing to list
        (folder / MANIFEST).unlink(missing_ok=True)
        return
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"files": sorted(files)}, indent=1) + "\n")
    os.replace(tmp, folder / MANIFEST)


def plan_shards(rows: list[TensorRow], max_shard_size: int) -> list[list[TensorRow]]:
    """Tensors in order, cut into shards of at most ``max_shard_size`` bytes."""
    shards: list[list[TensorRow]] = [[]]
    used = 0
    for r in rows:
        if shards[-1] and used + r.nbytes > max_shard_size:
            shards.append([])
            used = 0
        shards[-1].append(r)
        used += r.nbytes
    return shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return [SINGLE_FILE]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def _write_file(
    engine: VersionStore,
    rows: list[TensorRow],
    target: Path,
    metadata: dict[str, str],
    count: Counter,
) -> None:
    """One safetensors file, written to a temporary name, synced and renamed."""
    tmp = target.with_name(target.name + ".tmp")
    window = engine.budget.window_chunks(
        max((r.chunk_bytes for r in rows), default=1), engine.workers, per_chunk=1
    )
    try:
        with tmp.open("wb") as f:
            w = SafetensorsWriter(
                f,
                [(r.name, by_name(r.dtype).safetensors, r.shape, r.nbytes) for r in rows],
                metadata,
            )
            for r in rows:
                for piece in iter_row_chunks(engine.store, _untied(r), engine.pool, window):
                    w.write(piece)
                    count(len(piece))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def export_version(
    engine: VersionStore,
    vid: int,
    version: Version,
    path: Path,
    progress: ProgressFn | None = None,
    max_shard_size: int | str | None = None,
    rows: list[TensorRow] | None = None,
    files: dict[str, bytes] | None = None,
    force: bool = False,
) -> Path:
    """Write ``version`` to ``path``: a ``.safetensors`` file when the path ends so, else a
    folder holding the weights (one file or shards with an index) and the side files
    stored with the version.

    An existing file or non-empty folder is refused (TargetExists) unless ``force``;
    then what an earlier export wrote there (weights, index, the side files listed in
    its ``.modelgit-export.json``) and this version lacks is removed; files no export
    wrote stay. Pickle suffixes (``.pt``, ``.bin``...) are refused.

    Files are written to temporary names, synced and renamed, so a crash never leaves a
    half-written file under a final name. Tied tensors are written once each (by name).
    ``rows`` and ``files``: the version's, when the caller has read them.
    """
    previous = check_target(path, force)
    rows = engine.tensor_rows(vid) if rows is None else rows
    files = engine.files(version.model, version.number) if files is None else files
    metadata = {"format": "pt", "modelgit": version.ref}
    count = Counter(progress, sum(r.nbytes for r in rows))
    if path.suffix == ".safetensors":
        if max_shard_size is not None:
            raise UnsupportedInput(
                f"{path} is one file: give a folder path to export shards of max_shard_size"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_file(engine, rows, path, metadata, count)
        fsync_dir(path.parent)
        return path
    try:
        limit = parse_bytes(DEFAULT_MAX_SHARD_SIZE if max_shard_size is None else max_shard_size)
    except ValueError as exc:
        raise InvalidArgument(f"max_shard_size: {exc}") from None
    if limit <= 0:
        raise InvalidArgument("max_shard_size must be positive")
    folder = path
    if folder.exists() and not folder.is_dir():
        raise UnsupportedInput(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(rows, limit)
    names = shard_names(len(shards))
    for shard, name in zip(shards, names, strict=True):
        _write_file(engine, shard, folder / name, metadata, count)
    index = folder / INDEX_FILE
    if len(shards) > 1:
        pairs = zip(shards, names, strict=True)
        weight_map = {r.name: name for shard, name in pairs for r in shard}
        body = {"metadata": {"total_size": sum(r.nbytes for r in rows)}, "weight_map": weight_map}
        tmp = index.with_name(INDEX_FILE + ".tmp")
        with tmp.open("w") as f:
            f.write(json.dumps(body, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, index)
    else:
        index.unlink(missing_ok=True)  # a stale index would point at old shards
    # weights of an earlier export into this folder would be read along with ours
    for stale in [folder / SINGLE_FILE, *folder.glob("model-*-of-*.safetensors")]:
        if stale.name not in names and _SHARD.fullmatch(stale.name):
            stale.unlink(missing_ok=True)
    _write_side_files(files, folder)
    _finish_folder(folder, files, previous)
    fsync_dir(folder)
    return path


def _write_side_files(files: dict[str, bytes], folder: Path) -> None:
    for rel, data in files.items():
        dest = (folder / rel).resolve()
        if folder.resolve() not in dest.parents:
            raise UnsupportedInput(f"stored side file {rel!r} points outside the folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)


def export_link(
    engine: VersionStore,
    vid: int,
    version: Version,
    path: Path,
    max_shard_size: int | str | None = None,
    rows: list[TensorRow] | None = None,
    files: dict[str, bytes] | None = None,
    force: bool = False,
) -> Path:
    """Like :func:`export_version`, but the weights are a hard link to the version's
    checkout-cache entry (written first if it is missing): no copy, no extra space. The
    linked file is read-only; the cache would notice a change and drop its entry."""
    if max_shard_size is not None:
        raise UnsupportedInput("a linked export is one file: leave out max_shard_size")
    previous = check_target(path, force)
    rows = engine.tensor_rows(vid) if rows is None else rows
    files = engine.files(version.model, version.number) if files is None else files
    cache = engine.checkout_cache
    if not cache.path(version.content_id).exists():
        sd = engine.load(version.model, version.number)
        cache.ensure(version.content_id, rows, sd)
    entry = cache.path(version.content_id)
    try:
        return _link_entry(entry, path, rows, files, previous)
    finally:  # the link holds the bytes: the cache keeps its entry only within its limit
        if not cache.enabled:
            cache.drop([version.content_id])
        else:
            cache.evict(keep=version.content_id)


def _link_entry(
    entry: Path, path: Path, rows: list[TensorRow], files: dict[str, bytes], previous: set[str]
) -> Path:
    """The hard link of ``entry`` at ``path`` (a file, or ``model.safetensors`` in a folder
    with the side files)."""
    if path.suffix == ".safetensors":
        target, folder = path, None
    else:
        if path.exists() and not path.is_dir():
            raise UnsupportedInput(f"{path} exists and is not a folder")
        folder = path
        target = folder / SINGLE_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(entry, tmp)
    except OSError as exc:
        raise UnsupportedInput(
            f"cannot link {target} to the checkout cache {entry} ({exc.strerror}); the cache "
            "must be on the same filesystem: export without link, or set MODELGIT_CACHE"
        ) from None
    os.replace(tmp, target)
    if folder is not None:
        (folder / INDEX_FILE).unlink(missing_ok=True)
        for stale in folder.glob("model-*-of-*.safetensors"):
            if _SHARD.fullmatch(stale.name):
                stale.unlink(missing_ok=True)
        _write_side_files(files, folder)
        _finish_folder(folder, files, previous)
    fsync_dir(target.parent)
    return path


def _untied(row: TensorRow) -> TensorRow:
    """A tied row carries the same chunks as its target: decode it on its own."""
    return replace(row, tie=None)
