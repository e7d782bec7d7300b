"""Read commands: ls, log, show, diff."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..versions.architecture import TensorInfo, architecture, module_order
from ._command import command
from ._output import emit, human, table, when
from ._progress import Progress
from ._repo import open_repo


def register(sub: Any) -> None:
    command(
        sub,
        "ls",
        cmd_ls,
        help="list models",
        description="List the models: versions, latest size, parents, tags.",
        epilog="examples:\n  modelgit ls\n  modelgit ls --json",
    )

    p = command(
        sub,
        "log",
        cmd_log,
        help="show versions, newest first",
        description=(
            "The versions of a model (or of every model), newest first, with their ids, "
            "dates, sizes, messages, parents and whether they are stored lossily."
        ),
        epilog=(
            "examples:\n  modelgit log chat\n  modelgit log chat@3      # chat@3 and older\n"
            "  modelgit log -n 5\n  modelgit log chat --json"
        ),
    )
    p.add_argument(
        "model",
        nargs="?",
        metavar="NAME",
        help="one model (default: all); NAME@N or a tag: that version and the older ones",
    )
    p.add_argument("-n", "--max-count", type=_count, metavar="N", help="show at most N versions")

    p = command(
        sub,
        "show",
        cmd_show,
        help="show one version",
        description=(
            "Details of a version: id, parents, metadata, tensors, side files and an "
            "architecture summary."
        ),
        epilog=(
            "examples:\n  modelgit show chat\n  modelgit show chat@2 --all\n"
            "  modelgit show prod --json"
        ),
    )
    p.add_argument("ref", metavar="REF", help="name, name@N, name@latest or a tag")
    p.add_argument("--all", action="store_true", help="list every tensor (default: first 20)")

    p = command(
        sub,
        "diff",
        cmd_diff,
        help="compare two versions",
        description=(
            "Compare any two versions (of one model or of two): tensors added, removed and "
            "changed (shape, dtype, values: changed elements, max |difference|, relative "
            "L2 difference), and the architecture of each side. --structure aligns the "
            "two module trees by content as well as by name: layers renamed, inserted, "
            "removed, changed, cast or reshaped, one line per layer, and a divergence "
            "score in [0, 1] (0: identical; 1: nothing in common)."
        ),
        epilog=(
            "examples:\n"
            "  modelgit diff chat@1 chat@2\n"
            "  modelgit diff base chat --json\n"
            "  modelgit diff base base-bf16 --no-values   # names, shapes and dtypes only\n"
            "  modelgit diff base deeper --structure      # renamed 2, added 1 (a block)\n"
            "  modelgit diff base deeper --structure --json   # .structure: changes, trees"
        ),
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--no-values", action="store_true", help="do not decode tensors")
    p.add_argument(
        "--structure",
        action="store_true",
        help="align the module trees: renamed, added, removed, changed layers; divergence",
    )
    p.add_argument(
        "--exit-code", action="store_true", help="exit 1 when the versions differ (like git)"
    )


def cmd_ls(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        graph = repo.graph
        tags: dict[str, list[dict[str, str]]] = {}
        for t, v in repo.tags().items():
            tags.setdefault(v.model, []).append({"name": t, "ref": v.ref, "id": v.id})
        items = []
        for n in graph.nodes():
            items.append({
                "name": n.name,
                "versions": len(n.versions),
                "latest": n.latest,
                "logical_bytes": n.logical_bytes,
                "lossy": n.lossy,
                "parents": [
                    {"name": p, "relation": e.relation, **({"via": e.via} if e.via else {})}
                    for p in graph.parents(n.name)
                    if (e := graph.edge(p, n.name))
                ] + [
                    {"name": m, "relation": r, "removed": True} for m, r in n.removed_parents
                ],
                "tags": tags.get(n.name, []),
            })  # fmt: skip
    rows: list[list[object]] = [["model", "versions", "size", "parents", "tags", ""]]
    for it in items:
        parents = ", ".join(_parent_text(p) for p in it["parents"])
        rows.append([
            it["name"],
            it["versions"],
            human(it["logical_bytes"]),
            parents or "-",
            " ".join(f"{t['name']}=@{t['ref'].split('@', 1)[1]}" for t in it["tags"]),
            "lossy" if it["lossy"] else "",
        ])  # fmt: skip
    text = table(rows, right=(1, 2)) if items else "(no models; add one with `modelgit add`)"
    emit(args.json, items, text)
    return 0


def _parent_text(p: dict[str, Any]) -> str:
    if p.get("removed"):
        return f"removed {p['name']} ({p['relation']})"
    via = f" via removed {p['via']}" if p.get("via") else ""
    return f"{p['name']} ({p['relation']}{via})"


def _meta_text(value: object) -> str:
    """A metadata value as the user gave it: a string as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _tolerance_text(tol: Any) -> str:
    if not tol:
        return ""
    try:
        from ..tolerance import tolerance_from_json

        return f"({tolerance_from_json(tol)})"
    except Exception:  # an unknown kind written by a newer modelgit
        return f"({tol})"


