"""The read-only status page on the metrics listener, its JSON under ``/api``, ``/metrics`` and
``/healthz``: what an operator opens first.

Layering: this package reads the store and asks the daemon through
:class:`~syncd.web.source.StatusSource`; the daemon imports it, never the other way round.
"""

from syncd.web.app import HealthCheck, create_status_app
from syncd.web.server import StatusServer
from syncd.web.source import LiveStatus, StatusSource

__all__ = ["HealthCheck", "LiveStatus", "StatusServer", "StatusSource", "create_status_app"]
