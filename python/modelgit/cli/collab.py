"""Collaboration commands: push, pull, merge; and lineage inference: infer."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._command import command
from ._output import CliError, UsageError, emit
from ._repo import importable_cwd, open_repo

STRATEGY_HELP = (
    "ours, theirs, average, task-arithmetic (against the common ancestor), or the "
    "import path of fn(ours, theirs, base) -> state_dict as 'package.module:function'"
)


def register(sub: Any) -> None:
    for name, verb, desc in (
        ("push", "to", "Copy into the repository OTHER what it lacks of this one"),
        ("pull", "from", "Copy from the repository OTHER what this one lacks"),
    ):
        p = command(
            sub,
            name,
            cmd_push if name == "push" else cmd_pull,
            help=f"{name} versions {verb} another repository",
            description=(
                f"{desc}: versions (matched by id), the chunks they need, edges and tags. "
                "A model both sides changed is reported as diverged: the receiver keeps its "
                "history and gets the other side's versions aside, for `modelgit merge`."
                + (
                    " A push that finds a diverged model uploads nothing and exits 1 unless "
                    "--allow-diverged: pull and merge first."
                    if name == "push"
                    else ""
                )
            ),
            epilog=f"examples:\n  modelgit {name} ../team-models\n  modelgit {name} /mnt/x --json",
        )
        p.add_argument(
            "other",
            metavar="OTHER",
            help="the other repository: a path, a team URL, or a remote's name (modelgit remote)",
        )
        if name == "push":
            p.add_argument(
                "--allow-diverged",
                action="store_true",
                help="push even when OTHER has versions this repository lacks (they are "
                "kept; ours are stored aside there for a merge); refused by default",
            )

    p = command(
        sub,
        "remote",
        cmd_remote,
        help="name other repositories for push and pull",
        description=(
            "`remote add NAME URL` remembers a repository (a folder, stored absolute, or a "
            "team repository's postgresql:// URL) as NAME, so that `push NAME` and "
            "`pull NAME` reach it; `remote rm NAME` forgets it; `remote` lists them."
        ),
        epilog=(
            "examples:\n"
            "  modelgit remote add origin ../team-models\n"
            "  modelgit push origin\n"
            "  modelgit remote --json\n"
            "  modelgit remote rm origin"
        ),
    )
    p.add_argument("action", nargs="?", choices=["add", "rm", "ls"], default="ls")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("url", metavar="URL", nargs="?")
    p.add_argument("-f", "--force", action="store_true", help="change an existing remote")

    p = command(
        sub,
        "merge",
        cmd_merge,
        help="merge a diverged version into a model",
        description=(
            "Merge OTHER_VERSION (an id from the pull report, a reference, or by default "
            "the version a pull fetched aside) into the latest version of NAME; the new "
            "version has both as parents."
        ),
        epilog=(
            "examples:\n"
            "  modelgit merge chat 995c904a832929ef --strategy average\n"
            "  modelgit merge chat --strategy task-arithmetic\n"
            "  modelgit merge chat --strategy mypkg.merging:ties"
        ),
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("other_version", metavar="OTHER_VERSION", nargs="?", default=None)
    p.add_argument("-s", "--strategy", default="average", help=STRATEGY_HELP)
    p.add_argument("-m", "--message", default="", help="message of the merge version")

    p = command(
        sub,
        "infer",
        cmd_infer,
        help="infer the lineage of model files",
        description=(
            "Reconstruct provenance edges (parent -> child) among model files "
            "(.safetensors files or Hugging Face folders) from tensor sketches."
        ),
        epilog="examples:\n  modelgit infer zoo/*.safetensors\n  modelgit infer a b c --json",
        repo=False,
    )
    p.add_argument("paths", metavar="PATH", nargs="+")
    p.add_argument("-k", type=int, default=64, help="sketch width per tensor (default 64)")


def cmd_push(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        emit(args.json, repo.push(args.other, allow_diverged=args.allow_diverged))
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        emit(args.json, repo.pull(args.other))
    return 0


def cmd_remote(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        if args.action == "add":
            if not args.name or not args.url:
                raise UsageError("usage: modelgit remote add NAME URL")
            repo.add_remote(args.name, args.url, force=args.force)
        elif args.action == "rm":
            if not args.name or args.url:
                raise UsageError("usage: modelgit remote rm NAME")
            repo.remove_remote(args.name)
        elif args.name:
            raise UsageError("usage: modelgit remote [ls] | add NAME URL | rm NAME")
        known = repo.remotes()
        if args.action == "ls" or args.json:
            text = "\n".join(f"{n}\t{u}" for n, u in known.items()) or "no remotes"
            emit(args.json, [{"name": n, "url": u} for n, u in known.items()], text)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    with open_repo(args) as repo, importable_cwd():  # a strategy of this folder's modules
        v = repo.merge(args.name, args.other_version, args.strategy, args.message)
        emit(args.json, v, f"merged into {v.ref} ({v.id}): {v.message}")
    return 0


def _model_name(path: Path) -> str:
    return path.stem if path.suffix == ".safetensors" else path.name


def cmd_infer(args: argparse.Namespace) -> int:
    from ..lineage.inference import infer_lineage

    models: dict[str, Path] = {}
    for raw in args.paths:
        p = Path(raw)
        if not p.exists():
            raise CliError(f"{p} does not exist")
        name = _model_name(p)
        if name in models:
            raise CliError(f"two inputs are named {name!r}; rename one")
        models[name] = p
    if args.k < 1:
        raise CliError("-k must be a positive integer")
    edges = infer_lineage(models, k=args.k)
    data = [{"parent": u, "child": v} for u, v in edges]
    emit(args.json, data, "\n".join(f"{u} -> {v}" for u, v in edges) or "no edges found")
    return 0
