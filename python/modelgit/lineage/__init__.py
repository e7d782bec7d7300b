"""The lineage layer: the graph of models and what is computed on it.

``graph`` (:class:`LineageGraph`: a snapshot of models, versions and edges, with the
graph algorithms), ``render`` (text, DOT, SVG, HTML), ``inference`` (lineage from
weights alone) are pure: no repository, no writes. ``api`` (:class:`LineageMixin`) is
the lineage API of a repository: graph, edges, tags, rename, diff. This layer never
imports ``workflows``, ``repository`` or ``cli``.
"""

from __future__ import annotations

from .api import LineageMixin
from .graph import Edge, LineageGraph, Node, VersionInfo, check_no_cycle
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
