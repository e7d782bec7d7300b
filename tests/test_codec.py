"""Chunk codecs (modelgit.codec): round trips of every codec, and hostile payloads."""

from __future__ import annotations

import numpy as np
import pytest

from modelgit import codec
from modelgit._native import _core
from modelgit.codec import lossy
from modelgit.dtypes import by_name
from modelgit.errors import CorruptObject

DTYPES = ["float32", "bfloat16", "float16", "float64", "int64", "uint8"]


def words(rng: np.random.Generator, n: int, dtype: str, scale: float = 0.05) -> np.ndarray:
    """Raw little-endian bytes of n realistic elements of ``dtype``, specials included."""
    import torch

    dt = by_name(dtype)
    if dt.is_float:
        x = torch.from_numpy(rng.standard_normal(n) * scale).to(dt.torch)
        if n > 8:
            x[1], x[3], x[5], x[7] = float("nan"), float("inf"), -0.0, -float("inf")
    else:
        x = torch.from_numpy(rng.integers(0, 100, n)).to(dt.torch)
    return x.contiguous().view(torch.uint8).numpy().copy()


def perturb(rng: np.random.Generator, raw: np.ndarray, dtype: str) -> np.ndarray:
    import torch

    dt = by_name(dtype)
    t = torch.from_numpy(raw.copy()).view(dt.torch)
    if dt.is_float:
        noise = torch.from_numpy(rng.standard_normal(t.numel()) * 1e-3).to(dt.torch)
        t = t + t * noise
    else:
        t = t + torch.from_numpy(rng.integers(0, 2, t.numel())).to(dt.torch)
    return t.contiguous().view(torch.uint8).numpy().copy()


def decode(enc: codec.Encoded, n: int, bases: dict[bytes, bytes]) -> bytes:
    out = bytearray(n)
    codec.decode_into(
        enc.codec, enc.params, memoryview(enc.payload), memoryview(out),
        lambda b: memoryview(bases[b]),
    )  # fmt: skip
    return bytes(out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 1000, 70_001])
def test_standalone_round_trip(dtype: str, n: int) -> None:
    dt = by_name(dtype)
    raw = words(np.random.default_rng(n), n, dtype)
    enc = codec.encode_standalone(memoryview(raw), dt.size, dt.is_float)
    assert codec.bases_of(enc.codec, enc.params) == []
    assert decode(enc, raw.nbytes, {}) == raw.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("delta", [_core.DELTA_XOR, _core.DELTA_SUB, _core.DELTA_OSUB])
def test_planes_delta_round_trip(dtype: str, delta: int) -> None:
    rng = np.random.default_rng(delta)
    dt = by_name(dtype)
    base = words(rng, 5000, dtype)
    x = perturb(rng, base, dtype)
    bid = b"\x01" * 16
    enc = codec.encode_planes(memoryview(x), dt.size, dt.is_float, memoryview(base), bid, delta)
    assert codec.bases_of(enc.codec, enc.params) == [bid]
    assert decode(enc, x.nbytes, {bid: base.tobytes()}) == x.tobytes()


def test_osub_codes_a_fine_tune_smaller_than_standalone() -> None:
    rng = np.random.default_rng(0)
    base = words(rng, 200_000, "float32")
    x = perturb(rng, base, "float32")
    enc = codec.encode_planes(memoryview(x), 4, False, memoryview(base), b"\1" * 16,
                              _core.DELTA_OSUB)  # fmt: skip
    alone = codec.encode_standalone(memoryview(x), 4, True)
    assert len(enc.payload) < 0.8 * len(alone.payload)


@pytest.mark.parametrize("src,dst", [("float32", "bfloat16"), ("float32", "float16"),
                                     ("bfloat16", "float32"), ("float64", "float32")])  # fmt: skip
