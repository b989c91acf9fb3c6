"""Telling an API outage from one file's bad luck, and pacing the uploader while it lasts.

Each failed upload is retried on its own schedule, which is right while failures are scattered
(a 429 here, a dropped connection there). When the API is down for everybody (connection
refused, every answer a 5xx), per-file schedules go wrong twice: every waiting file keeps
knocking on its own, and each knock uses up one of the file's ``max_attempts`` although nothing
is wrong with the file. An outage of a few minutes would turn every file ``failed``.

:class:`OutageGate` notices an outage (``threshold`` transient failures in a row, no answer in
between), then lets one upload through at a time as a probe, after a backoff that grows up to
the retry policy's maximum (a server's Retry-After is honoured). The first probe that gets an
answer closes it again. Failures while it is open say nothing about the file, so the uploader
does not count them against ``max_attempts``.

A request that timed out waiting for an answer weighs half the threshold: each costs a whole
idle timeout (a minute by default), so two in a row mean the API has stopped answering. The
outage is dated from the first failure of the streak that revealed it: that is when the API
stopped answering, and what ``syncd sync``'s patience counts from.

A request admitted before the outage was noticed may still be answered after it (it had its
connection already); that answer does not close the gate, or every straggler would let a new
burst of requests fail.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import structlog

from syncd.retry import DEFAULT_RETRY_POLICY, RetryPolicy, retry_delay

__all__ = ["OutageGate", "outage_threshold"]

log = structlog.get_logger(__name__)


def outage_threshold(concurrency: int) -> int:
    """Transient failures in a row that mean "the API is down" for this many parallel uploads.

    Twice the pool (every worker failing twice), and never fewer than five: with 30% of
    requests failing at random, eight in a row happen about once in 15,000 requests.
    """
    return max(5, 2 * concurrency)


class OutageGate:
    """A circuit breaker in front of the upload pool; thread-safe. See the module docstring."""

    def __init__(
        self,
        *,
        threshold: int,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._threshold = max(1, threshold)
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._streak = 0
        self._streak_began = 0.0
        self._opened_at: float | None = None
        self._failed_probes = 0
        self._probe_at = 0.0
        self._probing = False
        self._last_error = ""
        self._unanswered = False
        #: Outages noticed so far; a request remembers the count it was admitted under.
        self._outages = 0
        self._admitted: dict[int, int] = {}

    @property
    def is_open(self) -> bool:
        """Whether the API is considered down right now."""
        with self._lock:
            return self._opened_at is not None

    def down_for(self) -> float | None:
        """Seconds since the outage began, or None while the API answers."""
        with self._lock:
            if self._opened_at is None:
                return None
            return self._clock() - self._opened_at

    @property
    def unanswered(self) -> bool:
        """Whether the most recent transient failure was a request that got no answer."""
        with self._lock:
            return self._unanswered

    @property
    def last_error(self) -> str:
        """The most recent transient failure, for messages."""
        with self._lock:
            return self._last_error

    def allowance(self, free: int) -> tuple[int, float, bool]:
        """How many uploads may start now (at most ``free``), seconds until more may, and
        whether the one allowed is a probe.

        While the gate is open that is one probe once its time has come, none before; a granted
        probe must end in :meth:`succeeded`, :meth:`failed` or :meth:`release`.
        """
        with self._lock:
            if self._opened_at is None:
                return free, 0.0, False
            if self._probing:
                # The probe's end rings the uploader's doorbell long before this.
                return 0, self._policy.maximum, False
            wait = self._probe_at - self._clock()
            if wait > 0 or free <= 0:
                return 0, max(wait, 0.0), False
            self._probing = True
            return 1, 0.0, True

    def ticket(self) -> int:
        """The outages noticed so far: take it before claiming work, and hand it to
        :meth:`admit`, so a request granted before an outage was noticed counts as a straggler
        even when its thread starts after that."""
        with self._lock:
            return self._outages

    def admit(self, ticket: int | None = None) -> None:
        """The calling thread starts a request: its outcome will be judged against the outage
        (if any) that was known when its ``ticket`` was taken (now, without one). End it with
        :meth:`dismiss`."""
        with self._lock:
            self._admitted[threading.get_ident()] = self._outages if ticket is None else ticket

    def dismiss(self) -> None:
        """The calling thread's request is over."""
        with self._lock:
            self._admitted.pop(threading.get_ident(), None)

    def _is_straggler(self) -> bool:
        """Whether the calling thread's request began before the current outage was noticed."""
        admitted = self._admitted.get(threading.get_ident())
        return self._opened_at is not None and admitted is not None and admitted < self._outages

    def release(self) -> None:
        """A granted probe ended without asking the API anything (the file changed locally)."""
        with self._lock:
            self._probing = False

    def succeeded(self) -> None:
        """The API answered (with a result, or a refusal that is not about its health)."""
        with self._lock:
            if self._is_straggler():
                return
            down_for = None if self._opened_at is None else self._clock() - self._opened_at
            self._streak = 0
            self._opened_at = None
            self._failed_probes = 0
            self._probing = False
        if down_for is not None:
            log.info("api_recovered", down_s=round(down_for, 1))

    def failed(
        self, error: str, *, retry_after: float | None = None, unanswered: bool = False
    ) -> bool:
        """A transient failure (no answer, 429, 5xx); True when it is part of an outage.

        ``unanswered``: the request timed out waiting (see the module docstring).
        """
        with self._lock:
            now = self._clock()
            self._last_error = error
            self._unanswered = unanswered
            if self._is_straggler():
                return True  # known already; not the probe's answer
            if self._streak == 0:
                self._streak_began = now
            self._streak += max(1, self._threshold // 2) if unanswered else 1
            opening = self._opened_at is None
            if opening and self._streak < self._threshold:
                return False
            probe_failed = not opening and self._probing
            if opening:
                self._opened_at = self._streak_began
                self._outages += 1
            elif probe_failed:
                self._failed_probes += 1
                self._probing = False
            delay = retry_delay(
                self._failed_probes + 1, self._policy, retry_after=retry_after, rng=self._rng
            )
            self._probe_at = max(self._probe_at, now + delay)
            failures, failed_probes = self._streak, self._failed_probes
        if opening:
            log.warning(
                "api_unavailable",
                error=error,
                failures_in_a_row=failures,
                probe_in_s=round(delay, 2),
            )
        elif probe_failed:
            log.info(
                "api_probe_failed",
                failed_probes=failed_probes,
                next_probe_in_s=round(delay, 2),
                error=error,
            )
        return True
