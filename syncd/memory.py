"""Giving memory back to the system: fewer malloc arenas, and a trim once work is done.

A long-lived daemon peaks while it syncs (a first scan of 100,000 files, eight upload workers,
the store's rows) and then idles for days. CPython frees what it no longer uses, but glibc's
malloc keeps freed memory in each thread's arena for reuse, so the idle daemon kept most of its
peak (issue 25: 122-127 MB idle right after a first sync of 100,000 files, 105 MB after a
restart on the same store). Two glibc calls fix most of it, through ctypes; elsewhere (musl,
macOS) both are no-ops:

- :func:`limit_arenas` before the daemon's threads start: a few arenas shared by all threads
  rather than up to eight per core, each keeping its own free memory;
- :func:`give_back` when the daemon has nothing left to do: a full garbage collection, then
  ``malloc_trim(0)``, which returns every arena's free pages to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from typing import Any

__all__ = ["give_back", "limit_arenas"]

#: glibc's ``mallopt`` parameter for the most arenas malloc may create (malloc.h).
_M_ARENA_MAX = -8
#: Arenas for the daemon's threads: contention on one is rare (syncd's threads mostly wait on
#: I/O), and each more keeps its own free memory.
ARENAS = 2


@functools.cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None  # not glibc
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` malloc arenas from now on (call it before starting threads); whether
    the C library took it."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1)


def give_back() -> bool:
    """Collect garbage and return the allocator's free memory to the system; whether any was
    returned (False where the C library has no ``malloc_trim``). Takes a few tens of
    milliseconds with a large heap: call it when work is done, not per file."""
    gc.collect()
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
