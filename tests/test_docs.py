"""The documentation runs as written.

Every fenced block of README.md and docs/*.md says what it is in its info string:

- ```python (or ```py): run, in order with the page's other blocks, in one namespace;
- ```console (commands are the lines that start with `$ `; the other lines are output)
  or ```bash / ```sh / ```shell (every line that is not blank or a comment is a
  command): run, each command in turn, and each must exit 0, unless its comment says
  otherwise (`$ modelgit fsck   # exits 1: ...`). `modelgit ...` runs in-process
  (`modelgit.cli.main`, the same code as the command), `cd DIR` and `export NAME=VALUE`
  change the state of the page's shell, anything else runs in bash;
- a `file=NAME` word (```python file=checks.py): the block is written to NAME in the
  current folder instead of being run (a file the examples use);
- a `no-run` word (```bash no-run): shown only, for what a CI machine cannot do (install
  packages, a PostgreSQL server, a GPU, hours of benchmarks); these are counted below,
  page by page, so that none is skipped silently;
- ```text: not code (a layout, an output, a table).

Each page's blocks run in one fresh temporary folder, in the order of the page.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelgit.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]

PYTHON = {"python", "py"}
SHELL = {"console", "bash", "sh", "shell"}
TEXT = {"text"}

# The blocks shown but not run, per page: change these numbers only with a reason the
# page gives next to the block.
NO_RUN = {
    "README.md": 2,  # pip install
    "docs/guide.md": 4,  # a PostgreSQL server and an S3 bucket; transformers + MiniLM;
    # the Trainer and Lightning callbacks (tests/test_workflows_checkpoints.py runs them);
    # the screenshots, in Chromium (tests/test_web_browser.py runs docs/screenshots.py)
    "docs/cli.md": 2,  # a Hugging Face folder with side files; `modelgit serve` (runs until
    # Ctrl-C; tests/test_web_server.py runs it)
    "docs/benchmarks.md": 2,  # a GPU
    "docs/benchmarks_core.md": 1,  # the benchmarks: minutes to hours each
    "docs/benchmarks_inference.md": 1,
    "docs/benchmarks_repository.md": 1,
    "docs/benchmarks_team.md": 1,
    "docs/benchmarks_zoo.md": 2,
}

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
_EXITS = re.compile(r"\s#\s*exits (\d+)\b")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    words: list[str]
    text: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def no_run(self) -> bool:
        return "no-run" in self.words

    @property
    def file(self) -> str | None:
        names = [w[5:] for w in self.words if w.startswith("file=")]
        return names[0] if names else None


def blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    found = []
    for m in _FENCE.finditer(text):
        lang, *words = m.group(1).split() or [""]
        line = text.count("\n", 0, m.start()) + 1
        found.append(Block(page, line, lang, words, m.group(2)))
    return found


def commands(block: Block) -> list[str]:
    """The command lines of a shell block (continuation lines joined)."""
    lines = block.text.splitlines()
    if block.lang == "console":
        lines = [ln[2:] for ln in lines if ln.startswith("$ ")]
    else:
        lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    out: list[str] = []
    pending = ""
    for ln in lines:
        if ln.rstrip().endswith("\\"):
            pending += ln.rstrip()[:-1] + " "
            continue
        out.append(pending + ln)
        pending = ""
    return out


def test_every_block_says_what_it_is() -> None:
    """No block is skipped silently: each is run, written as a file, marked no-run (and
    counted), or declared text."""
    wrong, no_run = [], {}
    for page in DOCS:
        for b in blocks(page):
            known = b.lang in PYTHON | SHELL | TEXT
            words_ok = all(w == "no-run" or w.startswith("file=") for w in b.words)
            if not known or not words_ok or (b.lang in TEXT and b.words):
                wrong.append(f"{b.where}: ```{b.lang} {' '.join(b.words)}".rstrip())
            if b.no_run:
                no_run[page] = no_run.get(page, 0) + 1
    assert wrong == []
    assert no_run == NO_RUN


def _run_shell(
    line: str, where: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = _EXITS.search(line)
    want = int(m.group(1)) if m else 0
    argv = shlex.split(line, comments=True)
    if argv[0] == "cd":
        os.chdir(argv[1])
        return
    if argv[0] == "export":
        for assignment in argv[1:]:
            name, _, value = assignment.partition("=")
            monkeypatch.setenv(name, value)
        return
    capsys.readouterr()
    if argv[0] == "modelgit":
        code = main(argv[1:])
        cap = capsys.readouterr()
        out, err = cap.out, cap.err
    else:
        r = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
        code, out, err = r.returncode, r.stdout, r.stderr
    assert code == want, f"{where}: `{line}` exited {code}, not {want}\n{out}\n{err}"


DOCS_THAT_RUN = [p for p in DOCS if any(not b.no_run and b.lang not in TEXT for b in blocks(p))]


@pytest.mark.parametrize("page", DOCS_THAT_RUN)
def test_page_runs(
    page: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every block of the page that is not marked no-run runs as written, in order."""
    for name in ("MODELGIT_REPO", "MODELGIT_DEBUG", "MODELGIT_MEMORY_BUDGET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELGIT_PROGRESS", "0")
    monkeypatch.setattr(sys, "path", list(sys.path))  # a page may add "." to it
    before = set(sys.modules)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    try:
        for b in blocks(page):
            if b.no_run or b.lang in TEXT:
                continue
            if b.file:
                Path(b.file).write_text(b.text)
            elif b.lang in PYTHON:
                exec(compile(b.text, b.where, "exec"), namespace)  # noqa: S102
            else:
                for line in commands(b):
                    _run_shell(line, b.where, capsys, monkeypatch)
            ran += 1
    finally:
        for name in set(sys.modules) - before:  # modules the page wrote (mywork, checks)
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
                del sys.modules[name]
    assert ran > 0


