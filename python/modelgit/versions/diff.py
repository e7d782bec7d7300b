"""Differences between two stored versions.

``repo.diff(a, b)`` compares any two versions (of one model or of two): tensors
added, removed and changed, and side files (config, tokenizer) added, removed and
changed, with the keys that changed in JSON files (``model_max_length: 512 -> 256``;
``versions/file_diff.py``). A tensor's change is of shape, of dtype, or of values; for
values (and for dtype changes of the same shape) it counts changed elements and gives the
largest absolute difference and the relative L2 difference ``||b - a|| / ||a||``.
Tensors whose content ids match are identical and are never decoded; the others are
decoded in batches bounded by a memory budget and compared in slices.
``structure=True`` adds ``Diff.structure``, the structural diff of ``structure.py``
(layers aligned by content and by name); ``Diff.structure_note`` says why it failed.

The architecture summaries (``Diff.arch_a``/``arch_b``) are built by ``architecture.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ModelgitError
from ..units import human_bytes
from .architecture import Module, TensorInfo, architecture, module_order
from .file_diff import FileChange, compare_files

if TYPE_CHECKING:
    import torch

    from ..catalog.records import TensorRow
    from .engine import VersionStore
    from .structure import StructureDiff
    from .version import Version

__all__ = [
    "TensorChange",
    "FileChange",
    "compare_files",
    "Diff",
    "compare_tensors",
    "diff_versions",
]

BATCH_BYTES = 256 << 20  # decoded bytes per side held at once
SLICE_ELEMENTS = 1 << 22  # elements compared at once (float64 temporaries)


@dataclass
class TensorChange:
    """How one tensor present on both sides differs."""

    name: str
    old: TensorInfo
    new: TensorInfo
    kinds: tuple[str, ...]  # subset of ("shape", "dtype", "values")
    changed: int | None = None  # elements that differ (None: not compared)
    max_abs: float | None = None  # largest |b - a| over finite differences
    rel_l2: float | None = None  # ||b - a|| / ||a|| (inf when a is all zeros)

    @property
    def numel(self) -> int:
        return self.new.numel

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kinds": list(self.kinds),
            "old": self.old.to_json(),
            "new": self.new.to_json(),
            "changed": self.changed,
            "numel": self.new.numel if "shape" not in self.kinds else None,
            "max_abs": _finite_or_none(self.max_abs),
            "rel_l2": _finite_or_none(self.rel_l2),
        }

    def describe(self) -> str:
        parts = []
        if "shape" in self.kinds:
            parts.append(f"shape {list(self.old.shape)} -> {list(self.new.shape)}")
        if "dtype" in self.kinds:
            parts.append(f"dtype {self.old.dtype} -> {self.new.dtype}")
        if self.changed is not None:
            n = self.new.numel
            share = f" ({100 * self.changed / n:.1f}%)" if n else ""
            parts.append(f"{self.changed}/{n} elements changed{share}")
            if self.max_abs is not None:
                parts.append(f"max |d| {self.max_abs:.3g}")
            if self.rel_l2 is not None:
                parts.append(f"rel L2 {self.rel_l2:.3g}")
        return ", ".join(parts)


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# -- the diff ----------------------------------------------------------------------------


@dataclass
class Diff:
    """The result of ``repo.diff(a, b)``."""

    a: str  # refs, "model@N"
    b: str
    added: list[TensorInfo]
    removed: list[TensorInfo]
    changed: list[TensorChange]
    unchanged: int
    arch_a: Module
    arch_b: Module
    files_added: dict[str, int] = field(default_factory=dict)  # side file path -> size
    files_removed: dict[str, int] = field(default_factory=dict)
    files_changed: list[FileChange] = field(default_factory=list)
    files_unchanged: int = 0
    structure: StructureDiff | None = None  # repo.diff(..., structure=True)
    structure_note: str = ""  # why it is None although asked for: the step failed

    @property
    def identical(self) -> bool:
        """No tensor and no side file differs."""
        return not (self.added or self.removed or self.changed or self.files_differ)

    @property
    def files_differ(self) -> bool:
        """Some side file (config, tokenizer...) was added, removed or changed."""
        return bool(self.files_added or self.files_removed or self.files_changed)

    @property
    def same_architecture(self) -> bool:
        """Same tensor names and shapes on both sides (dtypes may differ)."""
        sa = {t.name: t.shape for t in self.arch_a.walk_tensors()}
        sb = {t.name: t.shape for t in self.arch_b.walk_tensors()}
        return sa == sb

    def to_json(self) -> dict[str, Any]:
        out = {
            "a": self.a,
            "b": self.b,
            "identical": self.identical,
            "same_architecture": self.same_architecture,
            "added": [t.to_json() for t in self.added],
            "removed": [t.to_json() for t in self.removed],
            "changed": [c.to_json() for c in self.changed],
            "unchanged": self.unchanged,
            "files": {
                "added": [{"path": p, "size": n} for p, n in self.files_added.items()],
                "removed": [{"path": p, "size": n} for p, n in self.files_removed.items()],
                "changed": [f.to_json() for f in self.files_changed],
                "unchanged": self.files_unchanged,
            },
            "architecture": {
                "a": {"params": self.arch_a.numel, "tensors": self.arch_a.tensors},
                "b": {"params": self.arch_b.numel, "tensors": self.arch_b.tensors},
            },
        }
        if self.structure is not None:
            out["structure"] = self.structure.to_json()
        elif self.structure_note:
            out["structure_note"] = self.structure_note
        return out

    def __str__(self) -> str:
        lines = [f"diff {self.a} {self.b}"]
        files = len(self.files_added) + len(self.files_removed) + len(self.files_changed)
        if self.identical:
            lines.append(f"identical ({self.unchanged} tensors, {self.files_unchanged} side files)")
        elif self.added or self.removed or self.changed:
            lines.append(
                f"{len(self.added)} added, {len(self.removed)} removed, "
                f"{len(self.changed)} changed, {self.unchanged} unchanged"
            )
        else:
            lines.append(f"tensors identical ({self.unchanged}); side files differ")
        for t in self.removed:
            lines.append(f"- {t.name}  {t.describe()}")
        for t in self.added:
            lines.append(f"+ {t.name}  {t.describe()}")
        for c in self.changed:
            lines.append(f"~ {c.name}  {c.describe()}")
        if files:
            lines.append(
                f"side files: {len(self.files_added)} added, {len(self.files_removed)} "
                f"removed, {len(self.files_changed)} changed, {self.files_unchanged} unchanged"
            )
            for p, n in self.files_removed.items():
                lines.append(f"- {p}  ({human_bytes(n)})")
            for p, n in self.files_added.items():
                lines.append(f"+ {p}  ({human_bytes(n)})")
            for f in self.files_changed:
                head, *keys = f.describe()
                lines.append(f"~ {f.path}  {head}")
                lines.extend(f"    {k}" for k in keys)
        if self.same_architecture:
            lines.append("architecture: same")
            lines.extend(self.arch_b.lines())
        else:
            lines.append(f"architecture of {self.a}:")
            lines.extend(self.arch_a.lines())
            lines.append(f"architecture of {self.b}:")
            lines.extend(self.arch_b.lines())
        if self.structure is not None:
            lines.extend(self.structure.lines())
        elif self.structure_note:
            lines.append(f"structure: {self.structure_note}")
        return "\n".join(lines)


@dataclass
class _Stats:
    changed: int = 0
    sq_diff: float = 0.0
    sq_ref: float = 0.0
    max_abs: float = 0.0
    seen_finite: bool = False


def _int_view(t: torch.Tensor) -> torch.Tensor:
    import torch

    size = t.element_size()
    if t.dtype == torch.bool:
        return t.view(torch.uint8)
    return t.view({1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[size])


def compare_tensors(a: torch.Tensor, b: torch.Tensor) -> tuple[int, float | None, float | None]:
    """(changed elements, max |b - a|, ||b - a|| / ||a||) of two same-shape tensors.

    Same dtype: an element changed if its bits differ (so -0.0 vs 0.0 and NaN payloads
    count). Different dtypes: if its values differ as float64 (NaN equals NaN).
    Statistics ignore non-finite differences; None when no difference is finite.
    """
    import torch

    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    fa, fb = a.reshape(-1), b.reshape(-1)
    st = _Stats()
    same = a.dtype == b.dtype
    for s in range(0, fa.numel(), SLICE_ELEMENTS):
        xa, xb = fa[s : s + SLICE_ELEMENTS], fb[s : s + SLICE_ELEMENTS]
        da, db = xa.to(torch.float64), xb.to(torch.float64)
        if same:
            st.changed += int((_int_view(xa) != _int_view(xb)).sum())
        else:
            st.changed += int(((da != db) & ~(da.isnan() & db.isnan())).sum())
        d = (db - da).abs()
        finite = d.isfinite()
        if bool(finite.any()):
            fd = d[finite]
            st.seen_finite = True
            st.max_abs = max(st.max_abs, float(fd.max()))
            st.sq_diff += float((fd * fd).sum())
            ra = da[finite]
            st.sq_ref += float((ra * ra).sum())
    if not st.seen_finite:
        return st.changed, None, None
    if st.sq_ref > 0:
        rel = math.sqrt(st.sq_diff) / math.sqrt(st.sq_ref)
    else:
        rel = 0.0 if st.sq_diff == 0 else math.inf
    return st.changed, st.max_abs, rel


def _info(row: TensorRow) -> TensorInfo:
    return TensorInfo(row.name, row.dtype, tuple(row.shape), row.nbytes)


def _batches(names: Sequence[str], size: dict[str, int], budget: int) -> list[list[str]]:
    out: list[list[str]] = []
    cur: list[str] = []
    used = 0
    for n in names:
        if cur and used + size[n] > budget:
            out.append(cur)
            cur, used = [], 0
        cur.append(n)
        used += size[n]
    if cur:
        out.append(cur)
    return out


def diff_versions(
    engine: VersionStore,
    a: str,
    b: str,
    *,
    values: bool = True,
    progress: Callable[[int, int], None] | None = None,
    batch_bytes: int = BATCH_BYTES,
    structure: bool = False,
) -> Diff:
    """Implementation of :meth:`Repository.diff`."""
    _, va, list_a, files_a = engine.read_verified(a)
    _, vb, list_b, files_b = engine.read_verified(b)
    arch_a = architecture(_info(r) for r in list_a)
    arch_b = architecture(_info(r) for r in list_b)
    # in the order of the module trees: numbered layers as numbers (layer.2 before 10)
    rows_a = _in_order(list_a)
    rows_b = _in_order(list_b)
    added = [_info(r) for n, r in rows_b.items() if n not in rows_a]
    removed = [_info(r) for n, r in rows_a.items() if n not in rows_b]
    changed: list[TensorChange] = []
    to_compare: list[str] = []
    unchanged = 0
    for name, ra in rows_a.items():
        rb = rows_b.get(name)
        if rb is None:
            continue
        if ra.dtype == rb.dtype and ra.shape == rb.shape and ra.content == rb.content:
            unchanged += 1
            continue
        kinds = []
        if ra.shape != rb.shape:
            kinds.append("shape")
        if ra.dtype != rb.dtype:
            kinds.append("dtype")
        if not kinds:
            kinds.append("values")
        changed.append(TensorChange(name, _info(ra), _info(rb), tuple(kinds)))
        if "shape" not in kinds:
            to_compare.append(name)
    if values and to_compare:
        _compare_values(engine, va, vb, changed, to_compare, rows_a, rows_b, progress, batch_bytes)
    known = {c.name: (c.changed, c.rel_l2) for c in changed if c.changed is not None}
    if values and to_compare:
        same = [c for c in changed if not c.kinds]  # equal values, other chunk layout
        unchanged += len(same)
        changed = [c for c in changed if c.kinds]
    d = Diff(
        a=va.ref,
        b=vb.ref,
        added=added,
        removed=removed,
        changed=changed,
        unchanged=unchanged,
        arch_a=arch_a,
        arch_b=arch_b,
        files_added={p: len(d) for p, d in sorted(files_b.items()) if p not in files_a},
        files_removed={p: len(d) for p, d in sorted(files_a.items()) if p not in files_b},
        files_changed=[
            compare_files(p, d, files_b[p])
            for p, d in sorted(files_a.items())
            if p in files_b and files_b[p] != d
        ],
        files_unchanged=sum(1 for p, d in files_a.items() if files_b.get(p) == d),
    )
    if structure:
        from .structure import structure_of_versions  # lazy: structure imports this module

        def load(ref: str, names: list[str]) -> dict[str, torch.Tensor]:
            return engine.load(ref, keys=names)

        try:  # the tensor diff stands if the structural one fails (not for a data error)
            d.structure = structure_of_versions(
                list_a, list_b, files_a, files_b, (va.ref, vb.ref), load if values else None,
                known, batch_bytes,
            )  # fmt: skip
        except ModelgitError:  # a damaged chunk, a version gone: raised as everywhere
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure is said, not raised
            d.structure_note = f"structural diff failed: {type(exc).__name__}: {exc}"
    return d


def _in_order(rows: list[TensorRow]) -> dict[str, TensorRow]:
    """``rows`` by name, in :func:`module_order`."""
    by_name = {r.name: r for r in rows}
    return {n: by_name[n] for n in module_order(by_name)}


def _compare_values(
    engine: VersionStore,
    va: Version,
    vb: Version,
    changed: list[TensorChange],
    names: list[str],
    rows_a: dict[str, TensorRow],
    rows_b: dict[str, TensorRow],
    progress: Callable[[int, int], None] | None,
    batch_bytes: int,
) -> None:
    by_name = {c.name: c for c in changed}
    size = {n: max(rows_a[n].nbytes, rows_b[n].nbytes) for n in names}
    total = sum(rows_a[n].nbytes + rows_b[n].nbytes for n in names)
    done = 0
    for batch in _batches(names, size, batch_bytes):
        ta = engine.load(va.ref, keys=batch)
        tb = engine.load(vb.ref, keys=batch)
        for n in batch:
            c = by_name[n]
            c.changed, c.max_abs, c.rel_l2 = compare_tensors(ta[n], tb[n])
            if "values" in c.kinds and c.changed == 0:  # same values, other chunking
                c.kinds = ()
            done += rows_a[n].nbytes + rows_b[n].nbytes
            if progress is not None:
                progress(done, total)
        del ta, tb
