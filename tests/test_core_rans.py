"""Order-0 rANS coder of the native core (_core.rans_*): round trips through every decode
loop (``rans_decoders()``: the SIMD one and the portable one, identical outputs and
identical refusals), the stream against the definition of FORMAT.md 3.0 (encoder output
byte for byte, decoders against the numpy reference), size against the order-0 entropy,
lengths around the loops' round (16 values) and block (2048 words) boundaries, and
hostile streams."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byte_sources import CASES, entropy_bytes, exponent_like
from modelgit._native import _core

STATES, WORD = 16, 2  # the stream layout of FORMAT.md section 3 (section method 2)
DECODERS = _core.rans_decoders()  # every loop this CPU runs, the default first
BLOCK_WORDS = 2048  # words per block of the SIMD decode loop (csrc/core/rans.cpp)


def encode_both(data: bytes) -> bytes:
    fast, portable = _core.rans_encode(data), _core.rans_encode(data, simd=False)
    assert fast == portable
    return fast


def decode_all(stream: bytes, n: int) -> bytes:
    """The stream decoded by every loop (and the default call): all must agree."""
    default = bytes(_core.rans_decode(stream, n))
    for decoder in [*DECODERS, "auto"]:
        assert bytes(_core.rans_decode(stream, n, decoder=decoder)) == default, decoder
    assert bytes(_core.rans_decode(stream, n, simd=False)) == default
    return default


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 31, 33, 1000, 65_537, 262_144])
def test_round_trip(case: str, n: int) -> None:
    data = CASES[case](np.random.default_rng(n), n)
    stream = encode_both(data)
    assert isinstance(stream, bytes)
    assert stream[0] == _core.RANS_SCALE_BITS
    assert decode_all(stream, n) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=3000))
def test_round_trip_any_bytes(data: bytes) -> None:
    assert decode_all(encode_both(data), len(data)) == data


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
    assert decode_all(stream, 100_000) == bytes(100_000)


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


def refusal(stream: bytes | bytearray, n: int, decoder: str) -> str | None:
    try:
        _core.rans_decode(stream, n, decoder=decoder)
    except ValueError as exc:
        return str(exc)
    return None


def rejects(stream: bytes | bytearray, n: int, match: str = "rans stream") -> None:
    """Every loop refuses the stream with the same message, which matches ``match``."""
    messages = {refusal(stream, n, d) for d in DECODERS}
    assert len(messages) == 1, messages
    message = messages.pop()
    assert message is not None and re.search(match, message), message


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
        messages = {refusal(bad, len(data), d) for d in DECODERS}
        assert len(messages) == 1, messages  # every loop refuses it, or none does
        if messages.pop() is not None:
            refused += 1
        else:
            decode_all(bad, len(data))  # and then they give the same bytes
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
    assert decode_all(rans_encode_ref(data), n) == data


# ---- the decode loops ---------------------------------------------------------------


def test_decoders_are_listed_and_checked() -> None:
    assert DECODERS[0] == _core.rans_decoders()[0]
    assert "portable" in DECODERS and len(set(DECODERS)) == len(DECODERS)
    assert set(DECODERS) <= {"portable", "sse4.1"}
    data, stream = stream_of(10, 1000)
    with pytest.raises(ValueError, match="unknown rANS decoder 'avx9'"):
        _core.rans_decode(stream, len(data), decoder="avx9")
    with pytest.raises(TypeError, match="decoder"):
        _core.rans_decode(stream, len(data), decoder=1)  # type: ignore[arg-type]
    # decoder= wins over simd=
    assert bytes(_core.rans_decode(stream, len(data), simd=False, decoder=DECODERS[0])) == data


@pytest.mark.parametrize("value", ["portable", "bogus"])
def test_decoder_environment_variable(value: str) -> None:
    """$MODELGIT_RANS_DECODER picks the default loop at import; a name this CPU cannot
    run is reported with a RuntimeWarning and the fastest loop is used."""
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    from modelgit._native import _core\n"
        "print(_core.rans_decoders()[0], [str(w.message) for w in seen])\n"
    )
    env = {**os.environ, "MODELGIT_RANS_DECODER": value}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    if value == "portable":
        assert out.split()[0] == "portable" and "MODELGIT_RANS_DECODER" not in out
    else:
        assert out.split()[0] in DECODERS
        assert "MODELGIT_RANS_DECODER='bogus' is not a supported rANS decoder" in out


ROUND_LENGTHS = sorted(
    {n for k in (16, 32, 48, 64, 128, 256, 4096) for n in (k - 1, k, k + 1)} | {1, 2, 3, 5}
)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_decoder_at_round_boundaries(decoder: str, case: str) -> None:
    """Lengths around 16, 32, 64...: whole rounds, a tail, or only a tail."""
    for n in ROUND_LENGTHS:
        data = CASES[case](np.random.default_rng(n + 7), n)
        stream = _core.rans_encode(data)
        assert bytes(_core.rans_decode(stream, n, decoder=decoder)) == data, n


def words_of(stream: bytes) -> int:
    """How many 16-bit words follow the frequency table and the states (FORMAT.md 3.0)."""
    pos, seen = 1, 0
    while seen < 256:
        if stream[pos] == 0:  # a run of absent values
            seen += stream[pos + 1] + 1
            pos += 2
        else:  # a LEB128 frequency
            while stream[pos] & 0x80:
                pos += 1
            pos += 1
            seen += 1
    return (len(stream) - pos - 4 * STATES) // WORD


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_decoder_around_block_boundaries(decoder: str) -> None:
    """Uniform bytes take about one word per two values: streams whose word counts run
    across the SIMD loop's blocks of 2048 words (and its zero-padded last block)."""
    rng = np.random.default_rng(11)
    counts = []
    for n in [*range(4 * BLOCK_WORDS - 80, 4 * BLOCK_WORDS + 80, 7), 12 * BLOCK_WORDS + 5]:
        data = CASES["uniform"](rng, n)
        stream = _core.rans_encode(data)
        counts.append(words_of(stream))
        assert bytes(_core.rans_decode(stream, n, decoder=decoder)) == data, n
    assert min(counts) < 2 * BLOCK_WORDS - STATES and 2 * BLOCK_WORDS + STATES < counts[-2]


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_decoder_on_streams_of_few_words(decoder: str) -> None:
    """A skewed byte distribution: long streams of fewer than 16 words, decoded wholly
    from the padded last block; and no words at all."""
    rng = np.random.default_rng(12)
    for n in (100, 1000, 20_000, 200_000):
        data = rng.choice([3, 9], n, p=[0.9995, 0.0005]).astype(np.uint8).tobytes()
        stream = _core.rans_encode(data)
        assert bytes(_core.rans_decode(stream, n, decoder=decoder)) == data, n
    stream = _core.rans_encode(bytes([5]) * 999)
    assert words_of(stream) == 0
    assert bytes(_core.rans_decode(stream, 999, decoder=decoder)) == bytes([5]) * 999


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 33, 64, 65, 1000])
def test_every_decoder_against_the_reference(decoder: str, n: int) -> None:
    from reference import rans_decode_ref

    for case in sorted(CASES):
        data = CASES[case](np.random.default_rng(n + 300), n)
        stream = _core.rans_encode(data)
        assert bytes(_core.rans_decode(stream, n, decoder=decoder)) == data
        assert rans_decode_ref(stream, n) == data


