"""Writing a version: a model's tensors go to the chunk store, then one catalog
transaction publishes the version (docs/FORMAT.md section 5).

Write ordering: chunk records are appended and synced (``storage.writer``), then
:func:`publish` inserts the chunk rows, the model, the version, its parent links and
edges, its tensor rows and side files in one transaction. A crash at any point leaves
every earlier version intact; the records of a write that never published are garbage
for gc.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xxhash

from ..catalog import checks
from ..catalog.records import (
    VERSION_COLUMNS,
    TensorRow,
    VersionRow,
    insert_chunks,
    insert_files,
    insert_parent_link,
    insert_tensors,
    insert_version,
    version_content_id,
)
from ..catalog.schema import has_table
from ..errors import LineageError, ModelExists, ModelgitWarning, UnknownModel, UnsupportedInput
from ..formats.sources import ModelSource, TensorSource, open_model, side_files, tensor_from_buffer
from ..names import warn_misspelt_relation
from ..progress import Counter, ProgressFn
from ..storage.similarity import TensorSketch, insert_sketches, sketch_source
from ..storage.writer import WriteStats, write_tensors
from ..tolerance import Auto, ErrorBound, LowBit, parse_tolerance
from .auto import choose_tolerance
from .bases import check_base, choose_bases
from .refs import STATE_PREFIX, is_state_name, version_from_row
from .version import Version

if TYPE_CHECKING:
    from .engine import VersionStore

__all__ = [
    "Link",
    "Index",
    "SideFiles",
    "provenance_links",
    "inherited_from",
    "choose_files",
    "write_version",
    "publish",
]

# A parent link being written: (parent's internal id, parent Version, kind, relation);
# kind is "provenance" (derived from) or "version" (the previous version).
Link = tuple[int, Version, str, str]

# What ``files=`` takes: side files by relative path, or a folder to read them from.
SideFiles = Mapping[str, bytes] | str | os.PathLike[str]


def provenance_links(
    engine: VersionStore, name: str, parents: str | Sequence[str] | None, relation: str
) -> list[Link]:
    """The links of a new model to its declared parents, checked."""
    if parents is None:
        refs: list[str] = []
    elif isinstance(parents, str):
        refs = [parents]
    else:
        refs = list(parents)
    if not isinstance(relation, str) or not relation or len(relation) > 64:
        raise LineageError("relation must be a short non-empty string, e.g. 'finetune'")
    if refs:
        warn_misspelt_relation(relation)
    links: list[Link] = []
    for p in refs:
        pid, pv = engine.resolve(p)
        if pv.model == name:
            raise LineageError(f"model {name!r} cannot be its own parent")
        links.append((pid, pv, "provenance", relation))
    if len({pv.model for _, pv, _, _ in links}) != len(links):
        raise LineageError("the same parent model is listed twice")
    return links


@dataclass(frozen=True)
class Index:
    """What a published version adds to the similarity index: its tensors' sketches and
    the versions it was stored against."""

    sketches: list[TensorSketch]
    bases: set[int]


def inherited_from(links: Sequence[Link]) -> Link | None:
    """The version whose side files a new version without its own inherits: the previous
    version of the model (a commit, a merge, a cascade step), else its first parent."""
    for link in links:
        if link[2] == "version":
            return link
    return links[0] if links else None


def _files_of(engine: VersionStore, link: Link) -> dict[str, bytes]:
    """The side files of a linked version, checked against its digest."""
    pid, pv, _, _ = link
    with engine.catalog.snapshot():
        checks.verify_version(engine.catalog, pid, pv.ref)
        rows = engine.catalog.query("SELECT path, data FROM files WHERE version = ?", (pid,))
    return {path: bytes(data) for path, data in rows}


def choose_files(
    engine: VersionStore,
    source: ModelSource,
    links: Sequence[Link],
    given: dict[str, bytes] | None,
) -> dict[str, bytes]:
    """The side files a new version gets: ``given`` (what ``files=`` named, read with
    ``formats.sources.side_files``) when there is one; else a model folder's own; else
    (a state_dict, an ``nn.Module``, a single ``.safetensors`` file) those of the version
    it inherits from (:func:`inherited_from`), so that a cast or a fine-tune exports as a
    folder ``from_pretrained`` loads."""
    if given is not None:
        return given
    if source.folder:
        return source.files
    link = inherited_from(links)
    return _files_of(engine, link) if link is not None else {}


def _refuse_state_names(names: Iterable[str]) -> None:
    bad = next((n for n in names if is_state_name(n)), None)
    if bad is not None:
        raise UnsupportedInput(
            f"tensor name {bad!r} starts with {STATE_PREFIX!r}, which modelgit reserves for "
            "the training state of checkpoints; rename the tensor"
        )


def with_state(model: Any, state: Mapping[str, Any] | None) -> Any:
    """``model`` (an ``nn.Module`` or a state_dict) with the training-state tensors
    ``state`` added under ``STATE_PREFIX``; ``model`` itself when there are none."""
    if state is None:
        return model
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        model = model.state_dict()
    if not isinstance(model, Mapping):
        raise UnsupportedInput("a checkpoint's model must be an nn.Module or a state_dict")
    _refuse_state_names(model)
    return {**model, **{STATE_PREFIX + k: v for k, v in state.items()}}


def _materialize(t: TensorSource) -> Any:
    """A tensor holding a copy of a source tensor's bytes (for tests run on it)."""
    return tensor_from_buffer(bytearray(t.view()[:]), t.dtype, t.shape)


