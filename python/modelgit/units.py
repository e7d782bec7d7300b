"""Human-readable sizes, one format everywhere: ``512 B``, ``1.5 KiB``, ``86.6 MiB``."""

from __future__ import annotations

from .errors import InvalidArgument

__all__ = ["human_bytes", "parse_bytes"]


def human_bytes(n: float | None, missing: str = "-") -> str:
    """``n`` bytes in binary units with one decimal (``missing`` when n is None)."""
    if n is None:
        return missing
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}


def parse_bytes(value: int | str) -> int:
    """A size given as an int or a string such as ``"512MiB"``, ``"5GB"``, ``"1.5 GiB"``."""
    if isinstance(value, bool):
        raise InvalidArgument(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"a size cannot be negative: {value}")
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"not a size: {value!r} (use e.g. 512MiB or 5GB)")
    text = value.strip().lower().replace(" ", "").replace("_", "")
    num = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(num) :]
    if unit not in _UNITS or not num:
        raise InvalidArgument(f"not a size: {value!r} (use e.g. 512MiB or 5GB)")
    try:
        n = float(num)
    except ValueError:
        raise InvalidArgument(f"not a size: {value!r} (use e.g. 512MiB or 5GB)") from None
    if not n >= 0 or n == float("inf"):
        raise InvalidArgument(f"not a size: {value!r}")
    return int(n * _UNITS[unit])
