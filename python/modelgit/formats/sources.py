"""Adapters from what users hand to ``add`` into a uniform stream of tensor records.

Accepted models: a ``dict[str, torch.Tensor]`` (state_dict), an ``nn.Module``, a
``.safetensors`` file, or a Hugging Face model folder (``*.safetensors``, sharded or not,
plus small config/tokenizer files, which are kept and restored by ``export``).
Nothing is ever unpickled. In-memory tensors are exposed as zero-copy views, a file's
tensors as ranges read on demand (``FileRange``).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..dtypes import DType, by_torch
from ..errors import UnsupportedInput
from .safetensors_io import FileRange, SafetensorsFile, iter_shards, looks_like_safetensors

if TYPE_CHECKING:
    import torch

__all__ = [
    "TensorSource",
    "ModelSource",
    "FolderReader",
    "open_model",
    "side_files",
    "tensor_bytes",
    "tensor_from_buffer",
]

MAX_SIDE_FILE = 64 * 1024 * 1024  # config/tokenizer files kept with a version


@dataclass
class TensorSource:
    name: str
    dtype: DType
    shape: tuple[int, ...]
    nbytes: int
    _view: object = field(repr=False)  # a callable returning the bytes (see view)
    tie: str | None = None  # name of an earlier tensor this one shares storage with

    def view(self) -> memoryview | FileRange:
        """The tensor's bytes: sliceable and sized (``[a:b]`` gives a buffer; a file's
        bytes are read only when sliced, ``[:]`` reads them all)."""
        return self._view()  # type: ignore[operator]


@dataclass
class ModelSource:
    tensors: list[TensorSource]
    files: dict[str, bytes] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    folder: bool = False  # read from a model folder: ``files`` are the folder's own
    _closers: list[object] = field(default_factory=list, repr=False)

    def close(self) -> None:
        for c in self._closers:
            c.close()  # type: ignore[attr-defined]
        self._closers.clear()

    def __enter__(self) -> ModelSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a CPU tensor, contiguous, as a memoryview."""
    import torch

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    flat = t.reshape(-1)
    if flat.stride(0) != 1:  # a one-element tensor may keep an odd stride
        flat = flat.as_strided((1,), (1,))
    return memoryview(flat.view(torch.uint8).numpy())


def tensor_from_buffer(buf: object, dtype: DType, shape: tuple[int, ...]) -> torch.Tensor:
    """A tensor over ``buf`` (a writable buffer of the exact size), without a copy."""
    import numpy as np
    import torch

    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count == 0:
        return torch.empty(shape, dtype=dtype.torch)
    arr = np.frombuffer(buf, dtype=np.uint8)  # type: ignore[call-overload]
    if arr.nbytes != count * dtype.size:
        raise ValueError(f"buffer of {arr.nbytes} bytes does not hold {shape} {dtype.name}")
    return torch.from_numpy(arr).view(dtype.torch).reshape(shape)


def _from_state_dict(sd: Mapping[str, object]) -> ModelSource:
    import torch

    tensors: list[TensorSource] = []
    seen: dict[tuple[object, ...], str] = {}
    for name, t in sd.items():
        if not isinstance(name, str):
            raise UnsupportedInput(f"state_dict keys must be strings, got {name!r}")
        if not isinstance(t, torch.Tensor):
            raise UnsupportedInput(
                f"state_dict entry {name!r} is a {type(t).__name__}, not a torch.Tensor"
            )
        if t.is_nested:
            raise UnsupportedInput(f"tensor {name!r} is a nested tensor; only dense tensors")
        if t.is_sparse or t.layout != torch.strided:
            raise UnsupportedInput(f"tensor {name!r} has layout {t.layout}; only dense tensors")
        if t.is_meta:
            raise UnsupportedInput(
                f"tensor {name!r} is on the meta device and holds no data (load the weights "
                "first, e.g. with to_empty() and load_state_dict)"
            )
        if t.is_complex() or t.is_quantized:
            raise UnsupportedInput(f"tensor {name!r} of dtype {t.dtype} cannot be stored")
        dtype = by_torch(t.dtype)
        key = None
        if t.numel() > 0:
            key = (
                t.device,
                t.untyped_storage().data_ptr(),
                t.storage_offset(),
                tuple(t.shape),
                tuple(t.stride()),
                t.dtype,
            )
        tie = seen.get(key) if key is not None else None
        if key is not None and tie is None:
            seen[key] = name
        nbytes = t.numel() * dtype.size

        def view(t: torch.Tensor = t) -> memoryview:
            return tensor_bytes(t)

        tensors.append(TensorSource(name, dtype, tuple(t.shape), nbytes, view, tie))
    return ModelSource(tensors)


