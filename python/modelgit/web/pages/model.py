"""The model page (``model/SLUG.html``): a model's lineage, its versions (ids, dates,
messages, sizes, lossy bounds, tags, links to each diff), metadata, storage per version,
side files (the config and the model card as escaped text), registered tests and their
results per version, and its creation function."""

from __future__ import annotations

import json
from typing import Any

from ...tolerance import tolerance_from_json
from ...versions import Version
from ..data import ModelView, Snapshot, side_file_text
from ..html import esc, human, page, ratio, share, short_json, table, when

__all__ = ["model_page"]

ROOT = "../"
PIVOT_VERSIONS = 8  # up to this many versions, metadata keys by versions side by side


def _link(snap: Snapshot, name: str, number: int | None = None, text: str | None = None) -> str:
    if name not in snap.slugs:
        return esc(text or name)
    return f'<a href="{ROOT}{esc(snap.model_href(name, number))}">{esc(text or name)}</a>'


def _ref_link(snap: Snapshot, ref: str) -> str:
    href = snap.ref_href(ref)
    return f'<a href="{ROOT}{esc(href)}">{esc(ref)}</a>' if href else esc(ref)


def _bound(v: Version) -> str:
    if not v.lossy:
        return "lossless"
    if not v.tolerance:
        return "lossy"
    try:
        return f"lossy: {tolerance_from_json(v.tolerance)}"
    except Exception:  # noqa: BLE001 - a kind written by a newer modelgit
        return f"lossy: {short_json(v.tolerance)}"


def _lineage(snap: Snapshot, m: ModelView) -> str:
    parts = []
    if m.parents:
        parts.append(
            "derived from "
            + ", ".join(f"{_link(snap, e.parent)} ({esc(e.label)})" for e in m.parents)
        )
    else:
        parts.append("a root model (no parents)")
    for model, rel in m.node.removed_parents:
        parts.append(f"from the removed model {esc(model)} ({esc(rel)})")
    if m.children:
        parts.append(
            "models derived from it: "
            + ", ".join(f"{_link(snap, e.child)} ({esc(e.label)})" for e in m.children)
        )
    return f'<p id="lineage">{"; ".join(parts)}.</p>'


def _versions(snap: Snapshot, m: ModelView) -> str:
    rows = []
    for v in m.versions:
        diffs = []
        prev = snap.prev_diff.get(v.ref)
        if prev is not None:
            diffs.append(
                f'<a class="diff-link" href="{ROOT}diff/{esc(prev)}">diff with previous</a>'
            )
        for pref, href in snap.parent_diffs.get(v.ref, []):
            diffs.append(
                f'<a class="parent-diff-link" href="{ROOT}diff/{esc(href)}">diff with '
                f"{esc(pref)}</a>"
            )
        tags = " ".join(f'<span class="tag">{esc(t)}</span>' for t in m.tags.get(v.number, []))
        fetched = ' <span class="note">fetched aside</span>' if v.fetched_number is not None else ""
        cells = [
            f"{v.number}{fetched}",
            f'<code title="content {esc(v.content_id)}">{esc(v.id)}</code>',
            esc(when(v.created)),
            esc(v.message) or '<span class="none">-</span>',
            esc(human(v.logical_bytes)),
            f'<span class="{"lossy" if v.lossy else "lossless"}">{esc(_bound(v))}</span>',
            tags,
            " ".join(diffs),
        ]
        anchor = f"v{v.number}" if v.fetched_number is None else f"fetched-{v.fetched_number}"
        rows.append((cells, f'class="version" data-number="{v.number}" id="{anchor}"'))
    head = ["#", "id", "created (UTC)", "message", "size", "storage", "tags", "diff"]
    return "<h2>Versions</h2>" + table("versions", head, rows, numeric=(0, 4))


def _value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
        return f"<pre>{esc(text)}</pre>"
    return esc(short_json(value, 2000) if not isinstance(value, str) else value)


def _metadata(m: ModelView) -> str:
    """Keys by versions side by side (a metric across versions reads along a row); with
    more versions than fit, one row per version and key."""
    keys = list(dict.fromkeys(k for v in m.versions for k in v.metadata))
    if keys and len(m.versions) <= PIVOT_VERSIONS:
        head = ["key", *(f"@{v.number}" for v in m.versions)]
        rows = [
            ([f"<code>{esc(k)}</code>",
              *(_value(v.metadata[k]) if k in v.metadata else '<span class="none">-</span>'
                for v in m.versions)], f'data-key="{esc(k)}"')
            for k in keys
        ]  # fmt: skip
    else:
        head = ["version", "key", "value"]
        rows = [
            ([f"@{v.number}", f"<code>{esc(k)}</code>", _value(val)], f'data-key="{esc(k)}"')
            for v in m.versions
            for k, val in v.metadata.items()
        ]
    body = table("metadata-table", head, rows, empty="no metadata")
    return f'<section id="metadata"><h2>Metadata</h2>{body}</section>'


def _tags(snap: Snapshot, m: ModelView) -> str:
    items = [
        f'<li><span class="tag">{esc(t)}</span> → {_link(snap, m.name, n, f"{m.name}@{n}")}</li>'
        for n, ts in sorted(m.tags.items())
        for t in ts
    ]
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="none">no tags</p>'
    return f'<section id="tags"><h2>Tags</h2>{body}</section>'


