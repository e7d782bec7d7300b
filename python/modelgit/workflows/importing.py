"""Importing a folder of models: ``repo.import_models(paths)``, ``modelgit import DIR``.

What a path may hold (found recursively, one level of nesting):

- ``.safetensors`` files: one model each, named by the file's stem;
- Hugging Face model folders (``*.safetensors`` or a sharded index, plus config and
  tokenizer files): one model each, named by the folder;
- Hugging Face hub cache folders (``models--org--name/snapshots/<rev>/``, or the hub
  cache folder above them): one model per repository, named ``org--name``, one version
  per snapshot (oldest first), with ``hf_repo`` and ``revision`` kept as metadata.

The models' lineage is inferred (``lineage.inference.infer_edges``: weights, frozen
rows, casts, pruning masks, Hugging Face metadata) before anything is written; models
are added roots first, each with its inferred parents recorded as edges of relation
``inferred`` (confidence, direction and the guessed kind of edge kept in the version's
metadata under ``inferred_lineage``), and stored against whatever stored tensors encode
it smallest (automatic bases). ``edges`` (a
mapping ``{child: parent, list of parents or None}``, e.g. read from a JSON file)
overrides what inference proposed. ``dry_run`` proposes and writes nothing.

Every model is one add (one transaction): an import stopped at any point keeps the
models it added, and running it again skips those already present with the same
content.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedInput
from ..lineage.graph import INFERRED, Edge
from ..names import validate_name

if TYPE_CHECKING:
    from ..versions import VersionStore

    _Base = VersionStore
else:
    _Base = object

__all__ = ["ImportMixin", "ImportReport", "ImportedModel", "discover_models"]


@dataclass
class ImportedModel:
    """One model found by an import: its name, where it was read from, its inferred
    parents (with confidences, None when inference gives none), and what happened."""

    name: str
    path: Path
    parents: list[str] = field(default_factory=list)
    confidence: float | None = None  # the least confident of its edges; 1.0 when given
    directed: bool = True  # False when inference could not tell parent from child
    guess: str | None = None  # what inference thinks the edges are (cast, prune, merge...)
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str = "planned"  # planned, added, committed, present
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "parents": self.parents,
                "confidence": self.confidence, "directed": self.directed,
                "relation_guess": self.guess, "metadata": self.metadata,
                "status": self.status, "version": self.version}  # fmt: skip


@dataclass
class ImportReport:
    """What ``import_models`` found, proposed and did (``dry_run``: nothing written)."""

    models: list[ImportedModel]
    dry_run: bool

    @property
    def edges(self) -> list[Edge]:
        return [Edge(p, m.name, INFERRED) for m in self.models for p in m.parents]

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "models": [m.to_json() for m in self.models]}

    def __str__(self) -> str:
        lines = []
        for m in self.models:
            parents = ", ".join(m.parents) if m.parents else "(root)"
            conf = "" if m.confidence is None else f"  confidence {m.confidence:.2f}"
            if m.parents and m.guess:
                conf += f" ({m.guess}{'' if m.directed else ', direction unsure'})"
            elif m.parents and not m.directed:
                conf += " (direction unsure)"
            shown = not self.dry_run or m.status == "present"
            done = f"  [{m.status}{' ' + m.version if m.version else ''}]" if shown else ""
            lines.append(f"{m.name:<28} <- {parents}{conf}{done}")
        head = "proposed lineage (nothing written)" if self.dry_run else "imported"
        counts = Counter(m.status for m in self.models)
        told = ", ".join(f"{counts[s]} {s}" for s in _STATUSES if counts[s])
        return f"{head}: {len(self.models)} model(s) ({told})\n" + "\n".join(lines)


_STATUSES = ("planned", "added", "committed", "present")


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _name_for(stem: str, taken: set[str]) -> str:
    name = _SAFE.sub("-", stem).strip("-.") or "model"
    name = name[:100]
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    validate_name(out)
    taken.add(out)
    return out


_SHARD = re.compile(r"model(-\d+-of-\d+)?\.safetensors")


def _is_model_folder(p: Path) -> bool:
    """One model in a folder (a Hugging Face folder: an index, a config, or weights named
    as ``save_pretrained`` names them), not a folder of several models' files."""
    if not p.is_dir():
        return False
    weights = list(p.glob("*.safetensors"))
    if (p / "model.safetensors.index.json").exists():
        return True
    if not weights:
        return False
    return (
        (p / "config.json").exists()
        or len(weights) == 1
        or all(_SHARD.fullmatch(w.name) for w in weights)
    )


