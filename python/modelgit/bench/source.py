"""What the harness measures: the models of a zoo folder or of an existing repository.

A zoo is a folder of ``.safetensors`` files plus ``manifest.json`` (see
:mod:`modelgit.zoo`). A repository contributes every version of every model: version 1
of a model is named after the model, a later version N is named ``<model>.vN`` and has
the previous version as its parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["BenchModel", "Zoo", "load_source", "resolve_evaluator", "nbytes", "raw_view"]

Evaluator = Callable[[dict[str, torch.Tensor]], float]


def raw_view(t: torch.Tensor):
    """The bytes of a tensor as a flat uint8 numpy array (no copy when contiguous)."""
    t = t.detach().contiguous().reshape(-1)
    if t.numel() == 0:
        import numpy as np

        return np.zeros(0, dtype=np.uint8)
    return t.view(torch.uint8).numpy()


def nbytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


@dataclass
class BenchModel:
    """One model of the zoo: its weights, its parents and how it can be evaluated."""

    name: str
    parents: list[str]
    relation: str | None
    state: dict[str, torch.Tensor]
    header_bytes: int = 0  # safetensors header size of its file (8 + JSON)
    eval: dict[str, Any] | None = None  # {"metric", "value", "higher_is_better"}
    meta: dict[str, Any] = field(default_factory=dict)
    file_bytes: bytes | None = None  # the .safetensors file as it is on disk, when there is one

    @property
    def logical_bytes(self) -> int:
        return nbytes(self.state)

    @property
    def dtypes(self) -> str:
        names = sorted({str(t.dtype).removeprefix("torch.") for t in self.state.values()})
        return "+".join(names)


@dataclass
class Zoo:
    """The models to measure, parents first."""

    source: str
    kind: str  # "zoo" or "repository"
    models: list[BenchModel]

    def __post_init__(self) -> None:
        self.by_name = {m.name: m for m in self.models}

    @property
    def logical_bytes(self) -> int:
        return sum(m.logical_bytes for m in self.models)


def _header_size(blob: bytes) -> int:
    return 8 + int.from_bytes(blob[:8], "little") if len(blob) >= 8 else 0


def _load_zoo(folder: Path, keep_files: bool) -> Zoo:
    from safetensors.torch import load

    from ..zoo import load_manifest, parents_of

    entries = load_manifest(folder)
    models = []
    for e in entries:
        blob = (folder / e["file"]).read_bytes()
        models.append(
            BenchModel(
                name=e["name"],
                parents=parents_of(e),
                relation=e.get("relation"),
                state=load(blob),
                header_bytes=_header_size(blob),
                eval=e.get("eval"),
                meta=dict(e.get("meta") or {}),
                file_bytes=blob if keep_files else None,
            )
        )
    return Zoo(str(folder), "zoo", models)


def _load_repository(root: Path) -> Zoo:
    from safetensors.torch import save

    import modelgit as mg

    models = []
    with mg.open(root) as repo:
        node_name: dict[str, str] = {}
        for model in repo.graph.topological_order():
            for v in repo.versions(model):
                name = model if v.number == 1 else f"{model}.v{v.number}"
                node_name[v.ref] = name
                parents = [node_name[p.ref] for p in v.parents if p.ref in node_name]
                relation = v.parents[0].relation if v.parents else None
                state = repo.load(v.ref)
                ev = v.metadata.get("eval") if isinstance(v.metadata, dict) else None
                models.append(
                    BenchModel(
                        name=name,
                        parents=parents,
                        relation=relation,
                        state=state,
                        header_bytes=_header_size(save(state)),
                        eval=ev if isinstance(ev, dict) and "metric" in ev else None,
                        meta=dict(v.metadata) if isinstance(v.metadata, dict) else {},
                    )
                )
    return Zoo(str(root), "repository", models)


def load_source(source: str | Path, *, models: list[str] | None = None) -> Zoo:
    """Load a zoo folder (or its ``manifest.json``) or a modelgit repository.

    ``models`` keeps only those names (their parents outside the selection are dropped
    from the lineage, so a kept model whose parent is left out is stored standalone).
    """
    p = Path(source)
    if p.is_file() and p.name == "manifest.json":
        p = p.parent
    if (p / "MODELGIT").is_file():
        zoo = _load_repository(p)
    elif (p / "manifest.json").is_file():
        zoo = _load_zoo(p, keep_files=True)
    elif p.exists():
        raise ValueError(
            f"{p} is neither a zoo folder (no manifest.json) nor a modelgit repository"
        )
    else:
        raise FileNotFoundError(f"no zoo or repository at {p}")
    if models is not None:
        unknown = sorted(set(models) - set(zoo.by_name))
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; the source has {sorted(zoo.by_name)}")
        keep = set(models)
        kept = []
        for m in zoo.models:
            if m.name in keep:
                m.parents = [q for q in m.parents if q in keep]
                kept.append(m)
        zoo = Zoo(zoo.source, zoo.kind, kept)
    return zoo


def resolve_evaluator(model: BenchModel) -> Evaluator | None:
    """How to re-evaluate a model's metric on decoded weights, or None when unknown.

    In order: ``meta["eval_fn"]`` (an import path ``"pkg.module:function"`` called with
    the state dict and ``meta["eval_kwargs"]``), then the zoos built by
    :mod:`modelgit.zoo` (``meta["zoo"]`` "small", or "minilm" with ``meta["task"]``).
    A model without an ``eval`` entry is not evaluated.
    """
    if model.eval is None:
        return None
    meta = model.meta
    fn_path = meta.get("eval_fn")
    if isinstance(fn_path, str):
        from ..callables import resolve_callable

        fn = resolve_callable(fn_path)
        kwargs = meta.get("eval_kwargs") or {}
        return lambda sd: float(fn(sd, **kwargs))
    zoo = meta.get("zoo")
    if zoo == "small":
        from ..zoo.small import evaluate_small

        return evaluate_small
    if zoo == "minilm" and isinstance(meta.get("task"), str):
        from ..zoo.minilm import evaluate_minilm

        task = meta["task"]
        return lambda sd: evaluate_minilm(sd, task)
    return None