def _storage(snap: Snapshot, m: ModelView) -> str:
    rows = []
    for v in m.versions:
        vs = snap.version_stats.get((m.name, v.number))
        if vs is None:
            continue
        bases = snap.bases.get((m.name, v.number), [])
        against = ", ".join(_link(snap, b, n, f"{b}@{n}") for b, n in bases) or "standalone"
        rows.append(([
            f"@{v.number}", esc(human(vs.logical_bytes)), esc(human(vs.stored_bytes)),
            esc(ratio(vs.logical_bytes, vs.stored_bytes)),
            esc(share(vs.dedup_bytes, vs.logical_bytes)),
            esc(share(vs.delta_bytes, vs.logical_bytes)), str(vs.max_depth), against,
        ], ""))  # fmt: skip
    head = ["version", "logical", "stored", "ratio", "shared", "delta", "depth", "stored against"]
    st = m.stats
    total = (
        f"<p>All versions: {esc(human(st.logical_bytes))} logical, {esc(human(st.stored_bytes))} "
        f"stored ({esc(ratio(st.logical_bytes, st.stored_bytes))}). <em>stored</em>: the bytes "
        "of the chunks this version was the first to need; <em>shared</em>: its bytes served "
        "by chunks stored before; <em>depth</em>: the longest delta chain a load decodes.</p>"
        if st
        else ""
    )
    return (
        '<section id="storage"><h2>Storage</h2>'
        + total
        + table("storage-table", head, rows, numeric=(1, 2, 3, 4, 5, 6))
        + "</section>"
    )


def _side_files(m: ModelView, files: dict[str, bytes] | str | None) -> str:
    latest = m.latest
    if latest is None:
        return '<section id="side-files"><h2>Side files</h2><p class="none">none</p></section>'
    head = f"<h2>Side files of {esc(latest.ref)}</h2>"
    if isinstance(files, str):
        return f'<section id="side-files">{head}<p class="error">{esc(files)}</p></section>'
    if not files:
        return f'<section id="side-files">{head}<p class="none">no side files</p></section>'
    parts = []
    for path in sorted(files):
        data = files[path]
        text, cut = side_file_text(data)
        if text is None:
            shown = f'<p class="note">binary, {esc(human(len(data)))}</p>'
        else:
            if path.endswith(".json") and not cut:
                try:
                    text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
                except ValueError:
                    pass
            more = f'<p class="note">first {esc(human(len(text)))} shown</p>' if cut else ""
            shown = f'<pre class="file">{esc(text)}</pre>{more}'
        parts.append(
            f'<details class="side-file" data-path="{esc(path)}"{" open" if _opens(path) else ""}>'
            f"<summary><code>{esc(path)}</code> ({esc(human(len(data)))})</summary>"
            f"{shown}</details>"
        )
    return f'<section id="side-files">{head}{"".join(parts)}</section>'


def _opens(path: str) -> bool:
    """The model card and the config are shown open; tokenizers and the rest closed."""
    name = path.rsplit("/", 1)[-1].lower()
    return name in ("readme.md", "readme.txt", "readme", "config.json", "model_card.md")


def _tests(snap: Snapshot, m: ModelView) -> str:
    specs = "".join(
        f"<li><code>{esc(s.name)}</code>: <code>{esc(s.fn)}</code>, goal {esc(s.goal)}, "
        f"models {esc(s.models)}</li>"
        for s in m.tests
    )
    reg = f"<ul>{specs}</ul>" if specs else '<p class="none">no registered test selects it</p>'
    rows = []
    for r in m.results:
        err = f' <span class="error">{esc(r.error)}</span>' if r.error else ""
        rows.append(([
            _link(snap, m.name, r.number, r.ref), f"<code>{esc(r.test)}</code>", esc(r.shown_value),
            esc(r.goal),
            f'<span class="{"pass" if r.passed else "fail"}">{esc(r.status)}</span>{err}',
            esc(when(r.created)) if r.created else "-",
        ], f'class="result" data-number="{r.number}"'))  # fmt: skip
    results = table(
        "test-results", ["version", "test", "value", "goal", "result", "run (UTC)"], rows,
        numeric=(2,), empty="no results stored",
    )  # fmt: skip
    return f'<section id="tests"><h2>Tests</h2>{reg}{results}</section>'


def _creator(m: ModelView) -> str:
    c = m.creator
    if c is None:
        body = '<p class="none">no creation function (cascade cannot re-derive it)</p>'
    else:
        args = json.dumps(c.args, indent=2, ensure_ascii=False, sort_keys=True)
        body = f"<p><code>{esc(c.fn)}</code>(parents, **args) with</p><pre>{esc(args)}</pre>"
    return f'<section id="creator"><h2>Creation function</h2>{body}</section>'


def model_page(snap: Snapshot, name: str, files: dict[str, bytes] | str | None, mode: str) -> str:
    """The page of model ``name`` (it is in ``snap``); ``files``: its latest version's side
    files, or why they could not be read."""
    m = snap.models[name]
    body = "".join([
        f'<h1 id="model-name">{esc(m.name)}</h1>',
        _lineage(snap, m),
        _versions(snap, m),
        _metadata(m),
        _tags(snap, m),
        _storage(snap, m),
        _side_files(m, files),
        _tests(snap, m),
        _creator(m),
    ])  # fmt: skip
    return page(m.name, body, root=ROOT, current="", mode=mode)
