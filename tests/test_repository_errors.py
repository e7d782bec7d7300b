"""Errors of the repository API: bad names and refs, bad inputs, damaged storage."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import modelgit as mg
from conftest import assert_same_state
from modelgit import errors
from modelgit.storage.packs import RECORD_HEADER, Record, decode_record, encode_record


def weights(seed: int = 0, n: int = 4096) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(n, generator=g) * 0.02,
        "i": torch.randint(-100, 100, (n // 4,), generator=g, dtype=torch.int32),
    }


def test_error_hierarchy() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is errors.ModelgitWarning:  # the one warning class: likely mistakes
            assert issubclass(cls, UserWarning) and mg.ModelgitWarning is cls
            continue
        assert issubclass(cls, errors.ModelgitError)
        assert getattr(mg, name, cls) is cls
    assert issubclass(mg.UnknownModel, KeyError)
    assert issubclass(mg.UnknownVersion, mg.UnknownModel)
    assert issubclass(mg.InvalidName, ValueError)
    assert issubclass(mg.UnsupportedInput, TypeError)


# --- names and references --------------------------------------------------------------

BAD_NAMES = [
    "",
    ".",
    "..",
    "../escape",
    "a/b",
    "/abs",
    "a\\b",
    "C:thing",
    "a\x00b",
    "tab\there",
    "new\nline",
    "bell\x07",
    "del\x7f",
    "zero\u200bwidth",  # format character (category Cf)
    " lead",
    "trail ",
    ".hidden",
    "dot.",
    "a@b",
    "x" * 201,
    "x" * 100_000,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:20])
def test_bad_model_names_are_refused(repo: mg.Repository, name: str) -> None:
    with pytest.raises(mg.InvalidName):
        repo.add(name, weights())
    assert repo.models() == []
    assert list((repo.root / "packs").iterdir()) == [] or repo.stats().stored_bytes == 0


@pytest.mark.parametrize("name", [123, None, b"bytes", ("t",)])
def test_non_string_names_are_refused(repo: mg.Repository, name: object) -> None:
    with pytest.raises(mg.InvalidName):
        repo.add(name, weights())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["bert-base_v1.2", "a", "x" * 200, "模型", "ünïcödé-ok", "a..b"])
def test_good_names_are_accepted(repo: mg.Repository, name: str) -> None:
    repo.add(name, weights())
    assert repo.models() == [name]
    assert_same_state(repo.load(name), weights())
    assert_same_state(repo.load(f"{name}@1"), weights())


@pytest.mark.parametrize(
    "ref", ["m@0", "m@-1", "m@abc", "m@1.5", "m@", "m@1@2", "m@ 1", "@1", "../m", "m/x"]
)
def test_bad_refs_are_refused(repo: mg.Repository, ref: str) -> None:
    repo.add("m", weights())
    with pytest.raises(mg.InvalidName):
        repo.load(ref)


@pytest.mark.parametrize("version", [0, -1, True, 1.0, "1"])
def test_bad_version_arguments(repo: mg.Repository, version: object) -> None:
    repo.add("m", weights())
    with pytest.raises(mg.InvalidName):
        repo.load("m", version=version)  # type: ignore[arg-type]


def test_conflicting_version(repo: mg.Repository) -> None:
    repo.add("m", weights())
    repo.commit("m", weights(1))
    with pytest.raises(mg.InvalidName):
        repo.load("m@1", version=2)


def test_unknown_model_and_version(repo: mg.Repository) -> None:
    with pytest.raises(mg.UnknownModel):
        repo.load("nope")
    repo.add("m", weights())
    with pytest.raises(mg.UnknownModel) as info:
        repo.load("nope")
    assert "nope" in str(info.value)
    with pytest.raises(KeyError):  # UnknownModel is a KeyError too
        repo.load("nope@1")
    for call in (
        lambda: repo.versions("nope"),
        lambda: repo.commit("nope", weights()),
        lambda: repo.remove("nope"),
        lambda: repo.load_tensor("nope", "w"),
        lambda: repo.export("nope", repo.root.parent / "x.safetensors"),
        lambda: repo.add("child", weights(), parents="nope"),
    ):
        with pytest.raises(mg.UnknownModel):
            call()
    with pytest.raises(mg.UnknownVersion):
        repo.load("m@2")
    with pytest.raises(mg.UnknownVersion):
        repo.load("m", version=7)
    with pytest.raises(mg.UnknownVersion):
        repo.add("child", weights(), parents="m@3")
    assert repo.models() == ["m"]


def test_add_existing_name(repo: mg.Repository) -> None:
    repo.add("m", weights())
    with pytest.raises(mg.ModelExists):
        repo.add("m", weights(1))
    assert [v.number for v in repo.versions("m")] == [1]
    assert_same_state(repo.load("m"), weights())


def test_bad_parents(repo: mg.Repository) -> None:
    repo.add("m", weights())
    with pytest.raises(mg.LineageError):
        repo.add("c", weights(1), parents=["m", "m"])
    with pytest.raises(mg.LineageError):
        repo.add("c", weights(1), parents="m", relation="")
    assert repo.models() == ["m"]


# --- opening and creating --------------------------------------------------------------


def test_open_what_is_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(mg.NotARepository):
        mg.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(mg.NotARepository):
        mg.open(tmp_path / "empty")
    (tmp_path / "file").write_text("hello")
    with pytest.raises(mg.NotARepository):
        mg.open(tmp_path / "file")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "MODELGIT").write_text("something else\n")
    with pytest.raises(mg.NotARepository):
        mg.open(tmp_path / "fake")
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "MODELGIT").write_bytes(os.urandom(64))
    with pytest.raises(mg.NotARepository):
        mg.open(tmp_path / "binary")


def test_open_newer_format(tmp_path: Path) -> None:
    mg.init(tmp_path / "r").close()
    (tmp_path / "r" / "MODELGIT").write_text("modelgit repository\nformat 999\n")
    with pytest.raises(mg.errors.FormatVersionError):
        mg.open(tmp_path / "r")


def test_format1_repository_reads_and_is_upgraded_by_the_first_write(tmp_path: Path) -> None:
    """Formats 2, 3 and 4 added rANS sections, linear predictors and row checks: a
    format-1 repository opens and loads as it is, and is marked with the current format
    by its first write (so an older modelgit refuses it cleanly)."""
    sd = {"w": torch.randn(300, 300)}
    mg.init(tmp_path / "r").close()
    fmt = tmp_path / "r" / "MODELGIT"
    fmt.write_text("modelgit repository\nformat 1\n")
    with mg.open(tmp_path / "r") as repo:
        assert repo.format == 1
        assert repo.models() == []
        assert fmt.read_text().endswith("format 1\n")  # reading changes nothing
        repo.add("m", sd)
        assert repo.format == mg.repository.FORMAT_VERSION == 5
    assert fmt.read_text() == "modelgit repository\nformat 5\n"
    with mg.open(tmp_path / "r") as repo:
        assert torch.equal(repo.load("m")["w"], sd["w"])


def test_init_where_something_exists(tmp_path: Path) -> None:
    mg.init(tmp_path / "r").close()
    with pytest.raises(mg.RepositoryExists):
        mg.init(tmp_path / "r")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "precious.txt").write_text("keep me")
    with pytest.raises(mg.RepositoryExists):
        mg.init(busy)
    assert sorted(p.name for p in busy.iterdir()) == ["precious.txt"]  # nothing was created
    (tmp_path / "afile").write_text("x")
    with pytest.raises(mg.ModelgitError):
        mg.init(tmp_path / "afile")
    with mg.init(tmp_path / "fresh" / "nested") as r:  # a new folder is fine
        assert r.models() == []
    (tmp_path / "emptydir").mkdir()
    with mg.init(tmp_path / "emptydir") as r:  # so is an empty one
        assert r.models() == []


def open_files_under(root: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the fd of the listing itself
        if path.startswith(str(root)):
            found.append(path)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_close_releases_every_file(tmp_path: Path) -> None:
    repo = mg.init(tmp_path / "r")
    repo.add("m", {"w": torch.randn(1_000_000)})  # several chunks: worker threads involved
    repo.commit("m", {"w": torch.randn(1_000_000)})
    repo.load("m@1")
    repo.fsck()
    repo.close()
    assert open_files_under(tmp_path) == []


# --- unsupported inputs ----------------------------------------------------------------


def unsupported_inputs(tmp: Path) -> dict[str, object]:
    (tmp / "model.pt").write_bytes(pickle.dumps({"w": 1}))
    (tmp / "nofolder").mkdir()
    (tmp / "nofolder" / "config.json").write_text("{}")
    (tmp / "binfolder").mkdir()
    save_file(weights(), str(tmp / "binfolder" / "model.safetensors"))
    (tmp / "binfolder" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    (tmp / "bad.safetensors").write_bytes(b"\xff" * 7)
    (tmp / "badjson.safetensors").write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!}")
    (tmp / "hugeheader.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}")
    (tmp / "badindex").mkdir()
    (tmp / "badindex" / "model.safetensors.index.json").write_text('{"weight_map": 3}')
    (tmp / "escape").mkdir()
    (tmp / "escape" / "model.safetensors.index.json").write_text(
        '{"weight_map": {"w": "../bad.safetensors"}}'
    )
    return {
        "list": [torch.zeros(3)],
        "int": 42,
        "none": None,
        "tensor": torch.zeros(3),
        "non-tensor value": {"w": [1.0, 2.0]},
        "numpy value": {"w": torch.zeros(3).numpy()},
        "non-str key": {1: torch.zeros(3)},
        "complex": {"w": torch.zeros(3, dtype=torch.complex64)},
        "sparse": {"w": torch.zeros(3, 3).to_sparse()},
        "pickle file": tmp / "model.pt",
        "missing path": tmp / "does-not-exist.safetensors",
        "folder without weights": tmp / "nofolder",
        "folder with .bin weights": tmp / "binfolder",
        "truncated safetensors": tmp / "bad.safetensors",
        "safetensors header not json": tmp / "badjson.safetensors",
        "safetensors huge header": tmp / "hugeheader.safetensors",
        "index escaping its folder": tmp / "escape",
        "bad index": tmp / "badindex",
    }


INPUT_IDS = [
    "list",
    "int",
    "none",
    "tensor",
    "non-tensor value",
    "numpy value",
    "non-str key",
    "complex",
    "sparse",
    "pickle file",
    "missing path",
    "folder without weights",
    "folder with .bin weights",
    "truncated safetensors",
    "safetensors header not json",
    "safetensors huge header",
    "bad index",
    "index escaping its folder",
]


@pytest.mark.parametrize("case", INPUT_IDS)
def test_unsupported_inputs(repo: mg.Repository, tmp_path: Path, case: str) -> None:
    model = unsupported_inputs(tmp_path)[case]
    with pytest.raises(mg.UnsupportedInput):
        repo.add("m", model)
    assert repo.models() == []
    repo.add("ok", weights())  # the repository is still usable
    assert repo.fsck().ok


def test_unserialisable_metadata(repo: mg.Repository) -> None:
    with pytest.raises(mg.UnsupportedInput):
        repo.add("m", weights(), metadata={"f": object()})
    assert repo.models() == []


def test_nothing_is_ever_unpickled(
    repo: mg.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("modelgit must never unpickle")

    for mod, attr in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(mod, attr, refuse)
    sd = weights()
    repo.add("m", sd)
    save_file(sd, str(tmp_path / "w.safetensors"))
    repo.add("f", tmp_path / "w.safetensors")
    repo.commit("m", weights(1))
    assert_same_state(repo.load("m@1"), sd)
    repo.export("m", tmp_path / "out.safetensors")
    assert repo.fsck().ok


def test_failed_add_leaves_no_open_files_and_no_model(
    repo: mg.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the middle of a write (chunks already in flight) publishes nothing."""
    import modelgit.storage.writer as writer

    hook = "store_chunk" if hasattr(writer, "store_chunk") else "encode_chunk"
    real = getattr(writer, hook)
    calls = {"n": 0}

    def flaky(*args: object, **kwargs: object):  # noqa: ANN202
        calls["n"] += 1
        if calls["n"] == 6:
            raise OSError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, hook, flaky)
    big = {f"t{i}": torch.randn(300_000) for i in range(8)}  # several chunks each
    with pytest.raises(OSError):
        repo.add("m", big)
    assert repo.models() == []
    root = repo.root
    repo.close()  # right away, while chunk jobs of the failed add may still be running
    monkeypatch.setattr(writer, hook, real)
    leaked = [p for p in open_files_under(root) if p.endswith(".mgp")]
    assert leaked == [], f"pack files left open after close(): {leaked}"
    with mg.open(root) as again:
        report = again.fsck()
        assert report.ok, report.problems
        assert again.models() == []
        again.add("m", weights())
        assert_same_state(again.load("m"), weights())


