"""Counters of what one emulator run has seen, readable from any thread.

Tests and benchmarks assert on these (``GET /_emulator/stats`` or ``EmulatorServer.stats()``)
to prove, for example, that a client retried or that a lost response still stored the file.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["EmulatorStats"]


class EmulatorStats:
    """Thread-safe counters since the server started (the live file count comes from the store)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._uploads = 0
        self._dedupe_hits = 0
        self._rejected_uploads = 0
        self._bytes_received = 0
        self._faults: Counter[str] = Counter()

    def count_request(self) -> None:
        with self._lock:
            self._requests += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def count_upload(self, size: int, *, deduped: bool) -> None:
        """A completed upload (a dedupe hit is still a completed upload)."""
        with self._lock:
            self._uploads += 1
            self._bytes_received += size
            if deduped:
                self._dedupe_hits += 1

    def count_rejected_upload(self) -> None:
        with self._lock:
            self._rejected_uploads += 1

    def snapshot(self, live_files: int) -> dict[str, object]:
        """The counters as the JSON object ``GET /_emulator/stats`` returns."""
        with self._lock:
            return {
                "uploads": self._uploads,
                "files": live_files,
                "requests": self._requests,
                "faults": sum(self._faults.values()),
                "faults_by_kind": dict(self._faults),
                "dedupe_hits": self._dedupe_hits,
                "rejected_uploads": self._rejected_uploads,
                "bytes_received": self._bytes_received,
            }
