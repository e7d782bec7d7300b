"""How much loss a version may take: ``None`` (lossless, the default) or a bound.

* :class:`ErrorBound` — every element within ``abs`` of what was added (or within
  ``rel`` times the tensor's largest magnitude); NaN and Inf kept exactly.
* :class:`LowBit` — the delta to the parent quantized to ``bits`` bits with one scale
  per ``group`` elements (BitDelta-like at 1 bit). Compact, not bounded elementwise.
* :class:`Auto` — try settings from the most to the least aggressive and keep the
  most compact one whose registered test changes by at most ``max_drop``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import UnsupportedInput

__all__ = ["Tolerance", "ErrorBound", "LowBit", "Auto", "parse_tolerance", "tolerance_from_json"]


@dataclass(frozen=True)
class ErrorBound:
    abs: float | None = None
    rel: float | None = None

    def __post_init__(self) -> None:
        if (self.abs is None) == (self.rel is None):
            raise UnsupportedInput("ErrorBound takes exactly one of abs= or rel=")
        v = self.abs if self.abs is not None else self.rel
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise UnsupportedInput(f"ErrorBound bound must be a finite number > 0, not {v!r}")

    def eps_for(self, max_abs: float) -> float | None:
        """The absolute bound for a tensor whose largest finite magnitude is max_abs."""
        if self.abs is not None:
            return float(self.abs)
        eps = float(self.rel) * max_abs  # type: ignore[operator]
        return eps if eps > 0 and math.isfinite(eps) else None

    def to_json(self) -> dict:
        return {"kind": "error_bound", "abs": self.abs, "rel": self.rel}

    def __str__(self) -> str:
        return f"abs<={self.abs:g}" if self.abs is not None else f"rel<={self.rel:g}"


@dataclass(frozen=True)
class LowBit:
    bits: int = 4
    group: int = 64

    def __post_init__(self) -> None:
        if self.bits not in (1, 2, 4, 8):
            raise UnsupportedInput(f"LowBit bits must be 1, 2, 4 or 8, not {self.bits!r}")
        if not isinstance(self.group, int) or not 1 <= self.group <= 1 << 20:
            raise UnsupportedInput(
                f"LowBit group must be an integer in [1, 2**20], not {self.group!r}"
            )

    def to_json(self) -> dict:
        return {"kind": "lowbit", "bits": self.bits, "group": self.group}

    def __str__(self) -> str:
        return f"{self.bits}-bit/g{self.group}"


@dataclass(frozen=True)
class Auto:
    """Pick the most compact candidate whose test metric moves by at most ``max_drop``.

    ``test`` is an import path ``"pkg.module:function"`` (or a callable) called with the
    decoded state_dict; it returns a number (or a bool). ``higher_is_better`` says which
    way is a drop: for a loss, pass False. ``guard=True`` also requires that every test
    registered on the model (with a threshold; ``register_test``) still passes on the
    candidate; with ``test=None`` the registered tests alone decide. ``max_drop`` is
    absolute, in the metric's units,
    or, with ``relative=True``, a fraction of the lossless model's metric (MGit's
    relative accuracy drop: ``max_drop=0.01`` allows 1% of it). On the command line:
    ``--tolerance auto:pkg.mod:fn:0.005`` (absolute) or ``auto:pkg.mod:fn:1%``
    (relative), ``auto-lower:...`` for a metric where lower is better.
    """

    test: object
    max_drop: float = 0.005
    higher_is_better: bool = True
    candidates: tuple = field(
        default=(
            LowBit(1, 64),
            LowBit(2, 64),
            LowBit(4, 64),
            ErrorBound(abs=1e-3),
            LowBit(8, 64),
            ErrorBound(abs=1e-4),
            ErrorBound(abs=1e-5),
        )
    )

    relative: bool = False
    guard: object = None  # True: the tests registered on the model must still pass
    # (``Repository.add``/``commit`` turn it into a callable(state_dict) -> bool)

    def __post_init__(self) -> None:
        if not (isinstance(self.max_drop, (int, float)) and self.max_drop >= 0):
            raise UnsupportedInput("Auto max_drop must be a number >= 0")
        if self.test is None and self.guard is None:
            raise UnsupportedInput("Auto needs a test, a guard (guard=True), or both")

    def allowed_drop(self, reference: float) -> float:
        """The drop allowed from the lossless model's metric ``reference``."""
        return self.max_drop * abs(reference) if self.relative else self.max_drop

    def to_json(self) -> dict:
        test = self.test if isinstance(self.test, str) else getattr(self.test, "__qualname__", "")
        return {
            "kind": "auto",
            "test": test,
            "max_drop": self.max_drop,
            "relative": self.relative,
            "higher_is_better": self.higher_is_better,
            "guard": "registered tests" if self.guard is not None else None,
        }


Tolerance = ErrorBound | LowBit


def parse_tolerance(spec: object) -> ErrorBound | LowBit | Auto | None:
    """Accept None, a tolerance object, or a string like ``abs=1e-4``, ``rel=1e-3``,
    ``bits=4,group=64`` (the command line's ``--tolerance``)."""
    if spec is None or isinstance(spec, (ErrorBound, LowBit, Auto)):
        return spec
    if isinstance(spec, dict):
        return tolerance_from_json(spec)
    if not isinstance(spec, str):
        raise UnsupportedInput(f"tolerance must be None, ErrorBound, LowBit or Auto, not {spec!r}")
    if spec.strip().startswith(("auto:", "auto-lower:")):
        return _parse_auto(spec.strip())
    fields: dict[str, str] = {}
    for part in spec.replace(" ", "").split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise UnsupportedInput(
                f"bad tolerance {spec!r}: write abs=1e-4, rel=1e-3 or bits=4,group=64"
            )
        fields[key] = value
    try:
        if set(fields) <= {"abs"} and fields:
            return ErrorBound(abs=float(fields["abs"]))
        if set(fields) <= {"rel"} and fields:
            return ErrorBound(rel=float(fields["rel"]))
        if "bits" in fields and set(fields) <= {"bits", "group"}:
            return LowBit(int(fields["bits"]), int(fields.get("group", 64)))
    except ValueError:
        pass
    raise UnsupportedInput(f"bad tolerance {spec!r}: write abs=1e-4, rel=1e-3 or bits=4,group=64")


def _parse_auto(spec: str) -> Auto:
    """``auto:MODULE:FUNCTION:MAX_DROP`` (absolute) or ``...:N%`` (relative);
    ``auto-lower:`` for a metric where lower is better (a loss)."""
    kind, _, rest = spec.partition(":")
    path, sep, drop = rest.rpartition(":")
    if not sep or ":" not in path:
        raise UnsupportedInput(
            f"bad tolerance {spec!r}: write auto:mypkg.tests:accuracy:0.005 (an absolute "
            "drop of the test's metric) or auto:mypkg.tests:accuracy:1% (relative)"
        )
    relative = drop.endswith("%")
    try:
        value = float(drop.rstrip("%")) / (100 if relative else 1)
    except ValueError:
        raise UnsupportedInput(f"bad tolerance {spec!r}: {drop!r} is not a number") from None
    return Auto(path, value, higher_is_better=kind == "auto", relative=relative)


def tolerance_from_json(d: dict) -> ErrorBound | LowBit:
    kind = d.get("kind")
    if kind == "error_bound":
        return ErrorBound(abs=d.get("abs"), rel=d.get("rel"))
    if kind == "lowbit":
        return LowBit(int(d["bits"]), int(d["group"]))
    raise UnsupportedInput(f"unknown tolerance {d!r}")
