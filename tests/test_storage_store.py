"""ChunkStore: reads that race gc follow a chunk to its new place, on the CPU path and
on the host stage of the GPU path (which runs on the CPU, so it is tested here); a
delta whose base is stored standalone decodes with it in one pass."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import modelgit as mg
from modelgit import codec
from modelgit.codec import lossless
from modelgit.errors import CorruptObject
from modelgit.storage.reader_cuda import host_stage


def _moved(repo: mg.Repository) -> tuple[list, list]:
    """Rows of a live model's chunks read before a gc that rewrites their pack, and the
    rows after it."""
    repo.add("keep", {"w": torch.randn(300_000), "b": torch.randn(7)})
    repo.add("drop", {"w": torch.randn(300_000)})
    ids = [c for r in repo.tensor_rows(repo.resolve("keep")[0]) for c in r.chunk_ids]
    before = [repo.store.rows(ids)[c] for c in ids]
    repo.remove("drop")
    assert repo.gc().packs_rewritten == 1  # the pack held garbage: live records moved
    after = [repo.store.rows(ids)[c] for c in ids]
    assert all((a.pack, a.offset) != (b.pack, b.offset) for a, b in zip(before, after, strict=True))
    return before, after


def test_cpu_read_follows_a_chunk_gc_moved(repo: mg.Repository) -> None:
    stale, fresh = _moved(repo)
    repo.store.cache.clear()
    for old, new in zip(stale, fresh, strict=True):
        with pytest.raises(CorruptObject):  # its old place is gone
            repo.store.reader.read(old.pack, old.offset, old.length)
        got, want = bytearray(old.raw_length), bytearray(new.raw_length)
        repo.store.get_into(old, memoryview(got))
        repo.store.get_into(new, memoryview(want))
        assert got == want


def test_gpu_host_stage_follows_a_chunk_gc_moved(repo: mg.Repository) -> None:
    """Before the layers redesign the GPU path read ``store.reader`` directly and raised
    CorruptObject here, where a CPU load succeeded."""
    stale, fresh = _moved(repo)
    for old, new in zip(stale, fresh, strict=True):
        a, b = bytearray(old.raw_length), bytearray(new.raw_length)
        parts_a = host_stage(repo.store, old, memoryview(a))
        parts_b = host_stage(repo.store, new, memoryview(b))
        assert a == b
        assert (parts_a is None) == (parts_b is None)


def test_read_record_checks_the_header_against_the_row(repo: mg.Repository) -> None:
    repo.add("m", {"w": torch.randn(1000)})
    (row,) = repo.store.rows(repo.tensor_rows(repo.resolve("m")[0])[0].chunk_ids).values()
    _, rec = repo.store.read_record(row)
    assert rec.chunk_id == row.id
    with pytest.raises(CorruptObject, match="record header does not match"):
        repo.store.read_record(replace(row, raw_length=row.raw_length + 4))


def _child_of_a_standalone_base(repo: mg.Repository) -> tuple[dict, list, list]:
    """A fine-tune coded as planes deltas against a base stored standalone: the child's
    tensors, and the rows of the child's chunks and of their bases."""
    g = torch.Generator().manual_seed(5)
    base = {"w": torch.randn(600_000, generator=g) * 0.02}
    child = {"w": base["w"] + torch.randn(600_000, generator=g) * 1e-4}
    repo.add("base", base)
    repo.add("child", child, parents="base")
    ids = [c for r in repo.tensor_rows(repo.resolve("child")[0]) for c in r.chunk_ids]
    rows = list(repo.store.rows(ids).values())
    bases = list(repo.store.rows([b for r in rows for b in r.bases]).values())
    assert len(rows) == len(bases) >= 2  # several chunks, each one delta on one base
    assert all(r.codec == codec.PLANES and r.depth == 1 for r in rows)
    assert all(b.codec == codec.PLANES and not b.bases for b in bases)
    return child, rows, bases


