"""Start-up time of the read-only commands (`modelgit --version`, `ls`, `log`, `show`...).

Builds a small repository (a base, three fine-tunes, a second version, a tag) in a
temporary folder, then runs each command as a fresh process (``python -m modelgit``,
what the installed ``modelgit`` script runs), round-robin so that machine noise hits
every command alike, and prints the median wall time of each next to ``python -c pass``
(the interpreter's own start, the floor) and ``import modelgit``. The last column says
whether the command loaded torch (checked once per command, in a separate run).

The children compile modelgit's modules once into a temporary bytecode cache and reuse
it, as an installed package does (``pip`` writes the ``.pyc`` files); with
``--no-bytecode-cache`` they keep this shell's setting (with ``PYTHONDONTWRITEBYTECODE``
set, every start compiles every module: about 0.15 s more on the development machines).

Run: ``python bench/bench_cli_startup.py --runs 9``. To measure another build, point
``PYTHONPATH`` at its ``python/`` folder (the child processes inherit it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5

# runs the command in-process and says whether torch was imported
PROBE = r"""
import sys
from modelgit.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print("TORCH", "torch" in sys.modules, file=sys.stderr)
"""


def build_repo(path: Path) -> str:
    """A small repository; returns the name of a model with two versions."""
    import torch

    import modelgit as mg

    g = torch.Generator().manual_seed(0)
    base = {f"layer{i}.weight": torch.randn(64, 64, generator=g) for i in range(4)}
    repo = mg.init(path)
    try:
        repo.add("base", base, message="pretrained")
        for k in range(3):
            ft = {n: t + 0.01 * (k + 1) for n, t in base.items()}
            repo.add(f"ft{k}", ft, parents="base", message=f"fine-tune {k}")
        repo.commit("ft0", {n: t + 0.05 for n, t in base.items()}, message="more data")
        repo.tag("ft0", "good")
    finally:
        repo.close()
    return "ft0"


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - t


def loads_torch(args: list[str], cwd: Path, env: dict[str, str]) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return "TORCH True" in out.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="timed runs per command (default 9)")
    ap.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep this shell's PYTHONDONTWRITEBYTECODE / PYTHONPYCACHEPREFIX",
    )
    args = ap.parse_args()

    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not args.no_bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        root = Path(tmp) / "repo"
        name = build_repo(root)
        cases: list[tuple[str, list[str], list[str] | None]] = [
            ("python -c pass (floor)", [py, "-c", "pass"], None),
            ("python -c 'import modelgit'", [py, "-c", "import modelgit"], None),
            ("modelgit --version", [py, "-m", "modelgit", "--version"], ["--version"]),
            ("modelgit --help", [py, "-m", "modelgit", "--help"], ["--help"]),
            ("modelgit ls", [py, "-m", "modelgit", "ls"], ["ls"]),
            (f"modelgit log {name}", [py, "-m", "modelgit", "log", name], ["log", name]),
            (f"modelgit show {name}", [py, "-m", "modelgit", "show", name], ["show", name]),
            ("modelgit du", [py, "-m", "modelgit", "du"], ["du"]),
            ("modelgit graph", [py, "-m", "modelgit", "graph"], ["graph"]),
        ]
        times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        for _, cmd, _ in cases:  # warm the page cache (and the bytecode cache) once
            timed(cmd, root, env)
        for _ in range(args.runs):
            for label, cmd, _ in cases:
                times[label].append(timed(cmd, root, env))
        torch_loaded = {
            label: ("yes" if loads_torch(probe, root, env) else "no") if probe else "-"
            for label, _, probe in cases
        }
    floor = statistics.median(times[cases[0][0]])
    cache = "as this shell" if args.no_bytecode_cache else "cached"
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each, "
        f"bytecode {cache}, load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| command | median s | min s | above floor s | target | loads torch |")
    print("|---|---:|---:|---:|---|---|")
    for label, _, probe in cases:
        med, low = statistics.median(times[label]), min(times[label])
        verdict = ("met" if med <= TARGET_S else "NOT met") if probe else ""
        print(
            f"| `{label}` | {med:.3f} | {low:.3f} | {med - floor:.3f} | {verdict} "
            f"| {torch_loaded[label]} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
