"""The daemon's freed heap memory (syncd.memory; glibc, as on the Debian machines syncd runs on):
its threads share two malloc arenas, so memory one thread freed is reused by the next, and free
pages go back to the system once it is quiet. Measured in fresh processes, on their own
resident size."""

from __future__ import annotations

import json
import subprocess
import sys

_SCRIPT = """
import sys, threading
from pathlib import Path
from syncd.memory import limit_malloc_arenas

if sys.argv[1] == "limited":
    assert limit_malloc_arenas()

turns = [threading.Event() for _ in range(7)]
finished = threading.Event()


def churn(n):
    # Alive together, allocating in turn: ~30 MB of 3 KB blocks (each its own malloc), freed
    # again; one block stays, so the arena's top is in use and the freed pages stay with malloc.
    bytes(1)
    turns[n].wait()
    blocks = [bytes(3000) for _ in range(10000)]
    keep.append(bytes(3000))
    del blocks
    turns[n + 1].set()
    finished.wait()

keep = []
threads = [threading.Thread(target=churn, args=(n,)) for n in range(6)]
for thread in threads:
    thread.start()
turns[0].set()
turns[6].wait()
statm = Path("/proc/self/statm").read_text().split()
print(int(statm[1]) * 4096)
finished.set()
"""


def _resident_after_churn(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.split()[-1])


def test_threads_reuse_what_other_threads_freed() -> None:
    """Six live threads in turn allocate and free ~30 MB each: with an arena each, the freed
    memory stays resident six times over; with the daemon's limit, they reuse one another's."""
    mb = 1024 * 1024
    unlimited = _resident_after_churn("unlimited")
    limited = _resident_after_churn("limited")
    assert unlimited > limited + 60 * mb, (unlimited / mb, limited / mb)


_QUIET_SCRIPT = """
import json
from syncd.memory import QuietTrim, resident_bytes

trim = QuietTrim()
# ~60 MB of 3 KB blocks, freed again behind one that stays (see _SCRIPT).
blocks = [bytes(3000) for _ in range(20000)]
pin = bytes(3000)
del blocks
freed = resident_bytes()
trim.tick(quiet=False)
busy = resident_bytes()
trim.tick(quiet=True)
quiet = resident_bytes()
print(json.dumps({"freed": freed, "busy": busy, "quiet": quiet}))
"""


def test_freed_memory_goes_back_only_when_quiet() -> None:
    """While uploads are in flight nothing is trimmed; once quiet, the freed ~60 MB leave the
    process's resident size."""
    done = subprocess.run(
        [sys.executable, "-c", _QUIET_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sizes = json.loads(done.stdout.splitlines()[-1])
    mb = 1024 * 1024
    assert sizes["busy"] > sizes["freed"] - 4 * mb, sizes
    assert sizes["quiet"] < sizes["busy"] - 40 * mb, sizes