def test_cast_prediction_is_nearly_free(src: str, dst: str) -> None:
    import torch

    rng = np.random.default_rng(1)
    base = words(rng, 100_000, src)
    sd, dd = by_name(src), by_name(dst)
    child = torch.from_numpy(base.copy()).view(sd.torch).to(dd.torch)
    child = child.contiguous().view(torch.uint8).numpy().copy()
    bid = b"\x02" * 16
    enc = codec.encode_predicted(memoryview(child), dd, codec.CAST, [memoryview(base)], [bid], sd,
                                 _core.DELTA_OSUB)  # fmt: skip
    assert len(enc.payload) < 200  # an exact cast leaves an all-zero residual
    assert decode(enc, child.nbytes, {bid: base.tobytes()}) == child.tobytes()


def test_mean_prediction_and_zero_mask() -> None:
    import torch

    rng = np.random.default_rng(2)
    f = by_name("float32")
    a, b = words(rng, 50_000, "float32"), words(rng, 50_000, "float32")
    ta, tb = (torch.from_numpy(v.copy()).view(torch.float32) for v in (a, b))
    merged = ((ta + tb) / 2).contiguous().view(torch.uint8).numpy().copy()
    ids = [b"\x03" * 16, b"\x04" * 16]
    bases = {ids[0]: a.tobytes(), ids[1]: b.tobytes()}
    pair = [memoryview(a), memoryview(b)]
    enc = codec.encode_predicted(memoryview(merged), f, codec.MEAN, pair, ids, f, _core.DELTA_OSUB)
    assert codec.bases_of(enc.codec, enc.params) == ids
    assert len(enc.payload) < 300
    assert decode(enc, merged.nbytes, bases) == merged.tobytes()
    pruned = ta.clone()
    pruned[ta.abs() < 0.03] = 0
    raw = pruned.contiguous().view(torch.uint8).numpy().copy()
    masked = codec.encode_predicted(memoryview(raw), f, codec.IDENT, [memoryview(a)], ids[:1], f,
                                    _core.DELTA_OSUB, use_mask=True)  # fmt: skip
    unmasked = codec.encode_planes(memoryview(raw), 4, False, memoryview(a), ids[0],
                                   _core.DELTA_OSUB)  # fmt: skip
    assert len(masked.payload) < len(unmasked.payload) / 4
    assert decode(masked, raw.nbytes, bases) == raw.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "float64"])
@pytest.mark.parametrize("predictor", [codec.LINEAR, codec.LINEAR_SEQ, codec.LINEAR_ANCHORED])
def test_linear_predictors_round_trip(dtype: str, predictor: int) -> None:
    """A weighted average (seq), task arithmetic (anchored) or any combination (exact):
    the record carries the coefficients, decodes bit for bit, and the prediction of the
    form the merge was made in leaves (almost) nothing to code."""
    import torch

    rng = np.random.default_rng(4)
    dt = by_name(dtype)
    base = words(rng, 40_000, dtype)
    a, b = perturb(rng, base, dtype), perturb(rng, base, dtype)
    tz, ta, tb = (torch.from_numpy(v.copy()).view(dt.torch) for v in (base, a, b))
    if predictor == codec.LINEAR_ANCHORED:
        merged, bases, coeffs = tz + 0.7 * (ta - tz) + 0.4 * (tb - tz), [base, a, b], (0, 0.7, 0.4)
    else:
        merged, bases, coeffs = 0.3 * ta + 0.7 * tb, [a, b], (0.3, 0.7)
    raw = merged.contiguous().view(torch.uint8).numpy().copy()
    ids = [bytes([i + 1]) * 16 for i in range(len(bases))]
    enc = codec.encode_predicted(memoryview(raw), dt, predictor, [memoryview(x) for x in bases],
                                 ids, dt, _core.DELTA_OSUB, coeffs=coeffs)  # fmt: skip
    assert codec.bases_of(enc.codec, enc.params) == ids
    assert decode(enc, raw.nbytes, {i: x.tobytes() for i, x in zip(ids, bases, strict=True)}) == (
        raw.tobytes()
    )
    if predictor != codec.LINEAR:  # torch's own rounding: exact but for the specials
        assert len(enc.payload) < raw.nbytes / 50
    # a record whose coefficients are cut off is corrupt, not misread
    with pytest.raises(CorruptObject, match="parameters"):
        codec.decode_into(enc.codec, enc.params[:-8], memoryview(enc.payload),
                          memoryview(bytearray(raw.nbytes)), lambda i: b"")  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "float64"])
