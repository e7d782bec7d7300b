"""Catalog damage fuzz (slow): random byte flips in ``catalog.db`` and random damaged
values in its rows. Each one must be harmless (every read gives exactly what was
stored), or raise an error of ``modelgit.errors`` where the damaged thing is used, or
show in fsck: no silent wrong result, and no exception from outside modelgit.errors.

Run: ``pytest -m slow tests/test_catalog_fuzz.py`` (``MODELGIT_FUZZ_CASES`` trials
of each kind, default 300 byte flips and 300 damaged values)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import modelgit as mg

pytestmark = pytest.mark.slow
CASES = int(os.environ.get("MODELGIT_FUZZ_CASES", "300"))


def _weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "enc.layers.0.weight": torch.randn(48, 48, generator=g),
        "enc.layers.0.bias": torch.randn(48, generator=g),
        "enc.layers.1.weight": torch.randn(48, 48, generator=g),
        "head.weight": torch.randn(3, 48, generator=g).to(torch.bfloat16),
        "ids": torch.arange(7, dtype=torch.int64) * seed,
    }


def _build(root: Path) -> None:
    folder = root / "hf"
    folder.mkdir(parents=True)
    save_file(_weights(0), str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"hidden": 48, "model_max_length": 512}')
    (folder / "tokenizer.json").write_text('{"vocab": ["a", "b", "c"]}')
    with mg.init(root / "repo") as repo:
        repo.add("base", folder, message="pretrained", metadata={"acc": 0.5})
        repo.add("ft", _weights(1), parents="base", message="tuned")
        repo.commit("ft", _weights(2), message="more", metadata={"acc": 0.7})
        half = {k: v.half() if v.is_floating_point() else v for k, v in _weights(2).items()}
        repo.add("cast", half, parents="ft", relation="cast")
        repo.add("merged", _weights(3), parents=["ft", "cast"], relation="merge")
        repo.tag("ft@1", "prod")
        repo.tag("base", "v0")


def _digest(sd: dict[str, torch.Tensor]) -> dict[str, tuple]:
    out = {}
    for k, t in sd.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        out[k] = (str(t.dtype), tuple(t.shape), hashlib.sha256(raw).hexdigest())
    return out


def _observe(repo: mg.Repository) -> dict[str, Any]:
    """Everything a user reads back, through the public API."""
    seen: dict[str, Any] = {"models": repo.models()}
    for name in seen["models"]:
        for v in repo.versions(name):
            parents = [(p.ref, p.kind, p.relation) for p in v.parents]
            seen[v.ref] = (_digest(repo.load(v.ref)), repo.files(v.ref), v.message, v.metadata,
                           parents)  # fmt: skip
    seen["tags"] = {t: v.ref for t, v in repo.tags().items()}
    for t in seen["tags"]:
        seen[f"tag:{t}"] = _digest(repo.load(t))
    seen["edges"] = sorted((e.parent, e.child, e.relation) for e in repo.graph.edges())
    return seen


def _flip_byte(db: Path, rng: random.Random) -> str:
    raw = bytearray(db.read_bytes())
    at = rng.randrange(len(raw))
    raw[at] ^= rng.randrange(1, 256)
    db.write_bytes(bytes(raw))
    return f"byte {at}"


_COLUMNS = {
    "versions": ["uid", "model", "number", "content_id", "message", "created", "metadata",
                 "logical_bytes", "tolerance", "lossy"],
    "tensors": ["name", "position", "dtype", "shape", "nbytes", "content", "chunk_bytes",
                "chunks", "tie", "version"],
    "files": ["path", "data", "version"],
    "tags": ["name", "version"],
    "edges": ["parent", "child", "relation"],
    "version_parents": ["parent", "kind", "relation", "position", "version"],
    "chunks": ["id", "pack", "offset", "length", "raw_length", "codec", "base", "depth"],
    "row_checks": ["kind", "key", "digest"],
    "meta": ["key", "value"],
}  # fmt: skip


def _damage_value(db_path: Path, rng: random.Random) -> str:
    db = sqlite3.connect(db_path)
    try:
        table = rng.choice(sorted(_COLUMNS))
        col = rng.choice(_COLUMNS[table])
        key = "id" if table == "chunks" else "rowid"  # chunks is WITHOUT ROWID
        rows = db.execute(f"SELECT {key}, {col} FROM {table}").fetchall()
        if not rows:
            return "nothing"
        rowid, value = rng.choice(rows)
        if isinstance(value, int):
            new: object = rng.choice([value + 1, value - 1, 0, -1, 2**62, value ^ 1])
        elif isinstance(value, float):
            new = value + rng.choice([1e-6, 1.0, -1.0])
        elif isinstance(value, str) and value:
            i = rng.randrange(len(value))
            new = value[:i] + chr((ord(value[i]) ^ rng.randrange(1, 32)) or 65) + value[i + 1 :]
        elif isinstance(value, bytes) and value:
            b = bytearray(value)
            b[rng.randrange(len(b))] ^= rng.randrange(1, 256)
            new = bytes(b)
        elif value is None:
            new = rng.choice(["x", 0, b"\x00"])
        else:
            new = None
        try:
            db.execute(f"UPDATE {table} SET {col} = ? WHERE {key} = ?", (new, rowid))
            db.commit()
        except sqlite3.DatabaseError:
            return "refused by SQLite"
        return f"{table}.{col} row {rowid}: {value!r:.40} -> {new!r:.40}"
    finally:
        db.close()


def _trial(pristine: Path, work: Path, expected: dict, damage: Any, rng: random.Random) -> str:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(pristine, work)
    what = damage(work / "catalog.db", rng)
    try:
        with mg.open(work) as repo:
            try:
                seen = _observe(repo)
            except mg.ModelgitError:
                return "detected"
            if seen == expected:
                return "harmless"
            if not repo.fsck().ok:
                return "fsck"
            diff = [k for k in set(seen) | set(expected) if seen.get(k) != expected.get(k)]
            return f"SILENT {what}: {sorted(diff)[:4]}"
    except mg.ModelgitError:
        return "detected"
    except Exception as exc:  # noqa: BLE001 - what this test looks for
        return f"FOREIGN {what}: {type(exc).__name__}: {exc}"


@pytest.mark.parametrize("kind", ["byte", "value"])
def test_catalog_damage_is_never_silent(tmp_path: Path, kind: str) -> None:
    _build(tmp_path)
    pristine = tmp_path / "repo"
    with mg.open(pristine) as repo:
        expected = _observe(repo)
        assert repo.fsck().ok
    db = sqlite3.connect(pristine / "catalog.db")  # no free pages: every flip lands in use
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    damage = _flip_byte if kind == "byte" else _damage_value
    rng = random.Random(20261130 + (kind == "value"))
    outcomes: dict[str, int] = {}
    bad: list[str] = []
    for _ in range(CASES):
        got = _trial(pristine, tmp_path / "work", expected, damage, rng)
        key = got.split(" ", 1)[0]
        outcomes[key] = outcomes.get(key, 0) + 1
        if key in ("SILENT", "FOREIGN"):
            bad.append(got)
    print(f"{kind}: {outcomes}")
    assert not bad, f"{len(bad)} of {CASES}: " + "\n".join(bad[:10])
