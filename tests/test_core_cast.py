"""modelgit._core.cast and mean_cast against the numpy reference (tests/reference.py) and
against torch itself, whose CPU casts docs/FORMAT.md section 3.3 specifies: every float
pair, exhaustive over 16-bit sources, random bit patterns (NaN payloads, subnormals,
infinities) over 32- and 64-bit ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelgit import _core
from reference import cast_ref, linear_exact_ref, mean_cast_ref

DTYPES = ["float64", "float32", "float16", "bfloat16"]
SIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
TORCH = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
         "bfloat16": torch.bfloat16}  # fmt: skip
SPECIAL = {
    "float32": [0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFBFFFFF,
                0x00000001, 0x80000001, 0x007FFFFF, 0x7F7FFFFF, 0x477FF000, 0x477FEFFF,
                0x3F808000, 0x3F818000, 0x3F80C000, 0x00000000, 0x80000000, 0x33000000],
    "float64": [0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000001,
                0xFFF0000000000001, 0x0000000000000001, 0x47EFFFFFF0000000,
                0x47EFFFFFE0000000, 0x3FF0000010000000, 0x3FF0000030000000,
                0x36A0000000000000, 0x8000000000000000],
}  # fmt: skip


def words(dtype: str, seed: int, n: int = 1 << 18) -> np.ndarray:
    """Every pattern of a 16-bit dtype; random patterns, random finite values of many
    magnitudes and the special patterns above for 32 and 64 bits."""
    u = UINT[SIZE[dtype]]
    if SIZE[dtype] == 2:
        return np.random.default_rng(seed).permutation(np.arange(1 << 16, dtype=u))
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, np.iinfo(u).max, n, dtype=u, endpoint=True)
    lo, hi = (-45, 40) if dtype == "float32" else (-330, 310)
    with np.errstate(all="ignore"):
        vals = rng.standard_normal(n) * 10.0 ** rng.integers(lo, hi, n)
        vals = vals.astype(np.float32 if dtype == "float32" else np.float64).view(u)
    return np.concatenate([bits, vals, np.array(SPECIAL[dtype], dtype=u)])


def as_torch(w: np.ndarray, dtype: str) -> torch.Tensor:
    signed = {2: np.int16, 4: np.int32, 8: np.int64}[w.itemsize]
    return torch.from_numpy(w.view(signed).copy()).view(TORCH[dtype])


def torch_bits(t: torch.Tensor) -> np.ndarray:
    return t.contiguous().view(torch.uint8).numpy().view(UINT[t.element_size()])


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_cast_matches_reference_and_torch(src: str, dst: str, kernel_copy: str) -> None:
    w = words(src, 1)
    got = np.frombuffer(_core.cast(w, src, dst), dtype=UINT[SIZE[dst]])
    assert np.array_equal(got, cast_ref(w, src, dst))
    assert np.array_equal(got, torch_bits(as_torch(w, src).to(TORCH[dst])))


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_mean_cast_matches_reference_and_torch(src: str, dst: str, k: int) -> None:
    n = 1 << 16
    ws = [words(src, 10 + j)[:n] for j in range(k)]
    got = np.frombuffer(_core.mean_cast(ws, src, dst), dtype=UINT[SIZE[dst]])
    assert np.array_equal(got, mean_cast_ref(ws, src, dst))
    ts = [as_torch(x, src) for x in ws]
    acc = ts[0].to(torch.float32)
    for t in ts[1:]:
        acc = acc + t.to(torch.float32)
    assert np.array_equal(got, torch_bits((acc / k).to(TORCH[dst])))


def test_mean_of_opposite_infinities_and_nans() -> None:
    """inf + -inf is 0xFFC00000 on every host; a NaN operand wins quieted, the last one
    when both are NaN."""
    a = np.array([0x7F800000, 0x7F800001, 0x7FC00001, 0x3F800000], dtype=np.uint32)
    b = np.array([0xFF800000, 0x3F800000, 0xFF800002, 0xFF800002], dtype=np.uint32)
    got = np.frombuffer(_core.mean_cast([a, b], "float32", "float32"), dtype=np.uint32)
    assert [hex(v) for v in got] == ["0xffc00000", "0x7fc00001", "0xffc00002", "0xffc00002"]


@pytest.mark.parametrize("threads", [1, 3])
def test_out_and_threads(threads: int) -> None:
    x = np.random.default_rng(2).standard_normal(100_003).astype(np.float32)
    out = bytearray(x.size * 2)
    res = _core.cast(x, "float32", "bfloat16", out=out, threads=threads)
    assert res is out and bytes(out) == cast_ref(x, "float32", "bfloat16").tobytes()
    same = x.copy()
    _core.cast(same, "float32", "float32", out=same)  # in place when nothing changes
    assert np.array_equal(same, x)
    assert len(_core.cast(b"", "float16", "float64")) == 0


def test_bad_arguments_raise_value_errors() -> None:
    x = np.zeros(8, dtype=np.float32)
    with pytest.raises(ValueError, match="dtype must be"):
        _core.cast(x, "float32", "int8")
    with pytest.raises(ValueError, match="not a multiple of the element size"):
        _core.cast(b"\x00" * 7, "float32", "float16")
    with pytest.raises(ValueError, match="expected exactly 16"):
        _core.cast(x, "float32", "float16", out=bytearray(15))
    with pytest.raises(ValueError, match="must not overlap"):
        _core.cast(x, "float32", "bfloat16", out=memoryview(x.view(np.uint8))[:16])
    with pytest.raises(ValueError, match="same length"):
        _core.mean_cast([x, x[:4]], "float32", "float32")
    with pytest.raises(ValueError, match="1 to 255"):
        _core.mean_cast([], "float32", "float32")
    with pytest.raises(TypeError):
        _core.cast("text", "float32", "float16")


def finite(dtype: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = torch.from_numpy(rng.standard_normal(n) * 0.05).to(TORCH[dtype])
    return torch_bits(t).copy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_seq_and_anchored_are_torch(dtype: str) -> None:
    """Modes 1 and 2 give the bits torch gives for ``c0*x0 + c1*x1 + c2*x2`` and for
    ``x0 + c1*(x1 - x0) + c2*(x2 - x0)`` (every dtype rounds after each operation)."""
    xs = [finite(dtype, 1 << 16, s) for s in range(3)]
    ts = [as_torch(x, dtype) for x in xs]
    c = [0.3, 0.7, -0.25]
    want = c[0] * ts[0] + c[1] * ts[1] + c[2] * ts[2]
    got = _core.linear_cast(xs, c, dtype, dtype, _core.LINEAR_SEQ)
    assert np.array_equal(np.frombuffer(got, dtype=xs[0].dtype), torch_bits(want))
    want = ts[0] + 0.7 * (ts[1] - ts[0]) + 0.4 * (ts[2] - ts[0])
    got = _core.linear_cast(xs, [0.0, 0.7, 0.4], dtype, dtype, _core.LINEAR_ANCHORED)
    assert np.array_equal(np.frombuffer(got, dtype=xs[0].dtype), torch_bits(want))


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_linear_exact_matches_reference(src: str, dst: str) -> None:
    """Mode 0: the float64 sum rounded once (through float32 below float64), specials
    included: every NaN result is the canonical quiet NaN."""
    xs = [words(src, s, n=1 << 14)[: 1 << 14] for s in (5, 6)]
    c = [0.3, 0.7]
    got = np.frombuffer(
        _core.linear_cast(xs, c, src, dst, _core.LINEAR_EXACT), dtype=UINT[SIZE[dst]]
    )
    assert np.array_equal(got, linear_exact_ref(xs, c, src, dst))


def test_linear_threads_and_errors() -> None:
    xs = [finite("float32", 100_000, s) for s in range(2)]
    one = _core.linear_cast(xs, [0.5, 0.25], "float32", "float32", 1, threads=1)
    assert _core.linear_cast(xs, [0.5, 0.25], "float32", "float32", 1, threads=4) == one
    with pytest.raises(ValueError, match="one coefficient per buffer"):
        _core.linear_cast(xs, [0.5], "float32", "float32")
    with pytest.raises(ValueError, match="mode"):
        _core.linear_cast(xs, [0.5, 0.5], "float32", "float32", 3)
    with pytest.raises(ValueError, match="src_dtype == dst_dtype"):
        _core.linear_cast(xs, [0.5, 0.5], "float32", "bfloat16", _core.LINEAR_SEQ)
    with pytest.raises(ValueError, match="same length"):
        _core.linear_cast([xs[0], xs[1][:10]], [0.5, 0.5], "float32", "float32")
    with pytest.raises(ValueError, match="1 to 255"):
        _core.linear_cast([], [], "float32", "float32")