def test_a_delta_on_a_standalone_base_decodes_in_one_pass(repo, monkeypatch) -> None:
    child, rows, bases = _child_of_a_standalone_base(repo)
    calls: list[int] = []
    real = lossless._core.planes_decode_pair

    def spy(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(lossless._core, "planes_decode_pair", spy)
    repo.store.cache.clear()
    got = repo.load("child")
    assert torch.equal(got["w"].view(torch.int32), child["w"].view(torch.int32))
    assert len(calls) == len(rows)  # every chunk: base planes and residual together
    # a cached base is copied instead (cheaper than its planes); the same bytes
    for b in bases:
        repo.store.get(b.id)
    calls.clear()
    for r in rows:
        out = bytearray(r.raw_length)
        repo.store.get_into(r, memoryview(out))  # verified against the chunk id
    assert calls == []


def test_a_damaged_standalone_base_fails_the_one_pass_decode(repo) -> None:
    _, rows, bases = _child_of_a_standalone_base(repo)
    b = bases[0]
    pack = repo.store.packs_dir / b.pack
    with open(pack, "r+b") as f:  # a byte in the middle of the base's record
        f.seek(b.offset + b.length // 2)
        byte = f.read(1)
        f.seek(b.offset + b.length // 2)
        f.write(bytes([byte[0] ^ 0x10]))
    repo.store.cache.clear()
    child = next(r for r in rows if b.id in r.bases)
    with pytest.raises(CorruptObject):
        repo.store.get_into(child, memoryview(bytearray(child.raw_length)))
    with pytest.raises(CorruptObject):
        repo.load("child")


def test_a_stale_base_row_of_another_codec_still_decodes(repo) -> None:
    """A reader's row that still says "planes" for a base that repack re-coded (and gc
    moved): the one-pass path follows the catalog to the record as it is now and falls
    back to decoding it by its own codec."""
    g = torch.Generator().manual_seed(5)
    base = {"w": torch.randint(0, 256, (600_000,), dtype=torch.uint8, generator=g)}
    child = {"w": base["w"].clone()}
    child["w"][::1000] ^= 1
    repo.add("base", base)
    repo.add("child", child, parents="base")
    ids = [c for r in repo.tensor_rows(repo.resolve("child")[0]) for c in r.chunk_ids]
    row = next(r for r in repo.store.rows(ids).values() if r.bases)
    b = repo.store.rows(row.bases)[row.bases[0]]
    assert b.codec != codec.PLANES  # random bytes: stored raw
    repo.store.cache.clear()
    want = bytearray(row.raw_length)
    repo.store.get_into(row, memoryview(want))
    repo.store.hint_rows({b.id: replace(b, codec=codec.PLANES, offset=b.offset + 1)})
    got = bytearray(row.raw_length)
    repo.store.get_into(row, memoryview(got))  # verified against the chunk id
    assert got == want


def test_a_delta_base_record_is_read_once(repo, monkeypatch) -> None:
    """A chain's middle record is decoded in place, not first offered as planes (which
    would read and checksum it twice)."""
    g = torch.Generator().manual_seed(6)
    w = torch.randn(300_000, generator=g) * 0.02
    repo.add("v0", {"w": w})
    for i in range(1, 3):
        w = w + torch.randn(300_000, generator=g) * 1e-4
        repo.add(f"v{i}", {"w": w}, parents=f"v{i - 1}")
    ids = repo.tensor_rows(repo.resolve("v2")[0])[0].chunk_ids
    assert max(r.depth for r in repo.store.rows(ids).values()) == 2
    reads: dict[bytes, int] = {}
    real = repo.store.read_record

    def counting(row, scratch=None):
        reads[row.id] = reads.get(row.id, 0) + 1
        return real(row, scratch)

    monkeypatch.setattr(repo.store, "read_record", counting)
    repo.store.cache.clear()
    got = repo.load("v2")
    assert torch.equal(got["w"].view(torch.int32), w.view(torch.int32))
    assert len(reads) == 3 * len(ids) and set(reads.values()) == {1}


def test_a_fine_tune_stores_huffman_and_runs_sections(repo, monkeypatch) -> None:
    """A float32 model's exponent planes go to Huffman sections, a small fine-tune's
    residual high planes to runs sections (format 5); both load bit for bit, and the
    first write marks the repository format 5."""
    from modelgit.codec import entropy

    gen = torch.Generator().manual_seed(5)
    base = {"w": torch.randn(600_000, generator=gen) * 0.05}
    tuned = {"w": base["w"] + torch.randn(600_000, generator=gen) * 1e-4}
    repo.add("base", base)
    repo.add("tuned", tuned, parents="base")
    assert repo.format == 5
    methods: list[int] = []
    real = entropy.Sections.section

    def spy(self, size, scratch=None):  # type: ignore[no-untyped-def]
        methods.append(self.buf[self.pos])
        return real(self, size, scratch)

    monkeypatch.setattr(entropy.Sections, "section", spy)
    repo.store.cache.clear()
    for name, sd in (("base", base), ("tuned", tuned)):
        got = repo.load(name)
        assert torch.equal(got["w"].view(torch.int32), sd["w"].view(torch.int32))
    assert entropy.METHOD_HUFF in methods and entropy.METHOD_RUNS in methods
