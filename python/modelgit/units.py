"""Human-readable sizes, one format everywhere: ``512 B``, ``1.5 KiB``, ``86.6 MiB``."""

from __future__ import annotations

__all__ = ["human_bytes"]


def human_bytes(n: float | None, missing: str = "-") -> str:
    """``n`` bytes in binary units with one decimal (``missing`` when n is None)."""
    if n is None:
        return missing
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
