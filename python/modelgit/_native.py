"""Access to the native modules.

``modelgit._core`` (C++) is always built. ``modelgit._cuda`` is optional and is
imported lazily, on first use, so that importing modelgit never initialises CUDA.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from . import _core

__all__ = ["_core", "backends", "cuda_module"]

_cuda_module: ModuleType | None = None
_cuda_error: str | None = None


def cuda_module() -> ModuleType | None:
    """Return ``modelgit._cuda`` if it was built and imports, else None."""
    global _cuda_module, _cuda_error
    if _cuda_module is None and _cuda_error is None:
        try:
            _cuda_module = importlib.import_module("modelgit._cuda")
        except ImportError as exc:  # not built, or no CUDA runtime on this machine
            _cuda_error = str(exc)
    return _cuda_module


def backends() -> dict[str, object]:
    """Which native features this installation has.

    ``cuda_built`` says whether the optional ``modelgit._cuda`` module exists; it is
    only imported (never initialised) to answer.
    """
    from importlib.util import find_spec

    return {
        "core": True,
        "core_version": _core.__version__,
        "threads": _core.hardware_threads(),
        "cuda_built": find_spec("modelgit._cuda") is not None,
    }
