"""The ``modelgit`` command line, driven as a user drives it.

Real subprocesses (``python -m modelgit`` and the ``modelgit`` entry point) check what
only a separate process shows: exit codes, one-line errors without tracebacks, quiet
stderr when not on a terminal. They start together (each pays torch's import) from one
fixture. Everything else calls ``modelgit.cli.main(argv)`` in-process, which is the
same code with the same exit codes and output, only faster.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import modelgit as mg
from conftest import assert_same_tensor
from modelgit.cli import build_parser, main
from modelgit.cli._progress import Progress, call_with_progress


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def weights(seed: int, n: int = 24) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "enc.layers.0.weight": torch.randn(n, n, generator=g),
        "enc.layers.0.bias": torch.randn(n, generator=g),
        "enc.layers.1.weight": torch.randn(n, n, generator=g),
        "enc.layers.1.bias": torch.randn(n, generator=g),
        "head.weight": torch.randn(4, n, generator=g),
    }


def nudged(sd: dict[str, torch.Tensor], by: float) -> dict[str, torch.Tensor]:
    return {k: v + by if k.endswith("weight") else v.clone() for k, v in sd.items()}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable:
    """cli(*args, cwd=path) -> Result, running main() in-process."""
    monkeypatch.delenv("MODELGIT_REPO", raising=False)
    monkeypatch.delenv("MODELGIT_DEBUG", raising=False)
    monkeypatch.setenv("MODELGIT_PROGRESS", "0")

    def run(*args: str, cwd: Path | None = None) -> Result:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


def assert_one_line_error(r: Result, code: int = 1, match: str = "") -> None:
    assert r.code == code, (r.code, r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("modelgit") and "error:" in lines[0], r.err
    assert "Traceback" not in r.err
    if match:
        assert re.search(match, lines[0]), lines[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Model files a user would have: safetensors, a .pt, a Hugging Face folder."""
    d = tmp_path / "files"
    d.mkdir()
    base = weights(0)
    save_file(base, d / "base.safetensors")
    save_file(nudged(base, 0.01), d / "ft.safetensors")
    torch.save(nudged(base, 0.02), d / "ft2.pt")
    hf = d / "hf"
    hf.mkdir()
    save_file(nudged(base, 0.03), hf / "model.safetensors")
    (hf / "config.json").write_text('{"hidden": 24}')
    torch.save({"not": "tensors", "x": [1, 2]}, d / "junk.pt")
    (d / "text.txt").write_text("hello")
    return {p.name: p for p in d.iterdir()}


@pytest.fixture
def repo_dir(tmp_path: Path, cli: Callable, files: dict[str, Path]) -> Path:
    """A repository with base -> ft (2 versions) -> hf, made through the CLI."""
    r = tmp_path / "repo"
    assert cli("init", r).code == 0
    assert cli("add", "base", files["base.safetensors"], "-m", "pretrained", cwd=r).code == 0
    assert cli("add", "ft", files["ft.safetensors"], "--parent", "base", cwd=r).code == 0
    assert cli("commit", "ft", files["ft2.pt"], "-m", "more", "--meta", "acc=0.9").code == 0
    res = cli("add", "hf", files["hf"], "-p", "ft@1", "-r", "adapter")
    assert res.code == 0, res.err
    return r


# -- in-process: the commands ---------------------------------------------------------------


def test_help_everywhere(cli: Callable) -> None:
    r = cli("--help")
    assert r.code == 0 and "examples:" in r.out and "modelgit init" in r.out
    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    expected = {"init", "add", "commit", "ls", "log", "show", "diff", "graph", "du", "export"}
    expected |= {"rm", "tag", "gc", "fsck", "demo", "rename", "edge"}
    assert expected <= set(sub)
    for name in sub:
        r = cli(name, "--help")
        assert r.code == 0, name
        assert "examples:" in r.out and f"modelgit {name}" in r.out, name
    assert cli("--version").out.startswith("modelgit ")


def test_init(cli: Callable, tmp_path: Path) -> None:
    r = cli("init", tmp_path / "new")
    assert r.code == 0 and "Initialized empty modelgit repository" in r.out
    assert_one_line_error(cli("init", tmp_path / "new"), match="already")
    (tmp_path / "here").mkdir()
    assert cli("init", cwd=tmp_path / "here").code == 0
    assert (tmp_path / "here" / "MODELGIT").is_file()


