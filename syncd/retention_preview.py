"""What the next retention run would delete: a dry run, computed at most once a minute.

The status page shows the plan on every refresh; planning reads the store and, when something
is due, the job lists from the API. The last plan is kept for ``max_age`` seconds and only one
caller computes a new one at a time (the others get the one being replaced), so a page open in
ten browsers costs one dry run a minute, not ten per refresh; the page itself never waits for
one (a background thread plans, the page shows the last plan).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from syncd.api import Mistral
from syncd.errors import SyncdError
from syncd.retention_job import RetentionResult, RetentionSettings, run_retention
from syncd.store import Store

__all__ = ["DEFAULT_MAX_AGE", "RetentionPreview", "RetentionPreviewer"]

log = structlog.get_logger(__name__)

#: A plan older than this is computed again on the next look.
DEFAULT_MAX_AGE = 60.0


@dataclass(frozen=True, slots=True)
class RetentionPreview:
    """One dry run: its result, the settings it ran with, and when; or why it failed."""

    computed_at: datetime
    settings: RetentionSettings
    result: RetentionResult | None
    error: str | None = None


class RetentionPreviewer:
    """Dry runs of retention for the status page, cached (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        client: Mistral,
        settings: Callable[[], RetentionSettings],
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._client = client
        self._settings = settings
        self._max_age = max_age
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: tuple[float, RetentionPreview] | None = None

    def invalidate(self) -> None:
        """Forget the cached plan (a retention run or a reload changed what is due)."""
        self._last = None

    def current(self, *, wait: bool = True) -> RetentionPreview | None:
        """The cached plan when fresh; else a new dry run.

        With ``wait`` (``/api/retention``) the caller computes it, one caller at a time. Without
        (the page), a background thread does, and the caller gets the last plan at once, or
        None before the first one: a page load never waits for planning.
        """
        last = self._last
        if last is not None and self._monotonic() - last[0] < self._max_age:
            return last[1]
        if not wait:
            if not self._lock.locked():
                threading.Thread(
                    target=self._refresh, name="syncd-retention-preview", daemon=True
                ).start()
            return None if last is None else last[1]
        # With a stale plan at hand, a second caller shows it rather than wait for the new one.
        if not self._lock.acquire(blocking=last is None):
            assert last is not None
            return last[1]
        try:
            last = self._last  # computed by the caller this one waited for?
            if last is not None and self._monotonic() - last[0] < self._max_age:
                return last[1]
            preview = self._compute()
            self._last = (self._monotonic(), preview)
            return preview
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        try:
            self.current(wait=True)
        except Exception:
            # A bug (or a client closed at shutdown) must show in the log, not end in a
            # thread's traceback on stderr; the next look tries again.
            log.exception("retention_preview_failed")

    def _compute(self) -> RetentionPreview:
        now = self._clock()
        settings = replace(self._settings(), dry_run=True)
        try:
            result = run_retention(self._store, self._client, settings, now=now)
        except SyncdError as exc:
            log.warning("retention_preview_failed", error=str(exc))
            return RetentionPreview(now, settings, None, str(exc))
        return RetentionPreview(now, settings, result)