@pytest.mark.parametrize("with_base", [False, True])
def test_qdelta_bound_and_specials(dtype: str, with_base: bool) -> None:
    import torch

    rng = np.random.default_rng(3)
    dt = by_name(dtype)
    base = words(rng, 20_000, dtype)
    x = perturb(rng, base, dtype)
    eps = 1e-4
    pred = codec.IDENT if with_base else codec.ZERO
    bases = [memoryview(base)] if with_base else []
    ids = [b"\x05" * 16] if with_base else []
    params, payload, decoded = lossy.encode_qdelta(memoryview(x), dt, eps, pred, bases, ids, dt)
    out = bytearray(x.nbytes)
    lossy.decode_qdelta(params, memoryview(payload), memoryview(out),
                        codec.FromCallable(lambda b: memoryview(base)), "chunk")  # fmt: skip
    assert bytes(out) == decoded
    got = torch.frombuffer(bytearray(decoded), dtype=torch.uint8).view(dt.torch).double()
    want = torch.from_numpy(x.copy()).view(dt.torch).double()
    fin = torch.isfinite(want)
    assert float((got[fin] - want[fin]).abs().max()) <= eps
    # NaN, Inf and -0.0-like specials come back with their exact bits
    gw = torch.frombuffer(bytearray(decoded), dtype=torch.uint8).view(-1, dt.size)
    ww = torch.from_numpy(x.copy()).view(-1, dt.size)
    assert torch.equal(gw[~fin], ww[~fin])


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_lowbit_decode_matches_encoder(bits: int) -> None:
    rng = np.random.default_rng(bits)
    f = by_name("float32")
    base = words(rng, 10_000, "float32")
    x = perturb(rng, base, "float32")
    params, payload, decoded = lossy.encode_lowbit(memoryview(x), f, bits, 64, codec.IDENT,
                                                   [memoryview(base)], [b"\6" * 16], f)  # fmt: skip
    out = bytearray(x.nbytes)
    lossy.decode_lowbit(params, memoryview(payload), memoryview(out),
                        codec.FromCallable(lambda b: memoryview(base)), "chunk")  # fmt: skip
    assert bytes(out) == decoded
    assert len(payload) < x.nbytes * (bits + 2) / 32


def encodings() -> list[tuple[codec.Encoded, int, dict[bytes, bytes]]]:
    rng = np.random.default_rng(9)
    f = by_name("float32")
    base = words(rng, 3000, "float32")
    x = perturb(rng, base, "float32")
    bid = b"\7" * 16
    bases = {bid: base.tobytes()}
    mv, bv = memoryview(x), memoryview(base)
    q = lossy.encode_qdelta(mv, f, 1e-4, codec.IDENT, [bv], [bid], f)
    lb = lossy.encode_lowbit(mv, f, 4, 64, codec.IDENT, [bv], [bid], f)
    return [
        (codec.encode_standalone(mv, 4, True), x.nbytes, bases),
        (codec.Encoded(codec.ZSTD, b"", codec.entropy.zstd_or_none(bytes(4000)) or b""), 4000, {}),
        (codec.encode_planes(mv, 4, False, bv, bid, _core.DELTA_OSUB), x.nbytes, bases),
        (
            codec.encode_predicted(mv, f, codec.IDENT, [bv], [bid], f, 3, use_mask=True),
            x.nbytes,
            bases,
        ),  # fmt: skip
        (codec.Encoded(codec.QDELTA, q[0], q[1], (bid,)), x.nbytes, bases),
        (codec.Encoded(codec.LOWBIT, lb[0], lb[1], (bid,)), x.nbytes, bases),
        (
            codec.encode_predicted(
                mv, f, codec.LINEAR_ANCHORED, [bv, mv], [bid, bid], f, 3, coeffs=(0.0, 0.5)
            ),
            x.nbytes,
            bases,
        ),  # fmt: skip
    ]


