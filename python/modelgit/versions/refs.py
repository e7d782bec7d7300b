"""Reading versions from the catalog: references, Version records, tensor rows.

A reference is a model name (its latest version), ``name@N``, ``name@latest`` or a tag;
docs/guide.md lists the forms. Everything here is a read of the catalog.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from ..catalog import Catalog, checks
from ..catalog.records import VERSION_COLUMNS, TensorRow, VersionRow, tensor_rows
from ..catalog.schema import has_table
from ..errors import CorruptObject, InvalidName, UnknownModel, UnknownVersion
from ..names import parse_ref, validate_name
from .version import ParentLink, Version

__all__ = [
    "names_a_version_id",
    "model_names",
    "has_model",
    "require_model",
    "parents_of",
    "version_from_row",
    "version_by_id",
    "versions_of",
    "resolve",
    "select_tensor_rows",
    "STATE_PREFIX",
    "is_state_name",
    "pick_rows",
]

# tensor rows of a checkpoint's training state (optimizer, scheduler) are named with this
# prefix, which model tensors may not have (versions.write refuses them): readers of the
# weights skip them (docs/FORMAT.md, "Training checkpoints")
STATE_PREFIX = "@state/"


def model_names(catalog: Catalog) -> list[str]:
    """Names of all models, in the order they were added."""
    return [r[0] for r in catalog.query("SELECT name FROM models ORDER BY created, name")]


def has_model(catalog: Catalog, name: object) -> bool:
    return (
        isinstance(name, str)
        and catalog.one("SELECT 1 FROM models WHERE name = ?", (name,)) is not None
    )


def require_model(catalog: Catalog, name: str, location: str) -> None:
    """Raise :class:`UnknownModel` (with the known names) unless ``name`` is a model."""
    validate_name(name)
    if not has_model(catalog, name):
        known = model_names(catalog)
        hint = f"; known models: {', '.join(known[:10])}" if known else " (it is empty)"
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            hint = f"; did you mean {close[0]!r}?" + hint
        raise UnknownModel(f"no model named {name!r} in {location}{hint}")


def parents_of(catalog: Catalog, vid: int) -> tuple[ParentLink, ...]:
    rows = catalog.query(
        "SELECT v.model, v.number, p.kind, p.relation, p.parent FROM version_parents p "
        "JOIN versions v ON v.id = p.parent WHERE p.version = ? ORDER BY p.position",
        (vid,),
    )
    return tuple(
        ParentLink(m, n, k, r, fetched_number(catalog, pid) if n < 1 else None)
        for m, n, k, r, pid in rows
    )


def fetched_number(catalog: Catalog, vid: int) -> int | None:
    """The number a version fetched aside (diverged) has where it was made; None for a
    version of this repository's own history."""
    if not has_table(catalog, "remote_versions"):
        return None
    row = catalog.one("SELECT remote_number FROM remote_versions WHERE version = ?", (vid,))
    return None if row is None or row[0] < 1 else int(row[0])


def version_from_row(catalog: Catalog, row: Sequence[object]) -> Version:
    """The :class:`Version` of a ``versions`` row selected with ``VERSION_COLUMNS``."""
    try:
        vrow = VersionRow.from_db(row)
        fetched = fetched_number(catalog, vrow.id) if vrow.number < 1 else None
        return Version.from_row(vrow, parents_of(catalog, vrow.id), fetched)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # bad JSON, bad types
        raise CorruptObject(f"version #{row[0]}: its catalog row is damaged ({exc})") from None


def version_by_id(catalog: Catalog, vid: int) -> Version | None:
    row = catalog.one(f"SELECT {VERSION_COLUMNS} FROM versions v WHERE v.id = ?", (vid,))
    return None if row is None else version_from_row(catalog, row)


def versions_of(catalog: Catalog, name: str) -> list[Version]:
    rows = catalog.query(
        f"SELECT {VERSION_COLUMNS} FROM versions v WHERE v.model = ?"
        " ORDER BY v.number < 1, v.number",  # its own history, then versions fetched aside
        (name,),
    )
    return [version_from_row(catalog, r) for r in rows]


