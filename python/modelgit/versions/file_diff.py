"""How two versions of a side file (config.json, tokenizer_config.json, README.md...)
differ, for ``repo.diff``: sizes, and for JSON objects the keys that changed, nested
keys dotted (``model_max_length: 512 -> 256``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..units import human_bytes

__all__ = ["FileChange", "compare_files", "MAX_KEY_CHANGES"]

MAX_KEY_CHANGES = 100  # keys of one JSON file listed (the rest are counted)
_ABSENT = object()


@dataclass
class FileChange:
    """How one side file present on both sides differs. For a JSON object (config.json,
    tokenizer_config.json...) ``keys`` lists the keys that changed, nested keys dotted
    (``{"key": "model_max_length", "old": 512, "new": 256}``; a key only on one side
    has no ``old`` or no ``new``); ``more_keys`` counts those left out."""

    path: str
    old_size: int
    new_size: int
    keys: list[dict[str, Any]] | None = None  # None: not JSON objects on both sides
    more_keys: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "keys": self.keys,
            "more_keys": self.more_keys,
        }

    def describe(self) -> list[str]:
        """One line for the file, then one per changed key."""
        if self.keys is None:
            return [f"{human_bytes(self.old_size)} -> {human_bytes(self.new_size)}"]
        count = len(self.keys) + self.more_keys
        lines = [f"{count} key{'s' if count != 1 else ''} changed"]
        for k in self.keys:
            old = _short(k["old"]) if "old" in k else "(absent)"
            new = _short(k["new"]) if "new" in k else "(absent)"
            lines.append(f"{k['key']}: {old} -> {new}")
        if self.more_keys:
            lines.append(f"... {self.more_keys} more keys")
        return lines


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    """Nested JSON objects as dotted keys; lists, scalars and ``{}`` are values."""
    if isinstance(obj, dict) and (obj or not prefix):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = obj


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def compare_files(path: str, old: bytes, new: bytes) -> FileChange:
    """How two versions of one side file differ (they do differ)."""
    change = FileChange(path, len(old), len(new))
    a, b = _json_object(old), _json_object(new)
    if a is None or b is None:
        return change
    fa: dict[str, Any] = {}
    fb: dict[str, Any] = {}
    try:
        _flatten(a, "", fa)
        _flatten(b, "", fb)
    except RecursionError:  # nested beyond reason: compared as bytes only
        return change
    keys: list[dict[str, Any]] = []
    for k in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(k, _ABSENT), fb.get(k, _ABSENT)
        if va is not _ABSENT and vb is not _ABSENT and _same_json(va, vb):
            continue
        entry: dict[str, Any] = {"key": k}
        if va is not _ABSENT:
            entry["old"] = va
        if vb is not _ABSENT:
            entry["new"] = vb
        keys.append(entry)
    change.keys = keys[:MAX_KEY_CHANGES]
    change.more_keys = max(0, len(keys) - MAX_KEY_CHANGES)
    return change


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values (1 and 1.0 and true differ, as their text does)."""
    return type(a) is type(b) and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
