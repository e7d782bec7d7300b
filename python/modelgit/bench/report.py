"""Reports of a bench run: ``results.csv``, ``results.md`` and the plots (``*.png``).

matplotlib is imported only to draw the plots (``pip install "modelgit[bench]"``);
without it the plots are skipped and ``results.md`` says so.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import BenchResults

__all__ = [
    "summarize",
    "comparisons",
    "render_markdown",
    "write_csv",
    "write_plots",
    "write_reports",
    "LOSSLESS",
    "LOSSY",
]

# The strategies the acceptance comparisons are about.
LOSSLESS = "modelgit"
LOSSY = "modelgit-abs1e-4"
BITX = "bitx"
MGIT = "mgit"
RAW = "safetensors"

MB = 1e6


# ----------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------


def _source_name(source: str) -> str:
    """A zoo's name in titles: its folder's name, also for "." or a trailing slash."""
    return Path(source).resolve().name or str(source)


def _oriented(row: dict[str, Any]) -> float | None:
    """Metric change with the sign of an improvement (negative = worse)."""
    ch = row.get("metric_change")
    if ch is None:
        return None
    return ch if row.get("higher_is_better", True) else -ch


def summarize(res: BenchResults) -> list[dict[str, Any]]:
    """One dict per strategy: totals over the zoo."""
    raw_total = res.total_stored(RAW) if RAW in res.strategies else None
    out = []
    for s in res.strategies:
        rows = res.by_strategy(s)
        logical = sum(r["logical_bytes"] for r in rows)
        stored = sum(r["stored_bytes"] for r in rows)
        enc = sum(r["encode_s"] for r in rows)
        dec = sum(r["decode_s"] for r in rows)
        changes = [c for c in (_oriented(r) for r in rows) if c is not None]
        bounds = [r["within_bound"] for r in rows if r["within_bound"] is not None]
        out.append(
            {
                "strategy": s,
                "lossless": rows[0]["lossless"],
                "logical_bytes": logical,
                "stored_bytes": stored,
                "ratio": logical / stored if stored else math.inf,
                "vs_safetensors": raw_total / stored if raw_total and stored else None,
                "encode_s": enc,
                "decode_s": dec,
                "encode_MBps": logical / enc / MB if enc > 0 else math.inf,
                "decode_MBps": logical / dec / MB if dec > 0 else math.inf,
                "exact": all(r["exact"] for r in rows),
                "max_abs_err": max(r["max_abs_err"] for r in rows),
                "bound": rows[0]["bound"],
                "within_bound": all(bounds) if bounds else None,
                "worst_metric_change": min(changes) if changes else None,
                "evaluated": len(changes),
            }
        )
    return out


def _derived(res: BenchResults, relations: tuple[str, ...] | None = None) -> list[str]:
    rows = res.by_strategy(res.strategies[0]) if res.strategies else []
    out = [r["model"] for r in rows if r["parents"]]
    if relations:
        sel = [r["model"] for r in rows if r["parents"] and r["relation"] in relations]
        out = sel or out
    return out


def _sum(res: BenchResults, s: str, col: str, models: list[str] | None = None) -> float:
    return sum(r[col] for r in res.by_strategy(s) if models is None or r["model"] in models)


def comparisons(res: BenchResults) -> list[dict[str, Any]]:
    """The acceptance comparisons that this run's strategies make measurable.

    Each: ``{"what", "value", "unit", "target", "met"}`` (``met`` None without a target).
    """
    have = set(res.strategies)
    out: list[dict[str, Any]] = []
    derived = _derived(res)

    def add(what: str, value: float | None, unit: str, target: str, met: bool | None) -> None:
        out.append({"what": what, "value": value, "unit": unit, "target": target, "met": met})

    if {LOSSLESS, BITX} <= have:
        v = res.total_stored(BITX) / res.total_stored(LOSSLESS)
        add(f"{LOSSLESS} (lossless) total stored size: {BITX} / {LOSSLESS}", v, "x smaller",
            ">= 1.25x", v >= 1.25)  # fmt: skip
    if {LOSSY, MGIT} <= have:
        v = res.total_stored(MGIT) / res.total_stored(LOSSY)
        add(f"{LOSSY} total stored size: {MGIT} / {LOSSY}", v, "x smaller", ">= 1.5x",
            v >= 1.5)  # fmt: skip
        if derived:
            m, g = (
                _sum(res, MGIT, "stored_bytes", derived),
                _sum(res, LOSSY, "stored_bytes", derived),
            )
            add(f"{LOSSY} stored size of the derived models only: {MGIT} / {LOSSY}",
                m / g if g else math.inf, "x smaller", "", None)  # fmt: skip
        v = _sum(res, MGIT, "encode_s") / _sum(res, LOSSY, "encode_s")
        add(f"{LOSSY} encode speed, whole zoo: {MGIT} time / {LOSSY} time", v, "x faster",
            ">= 50x", v >= 50)  # fmt: skip
        if derived:
            v = _sum(res, MGIT, "encode_s", derived) / _sum(res, LOSSY, "encode_s", derived)
            add(f"{LOSSY} encode speed, derived models only: {MGIT} / {LOSSY}", v, "x faster",
                "", None)  # fmt: skip
        errs = [r["max_abs_err"] for r in res.by_strategy(MGIT)]
        add(f"{MGIT} largest absolute error", max(errs), "", "", None)
    if LOSSY in have:
        rows = [r for r in res.by_strategy(LOSSY) if r["model"] in derived]
        ch = [(r["model"], r["metric_change"], r["metric"]) for r in rows]
        ch = [c for c in ch if c[1] is not None]
        if ch:
            worst = max(ch, key=lambda c: abs(c[1]))
            scale = 100.0 if worst[2] == "accuracy" else 1.0
            v = abs(worst[1]) * scale
            unit = "pp" if scale == 100.0 else f"({worst[2]})"
            add(
                f"{LOSSY}: largest absolute metric change of a derived model vs lossless "
                f"({len(ch)} models; worst: {worst[0]})",
                v,
                unit,
                "<= 0.5 pp" if scale == 100.0 else "",
                v <= 0.5 if scale == 100.0 else None,
            )
        errs = [r["max_abs_err"] for r in res.by_strategy(LOSSY)]
        add(f"{LOSSY} largest absolute error", max(errs), "", "<= 1e-4", max(errs) <= 1e-4)
    if RAW in have:
        fts = _derived(res, ("finetune", "version"))
        for s in (LOSSLESS, LOSSY):
            if s not in have or not fts:
                continue
            ratios = [
                (res.row(s, m)["decode_s"] / res.row(RAW, m)["decode_s"], m)
                for m in fts
                if res.row(RAW, m)["decode_s"] > 0
            ]
            if not ratios:
                continue
            worst = max(ratios)
            med = statistics.median(r for r, _ in ratios)
            add(f"{s} load of a delta-coded fine-tune vs safetensors load_file + touch, median "
                f"over {len(ratios)}", med, "x the time", "", None)  # fmt: skip
            add(f"{s} load of a delta-coded fine-tune vs safetensors load_file + touch, worst "
                f"({worst[1]})", worst[0], "x the time", "<= 2x", worst[0] <= 2)  # fmt: skip
    return out


# ----------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------


def _mb(n: float) -> str:
    if n == 0:
        return "0"
    if n < 0.01 * MB:
        return f"{n / MB:.4f}"
    return f"{n / MB:.2f}"


def _ratio(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "∞"
    return f"{x:.2f}"


def _speed(x: float) -> str:
    if math.isinf(x):
        return "∞"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _err(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf"
    return f"{x:.5g}"


def _change(x: float | None, metric: str | None) -> str:
    if x is None:
        return "n/a"
    if metric == "accuracy":
        return f"{x * 100:+.2f} pp"
    return f"{x:+.4g}"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(res: BenchResults, *, level: int = 1, plots: list[str] | None = None) -> str:
    """The report as markdown; ``level`` is the level of its title heading."""
    h = "#" * level
    out: list[str] = []
    out.append(f"{h} modelgit bench: `{_source_name(res.source)}`")
    out.append("")
    if res.command:
        out.append(f"Generated by `{res.command}` — do not edit by hand.")
        out.append("")
    m = res.machine
    total = (
        sum(r["logical_bytes"] for r in res.by_strategy(res.strategies[0])) if res.strategies else 0
    )
    out.append(
        f"{len(res.models)} models ({res.kind}), {_mb(total)} MB of weights. "
        f"Times are medians of {res.repeats} round(s); MB = 10^6 bytes. "
        f"Machine: {m.get('cpus')} CPUs ({m.get('cpu')}), {m.get('platform')}, Python "
        f"{m.get('python')}, torch {m.get('torch')}, modelgit {m.get('modelgit')}, "
        f"zipnn {m.get('zipnn') or 'absent'}; {m.get('date')}."
    )
    out.append("")

    out.append(f"{h}# Summary")
    out.append("")
    summ = summarize(res)
    rows = []
    for s in summ:
        rt = "bit-exact" if s["exact"] else ("lossy" if not s["lossless"] else "**FAILED**")
        rows.append([
            f"`{s['strategy']}`", _mb(s["stored_bytes"]), _ratio(s["ratio"]),
            _speed(s["encode_MBps"]), _speed(s["decode_MBps"]), rt,
            _err(s["max_abs_err"]),
            _change(s["worst_metric_change"], _metric_name(res)) if s["evaluated"] else "n/a",
        ])  # fmt: skip
    out.append(_table(
        ["strategy", "stored MB", "ratio", "encode MB/s", "decode MB/s", "round trip",
         "max abs error", "worst metric change"], rows, "lrrrrlrr"))  # fmt: skip
    out.append("")
    out.append(
        "ratio = logical bytes of all tensors / stored bytes. Encode and decode speeds are "
        "logical bytes over the sum of the per-model median times (decode includes reading "
        "every byte of every decoded tensor once). Worst metric change: the largest drop "
        "over the models that carry an evaluation (n/a where none can be re-evaluated)."
    )
    out.append("")

    comps = comparisons(res)
    if comps:
        out.append(f"{h}# Acceptance comparisons")
        out.append("")
        crow = []
        for c in comps:
            met = "" if c["met"] is None else ("yes" if c["met"] else "**no**")
            val = _err(c["value"]) if not c["unit"] else f"{_ratio(c['value'])} {c['unit']}"
            crow.append([c["what"], val, c["target"], met])
        out.append(_table(["comparison", "value", "target", "met"], crow, "lrll"))
        out.append("")

    out.append(f"{h}# Stored MB per model")
    out.append("")
    first = res.by_strategy(res.strategies[0])
    prow = []
    for r in first:
        prow.append(
            [r["model"], r["parents"].replace(";", " + ") or "—", r["relation"] or "—",
             _mb(r["logical_bytes"])]
            + [_mb(res.row(s, r["model"])["stored_bytes"]) for s in res.strategies]
        )  # fmt: skip
    tot = ["**total**", "", "", _mb(sum(r["logical_bytes"] for r in first))]
    tot += [f"**{_mb(res.total_stored(s))}**" for s in res.strategies]
    prow.append(tot)
    out.append(
        _table(
            ["model", "parent", "relation", "logical"] + [f"`{s}`" for s in res.strategies],
            prow,
            "llll" + "r" * len(res.strategies),
        )
    )
    out.append("")

    lossy = [s for s in res.strategies if not res.by_strategy(s)[0]["lossless"]]
    if lossy:
        out.append(f"{h}# Max abs error per model (lossy strategies)")
        out.append("")
        erow = [[m] + [_err(res.row(s, m)["max_abs_err"]) for s in lossy] for m in res.models]
        out.append(_table(["model"] + [f"`{s}`" for s in lossy], erow))
        out.append("")
        if any(r["metric_change"] is not None for r in res.rows):
            out.append(f"{h}# Metric change per model (lossy strategies)")
            out.append("")
            mrow = []
            for r in first:
                base = r["metric_original"]
                if base is None:
                    continue
                mm = r["metric"]
                shown = f"{base * 100:.2f}%" if mm == "accuracy" else f"{base:.4g}"
                mrow.append(
                    [r["model"], f"{mm} {shown}"]
                    + [_change(res.row(s, r["model"])["metric_change"], mm) for s in lossy]
                )
            out.append(_table(["model", "original"] + [f"`{s}`" for s in lossy], mrow))
            out.append("")

    out.append(f"{h}# Decode (load) time per model, ms")
    out.append("")
    drow = [[m] + [f"{res.row(s, m)['decode_s'] * 1e3:.1f}" for s in res.strategies]
            for m in res.models]  # fmt: skip
    out.append(_table(["model"] + [f"`{s}`" for s in res.strategies], drow))
    out.append("")
    out.append(f"{h}# Encode time per model, ms")
    out.append("")
    erow = [[m] + [f"{res.row(s, m)['encode_s'] * 1e3:.1f}" for s in res.strategies]
            for m in res.models]  # fmt: skip
    out.append(_table(["model"] + [f"`{s}`" for s in res.strategies], erow))
    out.append("")

    out.append(f"{h}# Strategies")
    out.append("")
    for s in res.strategies:
        out.append(f"- `{s}`: {res.descriptions.get(s, '')}")
    out.append("")
    if plots is not None or res.notes:
        out.append(f"{h}# Notes")
        out.append("")
        for n in res.notes:
            out.append(f"- {n}")
        if plots:
            out.append("- Plots: " + ", ".join(f"[{p}]({p})" for p in plots) + ".")
        out.append("")
    return "\n".join(out)


def _metric_name(res: BenchResults) -> str | None:
    names = {r["metric"] for r in res.rows if r["metric"]}
    return names.pop() if len(names) == 1 else None


# ----------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return repr(v)
    return v


def write_csv(res: BenchResults, path: Path) -> Path:
    from .run import CSV_COLUMNS

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in res.rows:
            w.writerow([_csv_value(r.get(c)) for c in CSV_COLUMNS])
    return path


def write_plots(res: BenchResults, out_dir: Path) -> tuple[list[Path], str | None]:
    """Draw the plots; returns (files, None) or ([], why they were skipped)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib is not installed (pip install 'modelgit[bench]'): no plots"
    files = []
    summ = summarize(res)
    names = [s["strategy"] for s in summ]

    # 1. Footprint per strategy.
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(summ) + 1.5))
    vals = [s["stored_bytes"] / MB for s in summ]
    colors = ["tab:blue" if s["lossless"] else "tab:orange" for s in summ]
    ax.barh(range(len(summ)), vals, color=colors)
    ax.set_yticks(range(len(summ)), names)
    ax.invert_yaxis()
    for i, s in enumerate(summ):
        ax.text(vals[i], i, f" {_ratio(s['ratio'])}x", va="center", fontsize=8)
    ax.set_xlabel("stored MB (blue: lossless, orange: lossy)")
    ax.set_title(f"Footprint of {_source_name(res.source)} ({len(res.models)} models)")
    ax.set_xlim(0, max(vals) * 1.18 if max(vals) > 0 else 1)
    fig.tight_layout()
    files.append(out_dir / "footprint.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    # 2. Ratio vs error trade-off (and vs metric change when there is one).
    has_metric = any(s["evaluated"] for s in summ)
    fig, axes = plt.subplots(1, 2 if has_metric else 1, figsize=(11 if has_metric else 6.5, 4.5))
    axes = list(axes) if has_metric else [axes]
    errs = [s["max_abs_err"] for s in summ if 0 < s["max_abs_err"] < math.inf]
    floor = min(errs) / 10 if errs else 1e-8
    ax = axes[0]
    for s in summ:
        e = s["max_abs_err"]
        if math.isinf(e) or math.isinf(s["ratio"]):
            continue
        x = e if e > 0 else floor
        ax.scatter([x], [s["ratio"]], color="tab:blue" if s["lossless"] else "tab:orange")
        ax.annotate(s["strategy"], (x, s["ratio"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(f"max abs error (exact drawn at {floor:.0e})")
    ax.set_ylabel("compression ratio")
    ax.set_title("ratio vs error")
    ax.grid(True, alpha=0.3)
    if has_metric:
        ax = axes[1]
        metric = _metric_name(res)
        scale = 100.0 if metric == "accuracy" else 1.0
        for s in summ:
            if not s["evaluated"] or math.isinf(s["ratio"]):
                continue
            x = -s["worst_metric_change"] * scale
            ax.scatter([x], [s["ratio"]], color="tab:blue" if s["lossless"] else "tab:orange")
            ax.annotate(s["strategy"], (x, s["ratio"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        ax.set_xlabel("worst metric drop" + (" (pp)" if scale == 100.0 else ""))
        ax.set_ylabel("compression ratio")
        ax.set_title("ratio vs task metric")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    files.append(out_dir / "tradeoff.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    # 3. Stored size per model along the lineage (models parents first).
    fig, ax = plt.subplots(figsize=(max(7, 0.6 * len(res.models) + 3), 5))
    xs = list(range(len(res.models)))
    positive = False
    cmap = plt.get_cmap("tab20")
    for i, s in enumerate(res.strategies):
        ys = [res.row(s, m)["stored_bytes"] / MB for m in res.models]
        positive = positive or any(y > 0 for y in ys)
        lossless = res.by_strategy(s)[0]["lossless"]
        ax.plot(
            xs,
            [y if y > 0 else float("nan") for y in ys],
            marker="o" if lossless else "s",
            ms=3,
            ls="-" if lossless else "--",
            color=cmap(i % 20),
            label=s,
        )
    labels = []
    for m in res.models:
        ps = res.parents.get(m, [])
        labels.append(f"{m} ← {'+'.join(ps)}" if ps else m)
    ax.set_xticks(xs, labels, rotation=60, ha="right", fontsize=7)
    if positive:
        ax.set_yscale("log")
    ax.set_ylabel("stored MB (log)")
    ax.set_title("stored size per model, parents first (dashed: lossy)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    files.append(out_dir / "lineage.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    return files, None


def write_reports(res: BenchResults, out_dir: Path, *, plots: bool = True) -> list[Path]:
    """Write results.csv, the plots and results.md into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [write_csv(res, out_dir / "results.csv")]
    names: list[str] = []
    if plots:
        drawn, why = write_plots(res, out_dir)
        files += drawn
        names = [p.name for p in drawn]
        if why and why not in res.notes:
            res.notes.append(why)
    md = out_dir / "results.md"
    md.write_text(render_markdown(res, plots=names) + "\n", encoding="utf-8")
    files.append(md)
    res.files = files
    return files
