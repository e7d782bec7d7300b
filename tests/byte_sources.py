"""Byte streams the entropy coders' tests share (rANS, runs and Huffman sections): the
skewed distributions of real byte planes, their order-0 entropy, and a check that
sections decode side by side from several threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np


def entropy_bytes(data: bytes) -> float:
    """The order-0 entropy of ``data``, in bytes."""
    counts = np.bincount(np.frombuffer(data, np.uint8), minlength=256)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum()) * len(data) / 8


def exponent_like(rng: np.random.Generator, n: int) -> bytes:
    """Top bytes of rotated float32 weights: a skewed distribution over ~30 values."""
    x = (rng.standard_normal(n) * 0.05).astype("<f4").view("<u4")
    return ((x << 1 | x >> 31) >> 24).astype(np.uint8).tobytes()


CASES: dict[str, Callable[[np.random.Generator, int], bytes]] = {
    "one value": lambda rng, n: bytes([7]) * n,
    "two values": lambda rng, n: rng.choice([0, 255], n, p=[0.9, 0.1]).astype(np.uint8).tobytes(),
    "uniform": lambda rng, n: rng.integers(0, 256, n, dtype=np.uint8).tobytes(),
    "geometric": lambda rng, n: np.minimum(rng.geometric(0.3, n), 255).astype(np.uint8).tobytes(),
    "exponents": exponent_like,
}


def decode_side_by_side(
    decode: Callable[[bytes, int], bytearray], sections: list[bytes], datas: list[bytes]
) -> None:
    """Eight threads decode their sections 20 times each at once: every decode must
    give its data (each thread has its own scratch buffers)."""
    errors = []

    def work(i: int) -> None:
        for _ in range(20):
            if bytes(decode(sections[i], len(datas[i]))) != datas[i]:
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sections))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def refused_damage(
    decode: Callable[[bytes, int], bytearray],
    section: bytes,
    n: int,
    rng: np.random.Generator,
    tries: int = 3000,
) -> int:
    """Flips 1-3 random bits of ``section`` ``tries`` times: each decode must raise
    ValueError or give exactly ``n`` bytes (never crash). Returns how many it refused."""
    refused = 0
    for _ in range(tries):
        bad = bytearray(section)
        for at in rng.integers(0, len(bad), rng.integers(1, 4)):
            bad[at] ^= 1 << int(rng.integers(0, 8))
        try:
            out = decode(bytes(bad), n)
        except ValueError:
            refused += 1
            continue
        assert len(out) == n
    return refused


def check_max_size_and_out(
    encode: Callable[..., bytes | None], decode: Callable[..., bytearray], data: bytes
) -> None:
    """The binding contract of a section coder: ``max_size`` keeps or refuses the section
    at its exact length, ``out=`` is filled and returned, a wrong-sized ``out`` raises."""
    sec = encode(data)
    assert sec is not None
    assert encode(data, max_size=len(sec)) == sec
    assert encode(data, max_size=len(sec) - 1) is None
    out = bytearray(len(data))
    assert decode(sec, len(data), out=out) is out
    assert out == data
    for wrong in (len(data) - 1, len(data) + 1):
        try:
            decode(sec, len(data), out=bytearray(wrong))
        except ValueError:
            continue
        raise AssertionError(f"out of {wrong} bytes was accepted")