def _widest(tensors: Sequence[TensorSource]) -> int:
    """The largest element size among ``tensors`` (1 when there are none)."""
    return max((t.dtype.size for t in tensors), default=1)


def write_version(
    engine: VersionStore,
    name: str,
    model: Any,
    links: list[Link],
    message: str,
    metadata: Mapping[str, Any] | None,
    tolerance: object,
    new_model: bool,
    progress: ProgressFn | None = None,
    base: str = "auto",
    *,
    follow_symlinks: bool = False,
    files: SideFiles | None = None,
    state: Mapping[str, Any] | None = None,
    state_tolerance: object = None,
) -> Version:
    """Store ``model`` as a new version of ``name`` (a new model when ``new_model``),
    coded against the stored tensors ``base`` chooses (``versions.bases``: ``"auto"``,
    or ``"parent"``: the versions ``links`` name), and publish it with the side files
    :func:`choose_files` picks. A folder's symlinks that lead outside it are read only
    with ``follow_symlinks``. ``state``: tensors of a checkpoint's training state, stored
    in the same version under ``STATE_PREFIX`` (:func:`with_state`); ``state_tolerance``
    (an ErrorBound or LowBit) stores those alone lossily, the weights as ``tolerance``
    says."""
    base = check_base(base)
    # the bound of a training state applies to its tensors of more than one element
    # (moments); counters such as Adam's step stay exact
    lossy_state = {
        STATE_PREFIX + k
        for k, v in (state or {}).items()
        if getattr(v, "is_floating_point", lambda: False)() and v.numel() > 1
    }
    model = with_state(model, state)
    given = None if files is None else side_files(files, follow_symlinks)
    tol = parse_tolerance(tolerance)
    state_tol = parse_tolerance(state_tolerance)
    if isinstance(state_tol, Auto):
        raise UnsupportedInput("a training state's tolerance is an ErrorBound or a LowBit")
    meta = dict(metadata or {})
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise UnsupportedInput(f"metadata must be JSON-serialisable: {exc}") from None
    parents = [{r.name: r for r in engine.tensor_rows(pid, state=True)} for pid, _, _, _ in links]
    store = engine.store
    with open_model(model, follow_symlinks) as source:
        if state is None:
            _refuse_state_names(t.name for t in source.tensors)
        chosen_files = choose_files(engine, source, links, given)
        if isinstance(tol, Auto):
            sd = {t.name: _materialize(t) for t in source.tensors}
            parent_sd = engine.load(links[0][1].ref) if links else None
            tol, trials = choose_tolerance(tol, sd, parent_sd, engine.chunk_elems)
            meta["auto_trials"] = [
                {"tolerance": None if t.tolerance is None else t.tolerance.to_json(),
                 "metric": t.metric, "drop": t.drop, "accepted": t.accepted}
                for t in trials
            ]  # fmt: skip
            meta_json = json.dumps(meta, sort_keys=True)
        sketches = sketch_source(source, engine.chunk_elems, engine.pool)
        choices, owners = (
            choose_bases(engine, sketches, links,
                         known={pid: p for (pid, *_), p in zip(links, parents, strict=True)})
            if base == "auto" else (None, {})
        )  # fmt: skip
        for (pid, _, _, _), rows_of in sorted(zip(links, parents, strict=True), key=_first_id):
            for r in rows_of.values():
                for c in r.chunk_ids:
                    owners.setdefault(c, pid)
        with engine.lock(exclusive=False):
            try:
                rows, stats = write_tensors(
                    store,
                    source,
                    parents,
                    engine.pool,
                    chunk_elems=engine.chunk_elems,
                    max_depth=engine.max_depth,
                    tolerance=tol,
                    tolerance_for=None
                    if state_tol is None
                    else (
                        lambda n: state_tol if n in lossy_state else tol  # noqa: B023
                    ),
                    progress=Counter(
                        progress, sum(t.nbytes for t in source.tensors if t.tie is None)
                    ),
                    window=engine.budget.window_chunks(
                        engine.chunk_elems * _widest(source.tensors), engine.workers
                    ),
                    choices=choices,
                )
                store.sync()
                bases = {owners[b] for r in store.pending_rows() for b in r.bases if b in owners}
                version = publish(
                    engine,
                    name,
                    rows,
                    links,
                    message,
                    meta_json,
                    chosen_files,
                    stats,
                    new_model,
                    tol if stats.lossy else None,
                    Index(list(sketches.values()), bases),
                )
            except BaseException:
                store.abandon()
                raise
            store.published()
    engine.last_write = stats
    _warn_mistakes(engine, version, links, parents, {r.name for r in rows}, chosen_files)
    return version


