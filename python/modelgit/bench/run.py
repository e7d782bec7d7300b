"""The measuring loop of :func:`run_bench`.

For each of ``repeats`` rounds, every strategy in turn (interleaved, so that the noise
of a shared machine hits all of them alike) stores the whole zoo in a fresh store,
parents first, then decodes every model on its own (reading every byte of every
decoded tensor once). Per model: the bytes it adds to the store (first round), the
median encode and decode times over the rounds; on the first round each decoded
model is compared with the original (bit-exactness, largest absolute error) and, when
the zoo says how, re-evaluated on its task.
"""

from __future__ import annotations

import datetime as _dt
import gc
import importlib.metadata
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..progress import progress_off
from .source import BenchModel, Zoo, load_source, resolve_evaluator
from .strategies import DEFAULT_STRATEGIES, Strategy, make_strategy

__all__ = ["BenchResults", "run_bench", "compare_states", "touch", "CSV_COLUMNS"]

CSV_COLUMNS = (
    "strategy",
    "model",
    "parents",
    "relation",
    "dtypes",
    "logical_bytes",
    "stored_bytes",
    "ratio",
    "encode_s",
    "decode_s",
    "encode_MBps",
    "decode_MBps",
    "repeats",
    "lossless",
    "exact",
    "max_abs_err",
    "bound",
    "within_bound",
    "metric",
    "metric_original",
    "metric_decoded",
    "metric_change",
    "higher_is_better",
)


@dataclass
class BenchResults:
    """What :func:`run_bench` measured: one row per (strategy, model), plus context."""

    source: str
    kind: str
    strategies: list[str]
    models: list[str]
    rows: list[dict[str, Any]]
    descriptions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    repeats: int = 1
    command: str | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    parents: dict[str, list[str]] = field(default_factory=dict)

    def row(self, strategy: str, model: str) -> dict[str, Any]:
        for r in self.rows:
            if r["strategy"] == strategy and r["model"] == model:
                return r
        raise KeyError((strategy, model))

    def by_strategy(self, strategy: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["strategy"] == strategy]

    def total_stored(self, strategy: str) -> int:
        return sum(r["stored_bytes"] for r in self.by_strategy(strategy))

    def summary(self) -> list[dict[str, Any]]:
        from .report import summarize

        return summarize(self)

    def comparisons(self) -> list[dict[str, Any]]:
        from .report import comparisons

        return comparisons(self)

    def to_markdown(self) -> str:
        from .report import render_markdown

        return render_markdown(self)


def touch(sd: dict[str, torch.Tensor]) -> int:
    """Read every byte of every tensor once (materializes lazily mapped tensors)."""
    acc = 0
    for t in sd.values():
        if t.numel():
            acc ^= int(t.reshape(-1).view(torch.uint8).max())
    return acc


def compare_states(
    got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]
) -> tuple[bool, float]:
    """(bit-exact?, largest |got - want| over elements finite on both sides).

    Different keys, dtypes or shapes, or a NaN/Inf that moved, give (False, inf).
    """
    if set(got) != set(want):
        return False, math.inf
    exact, err = True, 0.0
    for k, b in want.items():
        a = got[k]
        if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
            return False, math.inf
        if a.numel() == 0:
            continue
        ra = a.contiguous().reshape(-1).view(torch.uint8)
        rb = b.contiguous().reshape(-1).view(torch.uint8)
        if torch.equal(ra, rb):
            continue
        exact = False
        if a.is_floating_point():
            da, db = a.double(), b.double()
            fa, fb = torch.isfinite(da), torch.isfinite(db)
            if not torch.equal(fa, fb) or not torch.equal(
                da[~fa].nan_to_num(), db[~fb].nan_to_num()
            ):
                return False, math.inf
            both = fa & fb
            if both.any():
                err = max(err, float((da[both] - db[both]).abs().max()))
        else:
            err = max(err, float((a.double() - b.double()).abs().max()))
    return exact, err


