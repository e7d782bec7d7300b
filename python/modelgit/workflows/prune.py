"""Pruning old training checkpoints (``repo.prune_checkpoints``).

Of a model's checkpoint versions (metadata ``"checkpoint"``), the last ``keep_last`` and
the best by one metric are kept whole; of the others:

* ``mode="state"`` drops the training state (the ``@state/...`` tensor rows and the
  ``"@state"`` metadata; the metadata notes ``"state_dropped": true``) and keeps the
  weights. The version's ``logical_bytes`` becomes that of its weights.
* ``mode="versions"`` deletes the versions. A version goes only when nothing outside
  the model's own version chain points at it: no tag names it and no other model's
  version has it as a provenance parent (those are kept, and reported as ``skipped``);
  the latest version is always kept. The versions that followed a deleted one are
  re-linked to its own parents, so that the chain stays whole.

Either way everything happens in one catalog transaction and the row checks of every
changed version are refreshed (``catalog.checks``); the chunks only the dropped rows
used are garbage for ``gc``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalog import checks
from ..errors import InvalidArgument
from ..versions.refs import STATE_PREFIX

if TYPE_CHECKING:
    from ..versions import VersionStore
    from ..versions.version import Version

__all__ = ["PruneReport", "prune_checkpoints", "choose_kept"]

MODES = ("state", "versions")


@dataclass
class PruneReport:
    """What :func:`prune_checkpoints` did: the refs whose state was dropped (``states``),
    the versions deleted (``versions``), those kept whole (``kept``) and those that
    could not be deleted (``skipped``: tagged, or a parent of another model)."""

    states: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "states": self.states,
            "versions": self.versions,
            "kept": self.kept,
            "skipped": self.skipped,
        }


def _metric(v: Version, key: str) -> float | None:
    info = v.metadata.get("checkpoint") if isinstance(v.metadata, dict) else None
    metrics = info.get("metrics") if isinstance(info, dict) else None
    val = metrics.get(key) if isinstance(metrics, dict) else None
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        return None
    return float(val) if math.isfinite(val) else None


def choose_kept(
    checkpoints: list[Version], keep_last: int, keep_best: str | None, maximize: bool
) -> set[int]:
    """The numbers of the checkpoints kept whole (``checkpoints`` oldest first)."""
    kept = {v.number for v in checkpoints[len(checkpoints) - keep_last :]} if keep_last else set()
    if keep_best is not None:
        scored = [(m, v.number) for v in checkpoints if (m := _metric(v, keep_best)) is not None]
        if scored:
            best = max(scored) if maximize else min(scored, key=lambda s: (s[0], -s[1]))
            kept.add(best[1])
    return kept


def prune_checkpoints(
    engine: VersionStore,
    name: str,
    keep_last: int,
    keep_best: str | None,
    mode: str,
    maximize: bool = False,
) -> PruneReport:
    """See the module docstring."""
    if mode not in MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
        raise InvalidArgument(f"keep_last must be a whole number >= 0, not {keep_last!r}")
    engine.require_model(name)
    report = PruneReport()
    with engine.catalog.transaction() as db:
        ids = {
            number: vid
            for vid, number in db.execute(
                "SELECT id, number FROM versions WHERE model = ?", (name,)
            ).fetchall()
        }
        every = [v for v in engine.versions(name) if v.number in ids]
        cps = [v for v in every if isinstance(v.metadata, dict) and "checkpoint" in v.metadata]
        kept = choose_kept(cps, keep_last, keep_best, maximize)
        latest = max(ids) if ids else None
        changed: list[int] = []
        gone: list[int] = []
        for v in cps:
            vid = ids[v.number]
            if v.number in kept or (mode == "versions" and v.number == latest):
                report.kept.append(v.ref)
                continue
            if mode == "state":
                if _drop_state(db, vid, v):
                    report.states.append(v.ref)
                    changed.append(vid)
                continue
            if not _can_delete(db, vid, name):
                report.skipped.append(v.ref)
                continue
            changed += _delete_version(db, vid)
            gone.append(vid)
            report.versions.append(v.ref)
        checks.refresh(db, set(changed) | set(gone))
    return report


def _drop_state(db: Any, vid: int, v: Version) -> bool:
    """Delete a version's training state; False when it had none."""
    has_rows = db.execute(
        "SELECT 1 FROM tensors WHERE version = ? AND substr(name, 1, ?) = ? LIMIT 1",
        (vid, len(STATE_PREFIX), STATE_PREFIX),
    ).fetchone()
    if has_rows is None and "@state" not in v.metadata:
        return False
    db.execute(
        "DELETE FROM tensors WHERE version = ? AND substr(name, 1, ?) = ?",
        (vid, len(STATE_PREFIX), STATE_PREFIX),
    )
    meta = {k: val for k, val in v.metadata.items() if k != "@state"}
    info = dict(meta.get("checkpoint") or {})
    info["state_dropped"] = True
    meta["checkpoint"] = info
    logical = db.execute(
        "SELECT COALESCE(SUM(nbytes), 0) FROM tensors WHERE version = ? AND tie IS NULL", (vid,)
    ).fetchone()[0]
    db.execute(
        "UPDATE versions SET metadata = ?, logical_bytes = ? WHERE id = ?",
        (json.dumps(meta, sort_keys=True), int(logical), vid),
    )
    return True


def _can_delete(db: Any, vid: int, name: str) -> bool:
    """Whether only the model's own later versions point at version ``vid``."""
    if db.execute("SELECT 1 FROM tags WHERE version = ?", (vid,)).fetchone() is not None:
        return False
    outside = db.execute(
        "SELECT 1 FROM version_parents vp JOIN versions cv ON cv.id = vp.version"
        " WHERE vp.parent = ? AND (cv.model != ? OR vp.kind != 'version') LIMIT 1",
        (vid, name),
    ).fetchone()
    return outside is None


def _delete_version(db: Any, vid: int) -> list[int]:
    """Delete version ``vid``, re-linking the versions that followed it to its parents;
    returns the ids of the re-linked versions."""
    parents = db.execute(
        "SELECT parent, kind, relation FROM version_parents WHERE version = ? ORDER BY position",
        (vid,),
    ).fetchall()
    children = [
        r[0] for r in db.execute("SELECT version FROM version_parents WHERE parent = ?", (vid,))
    ]
    for child in children:
        pos = db.execute(
            "SELECT position FROM version_parents WHERE version = ? AND parent = ?", (child, vid)
        ).fetchone()[0]
        db.execute("DELETE FROM version_parents WHERE version = ? AND parent = ?", (child, vid))
        for i, (parent, kind, relation) in enumerate(parents):
            db.execute(
                "INSERT OR IGNORE INTO version_parents(version, parent, kind, relation, position)"
                " VALUES (?,?,?,?,?)",
                (child, parent, kind, relation, pos + i),
            )
    db.execute("DELETE FROM versions WHERE id = ?", (vid,))
    return children
