"""What is wrong with the daemon right now: the last error, and the folders whose watch fails.

Written by the watching, scheduling and upload parts; read by the live read model (STATUS=,
``/healthz``, the status page, the node's heartbeat).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

__all__ = ["DEGRADED_FIRST_RESCAN", "DegradedFolder", "Problems"]

log = structlog.get_logger(__name__)

#: Degraded folders (no working watch) are rescanned from this interval up to rescan_interval.
DEGRADED_FIRST_RESCAN = 2.0


@dataclass(slots=True)
class DegradedFolder:
    reason: str
    interval: float
    next_scan: float
    rewatch: bool
    """The root was missing, deleted, moved or its watcher died: watch it again once it is back.

    Not for inotify limits or overflows: re-adding would fail (or overflow) again at once.
    """


class Problems:
    """The daemon's problems, shared by its parts.

    Threads: any (watchdog's, the settler, the scheduler's, the upload workers', the main
    thread, the status page's). Locks: ``lock`` guards the degraded folders (and the scheduled
    work's "rescan owed" flag); ``last_error`` is one reference, written and read without one.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_error: str | None = None
        self._degraded: dict[str, DegradedFolder] = {}

    def folder_degraded(self, folder_name: str, reason: str) -> None:
        """A folder's watch does not work: rescan it on a backoff (and rewatch when it can)."""
        with self.lock:
            if folder_name not in self._degraded:
                log.warning("folder_degraded", folder=folder_name, error=reason)
            self._degraded[folder_name] = DegradedFolder(
                reason,
                DEGRADED_FIRST_RESCAN,
                time.monotonic() + DEGRADED_FIRST_RESCAN,
                rewatch="does not exist" in reason or "watched again" in reason,
            )
        self.last_error = f"{folder_name}: {reason}"

    def forget(self, folder_name: str) -> None:
        with self.lock:
            self._degraded.pop(folder_name, None)

    def due(self, now: float) -> list[tuple[str, DegradedFolder]]:
        """Degraded folders whose next rescan is due."""
        with self.lock:
            return [(name, d) for name, d in self._degraded.items() if d.next_scan <= now]

    def degraded(self) -> list[tuple[str, str]]:
        """(folder name, reason) of every degraded folder, sorted by name."""
        with self.lock:
            return [(name, d.reason) for name, d in sorted(self._degraded.items())]