def test_hostile_payloads_raise_corrupt_object() -> None:
    """Truncated, extended or garbled payloads and parameters: CorruptObject or (for
    garbled bytes inside a section) some output, never another exception or a crash.
    Garbled data that still decodes is caught by the chunk id check one layer up."""
    rng = np.random.default_rng(11)
    for enc, n, bases in encodings():
        payload, params = bytes(enc.payload), bytes(enc.params)
        trials = [(payload[:-1], params), (payload + b"\0", params), (payload, params[:-1]),
                  (b"", params), (payload, params + b"\0")]  # fmt: skip
        for _ in range(40):
            p = bytearray(payload)
            for i in rng.integers(0, len(p), 3):
                p[i] ^= int(rng.integers(1, 256))
            trials.append((bytes(p), params))
            q = bytearray(params)
            if q:
                q[int(rng.integers(0, len(q)))] ^= int(rng.integers(1, 256))
            trials.append((payload, bytes(q)))
        for pay, par in trials:
            out = bytearray(n)
            try:
                codec.decode_into(enc.codec, par, memoryview(pay), memoryview(out),
                                  lambda b, bases=bases: memoryview(bases[b]) if b in bases
                                  else (_ for _ in ()).throw(CorruptObject("no base")))  # fmt: skip
            except CorruptObject:
                pass
        with pytest.raises(CorruptObject):
            codec.decode_into(enc.codec, params, memoryview(payload[: len(payload) // 2]),
                              memoryview(bytearray(n)),
                              lambda b, bases=bases: memoryview(bases[b]))  # fmt: skip


def test_unknown_codec_is_corrupt() -> None:
    with pytest.raises(CorruptObject, match="unknown codec"):
        codec.decode_into(77, b"", memoryview(b""), memoryview(bytearray(4)), lambda b: b"")


def section_method(data: bytes, matches: bool = False) -> int:
    return codec.entropy.section(data, matches)[0][0]


def test_section_keeps_the_smallest_coder() -> None:
    """Huffman for order-0 material it codes within 3% of rANS (exponent planes), rANS
    where Huffman's whole bits cost more (two values 70/30), zstd where it finds matches
    (repeated rows), raw for incompressible bytes; every choice decodes exactly."""
    from modelgit.codec.entropy import (
        HUFF_SLACK,
        METHOD_HUFF,
        METHOD_RANS,
        METHOD_RAW,
        METHOD_ZSTD,
        Sections,
    )

    rng = np.random.default_rng(12)
    x = (rng.standard_normal(1 << 18) * 0.05).astype("<f4").view("<u4")
    exponents = ((x << 1 | x >> 31) >> 24).astype(np.uint8).tobytes()
    two = rng.choice(np.array([3, 200], np.uint8), 1 << 18, p=[0.7, 0.3]).tobytes()
    repeats = np.tile(rng.integers(0, 256, 4096, dtype=np.uint8), 64).tobytes()
    noise = rng.integers(0, 256, 1 << 18, dtype=np.uint8).tobytes()
    cases = {METHOD_HUFF: exponents, METHOD_RANS: two, METHOD_ZSTD: repeats, METHOD_RAW: noise}
    for method, data in cases.items():
        sec = codec.entropy.section(data)
        assert sec[0][0] == method
        payload = memoryview(b"".join(sec))
        r = Sections(payload, "test")
        assert bytes(r.section(len(data))) == data
        r.end()
    huff = len(codec.entropy.section(exponents)[1])
    assert huff <= (1 + HUFF_SLACK) * len(_core.rans_encode(exponents))
    # the table would outweigh the gain
    assert section_method(exponents[:200]) not in (METHOD_RANS, METHOD_HUFF)


def _force(coder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the chooser keep rANS (no fast coder in its place) or Huffman (zstd finds
    nothing) on exponent planes, for tests of those decode paths."""
    if coder == "rans":
        monkeypatch.setattr(codec.entropy, "HUFF_SLACK", -1.0)
    else:
        monkeypatch.setattr(codec.entropy, "zstd_or_none", lambda *a, **k: None)


def test_huffman_is_never_kept_over_a_smaller_zstd_frame() -> None:
    """40 values of geometric frequencies with 2% copied blocks: Huffman comes within 3%
    of rANS but not under zstd's frame, which decodes as fast: zstd takes rANS's place."""
    import zstandard

    from modelgit.codec.entropy import HUFF_SLACK, METHOD_ZSTD, PLANE_PARAMS

    rng = np.random.default_rng(0)
    p = 0.8 ** np.arange(40)
    x = rng.choice(40, 100_000, p=p / p.sum()).astype(np.uint8)
    for _ in range(20):
        a, b = rng.integers(0, 99_000, 2)
        x[b : b + 100] = x[a : a + 100]
    data = x.tobytes()
    frame = zstandard.ZstdCompressor(compression_params=PLANE_PARAMS).compress(data)
    huff = _core.huff_estimate(data)
    assert len(frame) < huff <= (1 + HUFF_SLACK) * len(_core.rans_encode(data))
    head, body = codec.entropy.section(data)
    assert head[0] == METHOD_ZSTD and len(body) == len(frame)


@pytest.mark.parametrize("coder", ["huffman", "rans"])
def test_entropy_sections_decode_inside_nested_decodes(
    coder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cast predicted from a base whose planes are Huffman- or rANS-coded, with the
    base decoded on demand in the same thread: each decode keeps its own planes."""
    import torch

    from modelgit.codec.entropy import METHOD_HUFF, METHOD_RANS

    _force(coder, monkeypatch)
    f32, bf16 = by_name("float32"), by_name("bfloat16")
    base = words(np.random.default_rng(13), 1 << 18, "float32")
    benc = codec.encode_standalone(memoryview(base), 4, True)
    assert benc.codec == codec.PLANES
    assert benc.payload[0] == (METHOD_RANS if coder == "rans" else METHOD_HUFF)
    child = torch.from_numpy(base.copy()).view(torch.float32).to(torch.bfloat16)
    child[::3] += 0.5  # a residual that is not all zero
    child_raw = child.contiguous().view(torch.uint8).numpy().copy()
    bid = b"\x05" * 16
    enc = codec.encode_predicted(memoryview(child_raw), bf16, codec.CAST, [memoryview(base)],
                                 [bid], f32, _core.DELTA_OSUB)  # fmt: skip

    def get_base(b: bytes) -> memoryview:
        out = bytearray(base.nbytes)
        codec.decode_into(benc.codec, benc.params, memoryview(benc.payload), memoryview(out),
                          lambda _: memoryview(b""))  # fmt: skip
        return memoryview(out)

    out = bytearray(child_raw.nbytes)
    codec.decode_into(enc.codec, enc.params, memoryview(enc.payload), memoryview(out), get_base)
    assert bytes(out) == child_raw.tobytes()


@pytest.mark.parametrize("coder", ["huffman", "rans"])
def test_damaged_entropy_section_is_corrupt_object(
    coder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelgit.codec.entropy import METHOD_HUFF, METHOD_RANS, Sections

    _force(coder, monkeypatch)
    data = words(np.random.default_rng(14), 1 << 18, "float32")
    enc = codec.encode_standalone(memoryview(data), 4, True)
    assert enc.payload[0] == (METHOD_RANS if coder == "rans" else METHOD_HUFF)
    for cut in (1, 7, 100):
        bad = bytearray(enc.payload)
        length = int.from_bytes(bad[1:5], "little")
        bad[1:5] = (length - cut).to_bytes(4, "little")  # the stream loses its tail
        with pytest.raises(CorruptObject, match="rans stream|huffman section"):
            Sections(memoryview(bytes(bad)), "chunk").section(len(data) // 4)


def section_methods(payload: bytes | bytearray | memoryview) -> list[int]:
    """The method of each section of a payload (planes, or predicted without mask)."""
    from modelgit.codec.entropy import _SECTION

    out, pos = [], 0
    while pos < len(payload):
        method, length = _SECTION.unpack_from(payload, pos)
        out.append(method)
        pos += _SECTION.size + length
    return out


class _StoredBases:
    """Bases over encoded base records; ``planes`` hands a standalone one's planes over
    (as the store's does), or is absent (``with_planes=False``: a Bases written before
    the method existed)."""

    def __init__(self, records: dict[bytes, codec.Encoded], with_planes: bool) -> None:
        self.records = records
        self.asked: list[bytes] = []
        if with_planes:
            self.planes = self._planes

    def into(self, cid: bytes, out: memoryview) -> None:
        enc = self.records[cid]
        codec.decode_into(enc.codec, enc.params, memoryview(enc.payload), out, lambda _: b"")

    def get(self, cid: bytes, slot: int = 0) -> memoryview:
        raise AssertionError("these decodes take their bases through into or planes")

    def _planes(self, cid: bytes, n: int, elem_size: int) -> codec.BasePlanes | None:
        self.asked.append(cid)
        enc = self.records[cid]
        return codec.standalone_planes(enc.params, memoryview(enc.payload), n, elem_size, "b")


@pytest.mark.parametrize("with_planes", [True, False])
@pytest.mark.parametrize("form", ["planes", "ident"])
def test_a_delta_decodes_with_its_standalone_base_in_one_pass(with_planes: bool, form: str):
    """Base and residual both entropy-coded (Huffman, rANS and runs sections, each
    decoded into its own scratch buffer), decoded in one pass where the Bases offers the base's
    planes, else base first: the same bytes."""
    from modelgit.codec.entropy import METHOD_HUFF, METHOD_RANS, METHOD_RUNS

    f32 = by_name("float32")
    rng = np.random.default_rng(21)
    base = words(rng, 1 << 18, "float32")
    x = perturb(rng, base, "float32")
    benc = codec.encode_standalone(memoryview(base), 4, True)
    assert benc.codec == codec.PLANES and benc.payload[0] == METHOD_HUFF
    bid = b"\x07" * 16
    if form == "planes":
        enc = codec.encode_planes(memoryview(x), 4, True, memoryview(base), bid,
                                  _core.DELTA_OSUB)  # fmt: skip
    else:
        enc = codec.encode_predicted(memoryview(x), f32, codec.IDENT, [memoryview(base)],
                                     [bid], f32, _core.DELTA_SUB)  # fmt: skip
    assert {METHOD_RANS, METHOD_RUNS} & set(section_methods(enc.payload))
    bases = _StoredBases({bid: benc}, with_planes)
    out = bytearray(x.nbytes)
    codec.decode_into(enc.codec, enc.params, memoryview(enc.payload), memoryview(out), bases)
    assert bytes(out) == x.tobytes()
    assert bases.asked == ([bid] if with_planes else [])
    # a base that is itself a delta is decoded first, whatever the Bases offers
    denc = codec.encode_planes(memoryview(base), 4, True, memoryview(x), b"\x08" * 16,
                               _core.DELTA_XOR)  # fmt: skip
    assert codec.standalone_planes(denc.params, memoryview(denc.payload), base.nbytes, 4,
                                   "b") is None  # fmt: skip
    assert codec.standalone_planes(benc.params, memoryview(benc.payload), base.nbytes, 2,
                                   "b") is None  # other words  # fmt: skip
    with pytest.raises(ValueError, match="elem_size"):
        codec.standalone_planes(benc.params, memoryview(benc.payload), base.nbytes, 3, "b")
