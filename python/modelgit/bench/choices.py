"""The names of the strategies the harness compares (no torch here: the command line's
help text reads them, and ``modelgit --help`` must start fast)."""

from __future__ import annotations

__all__ = ["DEFAULT_STRATEGIES", "strategy_help"]

DEFAULT_STRATEGIES = (
    "safetensors",
    "zstd-3",
    "zipnn",
    "bitx",
    "mgit",
    "modelgit",
    "modelgit-abs1e-5",
    "modelgit-abs1e-4",
    "modelgit-abs1e-3",
    "modelgit-8bit",
    "modelgit-4bit",
    "modelgit-2bit",
    "modelgit-1bit",
)


def strategy_help() -> str:
    return (
        "strategies: safetensors, zstd-<level>, zipnn, bitx, mgit[-eps<E>], modelgit, "
        "modelgit-abs<E>, modelgit-rel<E>, modelgit-<bits>bit[-g<group>] "
        f"(default: {','.join(DEFAULT_STRATEGIES)})"
    )
