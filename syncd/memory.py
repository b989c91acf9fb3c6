"""Giving freed heap memory back to the system once the daemon is quiet (glibc only).

What Python frees goes back to malloc, and glibc keeps it: a first sync of 100,000 files left
the daemon ~10 MB above what it holds once idle, spread over the upload threads' arenas.
``malloc_trim(0)`` hands free pages of every arena back (since glibc 2.8). It is called from the
daemon's main loop while no upload is in flight and only when the resident size grew since the
last call, so an idle daemon calls it never and a busy one not at all. Without glibc (musl,
macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from pathlib import Path

import structlog

__all__ = ["QuietTrim", "release_free_memory", "resident_bytes"]

log = structlog.get_logger(__name__)

#: Growth of the resident size since the last trim worth another (a trim walks every arena).
_GROWTH_BYTES = 8 * 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = Path("/proc/self/statm")


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None  # not glibc
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return malloc's free pages to the system; False where there is no ``malloc_trim``."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def resident_bytes() -> int | None:
    """This process's resident size (Linux), or None where /proc does not tell."""
    try:
        return int(_STATM.read_bytes().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class QuietTrim:
    """Trims once the resident size grew by :data:`_GROWTH_BYTES` since the last trim and the
    caller says it is quiet; see the module docstring.

    Threads: the daemon's main loop (:meth:`tick`). Locks: none.
    """

    def __init__(self) -> None:
        self._after_last = resident_bytes()

    def tick(self, *, quiet: bool) -> None:
        if not quiet or self._after_last is None or _TRIM is None:
            return
        before = resident_bytes()
        if before is None or before - self._after_last < _GROWTH_BYTES:
            return
        release_free_memory()
        self._after_last = resident_bytes()
        log.debug("memory_released", before=before, after=self._after_last)
