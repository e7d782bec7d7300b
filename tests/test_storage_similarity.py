"""The similarity index's search (storage.similarity.candidates) and its LSH forest
(storage.sketch_index, table sketch_lsh): the right base among many unrelated models,
kept with its versions (remove, gc, pull), built for repositories written before it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import modelgit as mg
from conftest import assert_same_state
from modelgit import _core
from modelgit.formats.sources import open_model
from modelgit.storage import similarity, sketch_index
from modelgit.storage.similarity import TensorSketch, sketch_source

NAMES = [f"layer{i}.weight" for i in range(8)]


def model(seed: int, n: int = 1024) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(n + 64 * i, generator=g) * 0.05 for i, name in enumerate(NAMES)}


def tuned(sd: dict[str, torch.Tensor], seed: int, scale: float = 1e-3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=g) for k, v in sd.items()}


def sketches(repo: mg.Repository, sd: dict[str, torch.Tensor]) -> dict[str, TensorSketch]:
    with open_model(sd) as src:
        return sketch_source(src, repo.chunk_elems)


def exact(repo: mg.Repository, new: dict[str, TensorSketch]) -> list[tuple[int, float]]:
    """candidates() reading every stored sketch (what it did before the index)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(similarity, "SCAN_ROWS", 10**9)
        return similarity.candidates(repo.catalog, new, limit=3)


def lsh_rows(repo: mg.Repository, ref: str) -> list[tuple]:
    vid, _ = repo.resolve(ref)
    return repo.catalog.query(
        "SELECT name, tree, numel, bits FROM sketch_lsh WHERE version = ? ORDER BY name, tree",
        (vid,),
    )


def forget_index(repo: mg.Repository) -> None:
    """Make ``repo`` look written before the LSH forest existed."""
    with repo.catalog.transaction() as db:
        db.execute("DROP TABLE sketch_lsh")
        db.execute("DELETE FROM meta WHERE key = ?", (sketch_index.MARK,))


@pytest.fixture
def crowd(repo: mg.Repository) -> mg.Repository:
    """70 unrelated models of one architecture (more stored sketches of the probed names
    than SCAN_ROWS: the index is searched) and, among them, "base"."""
    for i in range(70):
        repo.add(f"other{i:02d}", model(100 + i))
        if i == 41:
            repo.add("base", model(1))
    assert 71 * len(NAMES) > similarity.SCAN_ROWS
    return repo


