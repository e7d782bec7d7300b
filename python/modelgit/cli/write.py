"""Commands that change the repository or write files: add, commit, rm, tag, rename, export."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

from ..errors import InvalidName, UnknownModel
from ._command import command
from ._output import CliError, UsageError, emit, human
from ._progress import Progress, call_with_progress
from ._repo import open_repo

PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt"}

MODEL_HELP = (
    "a .safetensors file, a Hugging Face model folder (safetensors shards + configs), "
    "or a .pt/.pth/.bin/.ckpt state_dict (loaded with torch.load(weights_only=True))"
)


def register(sub: Any) -> None:
    p = command(
        sub,
        "add",
        cmd_add,
        help="add a new model (its version 1)",
        description="Add a new model NAME to the repository, stored from PATH as its version 1.",
        epilog=(
            "examples:\n"
            "  modelgit add base base.safetensors -m 'pretrained on X'\n"
            "  modelgit add chat ./chat-model/ --parent base --relation finetune\n"
            "  modelgit add soup soup.safetensors -p chat -p code --relation merge\n"
            "  modelgit add small small.pt --parent base@2 --relation distill --meta acc=0.91\n"
            "  modelgit add q4 q4.safetensors --parent base --relation quantize "
            "--tolerance bits=4,group=64\n"
            "  modelgit add chat-bf16 chat-bf16.safetensors -p chat -r cast   # chat's configs\n"
            "  modelgit add long long.safetensors -p chat --files ./long-configs/\n\n"
            "side files: a folder keeps its own; a .safetensors or .pt file gets those of the "
            "first parent (config, tokenizer), so the export loads with from_pretrained, "
            "unless --files DIR gives others"
        ),
    )
    p.add_argument("name", metavar="NAME", help="the new model's name")
    p.add_argument("path", metavar="PATH", help=MODEL_HELP)
    p.add_argument(
        "-p",
        "--parent",
        action="append",
        default=[],
        metavar="REF",
        help="a model it was derived from (name, name@N or a tag); repeat for several",
    )
    p.add_argument(
        "-r",
        "--relation",
        default="finetune",
        help="how it was derived: finetune (default), distill, prune, quantize, cast, "
        "adapter, merge or your own word",
    )
    _write_options(p)

    p = command(
        sub,
        "commit",
        cmd_commit,
        help="store a new version of a model",
        description="Store the weights at PATH as the next version of the existing model NAME.",
        epilog=(
            "examples:\n"
            "  modelgit commit chat chat-v2.safetensors -m 'one more epoch'\n"
            "  modelgit commit chat ./chat-model/ -m 'fixed tokenizer config'\n"
            "  modelgit commit chat chat-v3.safetensors --files ./configs/ -m 'new tokenizer'\n\n"
            "side files: a folder keeps its own; a .safetensors or .pt file keeps those of the "
            "previous version unless --files DIR gives others"
        ),
    )
    p.add_argument("name", metavar="NAME", help="an existing model")
    p.add_argument("path", metavar="PATH", help=MODEL_HELP)
    _write_options(p)

    p = command(
        sub,
        "rm",
        cmd_rm,
        help="remove models",
        description=(
            "Remove models and all their versions. A model with descendants (models "
            "derived from it, other than those removed with it) is refused, listing them, "
            "unless --force: they are then re-linked to its parents with their relation (or "
            "keep a tombstone when it has none), and log, ls and graph say 'via removed "
            "NAME'. Their weights stay readable. The tags of removed versions go with "
            "them (listed). Run `modelgit gc` to reclaim the space."
        ),
        epilog=(
            "examples:\n  modelgit rm old-exp\n  modelgit rm a b c && modelgit gc\n"
            "  modelgit rm base --force      # its fine-tunes keep their ancestry"
        ),
    )
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="remove models that have descendants (re-linked to the removed model's parents)",
    )

    p = command(
        sub,
        "tag",
        cmd_tag,
        help="list, create or delete tags",
        description=(
            "A tag names one version: `modelgit tag prod chat@3`, then `modelgit show prod`. "
            "Without arguments, list the tags."
        ),
        epilog=(
            "examples:\n"
            "  modelgit tag                  # list\n"
            "  modelgit tag prod chat@3      # create\n"
            "  modelgit tag -f prod chat@4   # move\n"
            "  modelgit tag -d prod          # delete"
        ),
    )
    p.add_argument("tag", nargs="?", metavar="TAG")
    p.add_argument(
        "ref", nargs="?", metavar="REF", help="the version to tag (name@N; name: latest)"
    )
    p.add_argument("-d", "--delete", action="store_true", help="delete TAG")
    p.add_argument("-f", "--force", action="store_true", help="move TAG if it exists")

    p = command(
        sub,
        "rename",
        cmd_rename,
        help="rename a model",
        description="Rename a model; its versions, edges and tags follow.",
        epilog="examples:\n  modelgit rename chat chat-old",
    )
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")

    p = command(
        sub,
        "export",
        cmd_export,
        help="write a version as safetensors",
        description=(
            "Write a version to PATH: a .safetensors file when PATH ends so, else a folder "
            "with the side files (configs, tokenizer) stored with it and the weights: "
            "model.safetensors, or shards model-0000i-of-0000N.safetensors of at most "
            "--max-shard-size each plus model.safetensors.index.json. Tensors are decoded "
            "and written chunk by chunk: memory stays within the repository's budget "
            "($MODELGIT_MEMORY_BUDGET) whatever the model's size."
        ),
        epilog=(
            "examples:\n"
            "  modelgit export chat@2 chat-v2.safetensors\n"
            "  modelgit export prod ./prod-model/\n"
            "  modelgit export llama-70b ./llama/ --max-shard-size 10GB\n"
            "  modelgit export chat ./chat/ --link     # no copy: the checkout cache's file"
        ),
    )
    p.add_argument("ref", metavar="REF", help="name, name@N, name@latest or a tag")
    p.add_argument("path", metavar="PATH")
    p.add_argument(
        "--max-shard-size",
        metavar="SIZE",
        default=None,
        help="largest shard of a folder export, e.g. 2GB or 500MiB (default 5GB)",
    )
    p.add_argument(
        "--link",
        action="store_true",
        help="hard-link the version's checkout-cache file (read-only) instead of writing a copy",
    )
    p.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="overwrite an existing file, or replace an earlier export in a folder (its "
        "files this version lacks are removed; files no export wrote stay)",
    )


def _write_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--message", default="", help="a description of this version")
    p.add_argument(
        "--tolerance",
        metavar="BOUND",
        help="store lossily: abs=1e-4 (every element within 1e-4), rel=1e-3 (within 1e-3 "
        "of the tensor's largest magnitude), bits=4,group=64 (4-bit delta to the parent, "
        "one scale per 64 elements), or auto:PKG.MODULE:TEST:MAX_DROP (the most compact "
        "bound whose test metric drops at most MAX_DROP; MAX_DROP as N%% is relative; "
        "auto-lower: for a loss); default: lossless",
    )
    p.add_argument(
        "--base",
        choices=["auto", "parent"],
        default="auto",
        help="what tensors are coded against: auto (default: the closest stored tensor, "
        "declared parent or not) or parent (the first declared parent only)",
    )
    p.add_argument(
        "--files",
        metavar="DIR",
        help="take the side files (config.json, tokenizer, generation config...) from DIR "
        "(its weights are ignored); default: a folder's own, else those of the first parent "
        "(add) or the previous version (commit)",
    )
    p.add_argument(
        "--guard-tests",
        action="store_true",
        help="with --tolerance auto:...: the tests registered on the model (with a "
        "threshold) must still pass on the lossy candidate",
    )
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="read symlinks in a model folder that lead outside it (refused by default; "
        "special files such as /proc or devices are never read)",
    )
    p.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata to keep with the version (VALUE parsed as JSON if it is); repeatable",
    )


# -- argument parsing --------------------------------------------------------------------


def guarded(tolerance: Any, guard: bool) -> Any:
    """``--guard-tests``: the Auto tolerance with ``guard=True``."""
    if not guard:
        return tolerance
    from dataclasses import replace

    from ..tolerance import Auto

    if not isinstance(tolerance, Auto):
        raise UsageError("--guard-tests goes with --tolerance auto:PKG.MODULE:TEST:MAX_DROP")
    return replace(tolerance, guard=True)


def parse_tolerance(text: str | None) -> Any:
    """``--tolerance``: ``abs=1e-4``, ``rel=1e-3`` or ``bits=4,group=64`` -> the bound object
    ``repo.add`` takes (:class:`modelgit.ErrorBound` / :class:`modelgit.LowBit`); ``None``
    for ``lossless``. Checked before any weights are read."""
    if text is None or text.strip().lower() in {"", "none", "lossless"}:
        return None
    from ..tolerance import parse_tolerance as parse

    return parse(text)


def parse_meta(items: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CliError(f"bad --meta {item!r}: write KEY=VALUE")
        try:
            meta[key] = json.loads(raw)
        except ValueError:
            meta[key] = raw
    return meta


def load_model_arg(path_text: str) -> Any:
    """What ``repo.add`` gets for PATH: the path itself, or a state_dict from a .pt file."""
    from ..formats.safetensors_io import looks_like_safetensors

    path = Path(path_text)
    if not path.exists():
        raise CliError(f"{path} does not exist")
    if path.is_dir() or path.suffix == ".safetensors" or looks_like_safetensors(path):
        return str(path)  # a safetensors file by any name is read as one
    if path.suffix.lower() not in PICKLE_SUFFIXES:
        raise CliError(
            f"{path} is neither a safetensors file nor a torch file "
            f"({', '.join(sorted(PICKLE_SUFFIXES))}): give one of those, or a model folder"
        )
    if path.is_file():
        import pickle

        import torch

        try:
            with warnings.catch_warnings():  # torch's notes on pickle protocols
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights only" not in str(exc).lower():
                raise CliError(f"{path} is not a torch file ({str(exc)[:120]})") from None
            raise CliError(
                f"{path} is not a weights-only torch file: it holds Python objects other than "
                "tensors (or is no torch file at all), and modelgit never unpickles them, since "
                "unpickling can run any code the file contains. If you trust the file "
                "and its author, load it yourself (torch.load(path, weights_only=False) "
                "executes that code) and save the state_dict with safetensors' save_file"
            ) from None
        except (RuntimeError, EOFError, ValueError) as exc:
            raise CliError(
                f"cannot read {path} as a torch file ({' '.join(str(exc).split())[:200]}); "
                "save it with torch.save(state_dict) or as safetensors"
            ) from None
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]  # Lightning-style checkpoints
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CliError(f"{path} does not hold a state_dict (a dict of tensors)")
        return obj
    return str(path)


def _files_arg(text: str | None) -> str | None:
    """``--files DIR``: the folder, checked before any weights are read."""
    if text is None:
        return None
    if not Path(text).is_dir():
        raise CliError(f"--files {text}: not a folder")
    return text


def _saved_anyway(repo: Any, name: str, before: int) -> Any:
    """After Ctrl-C during add/commit: the version, if its transaction committed before
    the interrupt landed (then the command did its work: it reports it and finishes
    with further Ctrl-C ignored); otherwise the interrupt goes on (nothing was stored)."""
    try:
        versions = repo.versions(name) if name in repo else []
    except Exception:  # noqa: BLE001 - the interrupt is what the user should see
        versions = []
    if len(versions) <= before:
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return versions[-1]


def _with_stats(repo: Any, v: Any) -> dict[str, Any]:
    """The version's JSON plus ``write``: what the text output says of the write (chunks
    written, reused, delta-coded, standalone, lossy; logical and new bytes)."""
    stats = getattr(repo, "last_write", None)
    out = v.to_json()
    out["write"] = None if stats is None else dict(stats.__dict__)
    return out


def _tag_json(tag: str, v: Any) -> dict[str, str]:
    """A tag in the JSON of every command: its name, and the version it names."""
    return {"name": tag, "ref": v.ref, "id": v.id}


def _describe(repo: Any, v: Any) -> str:
    stats = getattr(repo, "last_write", None)
    parts = [f"{v.ref}", f"id {v.id}", human(v.logical_bytes)]
    if stats is not None and getattr(stats, "chunks", 0):
        parts.append(f"{human(stats.new_bytes)} new")
        deltas = stats.delta + stats.lossy_delta  # exact deltas and those within the bound
        parts.append(f"{stats.dedup}/{stats.chunks} chunks deduplicated, {deltas} delta-coded")
        if stats.lossy:
            parts.append(f"{stats.lossy} within the bound")
    if v.lossy:
        parts.append("lossy")
    return ", ".join(parts)


def _write_options_of(args: argparse.Namespace, tolerance: Any, meta: dict) -> dict[str, Any]:
    """The keyword arguments add and commit both take from their shared options."""
    kw: dict[str, Any] = {
        "message": args.message,
        "metadata": meta or None,
        "base": args.base,
        "follow_symlinks": args.follow_symlinks,
        "files": _files_arg(args.files),
    }
    if tolerance is not None:
        kw["tolerance"] = tolerance
    return kw


def cmd_add(args: argparse.Namespace) -> int:
    tolerance = guarded(parse_tolerance(args.tolerance), args.guard_tests)
    meta = parse_meta(args.meta)
    with open_repo(args) as repo:
        model = load_model_arg(args.path)
        kw = _write_options_of(args, tolerance, meta)
        try:
            with Progress(f"adding {args.name}") as bar:
                v = call_with_progress(
                    repo.add,
                    args.name,
                    model,
                    parents=args.parent or None,
                    relation=args.relation,
                    progress=bar,
                    **kw,
                )
        except KeyboardInterrupt:
            v = _saved_anyway(repo, args.name, 0)
        emit(args.json, _with_stats(repo, v), f"added {_describe(repo, v)}")
    return 0


def cmd_commit(args: argparse.Namespace) -> int:
    tolerance = guarded(parse_tolerance(args.tolerance), args.guard_tests)
    meta = parse_meta(args.meta)
    with open_repo(args) as repo:
        repo.require_model(args.name)
        model = load_model_arg(args.path)
        kw = _write_options_of(args, tolerance, meta)
        before = len(repo.versions(args.name))
        try:
            with Progress(f"committing {args.name}") as bar:
                v = call_with_progress(repo.commit, args.name, model, progress=bar, **kw)
        except KeyboardInterrupt:
            v = _saved_anyway(repo, args.name, before)
        emit(args.json, _with_stats(repo, v), f"committed {_describe(repo, v)}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        for name in args.names:  # check all before removing any
            repo.require_model(name)
        graph = repo.graph
        todo = list(dict.fromkeys(args.names))
        kept = {n: [c for c in graph.descendants(n) if c not in todo] for n in todo}
        if not args.force and any(kept.values()):
            listed = "; ".join(f"{n}: {', '.join(k)}" for n, k in kept.items() if k)
            raise CliError(
                f"models derived from what you remove would lose their ancestry ({listed}). "
                "Remove them too, or use --force: they are re-linked to the removed "
                "models' parents (or keep a tombstone)"
            )
        done = []
        while todo:  # descendants first: a model goes once nothing it leaves behind needs it
            name = next((n for n in todo if not set(graph.children(n)) & set(todo)), todo[0])
            todo.remove(name)
            tags = sorted(t for t, v in repo.tags().items() if v.model == name)
            repo.remove(name, force=args.force)
            graph = repo.graph
            done.append({"name": name, "tags_deleted": tags})
            if not args.json:
                print(f"removed {name}" + (f" and its tags {', '.join(tags)}" if tags else ""))
    if args.json:
        emit(True, {"removed": done})
    else:
        print("run `modelgit gc` to reclaim the space")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        if args.delete:
            if args.tag is None or args.ref is not None:
                raise UsageError("usage: modelgit tag -d TAG")
            repo.untag(args.tag)
            print(f"deleted tag {args.tag}")
            return 0
        if args.tag is None:
            tags = repo.tags()
            emit(
                args.json,
                [_tag_json(t, v) for t, v in tags.items()],
                "\n".join(f"{t}  {v.ref}" for t, v in tags.items()) or "(no tags)",
            )
            return 0
        if args.ref is None:
            tags = repo.tags()
            if args.tag not in tags:
                raise CliError(f"no tag named {args.tag!r}; to create it: modelgit tag TAG REF")
            emit(args.json, _tag_json(args.tag, tags[args.tag]), tags[args.tag].ref)
            return 0
        if _names_version(repo, args.tag) and not _names_version(repo, args.ref):
            raise CliError(
                f"{args.ref!r} names no version but {args.tag!r} does: `modelgit tag` takes the "
                f"tag's name first, then the version; did you mean "
                f"`modelgit tag {args.ref} {args.tag}`?"
            )
        v = repo.tag(args.ref, args.tag, force=args.force)
        emit(args.json, _tag_json(args.tag, v), f"tagged {v.ref} as {args.tag}")
    return 0


def _names_version(repo: Any, ref: str) -> bool:
    try:
        repo.version(ref)
    except (UnknownModel, InvalidName):
        return False
    return True


def cmd_rename(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        repo.rename(args.old, args.new)
    emit(args.json, {"old": args.old, "new": args.new}, f"renamed {args.old} to {args.new}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        v = repo.version(args.ref)
        with Progress(f"exporting {v.ref}") as bar:
            if args.link:
                out = repo.export(
                    v.ref, args.path, max_shard_size=args.max_shard_size, link=True,
                    force=args.force,
                )  # fmt: skip
            else:
                out = call_with_progress(
                    repo.export, v.ref, args.path, progress=bar,
                    max_shard_size=args.max_shard_size, force=args.force,
                )  # fmt: skip
    emit(args.json, {"ref": v.ref, "id": v.id, "path": str(out), "link": args.link},
         f"exported {v.ref} to {out}")  # fmt: skip
    return 0
