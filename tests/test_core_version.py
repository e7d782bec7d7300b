"""One version: pyproject.toml's, reported by the package and by its native modules.

CMakeLists.txt passes scikit-build-core's SKBUILD_PROJECT_VERSION_FULL to the modules as
MODELGIT_VERSION; modelgit.__version__ comes from the installed distribution's metadata.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import modelgit
from modelgit import _core

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent


def pyproject_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def test_core_version_matches_package_and_pyproject() -> None:
    want = pyproject_version()
    assert isinstance(_core.__version__, str) and _core.__version__
    assert _core.__version__ == want
    assert modelgit.__version__ == want
    assert _core.__version__ == modelgit.__version__


def test_cuda_module_version_matches() -> None:
    # Importing modelgit._cuda does not initialise CUDA: this runs without a GPU.
    try:
        cu = importlib.import_module("modelgit._cuda")
    except ImportError:
        pytest.skip("modelgit._cuda is not built (no nvcc at build time)")
    assert cu.__version__ == pyproject_version() == _core.__version__
