"""Giving freed memory back to the system after a big read."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

_UNSET: object = object()
_trim: Callable[[int], int] | object | None = _UNSET
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_BLOCK = 1 << 20  # bytes: blocks this big come from the system and go back when freed
_large_blocks_set = False


def large_blocks_from_the_system() -> None:
    """Blocks of :data:`LARGE_BLOCK` bytes and more are mapped from the system for themselves
    and unmapped when freed (glibc's ``mallopt(M_MMAP_THRESHOLD)``).

    By default glibc raises that threshold each time such a block is freed, up to 32 MB, so the
    engine's big temporary arrays (8 MB a column on a million messages) end up in the heap, where
    freed ones stay resident: that alone kept the peak of a million-message command 30 MB above
    what it needs. Smaller blocks stay in the heap (mapping each costs system time: 256 KB cost
    0.2 s more on a million messages for 6 MB less). Once per process; does nothing where the C
    library has no ``mallopt``."""
    global _large_blocks_set
    if _large_blocks_set:
        return
    _large_blocks_set = True
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is not None:
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim``).

    A million messages are read in chunks whose rows and small arrays are freed as the columns
    grow, and the C heap keeps those pages: without this the process's resident memory stays
    near the read's high-water mark (about 100 MB more on a million messages) through
    everything that follows. Does nothing where the C library has no ``malloc_trim``.
    """
    global _trim
    if _trim is _UNSET:
        _trim = _find_trim()
    if callable(_trim):
        _trim(0)


def _libc() -> ctypes.CDLL | None:
    """The C library this process already uses, on Linux (glibc's tuning functions)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _find_trim() -> Callable[[int], int] | None:
    libc = _libc()
    if libc is None:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:  # musl and others
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    found: Callable[[int], int] = trim
    return found
