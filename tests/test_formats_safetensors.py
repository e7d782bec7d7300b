"""The safetensors reader (formats.safetensors_io) against hostile headers and files that
change while they are read: every one a clear UnsupportedInput, nothing stored."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import modelgit as mg
from modelgit.formats.safetensors_io import SafetensorsFile

ONE = '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
HOSTILE = {
    # name: (raw JSON header, data section)
    "shape 2**64 x 0": (
        '{"a":{"dtype":"F32","shape":[18446744073709551616,0],"data_offsets":[0,0]}}',
        b"",
    ),
    "shape overflows with a zero": (
        '{"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,0],'
        '"data_offsets":[0,0]}}',
        b"",
    ),
    "negative dimension": ('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', b"\0" * 4),
    "float shape": ('{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', b"\0" * 4),
    "bool shape": ('{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}', b"\0" * 4),
    "float offsets": ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}', b"\0" * 4),
    "Infinity": ('{"a":{"dtype":"F32","shape":[Infinity],"data_offsets":[0,4]}}', b"\0" * 4),
    "NaN in metadata": ('{"__metadata__":{"x":NaN},' + ONE + "}", b"\0" * 4),
    "duplicate key": ("{" + ONE + "," + ONE + "}", b"\0" * 4),
    "lone surrogate in a name": (
        '{"\\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
        b"\0" * 4,
    ),
    "lone surrogate in metadata": ('{"__metadata__":{"x":"\\udfff"},' + ONE + "}", b"\0" * 4),
    "deeply nested": ('{"__metadata__":{"x":' + "[" * 100_000 + "]" * 100_000 + "}}", b""),
    "metadata not strings": ('{"__metadata__":{"x":1},' + ONE + "}", b"\0" * 4),
    "unknown dtype": ('{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
    "dtype not a string": ('{"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4),
    "entry not an object": ('{"a":[1,2]}', b""),
    "gap before a tensor": ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8),
    "overlapping tensors": (
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
        '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        b"\0" * 8,
    ),
    "bytes after the last tensor": ("{" + ONE + "}", b"\0" * 8),
    "offsets past the end": ('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b"\0" * 4),
    "not UTF-8": ('{"a\xff":1}', b""),
}


def _write(path: Path, header: str, data: bytes) -> Path:
    raw = header.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff")
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_header_is_refused(tmp_path: Path, case: str) -> None:
    header, data = HOSTILE[case]
    path = _write(tmp_path / "x.safetensors", header, data)
    with pytest.raises(mg.UnsupportedInput, match="not a valid safetensors file|not supported"):
        SafetensorsFile(path)
    repo = mg.init(tmp_path / "repo")
    with pytest.raises(mg.UnsupportedInput):
        repo.add("x", path)
    assert repo.models() == [] and repo.fsck().ok


@pytest.mark.parametrize("case", sorted(set(HOSTILE) - {"duplicate key"}))
def test_the_safetensors_library_refuses_them_too(tmp_path: Path, case: str) -> None:
    """The reference: what we refuse, the safetensors library refuses (it takes the last
    of duplicate keys; we refuse those as ambiguous)."""
    header, data = HOSTILE[case]
    path = _write(tmp_path / "x.safetensors", header, data)
    with pytest.raises(Exception):  # noqa: B017 - SafetensorError is not exported
        with safe_open(str(path), "pt"):
            pass


def test_valid_files_still_read(tmp_path: Path) -> None:
    sd = {
        "empty": torch.zeros(0, 3),
        "w": torch.randn(5, 7),
        "b": torch.arange(4, dtype=torch.bfloat16),
        "scalar": torch.tensor(2.5),
    }
    save_file(sd, str(tmp_path / "m.safetensors"), metadata={"note": "ünïcode"})
    with SafetensorsFile(tmp_path / "m.safetensors") as f:
        assert {e.name for e in f.entries} == set(sd)
        assert f.metadata == {"note": "ünïcode"}
        w = next(e for e in f.entries if e.name == "w")
        r = f.view(w)
        assert len(r) == 35 * 4 and bytes(r[:]) == sd["w"].numpy().tobytes()
        assert bytes(r[8:16]) == sd["w"].numpy().tobytes()[8:16]
    repo = mg.init(tmp_path / "repo")
    repo.add("m", tmp_path / "m.safetensors")
    out = repo.load("m")
    assert all(out[k].dtype == sd[k].dtype and out[k].shape == sd[k].shape for k in sd)
    assert all(
        torch.equal(out[k].reshape(-1).view(torch.uint8), sd[k].reshape(-1).view(torch.uint8))
        for k in sd
    )


def test_a_file_cut_short_while_read_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.randn(1000)}, str(path))
    with SafetensorsFile(path) as f:
        r = f.view(f.entries[0])
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size - 100)
        assert len(r[:100]) == 100
        with pytest.raises(mg.UnsupportedInput, match="changed while it was read"):
            r[:]


SHRINK_DURING_ADD = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from safetensors.torch import save_file
    import modelgit as mg
    tmp = Path(sys.argv[1])
    path = tmp / "ckpt.safetensors"
    # more tensors than chunks in flight: most are read after the first is stored
    save_file({f"w{i}": torch.randn(32768) for i in range(256)}, str(path))
    repo = mg.init(tmp / "repo")
    seen = []
    def progress(done, total):
        if done and not seen:  # a trainer rewrites its checkpoint under the add
            with open(path, "r+b") as f:
                f.truncate(4096)
            seen.append(done)
    try:
        repo.add("ckpt", path, progress=progress)
    except mg.UnsupportedInput as exc:
        print("REFUSED", exc)
    print("MODELS", repo.models())
    print("FSCK", repo.fsck().ok)
    """
)


def test_source_shrinking_during_add_is_no_crash(tmp_path: Path) -> None:
    """On a memory-mapped source this was SIGBUS; now a clear error, nothing stored."""
    run = subprocess.run(
        [sys.executable, "-c", SHRINK_DURING_ADD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert "REFUSED" in run.stdout and "changed while it was read" in run.stdout
    assert "MODELS []" in run.stdout and "FSCK True" in run.stdout


def test_header_json_kept_as_written(tmp_path: Path) -> None:
    """Metadata round-trips as strings; a header is parsed once, strictly."""
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.ones(2)}, str(path), metadata={"a": json.dumps({"b": [1, 2]})})
    with SafetensorsFile(path) as f:
        assert json.loads(f.metadata["a"]) == {"b": [1, 2]}