# --- damaged storage -------------------------------------------------------------------


def packs_of(repo: mg.Repository) -> list[Path]:
    return sorted((repo.root / "packs").glob("*.mgp"))


def record_spans(pack: Path) -> list[tuple[int, int]]:
    """(offset, length) of every record in a pack, walking the headers."""
    data = pack.read_bytes()
    spans, pos = [], 16
    while pos + RECORD_HEADER.size <= len(data):
        fields = RECORD_HEADER.unpack_from(data, pos)
        length = RECORD_HEADER.size + fields[6] + fields[7] + 8
        spans.append((pos, length))
        pos += length
    return spans


def flip(path: Path, offset: int, mask: int = 0x01) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


@pytest.fixture
def two_models(tmp_path: Path) -> Path:
    """A closed repository holding 'a' (3 tensors, several chunks) and an unrelated 'b'."""
    with mg.init(tmp_path / "r") as r:
        g = torch.Generator().manual_seed(3)
        r.add(
            "a",
            {
                "w": torch.randn(600_000, generator=g) * 0.02,  # 2.4 MB: three chunks
                "bytes": torch.randint(0, 256, (5000,), generator=g, dtype=torch.uint8),
                "small": torch.arange(10, dtype=torch.int64),
            },
        )
        r.add("b", {"v": torch.randn(1000, generator=g, dtype=torch.float64)})
    return tmp_path / "r"


