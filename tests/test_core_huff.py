"""Huffman sections of the native core (_core.huff_*; FORMAT.md 3.6, section method 4):
round trips (lengths around the four segments and the decoder's fast loop, one value,
every value, codes at the 11-bit limit), the section against the definition (a reference
decoder in Python that reads the layout bit by bit), sizes against the order-0 entropy
and rANS, the exact estimate, and hostile sections (every truncation, bad code lengths,
random damage): ValueError, never a crash."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byte_sources import CASES as BYTE_CASES
from byte_sources import (
    check_max_size_and_out,
    decode_side_by_side,
    entropy_bytes,
    exponent_like,
    refused_damage,
)
from modelgit._native import _core

MAX_BITS, STREAMS = 11, 4


def parse(section: bytes) -> tuple[dict[int, int], list[bytes]]:
    """FORMAT.md 3.6: the code lengths of the values and the four streams."""
    first, c = section[0], section[1] + 1
    assert first + c <= 256
    lengths = {}
    for i in range(c):
        length = section[2 + i // 2] >> (4 * (i % 2)) & 15
        if length:
            lengths[first + i] = length
    at = 2 + (c + 1) // 2
    sizes = list(struct.unpack_from("<3I", section, at))
    at += 12
    sizes.append(len(section) - at - sum(sizes))
    streams = []
    for n in sizes:
        streams.append(section[at : at + n])
        at += n
    return lengths, streams


def canonical(lengths: dict[int, int]) -> dict[str, int]:
    """Bit string (first bit first) -> value."""
    codes, code = {}, 0
    for length in range(1, MAX_BITS + 1):
        for v in sorted(s for s, n in lengths.items() if n == length):
            codes[format(code, f"0{length}b")] = v
            code += 1
        code <<= 1
    return codes


def reference_decode(section: bytes, n: int) -> bytes:
    lengths, streams = parse(section)
    codes = canonical(lengths)
    q = -(-n // STREAMS)
    out = bytearray()
    for k, stream in enumerate(streams):
        count = max(0, min(n, (k + 1) * q) - min(n, k * q))
        bits = "".join(format(b, "08b")[::-1] for b in stream)  # least significant first
        pos = 0
        for _ in range(count):
            word = ""
            while word not in codes:
                word += bits[pos]
                pos += 1
            out.append(codes[word])
        assert len(bits) - pos < 8 and set(bits[pos:]) <= {"0"}  # zero padding only
    return bytes(out)


# counts 2^0 .. 2^20: Huffman's code would be 20 bits deep
CASES = {
    **BYTE_CASES,
    "fibonacci-deep": lambda rng, n: np.repeat(
        np.arange(21, dtype=np.uint8), [1 << i for i in range(21)]
    )[:n].tobytes(),
}
SIZES = [1, 2, 3, 4, 5, 39, 40, 41, 155, 160, 161, 1000, 4096, 100_003]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("n", SIZES)
def test_round_trip(case: str, n: int) -> None:
    data = CASES[case](np.random.default_rng(n), n)
    n = len(data)
    sec = _core.huff_encode(data)
    assert len(sec) == _core.huff_estimate(data)
    assert bytes(_core.huff_decode(sec, n)) == data
    if n <= 5000:
        assert reference_decode(sec, n) == data


def test_against_the_reference_on_a_long_plane() -> None:
    data = exponent_like(np.random.default_rng(1), 60_000)
    sec = _core.huff_encode(data)
    assert reference_decode(sec, len(data)) == data == bytes(_core.huff_decode(sec, len(data)))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=2000))
def test_round_trip_any_bytes(data: bytes) -> None:
    sec = _core.huff_encode(data)
    assert bytes(_core.huff_decode(sec, len(data))) == data
    assert len(sec) == _core.huff_estimate(data)


def test_codes_stay_within_11_bits_and_make_a_prefix_code() -> None:
    rng = np.random.default_rng(2)
    for case in ("fibonacci-deep", "exponents", "uniform"):
        data = CASES[case](rng, 1 << 21)
        lengths, _ = parse(_core.huff_encode(data))
        assert max(lengths.values()) <= MAX_BITS
        assert sum(2.0**-n for n in lengths.values()) <= 1.0
        assert set(lengths) == set(np.unique(np.frombuffer(data, np.uint8)).tolist())


@pytest.mark.parametrize("case", ["exponents", "geometric", "uniform"])
def test_size_is_near_the_order0_entropy(case: str) -> None:
    data = CASES[case](np.random.default_rng(3), 262_144)
    size = len(_core.huff_encode(data))
    assert size <= 1.035 * entropy_bytes(data) + 200
    assert size <= 1.035 * len(_core.rans_encode(data))


def test_max_size_and_out() -> None:
    data = exponent_like(np.random.default_rng(4), 10_000)
    check_max_size_and_out(_core.huff_encode, _core.huff_decode, data)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        _core.huff_encode(b"")
    with pytest.raises(TypeError):
        _core.huff_encode(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        _core.huff_decode(b"", -1)
    assert bytes(_core.huff_decode(b"", 0)) == b""
    assert _core.huff_estimate(b"") == 0


def test_every_truncation_is_refused() -> None:
    data = exponent_like(np.random.default_rng(5), 3000)
    sec = _core.huff_encode(data)
    for cut in range(len(sec)):
        with pytest.raises(ValueError, match="huffman section"):
            _core.huff_decode(sec[:cut], len(data))
    with pytest.raises(ValueError, match="huffman section"):
        _core.huff_decode(sec + b"\0", len(data))  # the last stream longer than its values


def test_bad_headers_are_refused() -> None:
    data = exponent_like(np.random.default_rng(6), 3000)
    sec = bytearray(_core.huff_encode(data))
    cases = []
    over = bytearray(sec)
    over[2] = (over[2] & 0xF0) | 12  # a length over 11
    cases.append((over, "over 11"))
    past = bytearray(sec)
    past[0] = 250  # the lengths run past value 255
    cases.append((past, "past value 255"))
    kraft = bytes([0, 3, 0x11, 0x11]) + bytes(12)  # four codes of 1 bit
    cases.append((kraft, "prefix code"))
    lengths = bytes([0, 2, 0x11, 0x01]) + bytes(12)  # 3 values: the unused nibble is 0
    cases.append((lengths.replace(b"\x11\x01", b"\x11\x11"), "bad code lengths"))
    for bad, why in cases:
        with pytest.raises(ValueError, match="huffman section: .*" + why):
            _core.huff_decode(bytes(bad), len(data))


def test_an_incomplete_code_refuses_the_missing_codes() -> None:
    # one value of length 1 (code 0): a stream bit 1 starts no code
    sec = bytes([5, 0, 0x01]) + struct.pack("<3I", 1, 1, 1) + b"\x00\x00\x00\x01"
    with pytest.raises(ValueError, match="bad code"):
        _core.huff_decode(sec, 4 * 1)
    assert bytes(_core.huff_decode(sec[:-1] + b"\x00", 4)) == b"\x05" * 4
    long = _core.huff_encode(bytes([5]) * 4000)
    bad = bytearray(long)
    bad[40] = 0xFF  # inside the fast loop
    with pytest.raises(ValueError, match="bad code"):
        _core.huff_decode(bytes(bad), 4000)


def test_random_damage_is_refused_or_decodes_to_the_length() -> None:
    """Flipped bits: a ValueError, or (prefix codes resynchronize) exactly n bytes of
    other data, which the chunk ids catch; a good share is refused by the stream-end
    and padding checks (42% here), never a crash."""
    rng = np.random.default_rng(7)
    data = exponent_like(rng, 20_000)
    refused = refused_damage(_core.huff_decode, _core.huff_encode(data), len(data), rng)
    assert refused >= 900


def test_threads_decode_side_by_side() -> None:
    rng = np.random.default_rng(8)
    datas = [exponent_like(rng, 50_000 + 777 * i) for i in range(8)]
    decode_side_by_side(_core.huff_decode, [_core.huff_encode(d) for d in datas], datas)