class _Progress:
    """tqdm when it is installed, else a line per strategy on stderr; or nothing (also
    under ``MODELGIT_PROGRESS=0``, as for every command)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        self.enabled = enabled and not progress_off()
        if not self.enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.done = 0
            self.total = total
            return
        self.bar = tqdm(total=total, unit="step", desc="bench", file=sys.stderr, leave=True)

    def set(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            self.done += n

    def announce(self, text: str) -> None:
        if self.enabled and self.bar is None:
            print(f"[{self.done}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _machine() -> dict[str, Any]:
    def ver(pkg: str) -> str | None:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    from .. import __version__

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "modelgit": __version__,
        "torch": torch.__version__,
        "zstandard": ver("zstandard"),
        "zipnn": ver("zipnn"),
    }


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def run_bench(
    source: str | os.PathLike[str] | Zoo,
    out_dir: str | os.PathLike[str] | None,
    strategies: Sequence[str | Strategy] | None = None,
    repeats: int = 3,
    progress: bool = True,
    *,
    models: Sequence[str] | None = None,
    evaluate: bool | Callable[[BenchModel, dict[str, torch.Tensor]], float | None] = True,
    command: str | None = None,
    workdir: str | os.PathLike[str] | None = None,
    plots: bool = True,
    strict: bool = False,
) -> BenchResults:
    """Measure how a zoo (or repository) is stored by each strategy, side by side.

    ``source``: a zoo folder (``*.safetensors`` + ``manifest.json``), a manifest file or
    a modelgit repository. ``out_dir``: where ``results.csv``, ``results.md`` and the
    plots go (None writes nothing). ``strategies``: names (see
    :func:`modelgit.bench.strategies.make_strategy`) or Strategy objects; default
    :data:`DEFAULT_STRATEGIES`. ``repeats``: timed rounds (medians are reported).
    ``evaluate``: True re-evaluates lossy decodes where the zoo says how (see
    :func:`~modelgit.bench.source.resolve_evaluator`), False never, or a callable
    ``(model, state_dict) -> metric | None``. ``strict``: raise when a strategy fails or
    a lossless one does not round-trip bit-exactly (else it is recorded in ``notes``).
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    zoo = source if isinstance(source, Zoo) else load_source(source, models=models)
    if not zoo.models:
        raise ValueError(f"{zoo.source} holds no models")
    specs = list(strategies) if strategies is not None else list(DEFAULT_STRATEGIES)
    notes: list[str] = []
    active: list[Strategy] = []
    for spec in specs:
        st = make_strategy(spec)
        why = st.available()
        if why:
            notes.append(f"{st.name} skipped: {why}.")
            continue
        if any(a.name == st.name for a in active):
            raise ValueError(f"strategy {st.name!r} is listed twice")
        active.append(st)

    # How to evaluate each model (on the first round), and the original metrics.
    if callable(evaluate):
        fn = evaluate
        evaluators = {m.name: (lambda sd, m=m: fn(m, sd)) for m in zoo.models}
    elif evaluate:
        evaluators = {m.name: resolve_evaluator(m) for m in zoo.models}
    else:
        evaluators = {}
    if evaluate and not any(evaluators.values()):
        notes.append("no model says how to evaluate it: metric changes are n/a.")
    original_metric: dict[str, float] = {}

    def metric_of(m: BenchModel, sd: dict[str, torch.Tensor] | None) -> float | None:
        ev = evaluators.get(m.name)
        if ev is None:
            return None
        if m.name not in original_metric:
            original_metric[m.name] = float(ev(m.state))
        return original_metric[m.name] if sd is None else float(ev(sd))

    n_rounds = {st.name: min(repeats, st.max_repeats or repeats) for st in active}
    for st in active:
        if n_rounds[st.name] < repeats:
            notes.append(f"{st.name} is timed over {n_rounds[st.name]} round(s) only (it is slow).")
    steps = sum(n_rounds.values()) * len(zoo.models) * 2
    bar = _Progress(steps, progress)
    enc: dict[tuple[str, str], list[float]] = {}
    dec: dict[tuple[str, str], list[float]] = {}
    first: dict[tuple[str, str], dict[str, Any]] = {}
    failed: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="modelgit-bench-", dir=workdir))
    # The zoo and the imported libraries are long-lived: freeze them so that the
    # collections run between timed steps only walk what the strategies allocate.
    gc.collect()
    gc.freeze()
    try:
        for r in range(repeats):
            for si, st in enumerate(active):
                if r >= n_rounds[st.name] or st.name in failed:
                    continue
                wd = tmp / f"{si}-{r}"
                wd.mkdir()
                bar.announce(f"round {r + 1}/{repeats}: {st.name}")
                try:
                    st.setup(wd)
                    sizes: dict[str, int | None] = {}
                    for m in zoo.models:
                        bar.set(f"{st.name} encode {m.name}")
                        gc.collect()
                        t0 = time.perf_counter()
                        sizes[m.name] = st.encode_model(m, zoo.by_name)
                        enc.setdefault((st.name, m.name), []).append(time.perf_counter() - t0)
                        bar.step()
                    late = st.stored_bytes() or {}
                    for m in zoo.models:
                        bar.set(f"{st.name} decode {m.name}")
                        gc.collect()
                        t0 = time.perf_counter()
                        sd = st.decode_model(m.name)
                        touch(sd)
                        dec.setdefault((st.name, m.name), []).append(time.perf_counter() - t0)
                        if r == 0:
                            size = sizes[m.name]
                            first[(st.name, m.name)] = _check(
                                st, m, sd, late.get(m.name, 0) if size is None else size,
                                metric_of, bar, strict,
                            )  # fmt: skip
                        del sd
                        bar.step()
                except Exception as exc:
                    if strict:
                        raise
                    failed[st.name] = f"{type(exc).__name__}: {exc}"
                    notes.append(f"{st.name} FAILED and is left out: {failed[st.name]}")
                finally:
                    st.teardown()
                    shutil.rmtree(wd, ignore_errors=True)
    finally:
        gc.unfreeze()
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    names = [st.name for st in active if st.name not in failed]
    for st in active:
        if st.name in failed:
            continue
        for m in zoo.models:
            key = (st.name, m.name)
            e, d = _median(enc[key]), _median(dec[key])
            row = first[key]
            logical = m.logical_bytes
            row.update(
                encode_s=e,
                decode_s=d,
                encode_MBps=logical / e / 1e6 if e > 0 else math.inf,
                decode_MBps=logical / d / 1e6 if d > 0 else math.inf,
                repeats=len(enc[key]),
            )
            if not row["exact"] and st.lossless:
                notes.append(f"ROUND TRIP FAILED: {st.name} does not restore {m.name} exactly.")
            rows.append({c: row.get(c) for c in CSV_COLUMNS})
    results = BenchResults(
        source=str(zoo.source),
        kind=zoo.kind,
        strategies=names,
        models=[m.name for m in zoo.models],
        rows=rows,
        descriptions={st.name: st.description for st in active},
        notes=notes,
        repeats=repeats,
        command=command,
        machine=_machine(),
        parents={m.name: list(m.parents) for m in zoo.models},
    )
    if out_dir is not None:
        from .report import write_reports

        write_reports(results, Path(out_dir), plots=plots)
    return results