def resolve(catalog: Catalog, ref: str, version: int | None, location: str) -> tuple[int, Version]:
    """(internal id, Version) of a reference: name, name@N, name@latest, a tag, or a
    version id (the 16 hex digits ``log`` prints, or a unique prefix of at least
    ``MIN_ID_PREFIX`` of them; a model or tag of that name comes first)."""
    r = parse_ref(ref, version)
    if not has_model(catalog, r.name):
        tag = catalog.one("SELECT version FROM tags WHERE name = ?", (r.name,))
        if tag is not None and r.version is None:
            row = catalog.one(f"SELECT {VERSION_COLUMNS} FROM versions v WHERE v.id = ?", (tag[0],))
            if row is None:
                raise CorruptObject(f"tag {r.name!r} names a version that does not exist")
            checks.verify_tag(catalog, r.name)
            return row[0], version_from_row(catalog, row)
        if r.fetched is not None:
            raise UnknownModel(f"no model named {r.name!r} in {location}")
        if r.version is None and _ID.match(r.name):
            found = by_id_prefix(catalog, r.name)
            if found is not None:
                return found
            if len(r.name) == 16:
                raise UnknownVersion(  # a whole id: a version removed, or of elsewhere
                    f"no version with id {r.name} in {location} (removed, or never here), "
                    "and no model or tag of that name"
                )
        require_model(catalog, r.name, location)
    if r.fetched is not None:
        return _fetched(catalog, r.name, r.fetched, ref)
    if r.version is None:
        row = catalog.one(
            f"SELECT {VERSION_COLUMNS} FROM versions v WHERE v.model = ? "
            "ORDER BY v.number DESC LIMIT 1",
            (r.name,),
        )
    else:
        row = catalog.one(
            f"SELECT {VERSION_COLUMNS} FROM versions v WHERE v.model = ? AND v.number = ?",
            (r.name, r.version),
        )
    if row is None:
        have = [n for (n,) in catalog.query(
            "SELECT number FROM versions WHERE model = ? AND number > 0 ORDER BY number",
            (r.name,),
        )]  # fmt: skip
        shown = ", ".join(f"@{n}" for n in have[:8])
        shown += f" ... @{have[-1]}" if len(have) > 8 else ""
        raise UnknownVersion(
            f"model {r.name!r} has no version {r.version}"
            + (f" (its versions: {shown})" if have else " (it has no versions)")
        )
    v = version_from_row(catalog, row)
    if v.model != r.name or (r.version is not None and v.number != r.version):
        raise CorruptObject(f"{ref!r} led to {v.ref}: the catalog's index is damaged")
    return row[0], v


def _fetched(catalog: Catalog, name: str, number: int, ref: str) -> tuple[int, Version]:
    """``name@fetched:N``: the version fetched aside that is number N where it was made."""
    rows = [] if not has_table(catalog, "remote_versions") else catalog.query(
        f"SELECT {VERSION_COLUMNS} FROM versions v JOIN remote_versions r ON r.version = v.id"
        " WHERE v.model = ? AND r.remote_number = ?",
        (name, number),
    )  # fmt: skip
    if not rows:
        raise UnknownVersion(f"{ref!r}: no version of {name!r} numbered {number} was fetched")
    if len(rows) > 1:
        ids = ", ".join(r[1] for r in rows)  # (VERSION_COLUMNS: id, uid, ...)
        raise InvalidName(f"{ref!r} names {len(rows)} fetched versions; use an id: {ids}")
    return rows[0][0], version_from_row(catalog, rows[0])


MIN_ID_PREFIX = 6
_ID = re.compile(rf"^[0-9a-f]{{{MIN_ID_PREFIX},32}}$")


def names_a_version_id(catalog: Catalog, name: str) -> bool:
    """Whether ``name`` is an id, or the start of the id, of a version here (a tag of
    that name would hide it)."""
    if not _ID.match(name):
        return False
    try:
        return by_id_prefix(catalog, name) is not None
    except InvalidName:  # the start of several
        return True


def by_id_prefix(catalog: Catalog, prefix: str) -> tuple[int, Version] | None:
    """The version whose id starts with ``prefix`` (None if there is none; InvalidName
    if several do)."""
    rows = catalog.query(
        f"SELECT {VERSION_COLUMNS} FROM versions v WHERE v.uid >= ? AND v.uid < ? LIMIT 2",
        (prefix, prefix + "g"),  # every hex string that starts with the prefix
    )
    if len(rows) > 1:
        raise InvalidName(f"{prefix!r} is the start of several version ids; give more digits")
    if not rows:
        return None
    v = version_from_row(catalog, rows[0])
    if not v.id.startswith(prefix):
        raise CorruptObject(f"{prefix!r} led to {v.id}: the catalog's index is damaged")
    return rows[0][0], v


def is_state_name(name: str) -> bool:
    """Whether a tensor row holds training state (a checkpoint's optimizer or scheduler
    tensors, ``@state/...``) rather than a weight of the model."""
    return name.startswith(STATE_PREFIX)


def select_tensor_rows(
    catalog: Catalog, vid: int, keys: Sequence[str] | None = None, *, state: bool = False
) -> list[TensorRow]:
    """The tensor rows of a version's weights, or of the tensors named ``keys`` (plus
    the tensors they are tied to). KeyError for a name the version does not have. The
    training state of a checkpoint (rows named ``@state/...``) only with ``state``."""
    rows = tensor_rows(catalog, vid)
    if not state:
        rows = [r for r in rows if not r.name.startswith(STATE_PREFIX)]
    return pick_rows(rows, keys)


def pick_rows(rows: list[TensorRow], keys: Sequence[str] | None) -> list[TensorRow]:
    """Of a version's tensor rows, those named ``keys`` and those they are tied to (all
    of them when ``keys`` is None). KeyError for a name the version does not have."""
    if keys is None:
        return rows
    by_name = {r.name: r for r in rows}
    missing = [k for k in keys if k not in by_name]
    if missing:
        raise KeyError(f"no tensor named {missing[0]!r} in this version")
    wanted = {k: by_name[k] for k in keys}
    for k in list(wanted):  # a tied tensor needs the tensor it points to
        t = wanted[k].tie
        if t is not None and t not in wanted:
            wanted[t] = by_name[t]
    return list(wanted.values())
