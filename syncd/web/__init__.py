"""The read-only status page on the metrics listener, its JSON under ``/api``, ``/metrics`` and
``/healthz``: what an operator opens first.

Layering: this package reads the store and asks the daemon through
:class:`~syncd.web.source.StatusSource`; the daemon imports it, never the other way round.

The page's stack (Starlette, uvicorn, Jinja2 and what they pull in: asyncio's servers, anyio,
h11, multipart) costs a daemon several MB of RSS for good once imported, and most daemons have
no ``[metrics] listen``: so :func:`create_status_app` and :class:`StatusServer` are imported on
first use, and :class:`LiveStatus` (which the daemon's read model needs) without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from syncd.web.source import LiveStatus, StatusSource

if TYPE_CHECKING:
    from syncd.web.app import HealthCheck, create_status_app
    from syncd.web.server import StatusServer

__all__ = ["HealthCheck", "LiveStatus", "StatusServer", "StatusSource", "create_status_app"]

#: The names imported on first use, and their modules.
_LAZY = {
    "HealthCheck": "syncd.web.app",
    "create_status_app": "syncd.web.app",
    "StatusServer": "syncd.web.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
