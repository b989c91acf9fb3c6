"""Tests that change the machine for a moment run alone, also when the suite runs on workers.

The suite runs on pytest-xdist workers (``-n 2`` in addopts). A test that lowers a machine-wide
setting (``fs.inotify.max_queued_events``, read by every inotify instance that starts) would
change what a test on another worker meets, so it asks for the ``runs_alone`` fixture.

Every test holds a shared lock on one file of the run for its whole protocol (module and
session fixtures it sets up included); ``runs_alone`` trades it for an exclusive one, which the
kernel grants once the other workers' current tests have ended, and they start no new one until
it is released. A gate lock keeps the exclusive request from waiting behind a stream of shared
ones. Without workers there is nothing to share the machine with, and no lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The key under which the controller hands each worker the run's lock file.
WORKER_INPUT_KEY = "syncd_machine_lock"


class MachineLock:
    """One worker's handles on the run's lock file and its gate."""

    def __init__(self, path: Path) -> None:
        self._lock = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._gate = os.open(path.with_name(path.name + ".gate"), os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Held by every test: others may run beside it."""
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    @contextmanager
    def alone(self) -> Iterator[None]:
        """Inside :meth:`shared`: wait until no other worker runs a test, and keep it so."""
        # Let go of the shared lock first: two workers asking at once must not deadlock.
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._lock)
        os.close(self._gate)
