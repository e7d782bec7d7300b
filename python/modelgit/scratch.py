"""Per-thread reusable buffers: reused memory costs no page faults, where a fresh
buffer per chunk costs one per 4 KiB.

A buffer that must grow is replaced by one with headroom (an eighth more, rounded up
to 64 KiB): records of similar chunks differ by a few bytes, and without headroom
each slightly longer one replaced the buffer and faulted all of it in again (22
buffers, 15.8 MB, for one MiniLM load in a fresh process; 4 with headroom)."""

from __future__ import annotations

import threading

__all__ = ["scratch"]

_local = threading.local()


def scratch(name: str, size: int) -> bytearray:
    """This thread's buffer ``name`` of at least ``size`` bytes, valid until the thread's
    next call for the same name. A buffer too small is replaced, never resized: views of
    it may still be alive (in an exception's traceback), and a bytearray with views
    cannot resize."""
    buf = getattr(_local, name, None)
    if buf is None or len(buf) < size:
        buf = bytearray(_with_headroom(size))
        setattr(_local, name, buf)
    return buf


_GRAIN = 64 << 10


def _with_headroom(size: int) -> int:
    """``size`` plus an eighth, rounded up to a multiple of 64 KiB (exact when small)."""
    if size < _GRAIN:
        return size
    return -(-(size + size // 8) // _GRAIN) * _GRAIN