def _hub_snapshots(repo_dir: Path) -> list[Path]:
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        return []
    found = [s for s in snaps.iterdir() if _is_model_folder(s)]
    return sorted(found, key=lambda s: (s.stat().st_mtime, s.name))


def discover_models(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[str, Path, dict]]:
    """``(name, path, metadata)`` of every model under ``paths``, hub-cache snapshots of
    one repository listed oldest first under the same name."""
    found: list[tuple[str, Path, dict]] = []
    taken: set[str] = set()

    def visit(p: Path, depth: int) -> None:
        if p.is_file() and p.suffix == ".safetensors":
            found.append((_name_for(p.stem, taken), p, {}))
        elif p.is_dir() and p.name.startswith("models--"):
            repo_id = p.name[len("models--") :].replace("--", "/")
            name = _name_for(p.name[len("models--") :], taken)
            for snap in _hub_snapshots(p):
                found.append((name, snap, {"hf_repo": repo_id, "revision": snap.name}))
        elif _is_model_folder(p):
            found.append((_name_for(p.name, taken), p, {}))
        elif p.is_dir() and depth > 0:
            for child in sorted(p.iterdir()):
                if not child.name.startswith("."):
                    visit(child, depth - 1)
        elif not p.exists():
            raise UnsupportedInput(f"{p} does not exist")

    for raw in paths:
        visit(Path(raw), 2)
    if not found:
        raise UnsupportedInput("no model found: give .safetensors files or model folders")
    return found


