"""The storage page (``storage.html``): where the bytes go per model (``modelgit du``)
and the layout of every version: what it stored itself, what it shares, how much is
delta-coded, how deep its delta chains go (what a load decodes) and which versions it
was coded against."""

from __future__ import annotations

from ..data import Snapshot
from ..html import esc, human, page, ratio, share, table

__all__ = ["storage_page"]

BAR_W = 160


def _bar(part: int, whole: int) -> str:
    """A bar of ``part / whole`` (SVG attributes: no inline style under the CSP)."""
    w = 0.0 if not whole else max(1.0, BAR_W * part / whole) if part else 0.0
    return (
        f'<svg class="bar" width="{BAR_W}" height="10" role="img" '
        f'aria-label="{share(part, whole)}">'
        f'<rect class="bar-bg" width="{BAR_W}" height="10" rx="2"/>'
        f'<rect class="bar-fg" width="{w:.1f}" height="10" rx="2"/></svg>'
    )


def _link(snap: Snapshot, name: str, number: int | None = None, text: str | None = None) -> str:
    if name not in snap.slugs:
        return esc(text or name)
    return f'<a href="{esc(snap.model_href(name, number))}">{esc(text or name)}</a>'


def storage_page(snap: Snapshot, mode: str) -> str:
    st = snap.repo_stats
    garbage = st.pack_bytes - st.stored_bytes
    introduced = sum(m.stored_bytes for m in st.models)
    du_rows = []
    for m in st.models:
        against: list[str] = []
        for (model, _), bases in snap.bases.items():
            if model == m.name:
                against += [b for b, _ in bases if b != m.name and b not in against]
        du_rows.append(([
            _link(snap, m.name), str(m.versions), esc(human(m.logical_bytes)),
            esc(human(m.stored_bytes)), _bar(m.stored_bytes, introduced),
            esc(ratio(m.logical_bytes, m.stored_bytes)), esc(share(m.dedup_bytes, m.logical_bytes)),
            esc(share(m.delta_bytes, m.logical_bytes)), "lossy" if m.lossy else "",
            ", ".join(_link(snap, b) for b in against[:5]) + (" …" if len(against) > 5 else ""),
        ], f'data-name="{esc(m.name)}"'))  # fmt: skip
    du = table(
        "du",
        ["model", "versions", "logical", "stored", "share of stored", "ratio", "shared", "delta",
         "", "stored against"],
        du_rows, numeric=(1, 2, 3, 5, 6, 7), empty="no models",
    )  # fmt: skip
    layout_rows = []
    for m in snap.models.values():
        for v in m.versions:
            vs = snap.version_stats.get((m.name, v.number))
            if vs is None:
                continue
            bases = snap.bases.get((m.name, v.number), [])
            against_v = ", ".join(_link(snap, b, n, f"{b}@{n}") for b, n in bases)
            layout_rows.append(([
                _link(snap, m.name, v.number, v.ref), esc(human(vs.logical_bytes)),
                esc(human(vs.stored_bytes)), esc(share(vs.dedup_bytes, vs.logical_bytes)),
                esc(share(vs.delta_bytes, vs.logical_bytes)), str(vs.chunks), str(vs.max_depth),
                against_v or '<span class="none">standalone</span>',
            ], f'data-ref="{esc(v.ref)}" data-depth="{vs.max_depth}"'))  # fmt: skip
    layout = table(
        "layout",
        ["version", "logical", "stored", "shared", "delta", "chunks", "depth", "stored against"],
        layout_rows, numeric=(1, 2, 3, 4, 5, 6), empty="no versions",
    )  # fmt: skip
    body = (
        "<h1>Storage</h1>"
        f'<p class="summary" id="totals">{esc(human(st.logical_bytes))} of tensors in '
        f"{sum(m.versions for m in st.models)} versions are stored in "
        f"{esc(human(st.stored_bytes))} "
        f"of chunks ({esc(ratio(st.logical_bytes, st.stored_bytes))}); {st.chunks} chunks in "
        f"{esc(human(st.pack_bytes))} of pack files"
        + (f" (<code>modelgit gc</code> reclaims {esc(human(garbage))})" if garbage > 4096 else "")
        + f". Delta chains are bounded at depth {snap.max_depth} (<code>modelgit layout</code>)."
        "</p>"
        '<h2>Per model</h2><p class="note"><em>stored</em>: the bytes of the chunks the '
        "model's versions were the first to need; <em>shared</em>: bytes served by chunks "
        "stored before (deduplication); <em>delta</em>: bytes stored as deltas against other "
        "chunks; <em>stored against</em>: the models its chunks were coded against.</p>"
        + du
        + '<h2>Layout of every version</h2><p class="note"><em>depth</em>: the longest '
        "chain of deltas under the version's chunks (0: all standalone); a load decodes "
        "that many bases first.</p>" + layout
    )
    return page("storage", body, root="", current="storage", mode=mode)