@pytest.fixture
def searched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the searches that went through the index."""
    calls: list[int] = []
    shortlist = sketch_index.shortlist

    def spy(catalog: object, probes: list) -> list[int]:
        out = shortlist(catalog, probes)
        calls.append(len(out))
        return out

    monkeypatch.setattr(sketch_index, "shortlist", spy)
    return calls


def test_keys_are_fixed_scale_free_and_share_long_prefixes_when_close() -> None:
    s = np.linspace(-1.0, 1.0, similarity.K)
    keys = sketch_index.keys_of(s)
    assert len(keys) == sketch_index.TREES
    assert all(len(k) == sketch_index.KEY_BITS // 8 for k in keys)
    # the directions are part of the format: a key never changes
    assert keys[0][:8].hex() == GOLDEN_KEY_PREFIX
    assert sketch_index.keys_of(3.0 * s) == keys  # signs do not see the scale
    rng = np.random.default_rng(0)
    near = s + 1e-3 * rng.standard_normal(similarity.K)
    far = rng.standard_normal(similarity.K)

    def shared(a: bytes, b: bytes) -> int:
        differ = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
        return sketch_index.KEY_BITS - differ.bit_length()

    assert shared(keys[0], sketch_index.keys_of(near)[0]) > 40
    assert shared(keys[0], sketch_index.keys_of(far)[0]) < 40


GOLDEN_KEY_PREFIX = "65d75ec2d62adf90"


def test_directions_are_the_gaussians_entry_by_entry() -> None:
    k, rows = similarity.K, sketch_index.TREES * sketch_index.KEY_BITS
    d = sketch_index._directions(k, rows)
    one = np.array([[sketch_index._gaussian(r, c) for r in range(rows)] for c in range(k)])
    assert d.shape == (k, rows) and d.tobytes() == one.tobytes()


def test_the_index_finds_the_base_among_many_unrelated_models(
    crowd: mg.Repository, searched: list[int]
) -> None:
    repo = crowd
    base_id, _ = repo.resolve("base")
    ft = tuned(model(1), 7)
    new = sketches(repo, ft)
    found = similarity.candidates(repo.catalog, new, limit=3)
    assert searched, "the index was not used"
    assert searched[-1] <= sketch_index.SHORTLIST
    assert found and found[0][0] == base_id
    assert found == exact(repo, new)  # the unrelated ones are ranked out either way
    repo.add("ft", ft)  # no parents declared
    assert [v.ref for v in repo.storage_bases("ft")] == ["base@1"]
    assert repo.last_write is not None and repo.last_write.delta > 0
    assert_same_state(repo.load("ft"), ft)


def test_every_version_is_keyed_and_its_keys_go_with_it(crowd: mg.Repository) -> None:
    repo = crowd
    rows = lsh_rows(repo, "base")
    assert len(rows) == sketch_index.TREES * min(len(NAMES), sketch_index.INDEXED)
    total = repo.catalog.one("SELECT COUNT(*) FROM sketch_lsh")[0]
    vid, _ = repo.resolve("base")
    repo.remove("base")
    assert repo.catalog.one("SELECT COUNT(*) FROM sketch_lsh WHERE version = ?", (vid,)) == (0,)
    assert repo.catalog.one("SELECT COUNT(*) FROM sketch_lsh")[0] == total - len(rows)
    repo.gc()
    assert repo.fsck().ok
    assert sketch_index.is_current(repo.catalog)
    new = sketches(repo, tuned(model(1), 8))
    assert all(v != vid for v, _ in similarity.candidates(repo.catalog, new, limit=3))


def test_pull_copies_the_keys(crowd: mg.Repository, tmp_path, searched: list[int]) -> None:  # noqa: ANN001
    with mg.init(tmp_path / "other") as other:
        other.pull(crowd)
        for ref in ("base", "other00", "other69"):
            assert lsh_rows(other, ref) == lsh_rows(crowd, ref)
        assert sketch_index.is_current(other.catalog)
        ft = tuned(model(1), 9)
        other.add("ft", ft)  # found through the pulled keys
        assert searched
        assert [v.ref for v in other.storage_bases("ft")] == ["base@1"]


def test_a_repository_written_before_the_index_is_keyed_on_first_search(
    crowd: mg.Repository, searched: list[int]
) -> None:
    repo = crowd
    before = lsh_rows(repo, "base")
    forget_index(repo)
    assert not sketch_index.is_current(repo.catalog)
    ft = tuned(model(1), 10)
    repo.add("ft", ft)
    assert searched
    assert [v.ref for v in repo.storage_bases("ft")] == ["base@1"]
    assert sketch_index.is_current(repo.catalog)
    assert lsh_rows(repo, "base") == before  # the same keys as written with the version
    keyed = repo.catalog.one("SELECT COUNT(DISTINCT version) FROM sketch_lsh")[0]
    assert keyed == len(repo.models())


def test_a_version_written_by_an_older_modelgit_is_keyed_later(crowd: mg.Repository) -> None:
    repo = crowd
    repo.add("old", model(2))
    old, _ = repo.resolve("old")
    with repo.catalog.transaction() as db:  # what an older writer leaves: sketches, no keys
        db.execute("DELETE FROM sketch_lsh WHERE version = ?", (old,))
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (str(old - 1), sketch_index.MARK))
    repo.add("newer", model(3), base="parent")  # keyed (no search), cannot vouch for "old"
    assert not sketch_index.is_current(repo.catalog)
    assert lsh_rows(repo, "old") == []
    ft = tuned(model(2), 11)
    repo.add("ft", ft)
    assert [v.ref for v in repo.storage_bases("ft")] == ["old@1"]
    assert len(lsh_rows(repo, "old")) == sketch_index.TREES * len(NAMES)
    assert sketch_index.is_current(repo.catalog)


def test_without_a_writable_index_the_search_reads_every_sketch(
    crowd: mg.Repository, monkeypatch: pytest.MonkeyPatch, searched: list[int]
) -> None:
    repo = crowd
    forget_index(repo)

    def fail(*args: object) -> int:
        raise mg.ModelgitError("read-only catalog")

    monkeypatch.setattr(sketch_index, "backfill", fail)
    ft = tuned(model(1), 12)
    repo.add("ft", ft)
    assert not searched  # the full scan answered
    assert [v.ref for v in repo.storage_bases("ft")] == ["base@1"]


def test_a_small_repository_is_ranked_by_reading_every_sketch(
    repo: mg.Repository, searched: list[int]
) -> None:
    for i in range(5):
        repo.add(f"m{i}", model(200 + i))
    ft = tuned(model(202), 13)
    new = sketches(repo, ft)
    found = similarity.candidates(repo.catalog, new, limit=3)
    assert not searched
    assert [v for v, _ in found] == [repo.resolve("m2")[0]]


@pytest.mark.parametrize("chunk_elems", [1000, 1 << 13])
def test_sketch_source_parts_pool_and_files(tmp_path, chunk_elems):
    """sketch_source (one sketch_parts call per tensor) against the sum of the plain
    per-chunk sketches of the sampled chunks, the same from a safetensors file (read
    part by part) and with the tensors shared with a worker pool."""
    from safetensors.torch import save_file

    from modelgit.pool import WorkerPool

    g = torch.Generator().manual_seed(3)
    sd = {
        "big": torch.randn(40 * chunk_elems + 17, generator=g),
        "half": torch.randn(3000, generator=g).to(torch.bfloat16),
        "sparse": torch.where(torch.rand(5000, generator=g) < 0.3, 0.0, 1.0).to(torch.float16),
        "ints": torch.arange(10),
        "empty": torch.zeros(0),
    }
    save_file(sd, tmp_path / "m.safetensors")
    with open_model(sd) as src:
        plain = sketch_source(src, chunk_elems)
    with open_model(tmp_path / "m.safetensors") as src:
        from_file = sketch_source(src, chunk_elems)
    with WorkerPool(3) as pool, open_model(sd) as src:
        pooled = sketch_source(src, chunk_elems, pool)
    assert set(plain) == {"big", "half", "sparse"}
    for name, s in plain.items():
        t = sd[name]
        raw = t.contiguous().view(torch.uint8).numpy().tobytes()
        size, dtype = t.element_size(), str(t.dtype).removeprefix("torch.")
        count = -(-t.numel() // chunk_elems)
        acc, zeros, sampled = np.zeros(similarity.K), 0, 0
        for i in similarity._sampled_chunks(count):
            start = i * chunk_elems
            n = min(t.numel() - start, chunk_elems, similarity.SAMPLE)
            part = raw[start * size : (start + n) * size]
            seed = similarity._seed(name, i)
            acc = acc + np.frombuffer(_core.sketch(part, dtype, k=similarity.K, seed=seed))
            zeros += int((t[start : start + n] == 0).sum())
            sampled += n
        assert s.sketch.tobytes() == acc.tobytes()
        assert s.zero_share == zeros / sampled and s.numel == t.numel()
        for other in (from_file[name], pooled[name]):
            assert other.sketch.tobytes() == s.sketch.tobytes()
            assert (other.norm2, other.zero_share, other.numel) == (s.norm2, s.zero_share, s.numel)
    assert plain["sparse"].zero_share > 0.2