def _check(
    st: Strategy,
    m: BenchModel,
    sd: dict[str, torch.Tensor],
    stored: int,
    metric_of: Callable[[BenchModel, dict[str, torch.Tensor] | None], float | None],
    bar: _Progress,
    strict: bool,
) -> dict[str, Any]:
    exact, err = compare_states(sd, m.state)
    if strict and st.lossless and not exact:
        raise AssertionError(f"{st.name} does not restore {m.name} bit-exactly")
    logical = m.logical_bytes
    row: dict[str, Any] = {
        "strategy": st.name,
        "model": m.name,
        "parents": ";".join(m.parents),
        "relation": m.relation or "",
        "dtypes": m.dtypes,
        "logical_bytes": logical,
        "stored_bytes": int(stored),
        "ratio": logical / stored if stored else math.inf,
        "lossless": st.lossless,
        "exact": exact,
        "max_abs_err": err,
        "bound": st.bound,
        "within_bound": None if st.bound is None else bool(err <= st.bound),
    }
    if m.eval is not None:
        row["metric"] = m.eval.get("metric")
        row["higher_is_better"] = bool(m.eval.get("higher_is_better", True))
    bar.set(f"{st.name} evaluate {m.name}")
    orig = metric_of(m, None)
    if orig is not None:
        decoded = orig if exact else metric_of(m, sd)
        row["metric_original"] = orig
        row["metric_decoded"] = decoded
        row["metric_change"] = decoded - orig if decoded is not None else None
    return row
