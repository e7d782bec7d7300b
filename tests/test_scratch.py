"""modelgit.scratch: per-thread buffers that grow with headroom."""

from __future__ import annotations

import threading

from modelgit.scratch import scratch


def test_slightly_longer_requests_reuse_the_buffer() -> None:
    first = scratch("test-grow", 870_358)
    assert len(first) >= 870_358
    for size in (871_000, 872_181, 874_739, 900_000):  # records of similar chunks
        assert scratch("test-grow", size) is first
    bigger = scratch("test-grow", 2 * len(first))  # beyond the headroom: replaced
    assert bigger is not first and len(bigger) >= 2 * len(first)
    assert len(bigger) % (64 << 10) == 0


def test_small_buffers_are_exact_and_threads_have_their_own() -> None:
    assert len(scratch("test-small", 100)) == 100
    mine = scratch("test-thread", 1 << 20)
    theirs: list[bytearray] = []
    t = threading.Thread(target=lambda: theirs.append(scratch("test-thread", 1 << 20)))
    t.start()
    t.join()
    assert theirs[0] is not mine
    assert len(mine) <= (1 << 20) + (1 << 17) + (64 << 10)  # at most an eighth + a grain more
