"""Per-chunk storage decisions: dedup, which base and predictor, which codec.

Python owns this policy; the codecs (``codec``) and the native core do the work.
Lossless (no tolerance): the smallest of every applicable delta (identity against the
aligned parent chunk, the parent chunk times a common factor (a second moment decaying
between checkpoints), a cast of it, the mean of several parents or a linear combination
fitted to the chunk (``linear_fit``), each but the last two optionally with a zero mask
for pruning) and, when deltas do poorly, standalone coding. Lossy: an
error-bounded or low-bit delta against the same prediction, unless the chunk is an
exact duplicate, or lossy coding would not beat storing it raw.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import codec
from .._native import _core
from ..codec import lossy
from ..codec.predict import predict
from ..dtypes import DType, by_name
from ..tolerance import ErrorBound, LowBit
from .linear_fit import fit_linear, fit_scale
from .store import ChunkStore, chunk_id

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BasePlan",
    "LinearOnly",
    "plan_bases",
    "ChunkJob",
    "encode_lossless",
    "store_chunk",
    "anchor",
    "MASK_MIN_ZEROS",
]

_STANDALONE_RETRY = 0.9  # a delta larger than this share of raw is checked against standalone
STANDALONE_SLACK = 1.03  # standalone is tried where its sampled estimate is below this x the delta
# (the MiniLM zoo: 87 trials instead of 146 at 1.1, and no chunk stored larger; the
# estimate came within 0.95-1.04x of the standalone size where that won)
MASK_MIN_ZEROS = 1 / 16  # try a zero mask when this share of the chunk is exactly zero
LINEAR_MISSES = 4  # chunks without a hit after which a write stops fitting


@dataclass(frozen=True)
class BasePlan:
    """Where chunk i of a tensor may take its prediction from."""

    predictor: int
    base_dtype: DType
    chunk_bases: list[list[bytes]]  # per chunk: base chunk ids
    # what the chunks so far said of linear plans (hits and misses), shared by the
    # tensors of one write
    seen: dict[str, int] = field(default_factory=dict, compare=False)

    def worth_trying(self) -> bool:
        """False once linear fits missed on ``LINEAR_MISSES`` chunks of the model and hit
        on none: the model is no merge of these bases (chunks race; a few extra fits are
        harmless)."""
        return self.seen.get("hit", 0) > 0 or self.seen.get("miss", 0) < LINEAR_MISSES


class LinearOnly(list):
    """A group of base rows for :func:`plan_bases` to fit a linear combination of, but
    not to average (a weighted merge: its mean predicts nothing)."""


def _usable(rows: Iterable[Any], shape: tuple[int, ...], chunk_elems: int) -> list[tuple]:
    out = []
    for r in rows:
        if r is not None and r.tie is None and tuple(r.shape) == tuple(shape):
            rd = by_name(r.dtype)
            if r.chunk_bytes == chunk_elems * rd.size:
                out.append((r, rd))
    return out


def plan_bases(
    name: str,
    dtype: DType,
    shape: tuple[int, ...],
    chunk_elems: int,
    parents: list[dict],
    choices: Sequence[Sequence[Any]] | None = None,
    fits: dict[str, int] | None = None,
) -> list[BasePlan]:
    """Candidate predictions for a tensor. By default: a delta (or a cast) against the
    first parent's same-named tensor, and the mean of the parents' same-named tensors
    (a merge). ``choices`` replaces them with groups of stored tensor rows chosen for
    this tensor: one row, a delta or a cast against it; several, their mean and a
    linear combination fitted chunk by chunk. ``fits``: the linear fits' record, shared
    by the tensors of one write."""
    if choices is None:
        rows = _usable((p.get(name) for p in parents), shape, chunk_elems)
        groups = [[r] for r, _ in rows[:1]]
        if len(rows) >= 2:
            fd = rows[0][1]
            groups.append([r for r, d in rows if d == fd])
    else:
        groups = [
            type(g)(r for r, _ in _usable(g, shape, chunk_elems)) if isinstance(g, LinearOnly)
            else [r for r, _ in _usable(g, shape, chunk_elems)]
            for g in choices
        ]  # fmt: skip
    plans: list[BasePlan] = []
    seen: set[tuple[bytes, ...]] = set()
    for group in groups:
        key = tuple(sorted(r.chunks for r in group))  # a group in another order: the same
        if not group or key in seen:
            continue
        seen.add(key)
        rd = by_name(group[0].dtype)
        if len(group) == 1:
            if rd == dtype:
                plans.append(BasePlan(codec.IDENT, rd, [[c] for c in group[0].chunk_ids]))
            elif rd.is_float and dtype.is_float:
                plans.append(BasePlan(codec.CAST, rd, [[c] for c in group[0].chunk_ids]))
        elif rd.is_float and dtype.is_float and all(r.dtype == group[0].dtype for r in group):
            per_chunk = [list(ids) for ids in zip(*(r.chunk_ids for r in group), strict=True)]
            if not isinstance(group, LinearOnly):
                plans.append(BasePlan(codec.MEAN, rd, per_chunk))
            if rd == dtype:  # a weighted average, task arithmetic: fitted chunk by chunk
                plans.append(BasePlan(codec.LINEAR, rd, per_chunk, {} if fits is None else fits))
    return plans


@dataclass
class ChunkJob:
    data: memoryview
    dtype: DType
    index: int
    plans: list[BasePlan]
    tolerance: ErrorBound | LowBit | None = None
    eps: float | None = None  # absolute bound for ErrorBound


def anchor(store: ChunkStore, cid: bytes, max_depth: int) -> bytes | None:
    """The chunk a new delta may take as its base instead of ``cid``: ``cid`` itself if
    it is shallower than ``max_depth``, else the first of its same-layout bases (a
    byte-planes delta's base: same dtype, same length) that is. So a version chain
    becomes a star around its anchor instead of growing past the bound: every chunk
    stays within ``max_depth`` decodes of a standalone one. None if there is none."""
    row = store.row(cid)
    while row is not None and row.depth >= max_depth:
        if row.codec != codec.PLANES or not row.bases:
            return None
        row = store.row(row.bases[0])
    return None if row is None else row.id


def _bases(
    store: ChunkStore, ids: list[bytes], max_depth: int, size: int
) -> tuple[list[bytes], list[memoryview]] | None:
    """The chunks to code against and their decoded bytes: a single base re-anchored
    where it is too deep, several bases (a merge's parents) only as they are; None if
    one is missing, too deep or does not hold ``size`` bytes."""
    chosen, out = [], []
    for b in ids:
        if len(ids) == 1:
            a = anchor(store, b, max_depth)
        else:
            r = store.row(b)
            a = b if r is not None and r.depth < max_depth else None
        row = None if a is None else store.row(a)
        if row is None or row.raw_length != size:
            return None
        chosen.append(a)
        out.append(memoryview(store.get(a)))
    return chosen, out


ESTIMATE_SAMPLE = 4096  # elements on which the plans' residuals are priced
ESTIMATE_SLACK = 1.02  # plans priced within this factor of the cheapest are all encoded


@dataclass
class _Option:
    """One way to code the chunk: a plan's prediction (a linear one fitted), with or
    without a zero mask, and its estimated cost (bits per element on a sample)."""

    predictor: int
    ids: list[bytes]
    bases: list[memoryview]
    base_dtype: DType
    mask: bool
    bits: float
    coeffs: tuple[float, ...] = ()


def _strided(buf: memoryview, size: int, n: int) -> np.ndarray:
    import numpy as np

    words = np.frombuffer(buf, dtype=f"<u{size}", count=n)
    step = max(1, n // ESTIMATE_SAMPLE)
    return np.ascontiguousarray(words[::step][:ESTIMATE_SAMPLE])


def _price(y: np.ndarray, pred: np.ndarray, masks: Sequence[bool] = (False,)) -> list[float]:
    """Mean bits per element of the residual, log2(1 + |difference of the patterns|),
    for each of ``masks``: with a zero mask, the zero elements cost only their share of
    the mask (``_core.residual_bits``: one pass, the GIL released)."""
    plain, masked = _core.residual_bits(y, pred, y.dtype.itemsize)
    return [masked if mask else plain for mask in masks]


def _options(
    store: ChunkStore, job: ChunkJob, max_depth: int, try_mask: bool, y: np.ndarray
) -> list[_Option]:
    """The ways to code the chunk, priced on its sample ``y`` (``_strided``)."""
    import numpy as np

    data, dtype = job.data, job.dtype
    n = len(data) // dtype.size
    out: list[_Option] = []
    # (mask, sampled prediction) -> the option priced first with it; the sample is one
    # word in 64: a shortcut taken on it is checked on the whole chunk first
    predicted: dict[tuple[bool, bytes], _Option] = {}
    whole: dict[tuple, memoryview | None] = {}  # an option's prediction of the chunk, once

    def prediction(o: _Option) -> memoryview | None:
        key = (o.predictor, tuple(o.ids), o.base_dtype.name, o.coeffs)  # (not the mask)
        if key not in whole:
            whole[key] = _full_prediction(o, dtype, n)
        return whole[key]

    checked = 0  # options before this one were checked for an exact prediction
    for plan in job.plans:
        if any(o.bits == 0.0 and _reproduces(data, dtype, o, prediction(o))
               for o in out[checked:]):  # fmt: skip
            break  # a prediction that reproduces the whole chunk: none can do better
        checked = len(out)
        if plan.predictor == codec.LINEAR and not plan.worth_trying():
            continue
        got = _bases(store, plan.chunk_bases[job.index], max_depth, n * plan.base_dtype.size)
        if got is None:
            continue
        ids, bases = got
        predictor, coeffs = plan.predictor, ()
        if plan.predictor == codec.LINEAR:
            fit = fit_linear(data, dtype, bases)
            if fit is None or not fit.useful:
                if fit is None or fit.single_bits >= 1:  # (not a chunk a base holds all
                    plan.seen["miss"] = plan.seen.get("miss", 0) + 1  # but exactly)
                continue
            plan.seen["hit"] = plan.seen.get("hit", 0) + 1
            predictor, coeffs = fit.predictor, fit.coeffs
            ids, bases = [ids[i] for i in fit.order], [bases[i] for i in fit.order]
        sampled = [_strided(b, plan.base_dtype.size, n) for b in bases]
        plain = predictor == codec.IDENT and plan.base_dtype == dtype
        scaled = _scaled_option(y, sampled[0], dtype, ids, bases) if plain else None
        if plain and scaled is None and not try_mask and len(job.plans) == 1:
            # the one way to code it (a fine-tune's chunk, mostly): nothing to price
            out.append(_Option(predictor, ids, bases, dtype, False, 0.0))
            continue
        try:
            pred = predict(predictor, [memoryview(b).cast("B") for b in sampled],
                                 plan.base_dtype, dtype, len(y), coeffs=coeffs)  # fmt: skip
        except ValueError:
            continue
        p = np.frombuffer(pred, dtype=y.dtype)
        masks = (False, True) if try_mask and predictor != codec.LINEAR else (False,)
        key = p.tobytes()
        for mask, bits in zip(masks, _price(y, p, masks), strict=True):
            o = _Option(predictor, ids, bases, plan.base_dtype, mask, bits, coeffs)
            # an earlier plan whose prediction is this one's on the whole chunk (a fitted
            # merge that is the mean) codes the chunk alike, with no coefficients to
            # store: that one
            first = predicted.setdefault((mask, key), o)
            if first is o or not _same_prediction(prediction(first), prediction(o)):
                out.append(o)
        if scaled is not None:
            out.append(scaled)
    return out


def _full_prediction(o: _Option, dtype: DType, n: int) -> memoryview | None:
    """The option's prediction of the whole chunk (None if it cannot be made)."""
    if o.predictor == codec.IDENT and o.base_dtype == dtype:
        return memoryview(o.bases[0]).cast("B")
    try:
        return memoryview(predict(o.predictor, [memoryview(b).cast("B") for b in o.bases],
                                  o.base_dtype, dtype, n, coeffs=o.coeffs)).cast("B")  # fmt: skip
    except ValueError:
        return None


def _reproduces(data: memoryview, dtype: DType, o: _Option, pred: memoryview | None) -> bool:
    """Whether ``o``, whose prediction of the whole chunk is ``pred``, predicts every
    element exactly (with its zero mask: every nonzero one), so that no other option
    can code it in fewer bytes."""
    import numpy as np

    n = len(data) // dtype.size
    if pred is None:
        return False
    words = np.frombuffer(data, dtype=f"<u{dtype.size}", count=n)
    guess = np.frombuffer(pred, dtype=f"<u{dtype.size}", count=n)
    same = words == guess
    if o.mask:
        same |= words == 0
    return bool(same.all())


def _same_prediction(pa: memoryview | None, pb: memoryview | None) -> bool:
    """Whether two predictions of the whole chunk are alike (the options' masks are
    the same: they share a key of ``_options``)."""
    if pa is None or pb is None:
        return False
    import numpy as np

    return bool(np.array_equal(np.frombuffer(pa, np.uint8), np.frombuffer(pb, np.uint8)))


def _scaled_option(
    y: np.ndarray, base: np.ndarray, dtype: DType, ids: list[bytes], bases: list[memoryview]
) -> _Option | None:
    """The parent chunk times a common factor (``fit_scale``), as a one-base linear
    prediction, where the chunk drifted from its parent by such a factor."""
    import numpy as np

    c = fit_scale(y, base, dtype)
    if c is None:
        return None
    try:
        pred = predict(codec.LINEAR, [memoryview(base).cast("B")], dtype, dtype, len(y),
                       coeffs=(c,))  # fmt: skip
    except ValueError:
        return None
    (bits,) = _price(y, np.frombuffer(pred, dtype=y.dtype))
    return _Option(codec.LINEAR, ids, bases, dtype, False, bits, (c,))


def _standalone_estimate(y: np.ndarray, dtype: DType, n: int) -> float:
    """Bytes standalone coding of a chunk of ``n`` elements would take, about: the
    order-0 entropy of each byte plane of its sample ``y`` (``_strided``; floats rotated
    left by one bit, as the codec does), summed (``_core.plane_entropy``)."""
    return _core.plane_entropy(y, dtype.size, dtype.is_float) / 8 * n


def _encode(data: memoryview, dtype: DType, o: _Option, delta: int) -> codec.Encoded:
    if o.predictor == codec.IDENT and not o.mask:
        rotate = dtype.is_float and delta != _core.DELTA_OSUB
        return codec.encode_planes(data, dtype.size, rotate, o.bases[0], o.ids[0], delta)
    return codec.encode_predicted(data, dtype, o.predictor, o.bases, o.ids, o.base_dtype,
                                  delta, use_mask=o.mask, coeffs=o.coeffs)  # fmt: skip


def encode_lossless(store: ChunkStore, job: ChunkJob, max_depth: int) -> codec.Encoded:
    """The smallest lossless encoding of the chunk among its plans' deltas (each with
    and without a zero mask where the chunk is sparse) and standalone coding. The
    deltas are priced on a sample first; only the cheapest (and those within
    ``ESTIMATE_SLACK`` of it) are encoded. Standalone coding is tried where the best
    delta is poor, or where the sampled byte-plane entropy says standalone may win."""
    import numpy as np

    data, dtype = job.data, job.dtype
    n = len(data) // dtype.size
    y = _strided(data, dtype.size, n)
    # a zero mask is worth a try where the sample says the chunk is sparse
    try_mask = np.count_nonzero(y == 0) >= MASK_MIN_ZEROS * len(y)
    # floats: the integer difference of value-ordered patterns (small for small changes
    # of either sign); other types: XOR of the bit patterns
    delta = _core.DELTA_OSUB if dtype.is_float else _core.DELTA_XOR
    options = _options(store, job, max_depth, try_mask, y)
    cheapest = min((o.bits for o in options), default=0.0)
    candidates = [_encode(data, dtype, o, delta) for o in options
                  if o.bits <= ESTIMATE_SLACK * cheapest + 0.005]  # fmt: skip
    best = min(candidates, key=lambda e: len(e.payload), default=None)
    # standalone: where deltas do poorly, or where the order-0 entropy of the sample's
    # byte planes (what standalone coding nearly reaches) says it may win (a prune)
    if (
        best is None
        or len(best.payload) > _STANDALONE_RETRY * len(data)
        or _standalone_estimate(y, dtype, n) < STANDALONE_SLACK * len(best.payload)
    ):
        alt = codec.encode_standalone(data, dtype.size, dtype.is_float, matches=best is None)
        if best is None or len(alt.payload) < len(best.payload):
            best = alt
    return best


def _lossy(store: ChunkStore, job: ChunkJob, max_depth: int) -> tuple[codec.Encoded, bytes] | None:
    data, dtype = job.data, job.dtype
    n = len(data) // dtype.size
    predictor, bases, ids, base_dtype = codec.ZERO, [], [], dtype
    for plan in job.plans:
        if plan.predictor in (codec.IDENT, codec.CAST):
            got = _bases(store, plan.chunk_bases[job.index], max_depth, n * plan.base_dtype.size)
            if got is not None:
                predictor, (ids, bases) = plan.predictor, got
                base_dtype = plan.base_dtype
                break
    tol = job.tolerance
    if isinstance(tol, ErrorBound):
        if job.eps is None:
            return None
        params, payload, decoded = lossy.encode_qdelta(
            data, dtype, job.eps, predictor, bases, ids, base_dtype
        )
        enc = codec.Encoded(codec.QDELTA, params, payload, tuple(ids))
    else:
        assert isinstance(tol, LowBit)
        params, payload, decoded = lossy.encode_lowbit(
            data, dtype, tol.bits, tol.group, predictor, bases, ids, base_dtype
        )
        enc = codec.Encoded(codec.LOWBIT, params, payload, tuple(ids))
    if len(payload) >= len(data):
        return None  # storing it exactly is smaller
    return enc, decoded


def store_chunk(store: ChunkStore, job: ChunkJob, max_depth: int) -> tuple[bytes, str]:
    """Store one chunk; return (chunk id, how: dedup, delta, standalone, lossy, or
    lossy_delta: lossy and coded against a base)."""
    cid = chunk_id(job.data)
    if store.row(cid) is not None:
        return cid, "dedup"
    exact = None
    if job.tolerance is not None and job.dtype.name in lossy.KERNEL_DTYPES:
        got = _lossy(store, job, max_depth)
        if got is not None:
            enc, decoded = got
            if any(p.predictor in (codec.CAST, codec.MEAN, codec.LINEAR) for p in job.plans):
                # an exact cast or merge usually costs next to nothing: keep it if smaller
                exact = encode_lossless(store, job, max_depth)
            if exact is None or len(exact.payload) > len(enc.payload):
                lcid = chunk_id(decoded)
                if store.row(lcid) is None:
                    store.put(memoryview(decoded), enc, lcid, lossy=True)
                    return lcid, "lossy_delta" if enc.bases else "lossy"
                return lcid, "dedup"
    enc = exact if exact is not None else encode_lossless(store, job, max_depth)
    store.put(job.data, enc, cid)
    return cid, "delta" if enc.bases else "standalone"