def reopen_expect_corrupt(root: Path, model: str = "a") -> mg.FsckReport:
    with mg.open(root) as r:
        report = r.fsck()
        assert not report.ok
        assert report.problems and all(isinstance(p, str) for p in report.problems)
        with pytest.raises(mg.CorruptObject):
            r.load(model)
        return report


@pytest.mark.parametrize("where", ["header", "params", "payload-start", "payload-mid", "checksum"])
def test_flipped_byte_in_a_record(two_models: Path, where: str) -> None:
    with mg.open(two_models) as r:
        expected_b = r.load("b")
    (pack,) = list((two_models / "packs").glob("*.mgp"))
    spans = record_spans(pack)
    off, length = spans[0]
    data = pack.read_bytes()
    plen = RECORD_HEADER.unpack_from(data, off)[6]
    target = {
        "header": off + 20,  # inside the chunk id
        "params": off + RECORD_HEADER.size if plen else off + 5,
        "payload-start": off + RECORD_HEADER.size + plen,
        "payload-mid": off + RECORD_HEADER.size + plen + (length - RECORD_HEADER.size - plen) // 2,
        "checksum": off + length - 3,
    }[where]
    flip(pack, target)
    report = reopen_expect_corrupt(two_models)
    assert len(report.problems) >= 1
    with mg.open(two_models) as r:
        with pytest.raises(mg.CorruptObject):
            r.load_tensor("a", "w")
        with pytest.raises(mg.CorruptObject):
            r.export("a", two_models.parent / "out.safetensors")
        assert not (two_models.parent / "out.safetensors").exists()
        assert_same_state(r.load("b"), expected_b)  # unrelated data still reads