def float_planes(rng: np.random.Generator, n: int, dtype: str) -> list[bytes]:
    """The byte planes (rotated) of trained-looking weights, as a repository stores them."""
    w = (rng.standard_normal(n) * 0.02).astype(dtype)
    raw = w.view(np.uint8).tobytes()
    elem = w.dtype.itemsize
    planes = bytes(_core.planes_encode(raw, elem, rotate=True))
    return [planes[p * n : (p + 1) * n] for p in range(elem)]


@pytest.mark.parametrize("dtype", ["<f4", "<f2"])
def test_every_decoder_on_weight_planes(dtype: str) -> None:
    """The planes of float weights (what the loads decode): every plane, every loop."""
    rng = np.random.default_rng(13)
    for n in (262_144, 100_003):
        for plane in float_planes(rng, n, dtype):
            assert decode_all(_core.rans_encode(plane), n) == plane


@pytest.mark.parametrize("case", ["exponents", "uniform", "two values"])
def test_every_decoder_refuses_every_truncation_of_a_long_stream(case: str) -> None:
    """Cuts in the SIMD loop's range (not only in the tail): the same refusal everywhere."""
    data = CASES[case](np.random.default_rng(14), 6000)
    stream = _core.rans_encode(data)
    for cut in range(0, len(stream), max(1, len(stream) // 97)):
        rejects(stream[:cut], len(data))
    rejects(stream[:-2], len(data), "truncated|final state")


def test_every_decoder_refuses_streams_too_long_or_short_for_the_size() -> None:
    data = CASES["exponents"](np.random.default_rng(15), 5000)
    stream = _core.rans_encode(data)
    for delta in (-17, -16, -1, 1, 15, 16, 17, 1000):
        rejects(stream, len(data) + delta, "truncated|trailing|final state")
    rejects(stream + bytes(40), len(data), "trailing|final state")


def test_every_decoder_on_damaged_words() -> None:
    """Random words in place of the stream's: garbage states, never a crash; all loops
    agree on the refusal (or on the bytes)."""
    rng = np.random.default_rng(16)
    data = CASES["exponents"](rng, 30_000)
    stream = bytearray(_core.rans_encode(data))
    head = len(stream) - WORD * words_of(bytes(stream))
    for trial in range(40):
        bad = bytearray(stream)
        start = int(rng.integers(head, len(bad) - 64))
        bad[start : start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        if trial % 2:
            states = rng.integers(0, 256, 4 * STATES, dtype=np.uint8).tobytes()
            bad[head - 4 * STATES : head] = states
        messages = {refusal(bad, len(data), d) for d in DECODERS}
        assert len(messages) == 1, messages
        if messages.pop() is None:
            decode_all(bad, len(data))
