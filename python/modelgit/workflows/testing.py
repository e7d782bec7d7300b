"""Tests registered on the graph, the update cascade and bisect."""

from __future__ import annotations


class TestingMixin:
    """register_test, run_tests, cascade, bisect."""