def test_every_record_byte_is_protected(tmp_path: Path) -> None:
    """Flip each byte of a small pack in turn: never returned as data, always reported."""
    with mg.init(tmp_path / "r") as r:
        sd = {"w": torch.tensor([1.5, -0.0, 3.25]), "u": torch.tensor([7, 8], dtype=torch.uint8)}
        r.add("m", sd)
    (pack,) = list((tmp_path / "r" / "packs").glob("*.mgp"))
    size = pack.stat().st_size
    for offset in range(16, size):  # past the 16-byte pack header
        flip(pack, offset, 0x10)
        with mg.open(tmp_path / "r") as r:
            assert not r.fsck().ok, offset
            with pytest.raises(mg.CorruptObject):
                r.load("m")
        flip(pack, offset, 0x10)  # undo
    with mg.open(tmp_path / "r") as r:
        assert r.fsck().ok
        assert_same_state(r.load("m"), sd)


def test_forged_record_with_valid_checksum(two_models: Path) -> None:
    """A record rewritten with a correct checksum but other bytes fails the chunk id check."""
    (pack,) = list((two_models / "packs").glob("*.mgp"))
    data = bytearray(pack.read_bytes())
    for off, length in record_spans(pack):
        rec = decode_record(bytes(data[off : off + length]))
        if rec.codec == 0 and len(rec.payload) > 8:  # a RAW record: same length after edit
            payload = bytearray(rec.payload)
            payload[3] ^= 0xFF
            forged = b"".join(
                bytes(p)
                for p in encode_record(
                    Record(rec.codec, rec.chunk_id, rec.raw_length, rec.params, bytes(payload))
                )
            )
            assert len(forged) == length
            data[off : off + length] = forged
            break
    else:
        pytest.fail("no raw record to forge")
    pack.write_bytes(bytes(data))
    reopen_expect_corrupt(two_models)


