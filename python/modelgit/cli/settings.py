"""Settings commands: cache (the checkout cache), layout (the storage layout)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from ._command import command
from ._output import CliError, emit, human, table, when
from ._repo import open_repo

CACHE_DESCRIPTION = """\
The checkout cache keeps decoded versions as .safetensors files, so that loading a
version again maps a file instead of decoding it. An entry is hashed against the
version's chunk ids when it is written (or at a hit that finds no valid seal), then
sealed: later hits check that the file's size, inode and times are still those it was
hashed with, and that the machine has not rebooted since. It is off until a size limit
is set: `modelgit cache size 8GiB` (for every repository of this user),
$MODELGIT_CHECKOUT_CACHE, or modelgit.open(path, checkout_cache="8GiB"). Files live
in $MODELGIT_CACHE/checkout (default ~/.cache/modelgit/checkout); the least recently
used go first.

  ls            the entries of this repository's versions
  clear         delete them
  verify        hash every entry now, as when it was written (those that fail are deleted)
  size [SIZE]   show the limit, or set the user's default (0 turns the cache off)"""

LAYOUT_DESCRIPTION = """\
The storage layout new versions are written with. --max-depth bounds how many delta
links separate any chunk from a standalone one, so it bounds what a load decodes: a
version at depth d loads in about 1 + 0.3 d times the time of a standalone model.
Deeper chains store each version against its direct parent (smaller); a chain that
reaches the bound continues as a star around its anchor. Default 4; existing chunks
keep their layout."""


def register(sub: Any) -> None:
    p = command(
        sub,
        "cache",
        cmd_cache,
        help="the checkout cache of decoded versions: ls, clear, verify, size",
        description=CACHE_DESCRIPTION,
        epilog="examples:\n  modelgit cache size 8GiB\n  modelgit cache ls\n"
        "  modelgit cache verify\n  modelgit cache clear",
    )
    p.add_argument("action", choices=["ls", "clear", "verify", "size"], help="what to do")
    p.add_argument("size", nargs="?", metavar="SIZE", help="with size: the new default limit")
    p = command(
        sub,
        "layout",
        cmd_layout,
        help="show or set the storage layout (delta depth)",
        description=LAYOUT_DESCRIPTION,
        epilog="examples:\n  modelgit layout\n  modelgit layout --max-depth 1   # faster loads",
    )
    p.add_argument("--max-depth", type=int, default=None, metavar="N", help="set the bound")


def _refs(repo: Any) -> dict[str, list[str]]:
    """content id -> the refs of this repository's versions that have it."""
    out: dict[str, list[str]] = {}
    for model, number, cid in repo.catalog.query(
        "SELECT model, number, content_id FROM versions ORDER BY model, number"
    ):
        out.setdefault(cid, []).append(f"{model}@{number}")
    return out


def cmd_cache(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        cache = repo.checkout_cache
        if args.action != "size" and args.size is not None:
            raise CliError(f"cache {args.action} takes no SIZE")
        if args.action == "size":
            if args.size is not None:
                cache.set_default_limit(args.size)
                cache.evict()  # what no longer fits goes now, not at the next load
            data = {"limit": cache.limit, "enabled": cache.enabled, "used": cache.size(),
                    "folder": str(cache.folder)}  # fmt: skip
            state = f"limit {human(cache.limit)}" if cache.enabled else "off"
            emit(args.json, data, f"checkout cache: {state}, {human(cache.size())} used")
        elif args.action == "clear":
            freed = cache.clear()
            emit(args.json, {"freed": freed}, f"freed {human(freed)}")
        elif args.action == "verify":
            kept, deleted = repo.verify_checkout_cache()
            text = f"{kept} entries verified, {deleted} deleted (damaged, or of versions gone)"
            emit(args.json, {"verified": kept, "deleted": deleted}, text)
        else:
            refs = _refs(repo)
            entries = cache.entries()[::-1]
            rows: list[list[object]] = [["version", "size", "last used"]]
            for e in entries:
                used = datetime.fromtimestamp(e.used, tz=timezone.utc)
                rows.append([", ".join(refs.get(e.content_id, ["(gone)"])), human(e.size),
                             when(used)])  # fmt: skip
            data = [e.to_json() | {"refs": refs.get(e.content_id, [])} for e in entries]
            text = table(rows, right=(1,)) if entries else f"{cache} is empty"
            emit(args.json, data, text)
    return 0


def cmd_layout(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        layout = repo.layout(max_depth=args.max_depth)
        emit(args.json, layout, f"max depth {layout['max_depth']}")
    return 0
