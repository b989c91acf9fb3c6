"""The status listener: the status app served by uvicorn from a daemon thread.

Bound in :meth:`StatusServer.start` (a busy port fails there, in the daemon's start-up, not in
a thread); stopped with the daemon. uvicorn's own logging is left alone (``log_config=None``):
requests are routine, and the daemon's structlog set-up owns the process's logging.
"""

from __future__ import annotations

import threading

import structlog
import uvicorn
from starlette.types import ASGIApp

from syncd.serving import ThreadedUvicorn, bind_socket, start_serving, stop_serving

__all__ = ["StatusServer"]

log = structlog.get_logger(__name__)


class StatusServer:
    """Serves ``app`` on ``host:port`` (``port=0``: the OS picks; read :attr:`port`)."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self._app = app
        # "[::1]" as written in a listen address is the host "::1".
        self._host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        self._requested_port = port
        self._port: int | None = None
        self._uvicorn: ThreadedUvicorn | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        if self._port is None:
            raise RuntimeError("the status server is not started")
        return self._port

    def start(self) -> None:
        """Bind and start serving.

        Raises:
            OSError: the address cannot be bound (in use, not an address of this host).
            RuntimeError: already started, or uvicorn failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("the status server is already started")
        sock = bind_socket(self._host, self._requested_port)
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            # Slow or idle clients get their connection closed; nothing here streams.
            timeout_keep_alive=5,
        )
        server = ThreadedUvicorn(config)
        port = sock.getsockname()[1]
        self._thread = start_serving(server, sock, name="syncd-status-http")
        self._uvicorn, self._port = server, port
        log.info("status_server_started", host=self._host, port=self._port)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call when not started."""
        server, thread = self._uvicorn, self._thread
        self._uvicorn = self._thread = None
        self._port = None
        if server is not None and thread is not None:
            stop_serving(server, thread)
