"""Merging two versions: strategies on state_dicts and the merge commit.

Strategies (``strategy=``):

- ``"ours"`` / ``"theirs"``: keep one side's tensors (the merge still records both
  parents, like ``git merge -s ours``);
- ``"average"``: the element-wise mean of both sides (float tensors; computed in
  float32, float64 for float64, and cast back to our dtype); tensors only one side has
  are kept; non-float tensors that differ keep ours;
- ``"task-arithmetic"``: ``base + (ours - base) + (theirs - base)`` with ``base`` the
  nearest common ancestor version (error if there is none); tensors the base lacks are
  averaged;
- a callable ``fn(ours, theirs, base) -> state_dict`` (``base`` is None without a
  common ancestor), or its import path ``"pkg.module:function"``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..callables import resolve_callable
from ..catalog import checks
from ..catalog.records import VERSION_COLUMNS
from ..catalog.schema import ensure_remote_table
from ..errors import LineageError, UnsupportedInput, WorkflowError
from ..storage.reader import read_tensors
from ..versions.refs import version_from_row
from ..versions.version import Version

if TYPE_CHECKING:
    import torch

    from ..versions import VersionStore

__all__ = ["STRATEGIES", "merge_state_dicts", "merge_versions", "common_ancestor"]

STRATEGIES = ("ours", "theirs", "average", "task-arithmetic")

StateDict = dict[str, "torch.Tensor"]


# -- strategies ------------------------------------------------------------------------
def _work_dtype(*ts: torch.Tensor) -> torch.dtype:
    import torch

    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def _combine(
    ours: Mapping[str, torch.Tensor],
    theirs: Mapping[str, torch.Tensor],
    fn: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor],
) -> StateDict:
    out: StateDict = {}
    memo: dict[tuple[int, int], torch.Tensor] = {}  # keeps tied tensors tied
    for key, a in ours.items():
        b = theirs.get(key)
        if b is None:
            out[key] = a
            continue
        if tuple(a.shape) != tuple(b.shape):
            raise UnsupportedInput(
                f"tensor {key!r} has shape {tuple(a.shape)} here and {tuple(b.shape)} in the "
                "other version: use strategy 'ours', 'theirs' or a callable"
            )
        pair = (id(a), id(b))
        if pair not in memo:
            if not (a.dtype.is_floating_point and b.dtype.is_floating_point):
                memo[pair] = a
            else:
                memo[pair] = fn(key, a, b).to(a.dtype)
        out[key] = memo[pair]
    for key, b in theirs.items():
        if key not in out:
            out[key] = b
    return out


def merge_state_dicts(
    ours: Mapping[str, torch.Tensor],
    theirs: Mapping[str, torch.Tensor],
    base: Mapping[str, torch.Tensor] | None,
    strategy: str | Callable[..., Any],
) -> StateDict:
    """Combine two state_dicts (``base``: their common ancestor, or None)."""
    import torch

    if strategy == "ours":
        return dict(ours)
    if strategy == "theirs":
        return dict(theirs)
    if strategy == "average":

        def avg(key: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            w = _work_dtype(a, b)
            return (a.to(w) + b.to(w)) / 2

        return _combine(ours, theirs, avg)
    if strategy == "task-arithmetic":
        if base is None:
            raise LineageError(
                "task-arithmetic needs a common ancestor of both versions and they have "
                "none: use 'average' or a callable"
            )

        def task(key: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            p = base.get(key)
            w = _work_dtype(a, b)
            if p is None or tuple(p.shape) != tuple(a.shape) or not p.dtype.is_floating_point:
                return (a.to(w) + b.to(w)) / 2
            return a.to(w) + b.to(w) - p.to(w)

        return _combine(ours, theirs, task)
    if isinstance(strategy, str) and ":" not in strategy:
        raise UnsupportedInput(
            f"unknown merge strategy {strategy!r}: use one of {', '.join(STRATEGIES)}, "
            "a callable fn(ours, theirs, base) or its 'package.module:function' path"
        )
    fn = resolve_callable(strategy)
    label = strategy if isinstance(strategy, str) else getattr(strategy, "__qualname__", "fn")
    try:
        result = fn(dict(ours), dict(theirs), None if base is None else dict(base))
    except Exception as exc:  # the user's code: its failure is no modelgit bug
        raise WorkflowError(
            f"merge strategy {label} failed: {type(exc).__name__}: {exc}; nothing was merged"
        ) from exc
    if not isinstance(result, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in result.items()
    ):
        raise UnsupportedInput("a merge callable must return a dict {name: torch.Tensor}")
    for k, t in result.items():  # a tensor both sides have in one shape keeps that shape
        a, b = ours.get(k), theirs.get(k)
        if a is not None and b is not None and a.shape == b.shape and t.shape != a.shape:
            raise UnsupportedInput(
                f"merge strategy {label} returned {k!r} of shape {list(t.shape)}, where both "
                f"sides have {list(a.shape)}; nothing was merged"
            )
    return dict(result)


# -- the version graph -----------------------------------------------------------------
def _ancestry(repo: VersionStore, vid: int) -> dict[int, int]:
    """Every ancestor of a version (itself included) -> its distance, via all parent links."""
    dist = {vid: 0}
    queue = deque([vid])
    while queue:
        v = queue.popleft()
        for (p,) in repo.catalog.query(
            "SELECT parent FROM version_parents WHERE version = ?", (v,)
        ):
            if p not in dist:
                dist[p] = dist[v] + 1
                queue.append(p)
    return dist


def common_ancestor(repo: VersionStore, a: int, b: int) -> int | None:
    """The nearest common ancestor of two versions (internal ids), or None."""
    da, db = _ancestry(repo, a), _ancestry(repo, b)
    common = [(da[v] + db[v], -v, v) for v in da.keys() & db.keys()]
    return min(common)[2] if common else None


def _load(repo: VersionStore, vid: int) -> StateDict:
    return read_tensors(repo.store, repo.tensor_rows(vid), repo.pool)


def fetched(repo: VersionStore, name: str | None = None) -> list[tuple[int, Version, str]]:
    """Versions fetched aside by pull/push and not merged yet (the model's latest version
    does not descend from them): (id, Version, remote)."""
    with repo.catalog.transaction() as db:
        ensure_remote_table(db)
    sql = (
        f"SELECT {VERSION_COLUMNS}, r.remote FROM remote_versions r "
        "JOIN versions v ON v.id = r.version"
    )
    args: tuple = ()
    if name is not None:
        sql += " WHERE v.model = ?"
        args = (name,)
    rows = repo.catalog.query(sql + " ORDER BY v.model, r.remote_number", args)
    merged: dict[str, set[int]] = {}  # per model: what its latest version descends from
    out = []
    for r in rows:
        model = r[2]
        if model not in merged:
            merged[model] = _ancestry(repo, repo.resolve(model)[0])
        if r[0] not in merged[model]:
            out.append((r[0], version_from_row(repo.catalog, r[:-1]), r[-1]))
    return out


def _resolve_other(repo: VersionStore, name: str, other: object) -> tuple[int, Version]:
    if other is None:
        pending = fetched(repo, name)
        ids = {vid for vid, _, _ in pending}
        heads = [
            (vid, v)
            for vid, v, _ in pending
            if not any(vid in _ancestry(repo, w) for w in ids - {vid})
        ]
        if len(heads) != 1:
            raise LineageError(
                f"model {name!r} has {len(heads)} fetched heads to merge; name one "
                "(its uid, from the pull report or repo.fetched())"
            )
        return heads[0]
    if isinstance(other, Version):
        other = other.id
    if not isinstance(other, str):
        raise UnsupportedInput("other_version must be a uid, a reference or a Version")
    row = repo.catalog.one("SELECT id FROM versions WHERE uid = ?", (other,))
    if row is not None:
        return row[0], repo.version_by_id(row[0])
    return repo.resolve(other)


def merge_versions(
    repo: VersionStore,
    name: str,
    other: object = None,
    strategy: str | Callable[..., Any] = "average",
    message: str = "",
    tolerance: object = None,
) -> Version:
    """Merge ``other`` into the latest version of ``name``; see CollabMixin.merge."""
    repo.require_model(name)
    ours_id, ours = repo.resolve(name)
    other_id, theirs = _resolve_other(repo, name, other)
    if other_id in _ancestry(repo, ours_id):
        raise LineageError(f"{theirs.id} is already part of {ours.ref}: nothing to merge")
    base_id = common_ancestor(repo, ours_id, other_id)
    if isinstance(strategy, str) and strategy not in STRATEGIES and ":" not in strategy:
        merge_state_dicts({}, {}, None, strategy)  # raises the helpful error
    ours_sd = _load(repo, ours_id)
    theirs_sd = _load(repo, other_id)
    base_sd = None
    if base_id is not None and strategy not in ("ours", "theirs", "average"):
        base_sd = _load(repo, base_id)
    merged = merge_state_dicts(ours_sd, theirs_sd, base_sd, strategy)
    label = strategy if isinstance(strategy, str) else getattr(strategy, "__qualname__", "callable")
    base = repo.version_by_id(base_id) if base_id is not None else None
    meta = {
        "merge": {
            "strategy": label,
            "ours": ours.id,
            "theirs": theirs.id,
            "base": base.id if base is not None else None,
        }
    }
    kind = "version" if theirs.model == name else "provenance"
    links = [(ours_id, ours, "version", "version"), (other_id, theirs, kind, "merge")]
    if not message:
        message = f"merge {theirs.model} {theirs.id} ({label})"
    version = repo.write(name, merged, links, message, meta, tolerance, new_model=False)
    return _settle(repo, name, version, ours_id)


def _settle(repo: VersionStore, name: str, version: Version, ours_id: int) -> Version:
    """After the merge commit: give it our side files. The fetched versions it merged
    keep their place and numbers (``name@fetched:N``): numbers never move."""
    with repo.catalog.transaction() as db:
        vid = db.execute("SELECT id FROM versions WHERE uid = ?", (version.id,)).fetchone()[0]
        db.execute(
            "INSERT OR IGNORE INTO files(version, path, data) "
            "SELECT ?, path, data FROM files WHERE version = ?",
            (vid, ours_id),
        )
        checks.refresh(db, [vid])
    return repo.version_by_id(vid)
