"""The lineage layer: the graph of models and what is computed on it.

``graph`` (:class:`LineageGraph`: a snapshot of models, versions and edges, with the
graph algorithms), ``render`` (text, DOT, SVG, HTML), ``inference`` (lineage from
weights alone) are pure: no repository, no writes. ``api`` (:class:`LineageMixin`) is
the lineage API of a repository: graph, edges, tags, rename, diff. This layer never
imports ``workflows``, ``repository`` or ``cli``. ``inference`` (numpy) is loaded on
first use of its names, so that opening a repository does not load numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import LineageMixin
from .graph import Edge, LineageGraph, Node, VersionInfo, check_no_cycle

if TYPE_CHECKING:
    from .inference import InferredEdge, infer_edges, infer_lineage

__all__ = [
    "LineageMixin",
    "LineageGraph",
    "Edge",
    "Node",
    "VersionInfo",
    "check_no_cycle",
    "infer_lineage",
    "infer_edges",
    "InferredEdge",
]

_INFERENCE = ("infer_lineage", "infer_edges", "InferredEdge")


def __getattr__(name: str) -> Any:
    if name not in _INFERENCE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import inference

    value = getattr(inference, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_INFERENCE))
