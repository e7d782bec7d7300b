"""Shared fixtures and helpers of the repository tests (kept small on purpose)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import torch

import modelgit as mg

# Hypothesis imports libcst to describe a failing example; libcst triggers a
# DeprecationWarning (mypy_extensions.TypedDict) that filterwarnings=error turns into an
# INTERNALERROR hiding the real failure. Import it once, quietly, up front.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import libcst.metadata  # noqa: F401
    except ImportError:
        pass


@pytest.fixture(autouse=True)
def _own_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own modelgit cache folder (checkout cache and team staging),
    with the checkout cache off unless the test turns it on: what a user's cache holds
    never reaches a test, and no test leaves files there."""
    monkeypatch.setenv("MODELGIT_CACHE", str(tmp_path / "modelgit-cache"))
    monkeypatch.delenv("MODELGIT_CHECKOUT_CACHE", raising=False)


@pytest.fixture(params=["baseline", "avx2"])
def kernel_copy(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test with each copy of the native vectorized kernels (``_core.kernels``),
    then restores the automatic choice. The AVX2 copy is skipped only where the CPU (or
    the build) has none."""
    from modelgit._native import _core

    try:
        _core.kernels(request.param)
    except ValueError:
        pytest.skip("this CPU or build has no AVX2 kernels")
    try:
        yield request.param
    finally:
        _core.kernels("auto")


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[mg.Repository]:
    """A fresh, empty repository in a temporary folder."""
    r = mg.init(tmp_path / "repo")
    try:
        yield r
    finally:
        r.close()


def raw_bytes(t: torch.Tensor) -> bytes:
    """The exact bit pattern of a tensor (contiguous, little-endian, any dtype)."""
    t = t.detach().cpu().reshape(-1).clone(memory_format=torch.contiguous_format)
    if t.numel() == 0:
        return b""
    if t.stride(0) != 1:  # a one-element tensor may keep its odd stride through clone
        t = t.as_strided((1,), (1,))
    return t.view(torch.uint8).numpy().tobytes()


def assert_same_tensor(got: torch.Tensor, want: torch.Tensor, name: str = "") -> None:
    """Same dtype, same shape, same bits (NaN payloads and -0.0 included)."""
    assert isinstance(got, torch.Tensor), name
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    assert tuple(got.shape) == tuple(want.shape), f"{name}: shape {got.shape} != {want.shape}"
    assert raw_bytes(got) == raw_bytes(want), f"{name}: bits differ"


def assert_same_state(got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor]) -> None:
    """Same keys in the same order, every tensor bit-exact."""
    assert list(got) == list(want)
    for k in want:
        assert_same_tensor(got[k], want[k], k)


def damage_a_pack(repo: mg.Repository, mask: int = 0xFF) -> None:
    """Flip bits of the middle byte of the repository's first pack and drop decoded
    chunks from the cache, so the next read meets the damage."""
    pack = next((repo.root / "packs").glob("*.mgp"))
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= mask
    pack.write_bytes(bytes(data))
    repo.store.cache.clear()


REPACKER = """
import sys, modelgit as mg
with mg.open(sys.argv[1]) as repo:
    print("start", flush=True)
    repo.repack(gc=False)
    print("done", flush=True)
"""


def kill_repacks_while_loading(
    root: Path,
    rng: random.Random,
    load_one: Callable[[mg.Repository], None],
    window: tuple[float, float],
    check: Callable[[mg.Repository], None] | None = None,
) -> int:
    """Three times: start ``repo.repack()`` in another process, load with ``load_one``
    here (it checks what it loaded) for a random time in ``window`` seconds, kill the
    repacker with SIGKILL, then open the repository afresh: fsck clean (and ``check``).
    Returns how many repacks the kill interrupted."""
    interrupted = 0
    with mg.open(root) as reader:
        for _ in range(3):
            proc = subprocess.Popen([sys.executable, "-c", REPACKER, str(root)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True)  # fmt: skip
            assert proc.stdout is not None and proc.stdout.readline() == "start\n"
            deadline = time.monotonic() + rng.uniform(*window)
            while time.monotonic() < deadline:
                load_one(reader)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            interrupted += proc.stdout.read() != "done\n"
            proc.stdout.close()
            with mg.open(root) as fresh:
                assert fresh.fsck().ok
                if check is not None:
                    check(fresh)
    return interrupted
