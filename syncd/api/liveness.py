"""Which Files API requests are waiting for an answer, and since when.

Every request registers here while it runs (:meth:`Liveness.watch`); sending a chunk of its
body counts as progress. A monitor thread logs ``api_waiting`` ("no answer from the Files API
for 30 s, still waiting", with the method and URL, never a header) for each request silent for
``waiting_after`` seconds, and again each time as long; :meth:`Liveness.longest_wait` gives the
daemon's ``STATUS=`` and ``/healthz`` the longest silence now. The thread runs while requests
are in flight (and a few seconds after), wakes at most once a second, and never holds a request
up: a request only takes the lock to register and to leave.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

__all__ = ["Liveness", "RequestWatch", "Waiting"]

#: The monitor thread lingers this long after the last request, so a stream of short requests
#: does not start a thread each.
_LINGER_SECONDS = 5.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Waiting:
    """The longest-silent request in flight."""

    seconds: float
    what: str
    """``"POST https://api.mistral.ai/v1/files"``: method and URL without the query."""


class RequestWatch:
    """One request in flight; :meth:`moved` when a byte moved, :meth:`close` when it ended."""

    def __init__(self, owner: Liveness, key: int, what: str, now: float) -> None:
        self._owner = owner
        self._key = key
        self.what = what
        self.last_moved = now
        self.reported = 0
        """How many ``api_waiting`` lines this silence has had."""

    def moved(self) -> None:
        self.last_moved = self._owner.clock()
        self.reported = 0

    def close(self) -> None:
        self._owner.forget(self._key)


class Liveness:
    """Requests in flight and how long each has gone without progress; thread-safe."""

    def __init__(
        self, waiting_after: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._waiting_after = waiting_after
        self.clock = clock
        self._lock = threading.Condition()
        self._requests: dict[int, RequestWatch] = {}
        self._keys = itertools.count()
        self._monitor: threading.Thread | None = None

    def watch(self, what: str) -> RequestWatch:
        """Register a request that starts now (``what``: method and URL, nothing secret)."""
        with self._lock:
            key = next(self._keys)
            request = RequestWatch(self, key, what, self.clock())
            self._requests[key] = request
            if self._monitor is None or not self._monitor.is_alive():
                self._monitor = threading.Thread(
                    target=self._monitor_loop, name="syncd-api-liveness", daemon=True
                )
                self._monitor.start()
            return request

    def forget(self, key: int) -> None:
        with self._lock:
            self._requests.pop(key, None)

    def longest_wait(self) -> Waiting | None:
        """The request silent the longest, when one has been for ``waiting_after`` or more."""
        now = self.clock()
        with self._lock:
            silent = [(now - r.last_moved, r.what) for r in self._requests.values()]
        if not silent:
            return None
        seconds, what = max(silent)
        return Waiting(seconds, what) if seconds >= self._waiting_after else None

    def _monitor_loop(self) -> None:
        step = min(max(self._waiting_after / 4, 0.05), 1.0)
        with self._lock:
            idle_since = self.clock()
            while True:
                now = self.clock()
                if self._requests:
                    idle_since = now
                elif now - idle_since > _LINGER_SECONDS:
                    break
                for request in list(self._requests.values()):
                    silent = now - request.last_moved
                    due = int(silent // self._waiting_after)
                    if due > request.reported:
                        request.reported = due
                        log.warning(
                            "api_waiting",
                            request=request.what,
                            no_answer_for_s=round(silent),
                            message=(
                                f"no answer from the Files API for {silent:.0f} s, "
                                f"still waiting ({request.what})"
                            ),
                        )
                self._lock.wait(timeout=step)
            self._monitor = None
