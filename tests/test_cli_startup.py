"""Read-only commands start without torch (issue #19: `modelgit ls` in well under a second).

Each command runs in a fresh interpreter (``main([...])`` of ``modelgit.cli``, what
``modelgit`` runs) on a small repository; the test then looks at ``sys.modules``. Torch
(about 2 s to import) is loaded only where tensors are made: add, load, export, the
values of a diff. Numpy is loaded only where chunks are coded or decoded. Timings are in
``bench/bench_cli_startup.py``; this test checks what is imported, which does not depend
on the machine's load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import modelgit as mg

# runs one command in-process and reports what it imported, on the last line of stderr
PROBE = r"""
import json, sys
from modelgit.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
heavy = ("torch", "numpy", "transformers", "safetensors", "importlib.metadata")
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}),
      file=sys.stderr)
"""


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """base -> ft (2 versions, tagged) -> ft2, float32."""
    path = tmp_path_factory.mktemp("startup") / "repo"
    g = torch.Generator().manual_seed(0)
    base = {f"l{i}.weight": torch.randn(32, 32, generator=g) for i in range(3)}
    repo = mg.init(path)
    try:
        repo.add("base", base, message="pretrained")
        repo.add("ft", {k: v + 0.01 for k, v in base.items()}, parents="base")
        repo.commit("ft", {k: v + 0.02 for k, v in base.items()}, message="more")
        repo.tag("ft", "good")
        repo.add("ft2", {k: v * 1.5 for k, v in base.items()}, parents="ft")
    finally:
        repo.close()
    return path


def run(repo_dir: Path, *args: str, code: str = PROBE) -> tuple[dict, str]:
    """(the probe's report, stdout) of one command in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return report, out.stdout


READ_ONLY = [
    ("--version",),
    ("--help",),
    ("ls",),
    ("ls", "--json"),
    ("log",),
    ("log", "ft"),
    ("log", "ft", "--json"),
    ("show", "ft"),
    ("show", "ft@1", "--json"),
    ("show", "good"),
    ("du",),
    ("graph",),
    ("graph", "--format", "dot"),
    ("tag",),
]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_do_not_import_torch(repo_dir: Path, args: tuple[str, ...]) -> None:
    report, out = run(repo_dir, *args)
    assert report["code"] == 0, (args, out)
    assert out.strip(), "the command printed nothing"
    # --version reads the package metadata; no other read-only command needs it
    allowed = {"importlib.metadata"} if args == ("--version",) else set()
    assert set(report["loaded"]) <= allowed, f"{' '.join(args)} imported {report['loaded']}"


def test_fsck_decodes_without_torch(repo_dir: Path) -> None:
    """fsck decodes every chunk (numpy and the native core), but makes no tensor."""
    report, out = run(repo_dir, "fsck")
    assert report["code"] == 0 and "ok" in out
    assert "torch" not in report["loaded"]


def test_import_modelgit_is_light(repo_dir: Path) -> None:
    code = (
        "import sys, modelgit as mg\n"
        "heavy = [m for m in ('torch', 'numpy', 'importlib.metadata') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert mg.__version__ and callable(mg.infer_lineage) and 'infer_lineage' in dir(mg)\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_writes_and_values_still_load_torch(repo_dir: Path) -> None:
    """The lazy imports are taken where tensors are made: a diff of values makes them."""
    report, out = run(repo_dir, "diff", "base", "ft")
    assert report["code"] == 0, out
    assert "torch" in report["loaded"]
