"""The diff page (``diff?a=REF&b=REF`` on the server, ``diff/A--B.html`` in the static
site): per-tensor change statistics, side-file changes and the structural diff as two
module trees side by side.

The structure panel renders the JSON of ``StructureDiff.to_json()``: ``divergence``,
``source``, ``summary``, ``changes`` (``kind``, ``left``, ``right``, ``detail``), and
``left``/``right`` trees whose nodes have ``name``, ``path``, ``type``, ``status``
(same, changed, renamed, added, removed, mixed), ``partner`` (the path of the node it
was aligned with), ``tensors`` and ``children``. Every tree node is an element of class
``tnode`` plus its status, with ``data-path``; unchanged subtrees start folded. The JSON
is read defensively: an unknown status shows as ``mixed``, a malformed node is skipped.
"""

from __future__ import annotations

from typing import Any

from ..data import DiffView, Snapshot
from ..html import esc, human, page, short_json, table

__all__ = ["diff_page", "diff_error_page", "structure_panel", "tree_html", "STATUSES"]

STATUSES = ("same", "changed", "renamed", "added", "removed", "mixed")
KINDS = ("renamed", "added", "removed", "changed", "retyped", "reshaped")
MAX_TREE_DEPTH = 64


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _status(value: object) -> str:
    return value if isinstance(value, str) and value in STATUSES else "mixed"


def _ref_link(snap: Snapshot | None, ref: str, root: str) -> str:
    href = snap.ref_href(ref) if snap is not None else None
    return f'<a href="{root}{esc(href)}">{esc(ref)}</a>' if href else esc(ref)


def _shape(shape: object) -> str:
    if isinstance(shape, (list, tuple)):
        return "[" + ", ".join(str(int(x)) if isinstance(x, int) else "?" for x in shape) + "]"
    return "[?]"


def _tensors(diff: Any) -> str:
    rows = []
    for t in diff.removed:
        rows.append(([f"<code>{esc(t.name)}</code>", "removed", esc(t.describe()), "", "", "", ""],
                     'class="removed"'))  # fmt: skip
    for t in diff.added:
        rows.append(([f"<code>{esc(t.name)}</code>", "added", "", esc(t.describe()), "", "", ""],
                     'class="added"'))  # fmt: skip
    for c in diff.changed:
        n = c.new.numel
        changed = "-"
        if c.changed is not None:
            changed = f"{c.changed:,} / {n:,}" + (f" ({100 * c.changed / n:.1f}%)" if n else "")
        rows.append(([
            f"<code>{esc(c.name)}</code>", esc(", ".join(c.kinds)), esc(c.old.describe()),
            esc(c.new.describe()), esc(changed),
            esc(f"{c.max_abs:.3g}") if c.max_abs is not None else "-",
            esc(f"{c.rel_l2:.3g}") if c.rel_l2 is not None else "-",
        ], 'class="changed"'))  # fmt: skip
    head = ["tensor", "change", "A", "B", "elements changed", "max |B − A|", "rel. L2"]
    note = f'<p class="note">{_count(diff.unchanged, "tensor")} unchanged.</p>'
    return (
        "<h2>Tensors</h2>"
        + table("tensor-changes", head, rows, numeric=(4, 5, 6), empty="no tensor differs")
        + note
    )


def _files(diff: Any) -> str:
    items = []
    for p, n in diff.files_removed.items():
        items.append(f'<li class="removed"><code>{esc(p)}</code> removed ({esc(human(n))})</li>')
    for p, n in diff.files_added.items():
        items.append(f'<li class="added"><code>{esc(p)}</code> added ({esc(human(n))})</li>')
    for f in diff.files_changed:
        lines = f.describe()
        keys = "".join(f"<li><code>{esc(x)}</code></li>" for x in lines[1:])
        items.append(
            f'<li class="changed"><code>{esc(f.path)}</code> changed: {esc(lines[0])}'
            + (f"<ul>{keys}</ul>" if keys else "")
            + "</li>"
        )
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="none">no side file differs</p>'
    return (
        f'<section id="file-changes"><h2>Side files</h2>{body}'
        f'<p class="note">{_count(diff.files_unchanged, "side file")} unchanged.</p></section>'
    )


