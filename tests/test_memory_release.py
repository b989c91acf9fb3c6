"""The daemon gives freed heap memory back once it is quiet (syncd.memory; glibc, as on the
Debian machines syncd runs on): measured in a fresh process, on its own resident size."""

from __future__ import annotations

import json
import subprocess
import sys

_SCRIPT = """
import json
from syncd.memory import QuietTrim, resident_bytes

trim = QuietTrim()
# ~60 MB of 3 KB blocks (each its own malloc), and one more after them so the heap's top
# stays in use: freeing the blocks leaves the pages with malloc, resident.
blocks = [bytes(3000) for _ in range(20000)]
pin = bytes(3000)
del blocks
freed = resident_bytes()
trim.tick(quiet=False)
busy = resident_bytes()
trim.tick(quiet=True)
quiet = resident_bytes()
trim.tick(quiet=True)
again = resident_bytes()
print(json.dumps({"freed": freed, "busy": busy, "quiet": quiet, "again": again}))
"""


def test_freed_memory_goes_back_only_when_quiet() -> None:
    """While uploads are in flight nothing is trimmed; once quiet, the freed ~60 MB leave the
    process's resident size; with no growth since, the next quiet tick changes nothing."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    sizes = json.loads(done.stdout.splitlines()[-1])
    mb = 1024 * 1024
    assert sizes["busy"] > sizes["freed"] - 4 * mb, sizes
    assert sizes["quiet"] < sizes["busy"] - 40 * mb, sizes
    assert abs(sizes["again"] - sizes["quiet"]) < 4 * mb, sizes
