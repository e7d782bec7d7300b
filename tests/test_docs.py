"""The code in README.md and docs/guide.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/guide.md"]


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page}[block {i}]", "exec"), namespace)  # noqa: S102


DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
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
