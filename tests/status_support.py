"""The status app served in-process over real loopback HTTP, on a real store.

:class:`FixedSource` stands in for the running daemon (what only the process knows: health,
API outage, next retention run); everything else comes from the store and the real app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from syncd.pipeline import FolderSpec
from syncd.retention_preview import RetentionPreview, RetentionPreviewer
from syncd.store import Store
from syncd.web import LiveStatus, StatusServer, create_status_app

HealthCheck = Callable[[], tuple[bool, str]]


def live_status(**changes: object) -> LiveStatus:
    """A healthy daemon's live state, with ``changes``."""
    values: dict[str, object] = {
        "node": "test-node",
        "started_at": datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
        "healthy": True,
        "health_reason": "ok",
        "queue_depth": 0,
        "uploading": 0,
    }
    values.update(changes)
    return LiveStatus(**values)  # type: ignore[arg-type]


@dataclass
class FixedSource:
    """A daemon whose live state the test sets (``syncd.web.StatusSource``)."""

    specs: Mapping[str, FolderSpec]
    previewer: RetentionPreviewer
    status: LiveStatus = field(default_factory=live_status)

    def folders(self) -> Mapping[str, FolderSpec]:
        return self.specs

    def live(self) -> LiveStatus:
        return self.status

    def retention_preview(self, *, wait: bool) -> RetentionPreview | None:
        return self.previewer.current(wait=wait)


@contextmanager
def serving(
    store: Store,
    source: FixedSource,
    *,
    token: str | None = None,
    health: HealthCheck | None = None,
    registry: CollectorRegistry | None = None,
    host: str = "127.0.0.1",
) -> Iterator[str]:
    """Serve the status app; yields its base URL."""
    app = create_status_app(
        store=store,
        source=source,
        registry=registry or CollectorRegistry(),
        health=health or (lambda: (source.status.healthy, source.status.health_reason)),
        token=token,
    )
    server = StatusServer(app, host, 0)
    server.start()
    try:
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{server.port}"
    finally:
        server.stop()
