"""Storage-footprint benchmark harness: how much space a model zoo needs, and at what cost.

>>> from modelgit.bench import run_bench
>>> res = run_bench("bench/cache/small", "bench/out/small")   # doctest: +SKIP

Side by side, in one run: raw safetensors, zstd per model, ZipNN per model, ZipLLM's
BitX, MGit's storage algorithm (re-implemented), modelgit lossless and modelgit lossy
at several bounds and bit widths. Per strategy and model: stored bytes, ratio, encode
and decode throughput (medians of repeated runs), largest absolute error and the
change of the model's evaluation metric. Writes ``results.csv``, ``results.md`` and
plots (``footprint.png``, ``tradeoff.png``, ``lineage.png``).

Command line: ``modelgit bench ZOO_DIR -o OUT`` or ``python -m modelgit.bench ZOO_DIR -o OUT``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .choices import DEFAULT_STRATEGIES

if TYPE_CHECKING:
    from .run import CSV_COLUMNS, BenchResults, compare_states, run_bench
    from .source import BenchModel, Zoo, load_source
    from .strategies import Strategy, make_strategy

__all__ = [
    "run_bench",
    "BenchResults",
    "BenchModel",
    "Zoo",
    "load_source",
    "Strategy",
    "make_strategy",
    "DEFAULT_STRATEGIES",
    "CSV_COLUMNS",
    "compare_states",
]

# the harness needs torch: its modules load on first use, so that `modelgit --help` (which
# imports modelgit.bench.cli) does not
_LAZY = {
    "run": ("run_bench", "BenchResults", "CSV_COLUMNS", "compare_states"),
    "source": ("BenchModel", "Zoo", "load_source"),
    "strategies": ("Strategy", "make_strategy"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY["run"]:
        from . import run as module
    elif name in _LAZY["source"]:
        from . import source as module
    elif name in _LAZY["strategies"]:
        from . import strategies as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()).union(*_LAZY.values()))