def test_truncated_pack(two_models: Path) -> None:
    (pack,) = list((two_models / "packs").glob("*.mgp"))
    os.truncate(pack, pack.stat().st_size - 5)
    report = reopen_expect_corrupt(two_models, model="b")  # the last record is b's
    assert any("trunc" in p or "pack" in p for p in report.problems)


def test_pack_truncated_to_nothing(two_models: Path) -> None:
    (pack,) = list((two_models / "packs").glob("*.mgp"))
    os.truncate(pack, 0)
    reopen_expect_corrupt(two_models)


def test_missing_pack(two_models: Path) -> None:
    (pack,) = list((two_models / "packs").glob("*.mgp"))
    pack.unlink()
    report = reopen_expect_corrupt(two_models)
    assert any("missing" in p for p in report.problems)
    with mg.open(two_models) as r:
        with pytest.raises(mg.CorruptObject):
            r.load("b")


CATALOG_DAMAGE = {
    "tensor chunk list": "UPDATE tensors SET chunks = ? WHERE name = 'w'",
    "tensor content id": "UPDATE tensors SET content = zeroblob(16) WHERE name = 'w'",
    "tensor shape": "UPDATE tensors SET shape = '[300000, 2]' WHERE name = 'w'",
    "tensor dtype": "UPDATE tensors SET dtype = 'int32' WHERE name = 'w'",
    "tensor nbytes": "UPDATE tensors SET nbytes = nbytes - 4 WHERE name = 'w'",
    "chunk offset": "UPDATE chunks SET offset = offset + 1 WHERE id IN "
    "(SELECT id FROM chunks ORDER BY offset LIMIT 1)",
    "chunk length": "UPDATE chunks SET length = length - 1 WHERE id IN "
    "(SELECT id FROM chunks ORDER BY offset LIMIT 1)",
    "chunk raw length": "UPDATE chunks SET raw_length = raw_length + 4 WHERE id IN "
    "(SELECT id FROM chunks ORDER BY offset LIMIT 1)",
    "chunk codec": "UPDATE chunks SET codec = 9 WHERE id IN "
    "(SELECT id FROM chunks ORDER BY offset LIMIT 1)",
    "chunk pack": "UPDATE chunks SET pack = 'pack-nothere.mgp' WHERE id IN "
    "(SELECT id FROM chunks ORDER BY offset LIMIT 1)",
    "chunk row deleted": "DELETE FROM chunks WHERE id IN "
    "(SELECT id FROM chunks ORDER BY offset LIMIT 1)",
}


@pytest.mark.parametrize("damage", list(CATALOG_DAMAGE))
def test_corrupted_catalog_row(two_models: Path, damage: str) -> None:
    sql = CATALOG_DAMAGE[damage]
    db = sqlite3.connect(two_models / "catalog.db")
    with db:
        args: tuple = ()
        if "?" in sql:  # flip one bit of the second chunk id of 'w'
            (chunks,) = db.execute("SELECT chunks FROM tensors WHERE name = 'w'").fetchone()
            args = (chunks[:20] + bytes([chunks[20] ^ 1]) + chunks[21:],)
        assert db.execute(sql, args).rowcount == 1
    db.close()
    reopen_expect_corrupt(two_models)
    with mg.open(two_models) as r:
        with pytest.raises(mg.CorruptObject):
            r.load_tensor("a", "w")


def test_torn_tail_is_garbage_not_a_problem(two_models: Path) -> None:
    """Bytes after the last record (a crashed writer) are reclaimable, never an error."""
    (pack,) = list((two_models / "packs").glob("*.mgp"))
    with open(pack, "ab") as f:
        f.write(b"MGCK" + os.urandom(100))
    (two_models / "packs" / "pack-0123456789abcdef0123456789abcdef.mgp").write_bytes(b"MGIT")
    with mg.open(two_models) as r:
        report = r.fsck()
        assert report.ok, report.problems
        assert report.garbage_bytes >= 104
        r.load("a")
        r.gc()
        assert r.fsck().ok and r.fsck().garbage_bytes == 0