def _version_text(v: Any, notes: dict[str, list[dict[str, Any]]] | None = None) -> str:
    head = f"{v.ref}  {v.id}  {when(v.created)}  {human(v.logical_bytes)}"
    if v.lossy:
        head += f"  LOSSY {_tolerance_text(v.tolerance)}".rstrip()
    lines = [head]
    if v.message:
        lines.append(f"    {v.message}")
    prov = [p for p in v.parents if p.kind == "provenance"]
    mine = [n for n in (notes or {}).get(v.model, []) if v.number in n.get("versions", ())]
    via = {m: n["model"] for n in mine for m in n.get("linked_to") or ()}
    shown = [
        f"{p.ref} ({p.relation}" + (f", via removed {via[p.model]})" if p.model in via else ")")
        for p in prov
    ]
    shown += [f"removed {n['model']} ({n.get('relation', '')})" for n in mine
              if not n.get("linked_to")]  # fmt: skip
    if shown:
        lines.append("    from " + ", ".join(shown))
    prev = [p for p in v.parents if p.kind == "version"]
    if len(prev) > 1:  # a merge of diverged histories (modelgit merge)
        lines.append("    merge of " + ", ".join(p.ref for p in prev))
    elif prev and (prev[0].model, prev[0].number) != (v.model, v.number - 1):
        lines.append(f"    after {prev[0].ref}")  # not simply the version before
    cp = _checkpoint_text(v)
    if cp:
        lines.append("    " + cp)
    return "\n".join(lines)


def _checkpoint_info(v: Any) -> dict[str, Any] | None:
    info = v.metadata.get("checkpoint") if isinstance(v.metadata, dict) else None
    return info if isinstance(info, dict) else None


def _checkpoint_text(v: Any) -> str:
    """``checkpoint step 300  loss=0.25`` for a training checkpoint, else ''."""
    info = _checkpoint_info(v)
    if info is None:
        return ""
    parts = ["checkpoint"] + ([f"step {info['step']}"] if info.get("step") is not None else [])
    metrics = info.get("metrics") if isinstance(info.get("metrics"), dict) else {}
    parts += [f"{k}={val:.6g}" if isinstance(val, float) else f"{k}={val}"
              for k, val in metrics.items()]  # fmt: skip
    if info.get("state_dropped"):
        parts.append("(training state dropped)")
    elif isinstance(v.metadata.get("@state"), dict):
        parts.append("(+ " + ", ".join(v.metadata["@state"]) + " state)")
    return "  ".join(parts)


def _log_json(v: Any) -> dict[str, Any]:
    data = v.to_json()
    info = _checkpoint_info(v)
    if info is not None:
        data["step"] = info.get("step")
        data["metrics"] = info.get("metrics") or {}
    return data


