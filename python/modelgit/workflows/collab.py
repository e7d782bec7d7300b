"""Collaboration between repositories: push, pull, merge."""

from __future__ import annotations


class CollabMixin:
    """push, pull, merge."""
