"""Order-0 rANS coder of the native core (_core.rans_*): round trips on both the SSE4.1 and
the portable loops (identical streams and outputs), the stream against the definition
of FORMAT.md 3.0, size against the order-0 entropy, and hostile streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelgit._native import _core

STATES, WORD = 16, 2  # the stream layout of FORMAT.md section 3 (section method 2)


def entropy_bytes(data: bytes) -> float:
    counts = np.bincount(np.frombuffer(data, np.uint8), minlength=256)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum()) * len(data) / 8


def exponent_like(rng: np.random.Generator, n: int) -> bytes:
    """Top bytes of rotated float32 weights: a skewed distribution over ~30 values."""
    x = (rng.standard_normal(n) * 0.05).astype("<f4").view("<u4")
    return ((x << 1 | x >> 31) >> 24).astype(np.uint8).tobytes()


def encode_both(data: bytes) -> bytes:
    fast, portable = _core.rans_encode(data), _core.rans_encode(data, simd=False)
    assert fast == portable
    return fast


def decode_both(stream: bytes, n: int) -> bytes:
    fast = bytes(_core.rans_decode(stream, n))
    portable = bytes(_core.rans_decode(stream, n, simd=False))
    assert fast == portable
    return fast


CASES = {
    "one value": lambda rng, n: bytes([7]) * n,
    "two values": lambda rng, n: rng.choice([0, 255], n, p=[0.9, 0.1]).astype(np.uint8).tobytes(),
    "uniform": lambda rng, n: rng.integers(0, 256, n, dtype=np.uint8).tobytes(),
    "geometric": lambda rng, n: np.minimum(rng.geometric(0.3, n), 255).astype(np.uint8).tobytes(),
    "exponents": exponent_like,
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 31, 33, 1000, 65_537, 262_144])
def test_round_trip(case: str, n: int) -> None:
    data = CASES[case](np.random.default_rng(n), n)
    stream = encode_both(data)
    assert isinstance(stream, bytes)
    assert stream[0] == _core.RANS_SCALE_BITS
    assert decode_both(stream, n) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=3000))
def test_round_trip_any_bytes(data: bytes) -> None:
    assert decode_both(encode_both(data), len(data)) == data


@pytest.mark.parametrize("case", ["geometric", "exponents", "uniform", "two values"])
def test_size_is_near_the_order0_entropy(case: str) -> None:
    data = CASES[case](np.random.default_rng(1), 262_144)
    stream = _core.rans_encode(data)
    bound = entropy_bytes(data)
    # states + table + the cost of 12-bit frequencies: well under 0.5% on 256 KiB
    assert len(stream) <= bound * 1.003 + 4 * STATES + 600
    assert abs(_core.rans_estimate(data) - len(stream)) <= 4 * STATES + 8


def test_one_value_costs_only_the_header() -> None:
    stream = _core.rans_encode(bytes(100_000))
    assert len(stream) < 1 + 4 + 4 * STATES + 1  # no words: every state stays at L
    assert decode_both(stream, 100_000) == bytes(100_000)


def test_beats_zstd_huffman_on_exponent_planes() -> None:
    import zstandard

    from modelgit.codec.entropy import PLANE_PARAMS

    data = exponent_like(np.random.default_rng(2), 262_144)
    frame = zstandard.ZstdCompressor(compression_params=PLANE_PARAMS).compress(data)
    assert len(_core.rans_encode(data)) < 0.99 * len(frame)


def test_max_size() -> None:
    data = CASES["geometric"](np.random.default_rng(3), 10_000)
    size = len(_core.rans_encode(data))
    assert _core.rans_encode(data, max_size=size) is not None
    assert _core.rans_encode(data, max_size=size - 1) is None
    assert _core.rans_encode(data, max_size=0) is None


def test_decode_into_out() -> None:
    data = CASES["exponents"](np.random.default_rng(4), 5000)
    stream = _core.rans_encode(data)
    buf = bytearray(6000)
    got = _core.rans_decode(stream, 5000, out=memoryview(buf)[1000:])
    assert bytes(buf[1000:]) == data and bytes(got) == data
    with pytest.raises(ValueError, match="expected exactly 5000"):
        _core.rans_decode(stream, 5000, out=bytearray(4999))
    with pytest.raises(ValueError, match="writable"):
        _core.rans_decode(stream, 5000, out=bytes(5000))
    shared = bytearray(stream) + bytearray(5000)
    view = memoryview(shared)
    with pytest.raises(ValueError, match="overlap"):
        _core.rans_decode(view[: len(stream)], 5000, out=view[len(stream) - 10 :][:5000])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        _core.rans_encode(b"")
    assert _core.rans_estimate(b"") == 0
    assert bytes(_core.rans_decode(b"", 0)) == b""
    with pytest.raises(ValueError, match="none was expected"):
        _core.rans_decode(b"\x0c", 0)
    with pytest.raises(ValueError, match="size must be >= 0"):
        _core.rans_decode(b"", -1)
    with pytest.raises(TypeError):
        _core.rans_encode("text")  # type: ignore[arg-type]


def stream_of(seed: int, n: int = 4000) -> tuple[bytes, bytes]:
    data = CASES["geometric"](np.random.default_rng(seed), n)
    return data, _core.rans_encode(data)


def rejects(stream: bytes | bytearray, n: int, match: str = "rans stream") -> None:
    for simd in (True, False):
        with pytest.raises(ValueError, match=match):
            _core.rans_decode(stream, n, simd=simd)


def test_every_truncation_is_refused() -> None:
    data, stream = stream_of(5)
    for cut in range(len(stream)):
        rejects(stream[:cut], len(data))


def test_trailing_bytes_and_wrong_size_are_refused() -> None:
    data, stream = stream_of(6)
    rejects(stream + b"\0\0", len(data), "trailing|final state")
    rejects(stream + b"\0", len(data), "whole 16-bit words")
    rejects(stream, len(data) + 1, "truncated|final state")
    rejects(stream, len(data) - 1, "trailing|final state")


def test_malformed_headers_are_refused() -> None:
    data, stream = stream_of(7)
    rejects(b"\x0e" + stream[1:], len(data), "unsupported scale 14")
    bad = bytearray(stream)
    bad[1:] = b"\0\xff"  # all 256 values absent: frequencies sum to 0
    rejects(bad, len(data), "frequency table")
    rejects(b"\x0c" + bytes([0x80] * 5), len(data), "frequency table")  # endless LEB128
    rejects(b"\x0c\x00\xfe\x00\x05", len(data), "frequency table")  # run past value 255


def test_random_damage_never_crashes() -> None:
    """Flipped bits: a clear ValueError or (rarely: rANS has no checksum; records do)
    other bytes, never a crash or a read outside the stream."""
    data, stream = stream_of(8, 20_000)
    rng = np.random.default_rng(9)
    refused = 0
    for _ in range(300):
        bad = bytearray(stream)
        i = int(rng.integers(len(bad)))
        bad[i] ^= 1 << int(rng.integers(8))
        try:
            out = _core.rans_decode(bad, len(data))
        except ValueError:
            refused += 1
        else:
            assert bytes(_core.rans_decode(bad, len(data), simd=False)) == bytes(out)
    assert refused >= 270


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [1, 17, 3000])
def test_matches_the_format_definition(case: str, n: int) -> None:
    """The core writes exactly the stream FORMAT.md 3.0 defines (with the writer's
    normalization), and reads streams written by the definition."""
    from reference import rans_decode_ref, rans_encode_ref

    data = CASES[case](np.random.default_rng(n + 100), n)
    stream = _core.rans_encode(data)
    assert stream == rans_encode_ref(data)
    assert rans_decode_ref(stream, n) == data
    assert decode_both(rans_encode_ref(data), n) == data