def test_add_commit_and_read_back(cli: Callable, repo_dir: Path, files: dict[str, Path]) -> None:
    items = {m["name"]: m for m in cli("ls", "--json", cwd=repo_dir).json()}
    assert list(items) == ["base", "ft", "hf"]
    assert items["ft"]["versions"] == 2
    assert items["hf"]["parents"] == [{"name": "ft", "relation": "adapter"}]
    text = cli("ls").out
    assert "ft (adapter)" in text and "base (finetune)" in text

    log = cli("log", "ft", "--json").json()
    assert [v["number"] for v in log] == [2, 1]
    assert log[0]["message"] == "more" and log[0]["metadata"] == {"acc": 0.9}
    assert log[1]["parents"] == [{"ref": "base@1", "kind": "provenance", "relation": "finetune"}]
    assert len(cli("log", "--json").json()) == 4
    assert len(cli("log", "-n", "2", "--json").json()) == 2
    text = cli("log", "ft").out
    assert text.index("ft@2") < text.index("ft@1") and "from base@1 (finetune)" in text

    show = cli("show", "ft@1", "--json").json()
    assert show["number"] == 1 and len(show["tensors"]) == 5
    assert show["architecture"]["params"] == sum(v.numel() for v in weights(0).values())

    def leaves(node: dict) -> set[str]:  # every tensor the tree reaches
        assert "children_omitted" not in node, node["name"]
        below = {n for c in node.get("children", []) for n in leaves(c)}
        return below | {t["name"] for t in node["tensors"].values()}

    assert leaves(show["architecture"]) == set(weights(0))  # no level cut off
    assert cli("show", "hf", "--json").json()["files"] == {"config.json": 14}
    text = cli("show", "base").out
    assert "0..1 x2" in text and "head.weight" in text
    assert "load depth" not in text and cli("show", "base", "--json").json()["load_depth"] == 0

    sd = mg.open(repo_dir).load("ft@2")
    assert torch.equal(sd["head.weight"], torch.load(files["ft2.pt"])["head.weight"])


def test_add_json_and_side_files_roundtrip(
    cli: Callable, repo_dir: Path, tmp_path: Path, files: dict[str, Path]
) -> None:
    v = cli("add", "again", files["base.safetensors"], "--json", cwd=repo_dir).json()
    assert v["name"] == "again" and v["number"] == 1
    out = tmp_path / "exported"
    r = cli("export", "hf", out)
    assert r.code == 0 and "exported hf@1" in r.out
    assert (out / "config.json").read_text() == '{"hidden": 24}'
    r = cli("export", "ft@2", tmp_path / "ft2.safetensors")
    assert r.code == 0 and (tmp_path / "ft2.safetensors").stat().st_size > 0


def test_diff(cli: Callable, repo_dir: Path) -> None:
    d = cli("diff", "base", "ft@1", "--json", cwd=repo_dir).json()
    assert d["a"] == "base@1" and d["b"] == "ft@1"
    assert {c["name"] for c in d["changed"]} == {
        "enc.layers.0.weight", "enc.layers.1.weight", "head.weight"
    }  # fmt: skip
    assert all(c["max_abs"] == pytest.approx(0.01, rel=1e-3) for c in d["changed"])
    assert d["unchanged"] == 2 and d["same_architecture"]
    text = cli("diff", "ft@1", "ft@2").out
    assert "3 changed" in text and "rel L2" in text
    assert cli("diff", "base", "base", "--exit-code").code == 0
    assert cli("diff", "base", "ft", "--exit-code").code == 1
    nv = cli("diff", "base", "ft", "--no-values", "--json").json()
    assert all(c["changed"] is None for c in nv["changed"])


def test_du(cli: Callable, repo_dir: Path) -> None:
    d = cli("du", "--json", cwd=repo_dir).json()
    models = {m["name"]: m for m in d["models"]}
    assert set(models) == {"base", "ft", "hf"}
    for m in models.values():
        assert 0 <= m["dedup_share"] <= 1 and 0 <= m["delta_share"] <= 1
    assert models["ft"]["dedup_share"] > 0  # unchanged biases are shared with base
    assert d["logical_bytes"] > d["stored_bytes"] > 0
    assert models["base"]["stored_against"] == [] and models["hf"]["stored_against"]
    text = cli("du").out
    assert re.search(r"^total\s+4\s", text, re.M) and "dedup" in text and "delta" in text
    assert re.search(r"^hf\s.*\s(ft|base)$", text, re.M)  # the "against" column