def _from_safetensors(paths: list[Path]) -> ModelSource:
    src = ModelSource([])
    names: set[str] = set()
    for path in paths:
        f = SafetensorsFile(path)
        src._closers.append(f)
        src.metadata.update(f.metadata)
        for e in f.entries:
            if e.name in names:
                src.close()
                raise UnsupportedInput(f"tensor {e.name!r} appears in more than one shard")
            names.add(e.name)

            def view(f: SafetensorsFile = f, e: object = e) -> FileRange:
                return f.view(e)  # type: ignore[arg-type]

            src.tensors.append(TensorSource(e.name, e.dtype, e.shape, e.nbytes, view))
    return src


SPECIAL_ROOTS = ("/proc", "/sys", "/dev")  # never read, not even through a symlink


class FolderReader:
    """Which files of a model folder may be read: regular files inside the folder, or
    reached through symlinks that stay inside it (or, for a Hugging Face hub cache
    snapshot ``.../snapshots/<rev>``, inside that cache entry's ``blobs``). A symlink
    that leaves the folder is refused unless ``follow_symlinks``; special files
    (devices, FIFOs, sockets, anything under /proc, /sys or /dev) are never read."""

    def __init__(self, folder: Path, follow_symlinks: bool = False) -> None:
        self.folder = folder
        self.follow = follow_symlinks
        real = folder.resolve()
        self.allowed = [real]
        if real.parent.name == "snapshots":
            self.allowed.append(real.parent.parent / "blobs")

    def _inside(self, target: Path) -> bool:
        return any(target == a or target.is_relative_to(a) for a in self.allowed)

    def check(self, path: Path) -> Path:
        """``path`` (in the folder) if it may be read, else UnsupportedInput."""
        target = path.resolve()
        if path.is_symlink() and not self._inside(target) and not self.follow:
            raise UnsupportedInput(
                f"{path} is a symlink to {target}, outside the model folder; refusing to "
                "read it (pass follow_symlinks=True, --follow-symlinks, if you mean it)"
            )
        if any(target == Path(r) or target.is_relative_to(r) for r in SPECIAL_ROOTS):
            raise UnsupportedInput(f"{path} leads to {target}, a special file; never read")
        try:
            mode = target.stat().st_mode
        except OSError as exc:
            raise UnsupportedInput(f"cannot read {path}: {exc.strerror}") from None
        if stat.S_ISDIR(mode):
            return target
        if not stat.S_ISREG(mode):
            raise UnsupportedInput(f"{path} is not a regular file (a device, FIFO or socket)")
        return path

    def files(self) -> Iterator[tuple[str, Path]]:
        """(relative posix path, path) of every file below the folder, sorted; symlinked
        folders are walked only with ``follow_symlinks`` (and those leading outside
        without it are refused)."""
        found: list[tuple[str, Path]] = []
        for root, dirs, names in os.walk(self.folder, followlinks=self.follow):
            base = Path(root)
            for d in list(dirs):
                if (base / d).is_symlink() and not self.follow:
                    self.check(base / d)  # refuses one that leaves the folder
                    dirs.remove(d)  # one inside it: its files are found where they are
            for n in names:
                p = base / n
                found.append((p.relative_to(self.folder).as_posix(), p))
        yield from sorted(found)


WEIGHT_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf"}
INDEX_NAME = "model.safetensors.index.json"  # rebuilt by export, never a side file


