"""Export a stored version as a .safetensors file or a Hugging Face style folder."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .dtypes import by_name
from .errors import UnsupportedInput
from .packs import fsync_dir
from .progress import Counter, ProgressFn
from .reader import read_tensors
from .safetensors_io import SafetensorsWriter
from .version import Version
from .writer import TensorRow

if TYPE_CHECKING:
    from .repository import Repository

__all__ = ["export_version"]


def export_version(
    repo: Repository, vid: int, version: Version, path: Path, progress: ProgressFn | None = None
) -> Path:
    """Write ``version`` to ``path``: a ``.safetensors`` file when the path ends so, else a
    folder holding ``model.safetensors`` and the side files stored with the version.

    Files are written to a temporary name, synced and renamed, so a crash never leaves a
    half-written file under the final name. Tied tensors are written once each (by name).
    """
    rows = repo._tensor_rows(vid)
    if path.suffix == ".safetensors":
        target, folder = path, None
    else:
        folder = path
        if folder.exists() and not folder.is_dir():
            raise UnsupportedInput(f"{folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "model.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    metadata = {"format": "pt", "modelgit": version.ref}
    with tmp.open("wb") as f:
        w = SafetensorsWriter(
            f,
            [(r.name, by_name(r.dtype).safetensors, r.shape, r.nbytes) for r in rows],
            metadata,
        )
        count = Counter(progress, w.total)
        for r in rows:  # one tensor decoded at a time
            t = read_tensors(repo.store, [r if r.tie is None else _untied(r)], repo._pool)[r.name]
            if r.nbytes:
                w.write(memoryview(t.contiguous().view(-1).view(torch.uint8).numpy()))
            count(r.nbytes)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    if folder is not None:
        for rel, data in repo.files(version.model, version.number).items():
            dest = (folder / rel).resolve()
            if folder.resolve() not in dest.parents:
                raise UnsupportedInput(f"stored side file {rel!r} points outside the folder")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
    fsync_dir(target.parent)
    return path


def _untied(row: TensorRow) -> TensorRow:
    """A tied row carries the same chunks as its target: decode it on its own."""
    return replace(row, tie=None)
