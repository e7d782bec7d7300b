"""Fitting a linear predictor to a chunk: which combination of its bases, with which
coefficients, reproduces it (a weighted average, a task-arithmetic merge).

A merge tool computes ``0.3*a + 0.7*b`` or ``base + 0.5*(a - base) + 0.5*(b - base)``
with its own rounding, and with coefficients a person typed (0.3, not 0.29999). So the
fit is least squares on a sample of the chunk (float64), in both forms (plain, and
anchored on each base in turn), then the coefficients rounded to 1..7 decimals; every
candidate's prediction of the sample is computed exactly as the decoder will compute it
(``_core.linear_cast`` in its three modes), and the one that reproduces the most
elements bit for bit wins. Where the merge was computed as one of those modes with
short coefficients, the residual is zero almost everywhere; otherwise it is at worst
the rounding noise of the exact float64 combination. A fit that reproduces few
elements exactly beyond what one base does (not ``useful``) is no merge: the writer
does not code against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._native import _core
from ..codec import LINEAR, LINEAR_ANCHORED, LINEAR_PREDICTORS, LINEAR_SEQ
from ..dtypes import DType

if TYPE_CHECKING:
    import numpy as np

__all__ = ["LinearFit", "fit_linear", "fit_scale", "SAMPLE"]

SAMPLE = 8192  # elements of the chunk sampled for the fit and the choice
QUICK = 512  # elements of the first look (and of the search over roundings)
FINALISTS = 3  # candidates judged again on the large sample
MIN_DIFFERING = 16  # sampled elements where the bases differ, to fit on those alone
DIGITS = range(1, 8)  # decimals the coefficients are rounded to, besides the raw fit
USEFUL = 0.5  # a fit whose residual costs at most this share of a single base's


@dataclass(frozen=True)
class LinearFit:
    """A linear predictor for one chunk: its id, the order of the bases (indices into
    the bases given), one coefficient per base, and what the residual costs on the
    sample (mean bits per element: log2(1 + |difference of the bit patterns|)), against
    what it costs against the best single base (small where the bases and the chunk
    agree anyway, as in layers nobody trained)."""

    predictor: int
    order: tuple[int, ...]
    coeffs: tuple[float, ...]
    bits: float
    single_bits: float

    @property
    def useful(self) -> bool:
        """Whether its residual costs at most half what a single base's does."""
        return self.single_bits > 0 and self.bits <= USEFUL * self.single_bits


def _sample(buf: memoryview, dtype: DType, n: int, size: int) -> np.ndarray:
    import numpy as np

    words = np.frombuffer(buf, dtype=f"<u{dtype.size}", count=n)
    if n <= size:
        return words.copy()
    step = n // size
    return np.ascontiguousarray(words[: step * size : step])


