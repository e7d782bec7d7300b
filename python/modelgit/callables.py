"""Functions referenced by import path (``"pkg.module:function"``), never pickled."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from .errors import UnsupportedInput

__all__ = ["resolve_callable", "callable_path"]

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve_callable(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import ``"pkg.module:function"`` (or return a callable as it is)."""
    if callable(ref):
        return ref
    if not isinstance(ref, str) or not _PATH.match(ref):
        raise UnsupportedInput(f"{ref!r} is not an import path: write 'package.module:function'")
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnsupportedInput(f"cannot import {module_name!r} for {ref!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UnsupportedInput(f"{module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise UnsupportedInput(f"{ref!r} is not callable")
    return obj


def callable_path(fn: str | Callable[..., Any]) -> str:
    """The import path of a module-level function (to store it), or raise."""
    if isinstance(fn, str):
        resolve_callable(fn)
        return fn
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not module or not qual or "<" in qual or module == "__main__":
        raise UnsupportedInput(
            f"{fn!r} cannot be stored by import path: pass a module-level function "
            "of an importable module, or its 'package.module:function' string"
        )
    path = f"{module}:{qual}"
    if resolve_callable(path) is not fn:
        raise UnsupportedInput(f"{path} does not resolve back to {fn!r}")
    return path
