"""The element types modelgit stores, and their names in torch and safetensors.

The table is static, so that naming a dtype never imports torch: ``DType.torch`` (the
torch dtype) imports it on first use, and :func:`by_torch` is only called with a torch
dtype in hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from .errors import UnsupportedInput

if TYPE_CHECKING:
    import torch

__all__ = ["DType", "DTYPES", "by_name", "by_torch", "by_safetensors", "by_code"]


@dataclass(frozen=True)
class DType:
    name: str  # catalog name, equal to the torch attribute name
    safetensors: str  # the dtype code in a safetensors header
    size: int  # bytes per element
    kind: str  # "float", "int", "uint", "bool"
    code: int  # stable number used in codec parameters (docs/FORMAT.md)

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @cached_property
    def torch(self) -> torch.dtype:
        """The torch dtype (imports torch on first use)."""
        import torch

        return getattr(torch, self.name)


def _table() -> list[DType]:
    rows = [  # the codes are part of the on-disk format: never renumber
        ("float64", "F64", 8, "float", 1),
        ("float32", "F32", 4, "float", 2),
        ("float16", "F16", 2, "float", 3),
        ("bfloat16", "BF16", 2, "float", 4),
        ("float8_e4m3fn", "F8_E4M3", 1, "float", 5),
        ("float8_e5m2", "F8_E5M2", 1, "float", 6),
        ("int64", "I64", 8, "int", 7),
        ("int32", "I32", 4, "int", 8),
        ("int16", "I16", 2, "int", 9),
        ("int8", "I8", 1, "int", 10),
        ("uint64", "U64", 8, "uint", 11),
        ("uint32", "U32", 4, "uint", 12),
        ("uint16", "U16", 2, "uint", 13),
        ("uint8", "U8", 1, "uint", 14),
        ("bool", "BOOL", 1, "bool", 15),
    ]
    return [DType(name, st, size, kind, code) for name, st, size, kind, code in rows]


DTYPES: tuple[DType, ...] = tuple(_table())
_BY_NAME = {d.name: d for d in DTYPES}
_BY_TORCH: dict[torch.dtype, DType] | None = None  # made by the first by_torch
_BY_ST = {d.safetensors: d for d in DTYPES}
_BY_CODE = {d.code: d for d in DTYPES}


def by_code(code: int) -> DType:
    """The dtype of a codec parameter code; ValueError for an unknown code."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise ValueError(f"unknown dtype code {code}") from None


def by_name(name: str) -> DType:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnsupportedInput(f"unknown dtype {name!r}") from None


def by_torch(dtype: torch.dtype) -> DType:
    global _BY_TORCH
    table = _BY_TORCH
    if table is None:  # torch is loaded: the caller holds one of its dtypes
        table = _BY_TORCH = {d.torch: d for d in DTYPES}
    try:
        return table[dtype]
    except KeyError:
        supported = ", ".join(d.name for d in DTYPES)
        raise UnsupportedInput(
            f"tensors of dtype {dtype} cannot be stored; supported: {supported}"
        ) from None


def by_safetensors(code: str) -> DType:
    try:
        return _BY_ST[code]
    except KeyError:
        supported = ", ".join(d.safetensors for d in DTYPES)
        raise UnsupportedInput(
            f"safetensors dtype {code!r} is not supported; supported: {supported}"
        ) from None
