"""modelgit: version control and compact storage for families of ML models."""

from __future__ import annotations

from ._native import backends

__version__ = "0.1.0"
__all__ = ["__version__", "backends"]
