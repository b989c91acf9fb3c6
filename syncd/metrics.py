"""Prometheus metrics for one daemon, and the small HTTP server for ``/metrics`` and ``/healthz``.

Owns the metric names, their labels and the exposition endpoint. Every daemon gets a private
``CollectorRegistry`` (nothing global, so tests and embedded daemons never collide). Setting the
values is the daemon's job; what "healthy" means is the ``health`` callable's.
"""

from __future__ import annotations

import platform
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    ProcessCollector,
    generate_latest,
    make_wsgi_app,
)

from syncd import __version__
from syncd.domain import LocalState

__all__ = ["HealthCheck", "Metrics", "MetricsServer"]

log = structlog.get_logger(__name__)

_SHUTDOWN_POLL_SECONDS = 0.1

HealthCheck = Callable[[], tuple[bool, str]]
"""Returns ``(healthy, reason)``; the reason is the 503 body when unhealthy."""


class Metrics:
    """Every metric syncd exports, registered in a registry of its own.

    The attributes are plain prometheus_client metrics: ``metrics.uploads_total.labels(
    folder="train", purpose="fine-tune", outcome="uploaded").inc()``.
    """

    def __init__(self, *, node: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self._file_states: dict[str, set[str]] = {}
        r = self.registry
        self.files = Gauge(
            "syncd_files",
            "Files known to the state store, by state",
            ["folder", "state"],
            registry=r,
        )
        self.uploads_total = Counter(
            "syncd_uploads_total",
            "Finished upload attempts",
            ["folder", "purpose", "outcome"],
            registry=r,
        )
        self.upload_bytes_total = Counter(
            "syncd_upload_bytes_total", "Bytes of file content uploaded", registry=r
        )
        self.upload_failures_total = Counter(
            "syncd_upload_failures_total",
            "Failed upload attempts, by error class",
            ["folder", "reason_class"],
            registry=r,
        )
        self.api_retries_total = Counter(
            "syncd_api_retries_total",
            "API calls retried, by HTTP status (or transport)",
            ["status"],
            registry=r,
        )
        self.rate_limited_total = Counter(
            "syncd_rate_limited_total", "HTTP 429 answers from the Files API", registry=r
        )
        self.queue_depth = Gauge("syncd_queue_depth", "Files waiting to be uploaded", registry=r)
        self.oldest_unsynced_age_seconds = Gauge(
            "syncd_oldest_unsynced_age_seconds",
            "Age of the oldest file seen but not uploaded yet",
            registry=r,
        )
        self.watcher_overflows_total = Counter(
            "syncd_watcher_overflows_total",
            "Times the kernel dropped filesystem events (inotify queue overflow)",
            registry=r,
        )
        self.last_good_rescan_timestamp_seconds = Gauge(
            "syncd_last_good_rescan_timestamp_seconds",
            "Unix time of the last full rescan that completed without errors",
            registry=r,
        )
        self.degraded = Gauge(
            "syncd_degraded",
            "1 while changes may be missed (watch limit, overflow...)",
            registry=r,
        )
        self.deletes_total = Counter(
            "syncd_deletes_total",
            "Remote files deleted, by reason",
            ["folder", "reason"],
            registry=r,
        )
        self.build_info = Info("syncd_build", "syncd build information", registry=r)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        # The node's name as an info metric (syncd_node_info{node="gpu-3"} 1), not as a label
        # on every series: each daemon is its own scrape target, so its series are told apart
        # by the target's labels already; a constant label on all of them would only repeat
        # it, and a dashboard that wants names joins on the target:
        # `syncd_queue_depth * on(instance) group_left(node) syncd_node_info`.
        self.node_info = Info("syncd_node", "This syncd's node name (fleet mode)", registry=r)
        if node is not None:
            self.node_info.info({"node": node})
        # Memory, CPU and open files of the daemon itself (state growth on huge trees).
        ProcessCollector(registry=r)

    def set_file_counts(self, folder: str, counts: Mapping[str, int]) -> None:
        """Set ``files{folder, state}`` from store counts; states absent from ``counts`` are 0."""
        states = self._file_states.setdefault(folder, set())
        states.update(state.value for state in LocalState)
        states.update(counts)
        for state in states:
            self.files.labels(folder=folder, state=state).set(counts.get(state, 0))

    def forget_folder(self, folder: str) -> None:
        """Drop a removed folder's ``files`` series so it is no longer exported."""
        for state in self._file_states.pop(folder, set()):
            self.files.remove(folder, state)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (what ``GET /metrics`` returns)."""
        return generate_latest(self.registry)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # A slow scraper must not block /healthz; threads die with the process.
    daemon_threads = True


class _LoggingHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # wsgiref writes every request to stderr; requests are routine, so debug only.
        log.debug("metrics_request", client=self.address_string(), line=format % args)


class MetricsServer:
    """Serves ``GET /metrics`` and ``GET /healthz`` from a background thread.

    ``/healthz`` answers 200 ``ok`` or 503 with the reason ``health()`` gave. ``port=0`` picks
    a free port; read it from :attr:`port` after :meth:`start`.
    """

    def __init__(self, metrics: Metrics, host: str, port: int, health: HealthCheck) -> None:
        self._metrics_app = make_wsgi_app(metrics.registry)
        # "[::1]" as written in a listen address is the host "::1".
        self._host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        self._requested_port = port
        self._health = health
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return self._server.server_port

    def start(self) -> None:
        """Bind and start serving; bind errors (address in use) raise here, not in the thread.

        Raises:
            OSError: the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("the metrics server is already started")

        # HTTPServer is IPv4-only by default; pick the family the host needs ("::1" works).
        family = socket.getaddrinfo(
            self._host, self._requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0][0]

        class _Server(_ThreadingWSGIServer):
            address_family = family

        server = make_server(
            self._host,
            self._requested_port,
            self._app,
            server_class=_Server,
            handler_class=_LoggingHandler,
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # How often the loop checks for stop(): bounds shutdown time, costs ~nothing idle.
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name="syncd-metrics-http",
            daemon=True,
        )
        self._thread.start()
        log.info("metrics_server_started", host=self._host, port=server.server_port)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call when not started."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            result: Iterable[bytes] = self._metrics_app(environ, start_response)
            return result
        if path != "/healthz":
            return _text(start_response, "404 Not Found", "not found: try /metrics or /healthz")
        if method != "GET":
            return _text(start_response, "405 Method Not Allowed", "use GET", [("Allow", "GET")])
        try:
            healthy, reason = self._health()
        except Exception as exc:
            log.exception("health_check_failed")
            healthy, reason = False, f"health check failed: {type(exc).__name__}: {exc}"
        if healthy:
            return _text(start_response, "200 OK", "ok")
        return _text(start_response, "503 Service Unavailable", reason or "unhealthy")


def _text(
    start_response: StartResponse,
    status: str,
    body: str,
    extra_headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    payload = (body + "\n").encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(payload))),
        ("Cache-Control", "no-store"),
        *(extra_headers or []),
    ]
    start_response(status, headers)
    return [payload]
