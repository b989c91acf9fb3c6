"""What the status page asks the running daemon: the facts only the process knows.

The store answers everything about files; the daemon answers how it is doing right now (health,
API outage, queue depth, last good scans, the next retention run). The page depends on this
protocol, not on the daemon, so the layering stays one-way (the daemon imports the page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from syncd.pipeline import FolderSpec
from syncd.retention_preview import RetentionPreview

__all__ = ["LiveStatus", "StatusSource"]


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """The daemon's own state as of one request."""

    node: str
    started_at: datetime
    healthy: bool
    health_reason: str
    """``"ok"``, or why the daemon is degraded (the text of ``/healthz``'s 503)."""
    queue_depth: int | None
    """Files waiting for or in an upload in this node's folders, as of the last status tick."""
    uploading: int
    """Uploads in flight right now."""
    api_down_for: float | None = None
    """Seconds since the Files API stopped answering, None while it answers."""
    api_error: str | None = None
    """What the API last answered while it was down."""
    last_good_scan: Mapping[str, datetime] = field(default_factory=dict)
    """folder key -> when its last full scan finished without an error."""
    next_retention_at: datetime | None = None
    """When the scheduled retention run is due next; None when none is scheduled."""
    lease: timedelta = timedelta(seconds=60)
    """``[node] lease``: a node silent for longer is stale."""
    api_server: str = ""
    """The Files API uploads go to, in words (its URL; "local emulator: ..." for the embedded
    one), from ``syncd.config.endpoints.describe_server``."""
    overdue_after: timedelta = timedelta(hours=25)
    """``[results] overdue_after``: a job unfinished for longer is reported."""
    results_error: str | None = None
    """What the results worker last failed at (the API or a results folder), if anything."""


class StatusSource(Protocol):
    """The running daemon, as the status page sees it."""

    def folders(self) -> Mapping[str, FolderSpec]:
        """folder key -> the folder as configured now (a reload changes it)."""
        ...

    def live(self) -> LiveStatus:
        """The daemon's state now."""
        ...

    def retention_preview(self, *, wait: bool) -> RetentionPreview | None:
        """What the next retention run would delete (a cached dry run); without ``wait``, None
        while the first one is being computed."""
        ...
