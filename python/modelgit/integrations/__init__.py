"""Callbacks that commit training checkpoints from training frameworks.

* :mod:`modelgit.integrations.transformers`: ``ModelgitCallback`` for the Hugging Face
  ``Trainer`` (``pip install "modelgit[hf]"``);
* :mod:`modelgit.integrations.lightning`: ``ModelgitCheckpoint`` for PyTorch Lightning
  (``pip install "modelgit[lightning]"``).

Both call ``repo.checkpoint`` (docs/guide.md, "Training checkpoints"); each module
imports its framework when it is imported, and says which extra to install when the
framework is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["numeric_metrics"]


def numeric_metrics(logs: Mapping[str, Any]) -> dict[str, float | int]:
    """The finite numbers of a framework's log (tensors of one element included)."""
    out: dict[str, float | int] = {}
    for k, v in logs.items():
        if hasattr(v, "numel") and v.numel() == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            continue
        out[str(k)] = v
    return out
