"""Web commands: serve (a local, read-only web UI) and site (the same pages as files)."""

from __future__ import annotations

import argparse
import errno
from typing import Any

from ._command import command
from ._output import CliError, emit, print_warning
from ._progress import Progress
from ._repo import open_repo

SERVE_DESCRIPTION = """\
Browse the repository in a web browser: the lineage graph (zoom, pan, search, collapse,
pick two models to compare), a page per model (versions, metadata, tags, storage, side
files, tests, creation function), diffs between any two versions (tensors, side files,
structure), search, and where the bytes go. The repository is opened read-only; only
GET and HEAD are answered. It listens on 127.0.0.1 (this machine only) unless --host
names another address, which also needs --allow-remote: the pages have no login.
Prints one line `serving http://127.0.0.1:PORT/ (read-only; Ctrl-C to stop)` when
ready, then logs each request on stderr (--quiet: not)."""

NO_VALUES = "diffs compare names, shapes, dtypes and content ids (decode nothing)"
SITE_DESCRIPTION = """\
Write the pages of `modelgit serve` as static files into DIR, to publish or attach: they
link to each other relatively, so the site opens from the disk (file://) as from any web
server. Diffs are precomputed for each version against the one before it and for each
model's first version against its parents. A DIR that is not empty is refused unless
--force (the files of an earlier site there are replaced; nothing else is touched)."""


def register(sub: Any) -> None:
    p = command(
        sub,
        "serve",
        cmd_serve,
        help="browse the repository in a web browser (read-only, local)",
        description=SERVE_DESCRIPTION,
        epilog=(
            "examples:\n"
            "  modelgit serve                      # http://127.0.0.1:8470/\n"
            "  modelgit serve --port 0             # any free port (printed)\n"
            "  modelgit serve --no-values --quiet  # diffs decode nothing; no request log\n"
            "  modelgit serve --host 0.0.0.0 --allow-remote   # other machines too (no login!)"
        ),
        json=False,
    )
    p.add_argument("--port", type=int, default=None, metavar="N",
                   help="port to listen on (default 8470; 0: a free one)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", metavar="H",
                   help="address to listen on (default 127.0.0.1)")  # fmt: skip
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other machines can reach")  # fmt: skip
    p.add_argument("--no-values", action="store_true", help=NO_VALUES)
    p.add_argument("-q", "--quiet", action="store_true", help="do not log requests")

    p = command(
        sub,
        "site",
        cmd_site,
        help="write the web UI as static files",
        description=SITE_DESCRIPTION,
        epilog=(
            "examples:\n"
            "  modelgit site -o site && xdg-open site/index.html\n"
            "  modelgit site -o site --force        # rewrite an earlier site\n"
            "  modelgit site -o site --no-values --json"
        ),
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder to write")
    p.add_argument("-f", "--force", action="store_true",
                   help="write into a folder that is not empty")  # fmt: skip
    p.add_argument("--no-values", action="store_true", help=NO_VALUES)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..web.server import DEFAULT_PORT, is_loopback, make_server, run

    port = DEFAULT_PORT if args.port is None else args.port
    if not is_loopback(args.host):
        if not args.allow_remote:
            raise CliError(
                f"--host {args.host} makes the repository readable from other machines, with "
                "no login; pass --allow-remote if that is meant"
            )
        print_warning(
            f"listening on {args.host}: anyone who can reach this machine can read every "
            "model name, metadata and side file of this repository (no login)"
        )
    with open_repo(args, read_only=True, checkout_cache=0) as repo:
        try:
            server = make_server(repo, args.host, port, allow_remote=args.allow_remote,
                                 values=not args.no_values, quiet=args.quiet)  # fmt: skip
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} is in use: pass another --port, or --port 0 for a free one"
                ) from None
            raise CliError(f"cannot listen on {args.host}:{port}: {exc.strerror or exc}") from None

        def announce(url: str) -> None:
            print(f"serving {url} (read-only; Ctrl-C to stop)", flush=True)

        run(server, announce)
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from ..web.site import write_site

    with open_repo(args, read_only=True, checkout_cache=0) as repo:
        with Progress("writing the site", unit="files") as bar:
            report = write_site(repo, args.output, force=args.force, values=not args.no_values,
                                progress=bar.update)  # fmt: skip
    emit(args.json, report)
    return 1 if report.failed else 0