def test_cli_page_covers_every_command() -> None:
    """docs/cli.md has a `### `modelgit NAME ...`` section for every command of the parser."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    names = set(sub.choices)  # type: ignore[attr-defined]
    assert len(names) > 25
    doc = (ROOT / "docs" / "cli.md").read_text()
    documented = set(re.findall(r"^### `modelgit ([\w-]+)", doc, re.M))
    assert sorted(names - documented) == []
    assert sorted(documented - names) == []


_PATH = re.compile(
    r"(?<![\w/.-])((?:python|csrc|tests|bench|docs)/[\w./-]*\w\.(?:pyi?|md|[ch]pp|cuh?))"
)
_LINK = re.compile(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)")


@pytest.mark.parametrize("page", DOCS)
def test_paths_in_docs_exist(page: str) -> None:
    """Every source path a page names, and every page it links to, is a real file."""
    text = (ROOT / page).read_text()
    missing = [p for p in _PATH.findall(text) if not (ROOT / p).exists()]
    here = (ROOT / page).parent
    missing += [p for p in _LINK.findall(text) if not (here / p).exists()]
    assert missing == []


def test_architecture_names_real_modules() -> None:
    """docs/architecture.md names modules relative to python/modelgit/ (a bare name in
    the layer table: inside its layer's folder)."""
    text = (ROOT / "docs/architecture.md").read_text()
    pkg = ROOT / "python" / "modelgit"
    names = set(re.findall(r"(?<![\w/.-])((?:[a-z_]+/)*[a-z_]+\.py)\b", text))
    assert len(names) > 20

    def exists(name: str) -> bool:
        if "/" not in name:
            return bool(list(pkg.rglob(name)))
        return (pkg / name).exists() or (ROOT / name).exists()

    missing = [n for n in names if not exists(n)]
    assert missing == []


def test_git_users_table_names_every_git_verb_the_cli_explains() -> None:
    """The git verbs `modelgit` answers with a hint have a row in "modelgit for git users"."""
    from modelgit.cli import GIT_VERBS

    doc = (ROOT / "docs" / "cli.md").read_text()
    section = doc.split("## modelgit for git users", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"`git ([\w-]+)", section))
    assert sorted(set(GIT_VERBS) - rows) == []