def tree_html(node: Any, depth: int = 0) -> str:
    """One TREE node of the structural diff (and its subtree) as nested list items."""
    if not isinstance(node, dict):
        return ""
    status = _status(node.get("status"))
    path = str(node.get("path") or "")
    name = str(node.get("name") or path or "(model)")
    partner = node.get("partner")
    partner = str(partner) if partner is not None and str(partner) != path else None
    kind = node.get("type")
    head = [f'<span class="tname">{esc(name)}</span>']
    if kind:
        head.append(f'<span class="ttype">{esc(kind)}</span>')
    if status != "same":
        head.append(f'<span class="tstatus">{esc(status)}</span>')
    if partner is not None:
        head.append(f'<span class="tpartner">↔ {esc(partner or "(model)")}</span>')
    inner = []
    tensors = node.get("tensors") or []
    if isinstance(tensors, list) and tensors:
        items = []
        for t in tensors:
            if not isinstance(t, dict):
                continue
            ts = _status(t.get("status"))
            tname = str(t.get("name") or "")
            full = f"{path}.{tname}" if path else tname
            other = t.get("partner")
            tp = (
                f' <span class="tpartner">↔ {esc(other)}</span>'
                if other is not None and str(other) not in (full, tname)
                else ""
            )
            items.append(
                f'<li class="tensor {ts}" data-path="{esc(full)}"><code>{esc(tname)}</code> '
                f'<span class="ttype">{esc(t.get("dtype") or "")}{esc(_shape(t.get("shape")))}'
                f"</span>{tp}</li>"
            )
        inner.append(f'<ul class="tensors">{"".join(items)}</ul>')
    children = node.get("children") or []
    if isinstance(children, list) and children:
        if depth >= MAX_TREE_DEPTH:
            inner.append('<p class="note">deeper modules not shown</p>')
        else:
            inner.append(f"<ul>{''.join(tree_html(c, depth + 1) for c in children)}</ul>")
    opened = " open" if status != "same" or depth == 0 else ""
    partner_attr = f' data-partner="{esc(partner)}"' if partner is not None else ""
    return (
        f'<li class="tnode {status}" data-path="{esc(path)}"{partner_attr}>'
        f"<details{opened}><summary>{' '.join(head)}</summary>{''.join(inner)}</details></li>"
    )


def structure_panel(structure: dict[str, Any] | None, note: str = "") -> str:
    """The ``#structure`` section: summary, module-level changes, the two trees."""
    if structure is None:
        return (
            '<section id="structure"><h2>Structure</h2>'
            f'<p class="unavailable">{esc(note or "structural diff unavailable")}</p>'
            '<div class="trees"><div class="tree-left"></div><div class="tree-right"></div></div>'
            "</section>"
        )
    summary = structure.get("summary") if isinstance(structure.get("summary"), dict) else {}
    counts = ", ".join(f"{esc(summary.get(k, 0))} {k}" for k in STATUSES[:5] if k in summary)
    div = structure.get("divergence")
    source = structure.get("source") if isinstance(structure.get("source"), dict) else {}
    facts = []
    if isinstance(div, (int, float)):
        facts.append(f'divergence <strong id="divergence">{div:.3f}</strong> (0: identical, 1: '
                     "nothing in common)")  # fmt: skip
    if counts:
        facts.append(f"modules: {counts}")
    if source:
        facts.append(f"trees from {esc(source.get('left'))} / {esc(source.get('right'))}")
    changes = []
    for c in structure.get("changes") or []:
        if not isinstance(c, dict):
            continue
        kind = c.get("kind") if c.get("kind") in KINDS else "changed"
        sides = [x for x in (c.get("left"), c.get("right")) if x is not None]
        if len(sides) == 2 and sides[0] == sides[1]:
            sides = sides[:1]
        where = " → ".join(esc(x or "(model)") for x in sides)
        detail = f' <span class="detail">{esc(c.get("detail"))}</span>' if c.get("detail") else ""
        changes.append(f'<li class="{kind}"><span class="kind">{kind}</span> <code>{where}</code>'
                       f"{detail}</li>")  # fmt: skip
    listed = (
        f'<ul id="structure-changes">{"".join(changes)}</ul>'
        if changes
        else '<p class="none">the two structures are the same</p>'
    )
    left = tree_html(structure.get("left"))
    right = tree_html(structure.get("right"))
    return (
        f'<section id="structure"><h2>Structure</h2><p>{"; ".join(facts)}</p>{listed}'
        '<div class="trees">'
        f'<div class="tree tree-left"><h3>A</h3><ul class="tree-root">{left}</ul></div>'
        f'<div class="tree tree-right"><h3>B</h3><ul class="tree-root">{right}</ul></div>'
        "</div></section>"
    )


def diff_page(snap: Snapshot | None, view: DiffView, *, root: str, mode: str) -> str:
    """The page of one diff; ``root``: ``""`` (``diff?...``) or ``"../"`` (``diff/X.html``)."""
    d = view.diff
    if d.identical:
        verdict = "identical: no tensor and no side file differs"
    else:
        verdict = (
            f"{_count(len(d.changed), 'tensor')} changed, {len(d.added)} added, "
            f"{len(d.removed)} removed; "
            + ("same architecture" if d.same_architecture else "different architecture")
        )
    pa, pb = d.arch_a, d.arch_b
    sizes = (
        f"A: {_count(pa.numel, 'parameter')} in {_count(pa.tensors, 'tensor')}; "
        f"B: {_count(pb.numel, 'parameter')} in {_count(pb.tensors, 'tensor')}"
    )
    body = (
        f'<h1 id="diff-title">{_ref_link(snap, d.a, root)} → {_ref_link(snap, d.b, root)}</h1>'
        f'<p class="summary">{esc(verdict)}. {esc(sizes)}.</p>'
        + _tensors(d)
        + _files(d)
        + structure_panel(view.structure, view.note)
    )
    return page(f"diff {d.a} {d.b}", body, root=root, mode=mode, scripts=["static/diff.js"])


def diff_error_page(a: str, b: str, message: str, *, root: str, mode: str) -> str:
    body = (
        f'<h1 id="diff-title">{esc(a)} → {esc(b)}</h1>'
        f'<p class="error">{esc(message)}</p>'
        f"<p>Details: <code>modelgit diff {esc(short_json(a))} {esc(short_json(b))}</code></p>"
    )
    return page(f"diff {a} {b}", body, root=root, mode=mode)