def _count(text: str) -> int:
    """``-n``: a whole number >= 0."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (a whole number >= 0)")
    return n


def cmd_log(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        newest = None  # NAME@N or a tag: the history up to that version, as git log REV
        if args.model and args.model not in repo:
            _, newest = repo.resolve(args.model)
        names = [newest.model if newest else args.model] if args.model else repo.models()
        versions = [v for n in names for v in repo.versions(n)]
        if newest is not None:
            last = (newest.created, newest.number)
            versions = [v for v in versions if (v.created, v.number) <= last]
        notes = {n: repo.removed_ancestors(n) for n in names}
    versions.sort(key=lambda v: (v.created, v.number), reverse=True)
    if args.max_count is not None:
        versions = versions[: args.max_count]
    text = "\n".join(_version_text(v, notes) for v in versions) or "(no versions)"
    emit(args.json, [_log_json(v) for v in versions], text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_repo(args) as repo:
        vid, v = repo.resolve(args.ref)
        rows = repo.tensor_rows(vid)
        files = repo.files(v.ref)
        tags = [t for t, tv in repo.tags(v.ref).items()]
        bases = [b.ref for b in repo.storage_bases(v.ref)]
        chunk_rows = repo.store.rows([c for r in rows for c in r.chunk_ids])
    depth = max((r.depth for r in chunk_rows.values()), default=0)
    by_name = {r.name: r for r in rows}
    rows = [by_name[n] for n in module_order(by_name)]  # layer.2 before layer.10
    infos = [TensorInfo(r.name, r.dtype, tuple(r.shape), r.nbytes) for r in rows]
    arch = architecture(infos)
    data = v.to_json()
    data["tags"] = tags
    data["storage_bases"] = bases
    data["load_depth"] = depth  # the longest delta chain a load of it decodes
    data["tensors"] = [{**t.to_json(), "tied_to": r.tie} for t, r in zip(infos, rows, strict=True)]
    data["files"] = {p: len(b) for p, b in files.items()}
    data["architecture"] = arch.to_json()  # the whole tree (a deeper one says what it omits)
    lines = [_version_text(v)]
    if tags:
        lines.append(f"    tags: {', '.join(tags)}")
    if bases:
        lines.append(f"    stored against: {', '.join(bases)}")
    if depth > 1:
        lines.append(
            f"    load depth: {depth} deltas (`modelgit repack` makes chains one delta deep)"
        )
    elif depth == 1:
        lines.append("    load depth: 1 delta")
    meta = {k: val for k, val in v.metadata.items() if k not in ("@state", "checkpoint")}
    if meta:  # a checkpoint's step, metrics and state are on the line above
        lines.append(
            "    metadata: " + ", ".join(f"{k}={_meta_text(val)}" for k, val in meta.items())
        )
    lines.append("")
    lines.extend(arch.lines())
    lines.append("")
    shown = infos if args.all else infos[:20]
    trows: list[list[object]] = [["tensor", "dtype", "shape", "size"]]
    for t, r in zip(shown, rows, strict=False):
        tie = f" (tied to {r.tie})" if r.tie else ""
        trows.append(
            [t.name + tie, t.dtype, "x".join(map(str, t.shape)) or "scalar", human(t.nbytes)]
        )
    lines.append(table(trows, right=(3,)))
    if len(infos) > len(shown):
        lines.append(f"... {len(infos) - len(shown)} more tensors (--all to list them)")
    if files:
        lines.append("")
        lines.append("files: " + ", ".join(f"{p} ({human(len(b))})" for p, b in files.items()))
    emit(args.json, data, "\n".join(lines))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    with open_repo(args) as repo, Progress("comparing") as bar:
        d = repo.diff(
            args.a,
            args.b,
            values=not args.no_values,
            structure=args.structure,
            progress=bar.update,
        )
    emit(args.json, d)
    return 1 if args.exit_code and not d.identical else 0