def test_graph_outputs(cli: Callable, repo_dir: Path, tmp_path: Path) -> None:
    text = cli("graph", cwd=repo_dir).out
    assert text.splitlines()[0].startswith("base") and "hf [adapter]" in text
    svg = tmp_path / "g.svg"
    r = cli("graph", "--format", "svg", "-o", svg)
    assert r.code == 0 and "wrote svg of 3 models" in r.out
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    page = tmp_path / "g.html"
    assert cli("graph", "-o", page).code == 0  # format from the suffix
    assert page.read_text().startswith("<!DOCTYPE html>") and "<svg" in page.read_text()
    dot = cli("graph", "--format", "dot", "--versions").out
    assert '"ft@1" -> "ft@2"' in dot and '"ft@1" -> "hf@1"' in dot
    g = cli("graph", "--json").json()
    assert {(e["parent"], e["child"], e["relation"]) for e in g["edges"]} == {
        ("base", "ft", "finetune"), ("ft", "hf", "adapter")
    }  # fmt: skip
    assert_one_line_error(cli("graph", "--versions"), 2, match="--versions")
    assert_one_line_error(cli("graph", "--format", "png"), code=2)
    # a suffix graph cannot write, or one naming another format: refused, nothing written
    png, txt = tmp_path / "g.png", tmp_path / "g.txt"
    assert_one_line_error(cli("graph", "-o", png), match="dot -Tpng")
    assert_one_line_error(
        cli("graph", "--format", "text", "-o", svg), match="says svg, but --format is text"
    )
    assert not png.exists() and svg.read_text().lstrip().startswith("<")
    assert cli("graph", "-o", txt).code == 0 and txt.read_text().startswith("base")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_tags_edges_rename_rm_gc_fsck(cli: Callable, repo_dir: Path) -> None:
    assert cli("tag", cwd=repo_dir).out.strip() == "(no tags)"
    assert cli("tag", "prod", "ft@1").code == 0
    mid = cli("show", "ft@1", "--json").json()["id"]
    assert cli("tag", "--json").json() == [{"name": "prod", "ref": "ft@1", "id": mid}]
    assert cli("tag", "prod", "--json").json() == {"name": "prod", "ref": "ft@1", "id": mid}
    ls_tags = {m["name"]: m["tags"] for m in cli("ls", "--json").json()}
    assert ls_tags["ft"] == [{"name": "prod", "ref": "ft@1", "id": mid}]
    assert "prod=@1" in cli("ls").out
    assert cli("tag", "prod").out.strip() == "ft@1"
    assert cli("show", "prod", "--json").json()["tags"] == ["prod"]
    assert_one_line_error(cli("tag", "prod", "ft@2"), match="exists")
    assert cli("tag", "-f", "prod", "ft@2").code == 0
    assert cli("tag", "-d", "prod").code == 0
    assert_one_line_error(cli("tag", "-d", "prod"), match="no tag")
    for wrong in (("tag", "-d"), ("tag", "-d", "a", "b")):  # wrong arguments: exit 2
        assert_one_line_error(cli(*wrong), 2, match="usage: modelgit tag -d TAG")
    # log NAME@N (or a tag): that version and the older ones, as git log REV
    assert [v["ref"] for v in cli("log", "ft@1", "--json").json()] == ["ft@1"]  # type: ignore[index]
    assert "ft@2" not in cli("log", "ft@1").out and "ft@1" in cli("log", "ft@1").out

    assert cli("edge", "add", "base", "hf", "-r", "distill").code == 0
    assert_one_line_error(cli("edge", "add", "hf", "base"), match="cycle")
    assert cli("edge", "rm", "ft", "hf", "--json").json() == {
        "action": "rm", "parent": "ft", "child": "hf", "relation": "adapter"
    }  # fmt: skip
    assert cli("graph", "--json").json()["edges"][-1] == {
        "parent": "base", "child": "hf", "relation": "distill", "kind": "provenance"
    }  # fmt: skip

    assert cli("rename", "hf", "adapter", "--json").json() == {"old": "hf", "new": "adapter"}
    assert [m["name"] for m in cli("ls", "--json").json()] == ["base", "ft", "adapter"]
    assert cli("tag", "stable", "ft@1").code == 0
    r = cli("rm", "adapter")
    assert r.code == 0 and "modelgit gc" in r.out and "tags" not in r.out
    gone = cli("rm", "ft", "--json").json()  # its tags go with it, and it says so
    assert gone == {"removed": [{"name": "ft", "tags_deleted": ["stable"]}]}
    assert [m["name"] for m in cli("ls", "--json").json()] == ["base"]
    gc = cli("gc", "--json").json()
    assert gc["chunks_removed"] > 0 and gc["bytes_freed"] > 0
    fsck = cli("fsck", "--json").json()
    assert fsck["ok"] and fsck["problems"] == []
    assert "ok" in cli("fsck", "--quick").out


def test_repository_discovery(cli: Callable, repo_dir: Path, tmp_path: Path) -> None:
    deep = repo_dir / "packs"  # any folder inside the repository
    assert len(cli("ls", "--json", cwd=deep).json()) == 3
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert len(cli("--repo", repo_dir, "ls", "--json", cwd=elsewhere).json()) == 3
    assert len(cli("ls", "--repo", str(repo_dir), "--json").json()) == 3
    os.environ["MODELGIT_REPO"] = str(repo_dir)
    try:
        assert len(cli("ls", "--json").json()) == 3
    finally:
        del os.environ["MODELGIT_REPO"]
    assert_one_line_error(cli("ls"), match="not a modelgit repository")
    assert_one_line_error(cli("--repo", elsewhere, "ls"), match="not a modelgit repository")
    assert_one_line_error(cli("--repo", tmp_path / "missing", "ls"), match="does not exist")