def _values(words: np.ndarray, dtype: DType) -> np.ndarray:
    import numpy as np

    if dtype.name == "bfloat16":
        return (words.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    npdt = {"float64": np.float64, "float32": np.float32, "float16": np.float16}[dtype.name]
    return words.view(npdt).astype(np.float64)


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    import numpy as np

    ok = np.isfinite(y) & np.isfinite(x).all(axis=1)
    if ok.sum() < 2 * x.shape[1]:
        return None
    with np.errstate(all="ignore"):
        c, *_ = np.linalg.lstsq(x[ok], y[ok], rcond=None)
    return c if np.isfinite(c).all() else None


def _snapped(c: np.ndarray) -> list[tuple[float, ...]]:
    """The coefficients rounded to 1..7 decimals, then as fitted: on a tie the fewest
    digits win (what a person typed)."""
    out: list[tuple[float, ...]] = []
    for d in DIGITS:
        r = tuple(float(round(float(v), d)) for v in c)
        if r not in out:
            out.append(r)
    raw = tuple(float(v) for v in c)
    return out if raw in out else [*out, raw]


def _forms(xs: np.ndarray, y: np.ndarray) -> list[tuple[int, tuple[int, ...], np.ndarray]]:
    """Least-squares coefficients of each form: plain (exact and torch-style), and
    anchored on each base in turn (y - x_a ~ sum of l_j (x_j - x_a): task arithmetic)."""
    import numpy as np

    k = xs.shape[1]
    forms: list[tuple[int, tuple[int, ...], np.ndarray]] = []
    c = _lstsq(xs, y)
    if c is not None:
        forms += [(LINEAR, tuple(range(k)), c), (LINEAR_SEQ, tuple(range(k)), c)]
    for a in range(k):
        others = [j for j in range(k) if j != a]
        with np.errstate(all="ignore"):
            lam = _lstsq(xs[:, others] - xs[:, [a]], y - xs[:, a])
        if lam is not None:
            forms.append((LINEAR_ANCHORED, (a, *others), np.concatenate([[0.0], lam])))
    return forms


def _bits(a: np.ndarray, b: np.ndarray) -> float:
    """Mean log2(1 + |a - b|) of two arrays of bit patterns (a residual's cost, roughly;
    ``_core.residual_bits``)."""
    return _core.residual_bits(a, b, a.dtype.itemsize)[0]


class _Judge:
    """Predicts a sample of the chunk as the decoder would and prices the residual."""

    def __init__(self, data: memoryview, dtype: DType, bases: list[memoryview], size: int):
        import numpy as np

        n = len(data) // dtype.size
        self.dtype = dtype
        y = _sample(data, dtype, n, SAMPLE)
        b = [_sample(x, dtype, n, SAMPLE) for x in bases]
        # where the bases differ: what a merge changes (rows of an embedding nobody's
        # training touched hold nothing to fit by, and would swamp a plain sample)
        differ = np.flatnonzero(np.any([w != b[0] for w in b[1:]], axis=0))
        keep = differ[:size] if len(differ) >= MIN_DIFFERING else np.arange(min(size, len(y)))
        self.y = np.ascontiguousarray(y[keep])
        self.b = [np.ascontiguousarray(w[keep]) for w in b]
        self.views = [memoryview(w).cast("B") for w in self.b]
        self.single = min(_bits(w, self.y) for w in self.b)

    def xs_y(self) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        return np.stack([_values(w, self.dtype) for w in self.b], 1), _values(self.y, self.dtype)

    def __call__(
        self, predictor: int, order: tuple[int, ...], coeffs: tuple[float, ...]
    ) -> LinearFit:
        import numpy as np

        pred = _core.linear_cast(
            [self.views[i] for i in order],
            list(coeffs),
            self.dtype.name,
            self.dtype.name,
            LINEAR_PREDICTORS[predictor],
            threads=1,
        )
        got = _bits(np.frombuffer(pred, dtype=self.y.dtype), self.y)
        return LinearFit(predictor, order, coeffs, got, self.single)


def fit_linear(data: memoryview, dtype: DType, bases: list[memoryview]) -> LinearFit | None:
    """The best linear predictor of ``data`` (a float chunk) from ``bases`` (chunks of
    the same dtype and length), judged on a sample; None where nothing fits (too few
    finite elements, a singular system).

    A quick look first (the raw fits on a small sample): a merge reproduces most
    elements already; anything else (two fine-tunes that drifted alike) next to none,
    and is not worth the full sample and the search over roundings."""
    if len(bases) < 2 or not len(data) or dtype.name not in _FLOATS:
        return None
    quick = _Judge(data, dtype, bases, QUICK)
    forms = _forms(*quick.xs_y())
    if not forms:
        return None
    raw = [quick(p, o, tuple(map(float, c))) for p, o, c in forms]
    if not min(raw, key=_bits_of).useful:
        return min(raw, key=_bits_of)
    # every form's roundings on the small sample; the few best on the large one
    tried = raw + [quick(p, o, cs) for p, o, c in forms for cs in _snapped(c)[:-1]]
    tried.sort(key=_bits_of)
    judge = _Judge(data, dtype, bases, SAMPLE)
    return min((judge(f.predictor, f.order, f.coeffs) for f in tried[:FINALISTS]), key=_bits_of)


def _bits_of(f: LinearFit) -> float:
    return f.bits


_FLOATS = ("float64", "float32", "float16", "bfloat16")


SCALE_MIN_ELEMS = 256  # sampled elements, nonzero and of one sign in both, to fit a scale
SCALE_MIN_LOG = 1e-3  # |log c| below this: the plain delta already predicts as well


def fit_scale(y: np.ndarray, base: np.ndarray, dtype: DType) -> float | None:
    """The scale ``c`` that best predicts the sampled chunk ``y`` as ``c * base`` in
    the log domain: exp of the median of log(|y| / |base|) over the elements where
    both are finite, nonzero and of one sign (samples as unsigned words). None where
    too few elements qualify or ``c`` is within ``SCALE_MIN_LOG`` of 1.

    What it is for: a tensor that drifts by a common factor between versions, such
    as Adam's second moment between training checkpoints (it decays by beta2 per
    step, and a gradient only adds to it). The integer difference of the ordered bit
    patterns (the plain delta) is a difference of logarithms, so it carries that
    factor in every element; predicting ``c * base`` takes it out."""
    import numpy as np

    if dtype.name not in _FLOATS or len(y) != len(base):
        return None
    if len(y) >= SCALE_QUICK_STEP * 2 * SCALE_MIN_ELEMS:  # a first look at every 4th
        quick = _log_scale(y, base, dtype, SCALE_QUICK_STEP)
        if quick is None or abs(quick) < SCALE_QUICK_LOG:
            return None  # (a fine-tune: the median ratio is 1 within its noise)
    log_c = _log_scale(y, base, dtype)
    if log_c is None or abs(log_c) < SCALE_MIN_LOG:
        return None
    c = float(np.exp(log_c))
    return c if np.isfinite(c) and c > 0 else None


SCALE_QUICK_STEP = 4
SCALE_QUICK_LOG = SCALE_MIN_LOG / 4  # a first look below this: no scale worth fitting


def _log_scale(y: np.ndarray, base: np.ndarray, dtype: DType, step: int = 1) -> float | None:
    """The median of log(|y| / |base|) over the elements 0, step, 2 step, ... where both
    are finite, nonzero and of one sign (``_core.log_ratio_median``); None where fewer
    than ``SCALE_MIN_ELEMS`` elements qualify or it is not finite."""
    import math

    count, m = _core.log_ratio_median(y, base, dtype.name, step)
    return m if count >= SCALE_MIN_ELEMS and math.isfinite(m) else None
