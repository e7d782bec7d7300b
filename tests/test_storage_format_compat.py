"""Repositories written by earlier modelgit releases open and load bit for bit.

``fixtures/format2/`` was written by modelgit at commit 5fb3c36 (format 2) with
``fixtures/make_format2.py``; ``fixtures/format2.json`` lists what every version held.
A copy is opened (SQLite writes its WAL beside the catalog), so the fixture itself
never changes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import xxhash

import modelgit as mg
from modelgit._native import _core
from modelgit.codec import entropy

FIXTURES = Path(__file__).parent / "fixtures"


def _digest(t: torch.Tensor) -> str:
    raw = t.contiguous().view(torch.uint8).reshape(-1).numpy().tobytes() if t.numel() else b""
    return xxhash.xxh3_128_hexdigest(raw)


@pytest.fixture
def old_repo(tmp_path: Path) -> Iterator[tuple[mg.Repository, dict]]:
    copy = tmp_path / "format2"
    shutil.copytree(FIXTURES / "format2", copy)
    (copy / "locks").mkdir(exist_ok=True)  # git keeps no empty folder
    manifest = json.loads((FIXTURES / "format2.json").read_text())
    repo = mg.open(copy)
    try:
        yield repo, manifest
    finally:
        repo.close()


def test_every_version_loads_bit_exact(old_repo: tuple[mg.Repository, dict]) -> None:
    repo, manifest = old_repo
    assert repo.format == 2
    refs = [v.ref for name in repo.models() for v in repo.versions(name)]
    assert sorted(refs) == sorted(manifest["models"])
    for ref, want in manifest["models"].items():
        sd = repo.load(ref)
        assert list(sd) == list(want["tensors"]), ref
        for key, t in sd.items():
            w = want["tensors"][key]
            assert str(t.dtype).removeprefix("torch.") == w["dtype"], (ref, key)
            assert list(t.shape) == w["shape"], (ref, key)
            assert _digest(t) == w["xxh3"], (ref, key)
        files = {p: xxhash.xxh3_128_hexdigest(d) for p, d in repo.files(ref).items()}
        assert files == want["files"], ref


@pytest.mark.parametrize("decoder", _core.rans_decoders())
def test_every_rans_decoder_loads_the_old_streams(
    old_repo: tuple[mg.Repository, dict], decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every rANS decode loop this CPU runs reads the stored streams of format 2."""
    repo, manifest = old_repo
    calls = []

    def rans_decode(stream, size, out=None):  # type: ignore[no-untyped-def]
        calls.append(size)
        return _core.rans_decode(stream, size, out=out, decoder=decoder)

    monkeypatch.setattr(entropy, "_core", SimpleNamespace(rans_decode=rans_decode))
    for ref, want in manifest["models"].items():
        for key, t in repo.load(ref).items():
            assert _digest(t) == want["tensors"][key]["xxh3"], (ref, key)
    assert len(calls) > 10 and sum(calls) > 500_000  # rANS sections were read


def test_versions_lineage_and_tags_are_kept(old_repo: tuple[mg.Repository, dict]) -> None:
    repo, manifest = old_repo
    for ref, want in manifest["models"].items():
        name, number = ref.split("@")
        v = repo.versions(name)[int(number) - 1]
        assert (v.id, v.content_id, v.lossy) == (want["id"], want["content_id"], want["lossy"])
        assert [p.ref for p in v.parents] == want["parents"]
    assert {t: v.ref for t, v in repo.tags().items()} == manifest["tags"]
    assert [[e.parent, e.child, e.relation] for e in repo.graph.edges()] == manifest["edges"]
    assert repo.stats().stored_bytes == manifest["stored_bytes"]
    assert [t.name for t in repo.tests()] == ["acc"]


def test_fsck_passes_and_new_writes_build_on_old_chunks(
    old_repo: tuple[mg.Repository, dict],
) -> None:
    repo, manifest = old_repo
    report = repo.fsck()
    assert report.ok, report.problems
    ft = repo.load("ft")
    tuned = {k: v.clone() for k, v in ft.items()}
    tuned["layer.0.bias"] += 1.0
    v = repo.commit("ft", tuned)
    assert repo.last_write is not None and repo.last_write.dedup > 0
    got = repo.load(v.ref)
    for k in tuned:
        assert _digest(got[k]) == _digest(tuned[k]), k
    old = manifest["models"]["ft@3"]["tensors"]
    assert _digest(repo.load("ft@3")["layer.0.weight"]) == old["layer.0.weight"]["xxh3"]
    assert repo.format == mg.repository.FORMAT_VERSION  # marked by the write
    assert (Path(repo.root) / "MODELGIT").read_text().endswith(f"format {repo.format}\n")
