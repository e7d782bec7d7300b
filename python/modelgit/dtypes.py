"""The element types modelgit stores, and their names in torch and safetensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import UnsupportedInput

__all__ = ["DType", "DTYPES", "by_name", "by_torch", "by_safetensors"]


@dataclass(frozen=True)
class DType:
    name: str  # catalog name, equal to the torch attribute name
    safetensors: str  # the dtype code in a safetensors header
    size: int  # bytes per element
    kind: str  # "float", "int", "uint", "bool"
    torch: torch.dtype

    @property
    def is_float(self) -> bool:
        return self.kind == "float"


def _table() -> list[DType]:
    rows = [
        ("float64", "F64", 8, "float"),
        ("float32", "F32", 4, "float"),
        ("float16", "F16", 2, "float"),
        ("bfloat16", "BF16", 2, "float"),
        ("float8_e4m3fn", "F8_E4M3", 1, "float"),
        ("float8_e5m2", "F8_E5M2", 1, "float"),
        ("int64", "I64", 8, "int"),
        ("int32", "I32", 4, "int"),
        ("int16", "I16", 2, "int"),
        ("int8", "I8", 1, "int"),
        ("uint64", "U64", 8, "uint"),
        ("uint32", "U32", 4, "uint"),
        ("uint16", "U16", 2, "uint"),
        ("uint8", "U8", 1, "uint"),
        ("bool", "BOOL", 1, "bool"),
    ]
    out = []
    for name, st, size, kind in rows:
        tdt = getattr(torch, name, None)
        if tdt is not None:
            out.append(DType(name, st, size, kind, tdt))
    return out


DTYPES: tuple[DType, ...] = tuple(_table())
_BY_NAME = {d.name: d for d in DTYPES}
_BY_TORCH = {d.torch: d for d in DTYPES}
_BY_ST = {d.safetensors: d for d in DTYPES}


def by_name(name: str) -> DType:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnsupportedInput(f"unknown dtype {name!r}") from None


def by_torch(dtype: torch.dtype) -> DType:
    try:
        return _BY_TORCH[dtype]
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
