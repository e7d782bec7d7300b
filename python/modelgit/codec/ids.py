"""Codec ids (docs/FORMAT.md section 3): the byte in every record header that says how
its payload decodes. Never renumbered; 4-127 are reserved for lossless codecs and
130-255 for lossy ones."""

from __future__ import annotations

__all__ = ["RAW", "ZSTD", "PLANES", "PREDICTED", "QDELTA", "LOWBIT", "FIRST_LOSSY"]

RAW, ZSTD, PLANES, PREDICTED = 0, 1, 2, 3
QDELTA, LOWBIT = 128, 129
FIRST_LOSSY = 128
