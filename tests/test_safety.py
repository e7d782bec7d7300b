"""Safety rails (#19): warnings for likely mistakes, tag argument order, rm --force on
the command line. (Forced removal in Python: test_lineage_api.py; diverged push:
test_workflows_collab.py; export: test_repository_export.py; bisect ends:
test_workflows_bisect.py.)"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import modelgit as mg
from modelgit.cli import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """cli(*args) -> (exit status, stdout, stderr), running main() in-process."""
    monkeypatch.setenv("MODELGIT_PROGRESS", "0")

    class Result:
        def __init__(self, code: int, out: str, err: str) -> None:
            self.code, self.out, self.err = code, out, err

    def run(*args: object) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


def sd(seed: int, prefix: str = "layer") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"{prefix}.weight": torch.randn(8, 8, generator=g), f"{prefix}.bias": torch.ones(8)}


def test_a_commit_that_changes_nothing_warns(repo: mg.Repository) -> None:
    repo.add("m", sd(0))
    with pytest.warns(mg.ModelgitWarning, match="m@2 has the same weights as m@1"):
        v = repo.commit("m", sd(0))
    assert v.number == 2 and repo.fsck().ok  # stored all the same
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repo.commit("m", sd(1))  # a real change: silent
        repo.add("copy", sd(1), parents="m")  # a new model with its parent's weights: fine


def test_misspelt_relations_warn(repo: mg.Repository) -> None:
    repo.add("base", sd(0))
    with pytest.warns(mg.ModelgitWarning, match="'finetuen'.*did you mean 'finetune'"):
        repo.add("a", sd(1), parents="base", relation="finetuen")
    assert repo.graph.edge("base", "a").relation == "finetuen"  # recorded as given
    repo.add("b", sd(2))
    with pytest.warns(mg.ModelgitWarning, match="did you mean 'distill'"):
        repo.add_edge("base", "b", relation="distil")
    with warnings.catch_warnings():  # refused: no warning that it was "recorded as" given
        warnings.simplefilter("error")
        with pytest.raises(mg.LineageError, match="already recorded"):
            repo.add_edge("base", "b", relation="finetuen")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i, rel in enumerate(["distill", "federated-round", "sft", "lora"]):
            repo.add(f"ok{i}", sd(10 + i), parents="base", relation=rel)
    assert repo.fsck().ok


def test_a_parent_sharing_no_tensor_names_warns(repo: mg.Repository) -> None:
    repo.add("vision", sd(0, "conv"))
    with pytest.warns(mg.ModelgitWarning, match="parent vision@1 shares no tensor names"):
        repo.add("text", sd(1, "attn"), parents="vision")
    repo.add("other", sd(2, "mlp"))
    with pytest.warns(mg.ModelgitWarning, match="shares no tensor names with other@1"):
        repo.add_edge("vision", "other", relation="distill")
    assert repo.fsck().ok


def test_cli_prints_warnings_on_stderr(repo: mg.Repository, tmp_path: Path, cli) -> None:
    save_file(sd(0), str(tmp_path / "a.safetensors"))
    save_file(sd(1, "x"), str(tmp_path / "b.safetensors"))
    where = ["--repo", repo.root]
    assert cli("add", "a", tmp_path / "a.safetensors", *where).err == ""
    r = cli("commit", "a", tmp_path / "a.safetensors", *where)
    assert r.code == 0 and r.err == (
        "modelgit: warning: a@2 has the same weights as a@1: the commit changes nothing\n"
    )
    r = cli("add", "b", tmp_path / "b.safetensors", "-p", "a", "-r", "finetuen", *where)
    assert r.code == 0
    lines = r.err.splitlines()
    assert len(lines) == 2 and all(x.startswith("modelgit: warning: ") for x in lines)
    assert "did you mean 'finetune'" in lines[0] and "shares no tensor names" in lines[1]


def test_swapped_tag_arguments_are_refused(repo: mg.Repository, cli) -> None:
    repo.add("base", sd(0))
    repo.commit("base", sd(1))
    with pytest.raises(mg.InvalidName, match=r"did you mean repo.tag\('base', 'prod'\)"):
        repo.tag("prod", "base")
    with pytest.raises(mg.InvalidName, match=r"did you mean repo.tag\('base@1', 'prod'\)"):
        repo.tag("prod", "base@1")  # a version reference, '@' and all: the same advice
    with pytest.raises(mg.InvalidName, match="is a reference to a version, not a name"):
        repo.add("base@1", sd(2))
    assert repo.tags() == {}
    assert repo.tag("base@1", "prod").ref == "base@1"  # the right order
    with pytest.raises(mg.InvalidName, match="start of a version id"):
        repo.tag("base", repo.version("base@2").id[:8])
    where = ["--repo", repo.root]
    r = cli("tag", "base", "stable", *where)
    assert r.code == 1 and "did you mean `modelgit tag stable base`" in r.err
    assert "stable" not in repo.tags()
    assert cli("tag", "stable", "base", *where).code == 0
    assert repo.tags()["stable"].ref == "base@2"
    assert cli("tag", "-f", "prod", "base@2", *where).code == 0  # moving a tag still works
    assert repo.tags()["prod"].ref == "base@2" and repo.fsck().ok


def test_cli_rm_needs_force_for_descendants(repo: mg.Repository, cli) -> None:
    repo.add("root", sd(0))
    repo.add("mid", sd(1), parents="root", relation="distill")
    repo.add("leaf", sd(2), parents="mid", relation="prune")
    repo.add("lone", sd(3))
    where = ["--repo", repo.root]
    r = cli("rm", "mid", "lone", *where)
    assert r.code == 1 and "mid: leaf" in r.err and "--force" in r.err
    assert {"mid", "lone"} <= set(repo.models())  # nothing removed
    r = cli("rm", "mid", "leaf", *where)  # removed together: nothing is left behind
    assert r.code == 0 and "mid" not in repo and "leaf" not in repo
    repo.add("mid", sd(1), parents="root", relation="distill")
    repo.add("leaf", sd(2), parents="mid", relation="prune")
    assert cli("rm", "mid", "--force", *where).code == 0
    assert repo.fsck().ok
    out = cli("ls", *where).out
    assert "root (prune via removed mid)" in out
    assert "root@1 (prune, via removed mid)" in cli("log", "leaf", *where).out
    assert "[prune via removed mid]" in cli("graph", *where).out
    assert cli("rm", "root", "-f", *where).code == 0
    assert "from removed root (prune)" in cli("log", "leaf", *where).out
    assert "removed root (prune)" in cli("ls", *where).out
    assert "from removed root [prune]" in cli("graph", *where).out
    assert repo.fsck().ok