def test_user_errors(cli: Callable, repo_dir: Path, files: dict[str, Path]) -> None:
    cli("ls", cwd=repo_dir)
    assert_one_line_error(cli("show", "nope"), match="no model named 'nope'")
    assert_one_line_error(cli("show", "ft@9"), match="no version 9")
    assert_one_line_error(cli("show", "ft@x"), match="bad version")
    assert_one_line_error(cli("log", "nope"), match="nope")
    assert_one_line_error(cli("diff", "base", "nope"), match="nope")
    assert_one_line_error(cli("add", "base", files["ft.safetensors"]), match="exists")
    assert_one_line_error(cli("add", "x", files["ft.safetensors"], "-p", "nope"), match="nope")
    assert_one_line_error(cli("add", "a/b", files["ft.safetensors"]), match="forbidden")
    assert_one_line_error(cli("add", "x", "missing.safetensors"), match="does not exist")
    assert_one_line_error(cli("add", "x", files["text.txt"]), match="safetensors")
    assert_one_line_error(cli("add", "x", files["junk.pt"]), match="state_dict|weights-only")
    assert_one_line_error(cli("commit", "nope", files["ft.safetensors"]), match="nope")
    bad = cli("add", "x", files["ft.safetensors"], "--tolerance", "abs=banana")
    assert_one_line_error(bad, match="tolerance")
    assert_one_line_error(cli("add", "x", files["ft.safetensors"], "--meta", "novalue"))
    assert_one_line_error(cli("rm", "base", "nope"), match="nope")
    assert "base" in [m["name"] for m in cli("ls", "--json").json()]  # rm checked all first
    assert_one_line_error(cli("tag", "ft", "base"), match="model name")
    assert_one_line_error(cli("rename", "ft", "base"), match="exists")
    assert_one_line_error(cli("export", "nope", "x.safetensors"), match="nope")


def test_wrong_arguments(cli: Callable, tmp_path: Path) -> None:
    assert_one_line_error(cli("add", "onlyname", cwd=tmp_path), code=2, match="required")
    assert_one_line_error(cli("frobnicate"), code=2, match="invalid choice")
    assert_one_line_error(cli("log", "-n", "many"), code=2, match="not a count")
    assert_one_line_error(cli("log", "-n", "-1"), code=2, match="not a count")
    r = cli()
    assert r.code == 2 and "command is required" in r.err


def test_tolerance_is_passed_through(cli: Callable, repo_dir: Path, tmp_path: Path) -> None:
    save_file(nudged(weights(0), 0.05), tmp_path / "lossy.safetensors")
    r = cli(
        "add", "q", tmp_path / "lossy.safetensors", "-p", "base", "--tolerance", "abs=1e-3",
        "--json", cwd=repo_dir,
    )  # fmt: skip
    assert r.code == 0, r.err
    v = r.json()
    assert v["lossy"] is True and v["tolerance"]["abs"] == pytest.approx(1e-3)
    # the lossy chunks are counted, and those coded against the parent said so
    w = v["write"]
    assert w["lossy"] >= 1 and 1 <= w["lossy_delta"] <= w["lossy"]
    assert w["dedup"] + w["delta"] + w["standalone"] + w["lossy"] == w["chunks"]
    save_file(nudged(weights(0), 0.07), tmp_path / "lossy2.safetensors")
    text = cli("commit", "q", tmp_path / "lossy2.safetensors", "--tolerance", "abs=1e-3").out
    assert re.search(r"deduplicated, \d+ delta-coded, [1-9]\d* within the bound, lossy", text)
    assert "LOSSY" in cli("log", "q").out
    got = mg.open(repo_dir).load("q@1")["head.weight"]
    assert (got - nudged(weights(0), 0.05)["head.weight"]).abs().max() <= 1e-3


def test_base_option(cli: Callable, repo_dir: Path, files: dict[str, Path], tmp_path: Path) -> None:
    """--base parent codes against the declared parent even where ft is closer; auto
    (the default) picks the closest stored tensors, declared or not."""
    g = torch.Generator().manual_seed(3)
    ft = load_file(files["ft.safetensors"])
    for name in ("near", "near2"):  # two close relatives of ft
        near = {k: v + 1e-4 * torch.randn(v.shape, generator=g) for k, v in ft.items()}
        save_file(near, tmp_path / f"{name}.safetensors")
    path = tmp_path / "near.safetensors"
    assert cli("add", "near", path, "-p", "base", "--base", "parent", cwd=repo_dir).code == 0
    assert cli("add", "near2", tmp_path / "near2.safetensors", "-p", "base", cwd=repo_dir).code == 0
    with mg.open(repo_dir) as repo:
        assert {v.model for v in repo.storage_bases("near")} == {"base"}
        assert "ft" in {v.model for v in repo.storage_bases("near2")}
    r = cli("commit", "near", path, "--base", "nearest", cwd=repo_dir)
    assert r.code == 2 and "invalid choice" in r.err


