"""The object-store contract every pack backend keeps (docs/FORMAT.md section 6.1):
write once, ranged reads across blocks, list, delete, publish and discard. Run on a
folder (LocalObjects) and on fsspec's in-memory filesystem (FsspecObjects); the S3
backend runs against moto's server in tests/test_repository_team.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelgit as mg
from modelgit.storage.objects import FsspecObjects, ObjectStore, open_objects
from modelgit.storage.packs import PACK_HEADER, PACK_MAGIC, PACK_VERSION, Record


@pytest.fixture(params=["folder", "memory"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "folder":
        (tmp_path / "packs").mkdir()
        yield open_objects(str(tmp_path / "packs"), tmp_path / "staging")
        return
    pytest.importorskip("fsspec")
    url = f"memory://mg-{uuid.uuid4().hex[:8]}/packs"
    store = open_objects(url, tmp_path / "staging")
    assert isinstance(store, FsspecObjects)
    yield store
    store.fs.rm(store.prefix, recursive=True)


def test_objects_write_once_ranges_list_delete(objects: ObjectStore) -> None:
    data = PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0, 0) + bytes(range(256)) * 100
    objects.put("pack-a.mgp", data)
    with pytest.raises(mg.ModelgitError):
        objects.put("pack-a.mgp", b"other")  # immutable: written once
    assert objects.exists("pack-a.mgp") and not objects.exists("pack-b.mgp")
    assert objects.get_range("pack-a.mgp", 16 + 3, 5) == bytes([3, 4, 5, 6, 7])
    assert objects.list() == {"pack-a.mgp": len(data)}
    objects.check_header("pack-a.mgp")
    objects.put("pack-bad.mgp", b"NOTAPACK" * 4)
    with pytest.raises(mg.CorruptObject, match="not a modelgit pack"):
        objects.check_header("pack-bad.mgp")
    objects.delete("pack-bad.mgp")
    objects.delete("pack-bad.mgp")  # deleting what is gone is fine
    assert set(objects.list()) == {"pack-a.mgp"}
    with pytest.raises(mg.CorruptObject, match="missing"):
        objects.get_range("pack-b.mgp", 0, 4)


def test_objects_writer_publish_and_reader(objects: ObjectStore) -> None:
    writer = objects.writer()
    recs = [Record(0, bytes([i]) * 16, 3 << 20, b"", bytes([i]) * (3 << 20)) for i in range(5)]
    where = [writer.append(r) for r in recs]  # 15 MiB: records straddle the 8 MiB blocks
    writer.close()
    objects.publish({w[0] for w in where})
    assert set(objects.list()) == {where[0][0]}
    reader = objects.reader()
    for rec, (pack, offset, length) in zip(reversed(recs), reversed(where), strict=True):
        got = reader.read(pack, offset, length)
        assert got.chunk_id == rec.chunk_id and bytes(got.payload) == rec.payload
    reader.close()
    if isinstance(objects, FsspecObjects):
        assert not any(objects.staging.iterdir())  # staged pack deleted once uploaded
        writer = objects.writer()
        pack, _, _ = writer.append(recs[0])
        writer.close()
        objects.discard([pack])  # a failed write: never uploaded
        assert pack not in objects.list() and not any(objects.staging.iterdir())
