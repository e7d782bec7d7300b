"""Per-thread reusable buffers: reused memory costs no page faults, where a fresh
buffer per chunk costs one per 4 KiB."""

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
        buf = bytearray(size)
        setattr(_local, name, buf)
    return buf