def _side_files(reader: FolderReader, skip_weights: bool = False) -> dict[str, bytes]:
    """The side files of a folder. Weights in another format than safetensors are refused
    (or, with ``skip_weights``, left out)."""
    files: dict[str, bytes] = {}
    for rel, p in reader.files():
        if p.suffix == ".safetensors" or rel.startswith("."):
            continue
        if rel == INDEX_NAME:
            continue  # rebuilt by export
        if p.suffix in WEIGHT_SUFFIXES:
            if skip_weights:
                continue
            raise UnsupportedInput(
                f"{p} holds weights in a format modelgit does not read; "
                "convert the folder to safetensors first"
            )
        reader.check(p)
        with open(p, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_SIDE_FILE:
                raise UnsupportedInput(
                    f"{p} is larger than {MAX_SIDE_FILE} bytes; not a config file"
                )
            data = f.read(MAX_SIDE_FILE + 1)
        if len(data) > MAX_SIDE_FILE:
            raise UnsupportedInput(f"{p} is larger than {MAX_SIDE_FILE} bytes; not a config file")
        files[rel] = data
    return files


def _check_side_path(rel: object) -> str:
    """A side file's path as given in ``files=``: relative, inside the folder, no weights."""
    if not isinstance(rel, str) or not rel:
        raise UnsupportedInput(f"side file paths must be non-empty strings, got {rel!r}")
    parts = rel.split("/")
    if (
        rel.startswith("/")
        or "\\" in rel
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 for c in rel)
    ):
        raise UnsupportedInput(
            f"side file path {rel!r} must be a relative path inside the model folder "
            "(parts separated by '/', no '..', no empty parts)"
        )
    if rel.endswith(".safetensors") or rel == INDEX_NAME:
        raise UnsupportedInput(f"{rel!r} is where export writes the weights; not a side file")
    return rel


def side_files(
    files: Mapping[str, bytes] | str | os.PathLike[str], follow_symlinks: bool = False
) -> dict[str, bytes]:
    """The side files given as ``files=`` to add or commit: a mapping of relative paths
    to bytes, or a folder whose files (all but weights) are read, as from a model folder.
    An empty mapping means none."""
    if isinstance(files, (str, os.PathLike)):
        path = Path(files)
        if not path.is_dir():
            raise UnsupportedInput(f"files={str(path)!r} is not a folder")
        return _side_files(FolderReader(path, follow_symlinks), skip_weights=True)
    if not isinstance(files, Mapping):
        raise UnsupportedInput(
            f"files must be a folder or a dict of path -> bytes, not a {type(files).__name__}"
        )
    out: dict[str, bytes] = {}
    for rel, data in files.items():
        rel = _check_side_path(rel)
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UnsupportedInput(f"side file {rel!r} must be bytes, not {type(data).__name__}")
        data = bytes(data)
        if len(data) > MAX_SIDE_FILE:
            raise UnsupportedInput(f"side file {rel!r} is larger than {MAX_SIDE_FILE} bytes")
        out[rel] = data
    return out


def open_model(model: object, follow_symlinks: bool = False) -> ModelSource:
    """Turn any accepted model object into a :class:`ModelSource` (close it when done).
    In a folder, symlinks that leave it are refused unless ``follow_symlinks``
    (:class:`FolderReader`)."""
    torch = sys.modules.get("torch")  # an nn.Module comes with torch loaded; files need none
    if torch is not None and isinstance(model, torch.nn.Module):
        return _from_state_dict(model.state_dict(keep_vars=False))
    if isinstance(model, Mapping):
        return _from_state_dict(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir():
            reader = FolderReader(path, follow_symlinks)
            src = _from_safetensors([reader.check(p) for p in iter_shards(path)])
            try:
                src.files = _side_files(reader)
                src.folder = True
            except BaseException:
                src.close()
                raise
            return src
        if path.is_file() and (path.suffix == ".safetensors" or looks_like_safetensors(path)):
            return _from_safetensors([path])  # (a safetensors file by another name too)
        if not path.exists():
            raise UnsupportedInput(f"{path} does not exist")
        raise UnsupportedInput(
            f"{path} is neither a safetensors file nor a folder of them; for a .pt file use "
            "torch.load(path, weights_only=True) and pass the state_dict"
        )
    raise UnsupportedInput(
        f"cannot store a {type(model).__name__}: pass a state_dict, an nn.Module, "
        "a .safetensors file or a Hugging Face model folder"
    )