def test_parse_tolerance_forms() -> None:
    from modelgit.cli.write import parse_tolerance

    assert parse_tolerance(None) is None and parse_tolerance("lossless") is None
    assert parse_tolerance("abs=1e-4") == mg.ErrorBound(abs=1e-4)
    assert parse_tolerance("rel=1e-3") == mg.ErrorBound(rel=1e-3)
    assert parse_tolerance("bits=4,group=64") == mg.LowBit(bits=4, group=64)
    for bad in ("abs", "abs=x", "bits=3", "foo=1", "abs=-1"):
        with pytest.raises(mg.ModelgitError):
            parse_tolerance(bad)


def test_demo_json(cli: Callable, tmp_path: Path) -> None:
    r = cli("demo", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    d = r.json()
    names = [m["name"] for m in d["graph"]["models"]]
    assert names == ["base", "ft-low", "ft-high", "base-bf16", "merged"]
    assert d["accuracy"]["base@2"] > 0.5  # it really learned something
    rel = {(e["parent"], e["child"]): e["relation"] for e in d["graph"]["edges"]}
    assert rel[("base", "base-bf16")] == "cast" and rel[("ft-high", "merged")] == "merge"
    assert d["stats"]["stored_bytes"] < d["stats"]["logical_bytes"]
    # what each model's latest version is coded against, as `modelgit du` reports it
    against = {m["name"]: m["stored_against"] for m in d["stats"]["models"]}
    assert against["base-bf16"] == ["base"] and set(against["merged"]) == {"ft-low", "ft-high"}
    assert d["path"] is None and list(tmp_path.iterdir()) == []  # temporary, removed


def test_demo_text_names_what_models_are_stored_against(cli: Callable, tmp_path: Path) -> None:
    r = cli("demo", cwd=tmp_path)
    assert r.code == 0, r.err
    row = next(line for line in r.out.splitlines() if line.startswith("base-bf16 "))
    assert row.split()[-1] == "base"  # the "against" column, empty before


def test_demo_without_sklearn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelgit import demo

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import fails as if absent
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    *_, source = demo.load_data()
    assert source.startswith("synthetic")


# -- progress -----------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELGIT_PROGRESS", raising=False)
    quiet = io.StringIO()
    with Progress("work", stream=quiet, interval=0.01) as p:
        p.update(5, 10)
    assert quiet.getvalue() == ""
    tty = _Tty()
    with Progress("work", stream=tty, interval=0.01) as p:
        p.update(512, 1024)
        p._draw()
    out = tty.getvalue()
    assert "work [" in out and "50%" in out and out.endswith("\r")
    monkeypatch.setenv("MODELGIT_PROGRESS", "0")
    assert not Progress("x", stream=_Tty()).enabled
    spin = Progress("spin", stream=io.StringIO())
    assert "spin" in spin._line() and "s" in spin._line()


def test_progress_shows_rate_and_eta() -> None:
    p = Progress("adding", total=4 << 30, stream=io.StringIO())
    p._start -= 2.0  # two seconds in, a quarter done
    p.update(1 << 30)
    line = p._line()
    assert "1.0 GiB/4.0 GiB" in line and "512.0 MiB/s" in line and "eta 6s" in line


def test_call_with_progress_passes_hook_only_when_taken() -> None:
    seen = []

    def takes(a: int, progress: Callable | None = None) -> int:
        if progress is not None:
            progress(1, 2)
            seen.append(True)
        return a

    def plain(a: int) -> int:
        return a

    p = Progress("x", stream=io.StringIO())
    assert call_with_progress(takes, 3, progress=p) == 3 and seen and p.done == 1
    assert call_with_progress(plain, 4, progress=p) == 4


# -- real processes -------------------------------------------------------------------------


def _entry_point() -> list[str]:
    exe = Path(sys.executable).parent / "modelgit"
    found = str(exe) if exe.is_file() else shutil.which("modelgit")
    return [found] if found else [sys.executable, "-m", "modelgit"]


@pytest.fixture(scope="module")
def user_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Prepare repositories in-process, then run every user command at once."""
    tmp = tmp_path_factory.mktemp("user")
    good = tmp / "good"
    repo = mg.init(good)
    repo.add("base", weights(0))
    repo.add("ft", nudged(weights(0), 0.1), parents="base")
    repo.close()
    save_file(weights(3), tmp / "new.safetensors")
    # a repository whose catalog is garbage
    bad_catalog = tmp / "bad-catalog"
    shutil.copytree(good, bad_catalog)
    for p in bad_catalog.glob("catalog.db*"):
        p.unlink()
    (bad_catalog / "catalog.db").write_bytes(b"this is not a database" * 100)
    # a repository with a damaged pack
    bad_pack = tmp / "bad-pack"
    shutil.copytree(good, bad_pack)
    for pack in (bad_pack / "packs").glob("*.mgp"):
        data = bytearray(pack.read_bytes())
        for i in range(len(data) // 2, len(data), 97):
            data[i] ^= 0xFF
        pack.write_bytes(bytes(data))
    empty = tmp / "empty"
    empty.mkdir()
    py = [sys.executable, "-m", "modelgit"]
    runs = {
        "entry": (_entry_point() + ["--help"], empty),
        "not-a-repo": (py + ["ls"], empty),
        "wrong-args": (py + ["add", "onlyname"], good),
        "unknown": (py + ["show", "nope"], good),
        "add": (py + ["add", "new", str(tmp / "new.safetensors"), "-p", "base", "--json"], good),
        "bad-catalog": (py + ["ls"], bad_catalog),
        "bad-pack-fsck": (py + ["fsck"], bad_pack),
        "bad-pack-export": (py + ["export", "ft", str(tmp / "out.safetensors")], bad_pack),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGIT_")}
    procs = {
        name: subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, (argv, cwd) in runs.items()
    }
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        results[name] = Result(p.returncode, out, err)
    return results


def test_process_entry_point_help(user_runs: dict[str, Result]) -> None:
    h = user_runs["entry"]
    assert h.code == 0, h.err
    assert "examples:" in h.out and "usage: modelgit" in h.out and h.err == ""


def test_process_add_is_quiet_and_machine_readable(user_runs: dict[str, Result]) -> None:
    r = user_runs["add"]
    assert r.code == 0, r.err
    assert r.err == ""  # no progress bar when stderr is not a terminal
    v = json.loads(r.out)
    assert v["name"] == "new" and v["parents"][0]["ref"] == "base@1"


def test_process_not_a_repository(user_runs: dict[str, Result]) -> None:
    assert_one_line_error(user_runs["not-a-repo"], match="not a modelgit repository")


def test_process_wrong_arguments(user_runs: dict[str, Result]) -> None:
    assert_one_line_error(user_runs["wrong-args"], code=2, match="required: PATH")


def test_process_unknown_model(user_runs: dict[str, Result]) -> None:
    assert_one_line_error(user_runs["unknown"], match="no model named 'nope'.*base")


def test_process_corrupt_repository(user_runs: dict[str, Result]) -> None:
    assert_one_line_error(user_runs["bad-catalog"], match="catalog")
    f = user_runs["bad-pack-fsck"]
    assert f.code == 1 and "problem" in f.out and "Traceback" not in f.err
    assert_one_line_error(user_runs["bad-pack-export"])


def test_cache_and_layout_commands(cli: Callable, repo_dir: Path, tmp_path: Path) -> None:
    assert cli("cache", "size", "--json", cwd=repo_dir).json()["enabled"] is False  # type: ignore[index]
    r = cli("cache", "size", "64MiB")
    assert r.code == 0 and "limit 64.0 MiB" in r.out
    assert cli("export", "hf", tmp_path / "linked", "--link").code == 0
    entries = cli("cache", "ls", "--json").json()
    assert [e["refs"] for e in entries] == [["hf@1"]]  # type: ignore[index,union-attr]
    assert "T" in entries[0]["used"]  # type: ignore[index]  # ISO 8601
    assert (tmp_path / "linked" / "model.safetensors").stat().st_nlink == 2
    assert "hf@1" in cli("cache", "ls").out
    assert cli("cache", "verify", "--json").json() == {"verified": 1, "deleted": 0}
    assert "1 entries verified, 0 deleted" in cli("cache", "verify").out
    assert cli("cache", "size", "1KiB").code == 0  # a limit below what it holds: evicts now
    assert cli("cache", "size", "--json").json()["used"] == 0  # type: ignore[index]
    assert cli("cache", "size", "64MiB").code == 0
    assert cli("export", "hf", tmp_path / "again", "--link", "--force").code == 0
    assert "freed" in cli("cache", "clear").out
    assert cli("cache", "ls", "--json").json() == []
    assert_one_line_error(cli("cache", "ls", "5GB"), 1, "takes no SIZE")
    assert_one_line_error(cli("cache", "size", "huge"), 1, "checkout cache size")
    assert cli("cache", "size", "0").code == 0
    assert cli("layout", "--json").json() == {"max_depth": 4}
    assert cli("layout", "--max-depth", "1").out.strip() == "max depth 1"
    assert_one_line_error(cli("layout", "--max-depth", "-3"), 1, "--max-depth must be")
    # the library's parameter names are worded as the command's flags
    assert_one_line_error(cli("add", "t", tmp_path / "x", "--tolerance", "bits=3"), 1, "bits=")
    bad = cli("export", "base", tmp_path / "s", "--max-shard-size", "0")
    assert_one_line_error(bad, 1, "--max-shard-size must be")
    assert "(force=True)" not in cli("export", "base", tmp_path / "linked").err


def test_ctrl_c_right_after_the_commit_reports_the_saved_version(
    cli: Callable, files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C that lands after the version's transaction committed: the command reports
    the saved version and exits 0 (not "interrupted"); one that lands before: 130,
    nothing stored."""
    import signal

    path = tmp_path / "r"
    assert cli("init", path).code == 0
    real_add, real_commit = mg.Repository.add, mg.Repository.commit

    def add_then_interrupt(self: mg.Repository, *a: object, **kw: object) -> object:
        real_add(self, *a, **kw)
        raise KeyboardInterrupt

    def interrupt_first(self: mg.Repository, *a: object, **kw: object) -> object:
        raise KeyboardInterrupt

    def commit_then_interrupt(self: mg.Repository, *a: object, **kw: object) -> object:
        real_commit(self, *a, **kw)
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    try:
        monkeypatch.setattr(mg.Repository, "add", add_then_interrupt)
        r = cli("--repo", path, "add", "m", files["base.safetensors"])
        assert r.code == 0 and "added m@1" in r.out and "interrupted" not in r.err, r
        monkeypatch.setattr(mg.Repository, "commit", commit_then_interrupt)
        r = cli("--repo", path, "commit", "m", files["ft.safetensors"])
        assert r.code == 0 and "committed m@2" in r.out, r
        monkeypatch.setattr(mg.Repository, "add", interrupt_first)
        r = cli("--repo", path, "add", "other", files["base.safetensors"])
        assert r.code == 130 and "interrupted" in r.err and "Traceback" not in r.err
    finally:
        signal.signal(signal.SIGINT, previous)
    with mg.open(path) as repo:
        assert repo.models() == ["m"] and len(repo.versions("m")) == 2


@pytest.mark.parametrize(
    "args, match",
    [
        (("export", "base", "OUT", "--max-shard-size", "bogus"), "max_shard_size: not a size"),
        (("export", "base", "OUT", "--max-shard-size", "0"), "must be positive"),
        (("show", "base@99999999999999999999999"), "out of range"),
        (("log", "base@9223372036854775808"), "out of range|forbidden"),
        (("diff", "base@1", "base@18446744073709551616"), "out of range"),
    ],
)
def test_plain_bad_input_is_no_internal_error(
    cli: Callable, repo_dir: Path, tmp_path: Path, args: tuple[str, ...], match: str
) -> None:
    args = tuple(str(tmp_path / "out") if a == "OUT" else a for a in args)
    assert_one_line_error(cli(*args, cwd=repo_dir), 1, match)


@pytest.mark.parametrize("budget", ["0", "1KiB", "-5", "lots", "64Q"])
def test_bad_memory_budget_is_no_internal_error(
    cli: Callable, repo_dir: Path, monkeypatch: pytest.MonkeyPatch, budget: str
) -> None:
    monkeypatch.setenv("MODELGIT_MEMORY_BUDGET", budget)
    assert_one_line_error(cli("show", "base", cwd=repo_dir), 1, "memory budget")
    with pytest.raises(mg.InvalidArgument, match="memory budget"):
        mg.open(repo_dir, memory_budget=budget)


def test_pickle_refusal_warns_about_code_execution(
    cli: Callable, repo_dir: Path, tmp_path: Path
) -> None:
    torch.save({"w": torch.ones(2), "x": Result(0, "", "")}, tmp_path / "evil.pt")
    r = cli("add", "evil", tmp_path / "evil.pt", cwd=repo_dir)
    assert_one_line_error(r, 1, "never unpickles")
    assert "weights_only=False" not in r.err or "executes that code" in r.err
    assert "run any code" in r.err


def test_init_and_export_have_json(cli: Callable, repo_dir: Path, tmp_path: Path) -> None:
    made = cli("init", tmp_path / "fresh", "--json").json()
    assert made == {"path": str((tmp_path / "fresh").resolve())}
    out = cli("export", "base", tmp_path / "b.safetensors", "--json", cwd=repo_dir).json()
    assert out["ref"] == "base@1" and out["path"] == str(tmp_path / "b.safetensors")
    assert out["link"] is False and len(out["id"]) == 16


def test_files_are_known_by_their_content(
    cli: Callable, repo_dir: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    """A safetensors file under another name is read as one (the pickle path would call
    it a torch file holding Python objects); a file that is neither gets a plain error."""
    renamed = tmp_path / "weird.bin"
    renamed.write_bytes(files["ft.safetensors"].read_bytes())
    assert cli("add", "weird", renamed, cwd=repo_dir).code == 0
    with mg.open(repo_dir) as repo:
        want = load_file(files["ft.safetensors"])["head.weight"]
        assert_same_tensor(repo.load("weird")["head.weight"], want)
        repo.add("weird-api", renamed)  # the Python API too
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    for bad in (text, Path("/dev/null")):
        r = cli("add", "y", bad, cwd=repo_dir)
        assert_one_line_error(r, 1, "neither a safetensors file nor a torch file")
        assert "torch.load" not in r.err


@pytest.mark.parametrize(
    "args, match",
    [
        (("checkout", "base"), "no 'checkout': `modelgit export"),
        (("clone", "x"), "`modelgit init PATH` then `modelgit pull"),
        (("status",), "`modelgit ls`"),
        (("exprot", "base", "x"), "did you mean 'export'"),
        (("show", "bsae"), "did you mean 'base'"),
    ],
)
def test_did_you_mean(cli: Callable, repo_dir: Path, args: tuple[str, ...], match: str) -> None:
    r = cli(*args, cwd=repo_dir)
    assert r.code in (1, 2) and match in r.err, r.err
    assert "Traceback" not in r.err


def test_fsck_text_mentions_garbage(cli: Callable, repo_dir: Path) -> None:
    assert cli("rm", "hf", cwd=repo_dir).code == 0
    out = cli("fsck", cwd=repo_dir).out
    assert "of garbage" in out and "modelgit gc" in out
    assert cli("gc", cwd=repo_dir).code == 0
    assert "garbage" not in cli("fsck", cwd=repo_dir).out


def test_errors_are_worded_for_the_command_line(
    cli: Callable, repo_dir: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    r = cli("add", "base", files["base.safetensors"], cwd=repo_dir)
    assert_one_line_error(r, 1, "use `modelgit commit`")
    assert "commit()" not in r.err
    r = cli("init", repo_dir)
    assert "modelgit.open()" not in r.err and "--repo" in r.err
    assert cli("tag", "prod", "base", cwd=repo_dir).code == 0
    r = cli("tag", "prod", "ft", cwd=repo_dir)
    assert "force=True" not in r.err and "--force" in r.err
    r = cli("edge", "add", "base", "ft", "-r", "distill", cwd=repo_dir)
    assert "remove_edge()" not in r.err and "modelgit edge rm" in r.err
    r = cli("show", "nothing-here", cwd=tmp_path)
    assert "modelgit.init()" not in r.err


def test_one_json_schema(cli: Callable, repo_dir: Path, files: dict[str, Path]) -> None:
    """The model key is always `name`, dates are ISO 8601, add/commit --json carry the
    write stats the text output shows."""
    from datetime import datetime

    added = json.loads(cli("add", "x", files["ft.safetensors"], "--json", cwd=repo_dir).out)
    assert added["name"] == "x" and "model" not in added
    assert added["write"]["chunks"] >= 1 and added["write"]["logical_bytes"] > 0
    assert {"dedup", "delta", "standalone", "new_bytes"} <= set(added["write"])
    committed = json.loads(cli("commit", "x", files["base.safetensors"], "--json").out)
    assert committed["number"] == 2 and committed["write"]["dedup"] >= 1
    listed = json.loads(cli("ls", "--json", cwd=repo_dir).out)
    assert all("name" in m and "model" not in m for m in listed)
    assert all("name" in p for m in listed for p in m["parents"])
    graph = json.loads(cli("graph", "--json", cwd=repo_dir).out)
    for node in graph["models"]:
        for v in node["versions"]:
            datetime.fromisoformat(v["created"])
    for v in json.loads(cli("log", "--json", cwd=repo_dir).out):
        datetime.fromisoformat(v["created"])
        assert v["name"] and "model" not in v


def test_fsck_progress_counts_chunks() -> None:
    import io

    bar = Progress("checking", unit="chunks", stream=io.StringIO())
    bar.update(3, 10)
    assert "3 chunks/10 chunks" in bar._line()
    assert "B/" not in bar._line() and "KiB" not in bar._line()


def test_show_tells_the_load_depth(cli: Callable, tmp_path: Path) -> None:
    """``show`` says how many deltas a load decodes in a chain, and that repack makes it
    one (the same in --json)."""
    repo = tmp_path / "depth"
    with mg.init(repo) as r:
        torch.manual_seed(0)
        w = torch.randn(50_000) * 0.05
        r.add("run", {"w": w})
        for _ in range(4):
            w = w + 1e-4 * torch.randn(50_000)
            r.commit("run", {"w": w})
    assert cli("show", "run@1", "--json", cwd=repo).json()["load_depth"] == 0
    assert cli("show", "run@2", "--json", cwd=repo).json()["load_depth"] == 1
    assert "load depth: 1 delta\n" in cli("show", "run@2", cwd=repo).out
    assert cli("show", "run", "--json", cwd=repo).json()["load_depth"] == 4
    assert "load depth: 4 deltas (`modelgit repack` makes" in cli("show", "run", cwd=repo).out
    cli("repack", cwd=repo)
    assert cli("show", "run", "--json", cwd=repo).json()["load_depth"] == 1