def _weights_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def _scaled(
    progress: Callable[[int, int], None] | None, offset: int, size: int, total: int
) -> Callable[[int, int], None] | None:
    """One add's ``(done, total)`` as a share of the whole import's bytes."""
    if progress is None:
        return None

    def report(done: int, of: int) -> None:
        progress(offset + (size * done // of if of else 0), total)

    return report


def _order(models: list[ImportedModel]) -> list[ImportedModel]:
    """Parents before children (by name); versions of one model keep their order."""
    by_name: dict[str, list[ImportedModel]] = {}
    for m in models:
        by_name.setdefault(m.name, []).append(m)
    done: set[str] = set()
    out: list[ImportedModel] = []

    def place(name: str, trail: frozenset[str]) -> None:
        if name in done or name in trail or name not in by_name:
            return
        for m in by_name[name]:
            for p in m.parents:
                place(p, trail | {name})
        done.add(name)
        out.extend(by_name[name])

    for m in models:
        place(m.name, frozenset())
    return out


class ImportMixin(_Base):
    """import_models."""

    def import_models(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        dry_run: bool = False,
        edges: Mapping[str, str | Sequence[str] | None] | None = None,
        base: str = "auto",
        progress: Callable[[int, int], None] | None = None,
        follow_symlinks: bool = False,
    ) -> ImportReport:
        """Add every model found under ``paths`` (files, model folders, Hugging Face hub
        cache folders), roots first, with inferred lineage; see
        :mod:`modelgit.workflows.importing`. ``follow_symlinks`` as for ``add``."""
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        found = discover_models(items)
        models = [ImportedModel(n, p, metadata=dict(meta)) for n, p, meta in found]
        firsts = {}
        for m in models:
            firsts.setdefault(m.name, m)  # lineage is inferred among each model's first
        paths_of = {m.name: m.path for m in firsts.values()}
        from ..lineage.inference import infer_edges  # numpy: loaded when a model comes in

        for e in infer_edges(paths_of, follow_symlinks=follow_symlinks):
            child = firsts[e.child]
            child.parents.append(e.parent)
            child.confidence = min(e.confidence, child.confidence or 1.0)
            child.directed = child.directed and e.directed
            child.guess = child.guess or e.relation
        for child, given in (edges or {}).items():
            if child not in firsts:
                raise UnsupportedInput(f"edges names {child!r}, which the import did not find")
            parents = [] if given is None else [given] if isinstance(given, str) else list(given)
            firsts[child].parents = [str(p) for p in parents]
            firsts[child].confidence = 1.0 if parents else None
            firsts[child].directed, firsts[child].guess = True, None
        ordered = _order(models)
        first_ids = {id(m) for m in firsts.values()}
        self._stored_names(ordered, first_ids)
        report = ImportReport(ordered, dry_run)
        if dry_run:
            return report
        sizes = [_weights_bytes(m.path) for m in ordered]
        total, offset = sum(sizes), 0
        for m, size in zip(ordered, sizes, strict=True):
            hook = _scaled(progress, offset, size, total)
            self._import_one(m, id(m) in first_ids, base, hook, follow_symlinks)
            offset += size
        if progress is not None:
            progress(total, total)
        return report

    def _imported(self, m: ImportedModel, names: Iterable[str]) -> str | None:
        """The ref of a stored version of one of the models ``names`` imported from
        ``m``'s path (and revision)."""
        for name in names:
            for v in self.versions(name):
                meta = v.metadata
                if meta.get("imported_from") == str(m.path) and meta.get(
                    "revision"
                ) == m.metadata.get("revision"):
                    return v.ref
        return None

    def _stored_names(self, ordered: list[ImportedModel], firsts: set[int]) -> None:
        """The name each found model is stored under, decided before anything is written
        (so a dry run shows it): where an earlier run of this import stored it (status
        ``present``; a name an unrelated model had got a suffix then), else a fresh name
        where an unrelated model has it. Parents are renamed to match."""
        stored = set(self.models())
        taken = stored | {m.name for m in ordered}  # a fresh name is no found model's
        renamed: dict[str, str] = {}
        for m in ordered:
            m.parents = [renamed.get(p, p) for p in m.parents]
            if id(m) not in firsts:  # a later hub snapshot: its first one's name
                m.name = renamed.get(m.name, m.name)
                names = [m.name] if m.name in stored else []
            else:
                suffixed = re.compile(re.escape(m.name) + r"-\d+")
                names = [m.name] * (m.name in stored)
                names += sorted(n for n in stored if suffixed.fullmatch(n))
            done = self._imported(m, names)
            if done is not None:  # an earlier run of this import stored it
                m.status, m.version = "present", done
                renamed[m.name] = m.name = done.rsplit("@", 1)[0]
            elif id(m) in firsts and m.name in stored:  # an unrelated model has the name
                renamed[m.name] = m.name = _name_for(m.name, taken)

    def _import_one(
        self,
        m: ImportedModel,
        first: bool,
        base: str,
        progress: Callable[[int, int], None] | None,
        follow_symlinks: bool = False,
    ) -> None:
        if m.status == "present":  # an earlier run of this import stored it
            return
        meta = dict(m.metadata) | {"imported_from": str(m.path)}
        if m.parents and m.confidence is not None and m.confidence < 1.0:
            meta["inferred_lineage"] = {"parents": m.parents, "confidence": m.confidence,
                                        "directed": m.directed, "relation": m.guess}  # fmt: skip
        message = f"imported from {m.path}"
        # what is on disk, nothing inherited: a lone file gets no side files of a parent
        files = None if Path(m.path).is_dir() else {}
        if not first and m.name in self:  # a later hub snapshot
            v = self.commit(m.name, m.path, message=message, metadata=meta, base=base,
                            progress=progress, follow_symlinks=follow_symlinks,
                            files=files)  # fmt: skip
            m.status, m.version = "committed", v.ref
            return
        parents = [p for p in m.parents if p in self]
        v = self.add(m.name, m.path, parents=parents or None, relation=INFERRED,
                     message=message, metadata=meta, base=base, progress=progress,
                     follow_symlinks=follow_symlinks, files=files)  # fmt: skip
        m.status, m.version = "added", v.ref


def read_edges_file(path: str | os.PathLike[str]) -> dict[str, str | list[str] | None]:
    """A JSON object ``{child: parent, [parents] or null}`` (for ``--edges FILE``)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnsupportedInput(f"cannot read the edges file {path}: {exc}") from None
    if not isinstance(data, dict) or not all(
        v is None
        or isinstance(v, str)
        or (isinstance(v, list) and all(isinstance(x, str) for x in v))
        for v in data.values()
    ):
        raise UnsupportedInput(
            f"{path}: expected a JSON object {{child: parent, [parents] or null}}"
        )
    return data