def _next_number(db: Any, name: str) -> int:
    """A new version's number: above every number the model has here, the numbers of
    versions fetched aside (where they were made) included, so that it stays free in
    the repositories those came from (numbers travel with versions)."""
    top = db.execute("SELECT COALESCE(MAX(number), 0) FROM versions WHERE model = ?", (name,))
    best = top.fetchone()[0]
    if has_table(db, "remote_versions"):
        row = db.execute(
            "SELECT MAX(r.remote_number) FROM remote_versions r JOIN versions v"
            " ON v.id = r.version WHERE v.model = ?",
            (name,),
        ).fetchone()
        if row is not None and row[0] is not None:
            best = max(best, row[0])
    return int(best) + 1


def _warn_mistakes(
    engine: VersionStore,
    version: Version,
    links: list[Link],
    parents: list[dict[str, TensorRow]],
    names: set[str],
    files: dict[str, bytes],
) -> None:
    """:class:`~modelgit.ModelgitWarning` for a stored version that looks like a mistake:
    a commit with the previous version's weights and side files, or a parent sharing no
    tensor name."""
    for (pid, pv, kind, _), rows in zip(links, parents, strict=True):
        if (
            kind == "version"
            and len(links) == 1  # a plain commit (a merge may keep one side's weights)
            and pv.content_id == version.content_id
            and _files_of(engine, (pid, pv, kind, "")) == dict(files)
        ):
            warnings.warn(
                f"{version.ref} has the same weights as {pv.ref}: the commit changes nothing",
                ModelgitWarning,
                stacklevel=5,
            )
        elif kind == "provenance" and names and rows and not names & rows.keys():
            warnings.warn(
                f"parent {pv.ref} shares no tensor names with {version.ref}: is it the "
                "right parent?",
                ModelgitWarning,
                stacklevel=5,
            )


def _exists(db: Any, vid: int) -> bool:
    return db.execute("SELECT 1 FROM versions WHERE id = ?", (vid,)).fetchone() is not None


def _first_id(pair: tuple) -> int:
    return pair[0][0]


def publish(
    engine: VersionStore,
    name: str,
    rows: list[TensorRow],
    links: list[Link],
    message: str,
    meta_json: str,
    files: dict[str, bytes],
    stats: WriteStats,
    new_model: bool,
    tolerance: ErrorBound | LowBit | None = None,
    index: Index | None = None,
) -> Version:
    """The one catalog transaction that makes a written version visible (with its
    entries in the similarity index)."""
    content_id = version_content_id(rows)
    now = time.time()
    with engine.catalog.transaction() as db:
        for pid, pv, kind, _ in links:  # removed by someone else since the write began
            if not _exists(db, pid):
                what = "previous version" if kind == "version" else "parent"
                raise UnknownModel(
                    f"the {what} {pv.ref} was removed while {name!r} was being written; "
                    "nothing was stored (write it again)"
                )
        insert_chunks(db, engine.store.pending_rows())
        if new_model:
            if db.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone():
                raise ModelExists(f"model {name!r} was added by someone else meanwhile")
            db.execute(
                "INSERT INTO models(name, created, metadata) VALUES (?, ?, '{}')", (name, now)
            )
        number = _next_number(db, name)
        # the id: a hash of what the version is (content, parents, metadata, message and
        # when it was made), the same in every repository it travels to
        seed = json.dumps([name, content_id, [v.id for _, v, _, _ in links], meta_json,
                           message, repr(now)])  # fmt: skip
        uid = xxhash.xxh3_128_hexdigest(seed.encode())[:16]
        row = VersionRow(
            id=0,
            uid=uid,
            model=name,
            number=number,
            content_id=content_id,
            message=message,
            created=now,
            lossy=int(tolerance is not None),
            tolerance=None if tolerance is None else json.dumps(tolerance.to_json()),
            metadata=meta_json,
            logical_bytes=stats.logical_bytes,
        )
        vid = insert_version(db, row)
        edges = []
        for pos, (pid, pv, kind, relation) in enumerate(links):
            insert_parent_link(db, vid, pid, kind, relation, pos)
            if kind == "provenance":
                db.execute(
                    "INSERT OR IGNORE INTO edges(parent, child, relation) VALUES (?,?,?)",
                    (pv.model, name, relation),
                )
                edges.append((pv.model, name))
        insert_tensors(db, vid, rows)
        insert_files(db, vid, files.items())
        checks.refresh(db, [vid], edges=edges)
        if index is not None:
            bases = [b for b in index.bases if _exists(db, b)]  # not one removed meanwhile
            insert_sketches(db, vid, index.sketches, bases)
        new = db.execute(
            f"SELECT {VERSION_COLUMNS} FROM versions v WHERE v.id = ?", (vid,)
        ).fetchone()
    return version_from_row(engine.catalog, new)
