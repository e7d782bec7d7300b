"""Runs sections of the native core (_core.runs_*; FORMAT.md 3.5, section method 3):
round trips at the edges of the run-byte code (runs of 254, 255, 256, 510 values,
literals first and last), the section against the definition (a reference decoder in
Python that reads the layout), the size against order-0 rANS, the section chooser of
codec/entropy.py, and hostile sections (every truncation, bad counts, bad parts,
random damage): ValueError or CorruptObject, never a crash."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byte_sources import check_max_size_and_out, decode_side_by_side, refused_damage
from modelgit._native import _core
from modelgit.codec import entropy
from modelgit.errors import CorruptObject

HEADER = struct.Struct("<BBII")  # value, escape, literals L, run bytes R
PART = struct.Struct("<BI")  # method (0 raw, 2 rANS), stored length


def reference_decode(section: bytes, n: int) -> bytes:
    """FORMAT.md 3.5, read literally."""
    v, escape, nlit, nrun = HEADER.unpack_from(section, 0)
    assert escape >= 1
    pos = HEADER.size
    parts = []
    for count in (nlit, nrun):
        method, stored = PART.unpack_from(section, pos)
        body = section[pos + PART.size : pos + PART.size + stored]
        pos += PART.size + stored
        assert len(body) == stored
        if method == 0:
            assert stored == count
            parts.append(body)
        else:
            assert method == 2
            parts.append(bytes(_core.rans_decode(body, count)))
    assert pos == len(section)
    lits, runs = parts
    if nrun == 0:  # and nlit == 0: all the value
        assert nlit == 0
        return bytes([v]) * n
    out, k = bytearray(), 0
    for i in range(nlit + 1):
        r = 0
        while True:
            b = runs[k]
            k += 1
            r += b
            assert b <= escape
            if b < escape:
                break
        out += bytes([v]) * r
        if i < nlit:
            out.append(lits[i])
    assert k == nrun and len(out) == n
    return bytes(out)


def skewed(rng: np.random.Generator, n: int, share: float, value: int = 0) -> bytes:
    x = rng.integers(0, 256, n, dtype=np.uint8)
    x[rng.random(n) < share] = value
    return x.tobytes()


def with_literals(n: int, at: list[int], value: int = 0, lit: int = 9) -> bytes:
    x = np.full(n, value, np.uint8)
    x[at] = lit
    return x.tobytes()


EDGES = {
    "all one value": bytes([3]) * 1000,
    "one byte": b"\x05",
    "literal first": with_literals(600, [0]),
    "literal last": with_literals(600, [599]),
    "literals first and last": with_literals(600, [0, 599]),
    "adjacent literals": with_literals(600, [10, 11, 12]),
    "runs of 254, 255, 256, 510": with_literals(
        254 + 1 + 255 + 1 + 256 + 1 + 510, [254, 510, 767]
    ),  # fmt: skip
    "a long run": with_literals(1 << 20, [1 << 19]),
    "value 255": with_literals(5000, [7, 4000], value=255, lit=0),
}


@pytest.mark.parametrize("case", list(EDGES))
def test_round_trip_at_the_edges(case: str) -> None:
    data = EDGES[case]
    sec = _core.runs_encode(data)
    assert sec is not None
    assert bytes(_core.runs_decode(sec, len(data))) == data
    assert reference_decode(sec, len(data)) == data


@pytest.mark.parametrize("share", [0.75, 0.9, 0.99, 0.9999])
@pytest.mark.parametrize("n", [1, 255, 256, 4097, 262_144])
def test_round_trip_skewed(share: float, n: int) -> None:
    data = skewed(np.random.default_rng(n), n, share, value=n % 256)
    sec = _core.runs_encode(data)
    if sec is None:  # a small sample may miss the share
        assert np.bincount(np.frombuffer(data, np.uint8)).max() * 4 < 3 * n
        return
    assert bytes(_core.runs_decode(sec, n)) == data
    assert reference_decode(sec, n) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(0, 255))
def test_round_trip_any_bytes(noise: bytes, value: int) -> None:
    data = bytes(value if i % 7 else b for i, b in enumerate(noise))  # about 6/7 the value
    sec = _core.runs_encode(data)
    if sec is not None:
        assert bytes(_core.runs_decode(sec, len(data))) == data
        assert reference_decode(sec, len(data)) == data


def test_the_escape_follows_the_runs() -> None:
    """Long runs keep escape 255 (few run bytes); short ones take a smaller escape, whose
    alphabet (and frequency table) is smaller, while the runs average at most 1.25
    bytes; every choice decodes by the definition."""
    rng = np.random.default_rng(9)
    long_runs = skewed(rng, 262_144, 0.999)
    sec = _core.runs_encode(long_runs)
    assert sec[1] == 255
    assert reference_decode(sec, len(long_runs)) == long_runs
    x = np.zeros(262_144, np.uint8)  # geometric runs of mean 40 (as in real residuals)
    at = np.cumsum(rng.geometric(1 / 40, 20_000))
    at = at[at < len(x)]
    x[at] = rng.integers(1, 4, len(at), dtype=np.uint8)
    short = x.tobytes()
    sec = _core.runs_encode(short)
    assert sec[1] in (127, 63)
    assert reference_decode(sec, len(short)) == short == bytes(_core.runs_decode(sec, len(short)))
    # by hand, escape 3: 2 zeros, a literal 9, then 3 + 3 + 1 zeros
    hand = _section(0, b"\x09", b"\x02\x03\x03\x01", escape=3)
    want = bytes(2) + b"\x09" + bytes(7)
    assert bytes(_core.runs_decode(hand, 10)) == want == reference_decode(hand, 10)


def test_a_plane_of_one_value_takes_only_the_headers() -> None:
    sec = _core.runs_encode(bytes(262_144))
    assert sec == HEADER.pack(0, 255, 0, 0) + PART.pack(0, 0) + PART.pack(0, 0)
    assert bytes(_core.runs_decode(sec, 262_144)) == bytes(262_144)
    assert bytes(_core.runs_decode(sec, 5)) == bytes(5)  # the length comes from the record


def test_refuses_data_no_value_dominates() -> None:
    rng = np.random.default_rng(1)
    assert _core.runs_encode(skewed(rng, 10_000, 0.6)) is None
    assert _core.runs_encode(bytes(range(256))) is None
    assert _core.RUNS_MIN_SHARE == 0.75
    x = bytearray(1000)
    x[:250] = bytes(range(1, 251))  # exactly 3/4 zeros: a section
    assert _core.runs_encode(bytes(x)) is not None
    x[250] = 1  # one under
    assert _core.runs_encode(bytes(x)) is None


def test_literals_and_runs_take_the_smaller_coding() -> None:
    rng = np.random.default_rng(2)
    few = with_literals(100_000, [5, 50_000])  # 2 literals, 3 runs: both parts raw
    sec = _core.runs_encode(few)
    _, _, nlit, nrun = HEADER.unpack_from(sec, 0)
    assert (nlit, sec[HEADER.size]) == (2, 0)
    assert len(sec) < 1000
    many = skewed(rng, 262_144, 0.95)  # ~13k literals near-uniform, runs skewed
    sec = _core.runs_encode(many)
    _, _, nlit, nrun = HEADER.unpack_from(sec, 0)
    lit_method, lit_len = PART.unpack_from(sec, HEADER.size)
    run_method = sec[HEADER.size + PART.size + lit_len]
    assert run_method == 2 and lit_method in (0, 2)
    assert reference_decode(sec, len(many)) == many


def test_size_is_near_order0_rans_on_skewed_planes() -> None:
    """The runs carry what the value's share carries: about rANS's size, or less where
    the literals cluster."""
    rng = np.random.default_rng(3)
    iid = skewed(rng, 262_144, 0.98)
    assert len(_core.runs_encode(iid)) <= 1.03 * len(_core.rans_encode(iid))
    clustered = bytearray(262_144)
    for start in rng.integers(0, 262_144 - 64, 40):
        clustered[start : start + 64] = rng.integers(1, 256, 64, dtype=np.uint8).tobytes()
    clustered = bytes(clustered)
    assert len(_core.runs_encode(clustered)) < 0.8 * len(_core.rans_encode(clustered))


def test_max_size_and_out() -> None:
    data = with_literals(10_000, [3, 9000])
    check_max_size_and_out(_core.runs_encode, _core.runs_decode, data)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        _core.runs_encode(b"")
    with pytest.raises(TypeError):
        _core.runs_encode("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        _core.runs_decode(b"", -1)
    assert bytes(_core.runs_decode(b"", 0)) == b""
    with pytest.raises(ValueError, match="none was expected"):
        _core.runs_decode(b"\0", 0)


def test_every_truncation_is_refused() -> None:
    data = skewed(np.random.default_rng(4), 20_000, 0.9)
    sec = _core.runs_encode(data)
    for cut in range(len(sec)):
        with pytest.raises(ValueError, match="runs section"):
            _core.runs_decode(sec[:cut], len(data))
    with pytest.raises(ValueError, match="trailing"):
        _core.runs_decode(sec + b"\0", len(data))
    for n in (len(data) - 1, len(data) + 1):
        with pytest.raises(ValueError, match="runs section"):
            _core.runs_decode(sec, n)


def _section(v: int, lits: bytes, runs: bytes, lit_method: int = 0, run_method: int = 0,
             nlit: int | None = None, nrun: int | None = None, escape: int = 255,
             ) -> bytes:  # fmt: skip
    return (HEADER.pack(v, escape, len(lits) if nlit is None else nlit,
                        len(runs) if nrun is None else nrun)
            + PART.pack(lit_method, len(lits)) + lits
            + PART.pack(run_method, len(runs)) + runs)  # fmt: skip


def test_hand_made_sections() -> None:
    # 2 zeros, a 7, no zeros, a 7, 255 + 45 zeros
    sec = _section(0, b"\x07\x07", b"\x02\x00\xff\x2d")
    assert bytes(_core.runs_decode(sec, 304)) == b"\0\0\x07\x07" + bytes(300)
    assert reference_decode(sec, 304) == b"\0\0\x07\x07" + bytes(300)
    # no literals and no run bytes: all the value
    assert bytes(_core.runs_decode(_section(9, b"", b""), 6)) == b"\x09" * 6
    # a literal may equal the run value (the writer never makes one)
    assert bytes(_core.runs_decode(_section(0, b"\x00", b"\x01\x01"), 3)) == bytes(3)
    assert bytes(_core.runs_decode(_section(4, b"\x04", b"\x00\x00"), 1)) == b"\x04"
    bad = [  # (section, n, what the error says)
        (_section(0, b"\x07", b"\x00\x00", nlit=5), 6, "counts do not fit"),
        (_section(0, b"", b"\xff\xff\x00"), 6, "counts do not fit"),  # 510 > 6
        (_section(0, b"\x07", b""), 6, "counts do not fit"),  # a literal, no run bytes
        (_section(0, b"\x07", b"\x01\x05"), 8, "do not add up"),  # 7 bytes, not 8
        (_section(0, b"\x07", b"\x07\x00"), 6, "do not add up"),  # the literal past the end
        (_section(0, b"\x07", b"\x01\xff"), 6, "end early"),  # the final run goes on
        (_section(0, b"\x07", b"\x00\x00", lit_method=1), 6, "unknown method 1 of the literal"),
        (_section(0, b"\x07", b"\x00\x05", run_method=3), 6, "unknown method 3 of the run"),
        (_section(0, b"\x07\x07", b"\x00\x05", nlit=1), 6, "raw literal part has the wrong"),
        (_section(0, b"\x0c", b"\x06", lit_method=2, nlit=0), 6, "rANS literal part for no"),
        (_section(0, b"\x07", b"\x00\x05", run_method=2), 6, "run part: "),  # not rANS
        (_section(0, b"\x07", b"\xc8\xff\x90\x00"), 600, "trailing run bytes"),
        (_section(0, b"\x07", b"\x00\x05", escape=0), 6, "escape 0"),
        (_section(0, b"\x07", b"\x00\x05", escape=4), 6, "run byte over the escape"),
    ]
    for sec, n, why in bad:
        with pytest.raises(ValueError, match="runs section: .*" + why):
            _core.runs_decode(sec, n)


def test_random_damage_is_refused_or_decodes_to_the_length() -> None:
    """Flipped bits: a ValueError, or exactly n bytes of other data (a damaged raw
    literal is another literal), which the chunk ids catch; most is refused (65% here),
    never a crash."""
    rng = np.random.default_rng(5)
    data = skewed(rng, 50_000, 0.95, value=17)
    refused = refused_damage(_core.runs_decode, _core.runs_encode(data), len(data), rng)
    assert refused >= 1500


def test_a_hostile_section_cannot_make_the_decoder_hold_memory() -> None:
    """Counts that fit the length but parts that are not there: refused before anything
    is allocated for the parts (a 10-byte section once made every loader thread keep
    2n bytes)."""
    import resource

    n = 1 << 27
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="truncated literal part"):
        _core.runs_decode(HEADER.pack(0, 1, n, n + 1), n)  # the output is not touched
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def test_threads_decode_side_by_side() -> None:
    """Each thread decodes its parts into its own scratch buffer."""
    rng = np.random.default_rng(6)
    datas = [skewed(rng, 100_000 + 999 * i, 0.9, value=i) for i in range(8)]
    decode_side_by_side(_core.runs_decode, [_core.runs_encode(d) for d in datas], datas)


def test_the_chooser_takes_runs_for_a_dominated_plane() -> None:
    rng = np.random.default_rng(7)
    plane = skewed(rng, 262_144, 0.98)
    head, body = entropy.section(plane)
    assert head[0] == entropy.METHOD_RUNS
    assert len(body) <= (1 + entropy.RUNS_SLACK) * len(_core.rans_encode(plane))
    s = entropy.Sections(memoryview(bytes(head) + bytes(body)), "chunk x")
    assert bytes(s.section(len(plane))) == plane
    s.end()
    # not dominated: never runs
    dense = skewed(rng, 262_144, 0.5)
    assert entropy.section(dense)[0][0] != entropy.METHOD_RUNS


def test_a_damaged_runs_section_is_corrupt_object() -> None:
    plane = skewed(np.random.default_rng(8), 262_144, 0.98)
    head, body = entropy.section(plane)
    assert head[0] == entropy.METHOD_RUNS
    bad = bytes(head) + bytes(body)[:-3] + b"\0\0\0"
    with pytest.raises(CorruptObject, match="chunk y: runs section"):
        entropy.Sections(memoryview(bad), "chunk y").section(len(plane))


def test_the_chooser_declines_runs_that_cost_more_than_the_allowance() -> None:
    """A plane of 99.5% zeros and a few small literals: the runs section's two
    frequency tables outweigh its gain, by more than 1% plus 0.1% of the plane; rANS
    is kept."""
    rng = np.random.default_rng(3)
    n = 147_456
    x = np.zeros(n, np.uint8)
    m = rng.random(n) >= 0.995
    x[m] = rng.choice(np.array([1, 255, 2, 254], np.uint8), m.sum(), p=[0.45, 0.45, 0.05, 0.05])
    plane = x.tobytes()
    runs = _core.runs_encode(plane)
    assert runs is not None
    assert len(runs) > (1 + entropy.RUNS_SLACK) * len(_core.rans_encode(plane)) + 0.001 * n
    assert entropy.section(plane)[0][0] == entropy.METHOD_RANS
