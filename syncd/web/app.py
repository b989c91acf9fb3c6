"""The status listener's routes: the page, its JSON under ``/api``, ``/metrics`` and ``/healthz``.

Read-only: every route is a GET that reads the store (one session per request) and asks the
daemon (:class:`~syncd.web.source.StatusSource`) what only it knows. Handlers are plain
functions, which starlette runs in its thread pool: store reads never block the event loop.

==================  ======================================================================
``/``               the page (HTML): overview, problems, activity, retention, nodes, lookup
``/api/status``     overview + a page of files (``syncd status --json``'s fields)
``/api/problems``   quarantined, failed, unstable files, newest first (``?folder=``)
``/api/activity``   the audit trail, newest first
``/api/retention``  the next retention run and its dry-run plan
``/api/nodes``      every node in the store (``syncd nodes --json``)
``/api/lineage``    ``?q=<path or sha256>``: the remote files it became
``/metrics``        Prometheus text format
``/healthz``        200 ``ok`` or 503 with why the daemon is degraded
==================  ======================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from syncd.errors import StoreError
from syncd.store import Store
from syncd.web import page
from syncd.web.access import HostGuard, SecurityHeaders, TokenGuard
from syncd.web.params import BadQueryError, int_param, states_param
from syncd.web.report import StatusReport, retention_document
from syncd.web.source import StatusSource

__all__ = ["DEFAULT_PAGE_ROWS", "MAX_PAGE_ROWS", "HealthCheck", "create_status_app"]

log = structlog.get_logger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]
"""Returns ``(healthy, reason)``; the reason is the 503 body when unhealthy."""

#: Rows per table on the page and per ``/api`` list unless ``limit`` says otherwise.
DEFAULT_PAGE_ROWS = 50
MAX_PAGE_ROWS = 1000


class _StatusRoutes:
    """The route handlers, bound to one store and one daemon."""

    def __init__(
        self,
        store: Store,
        source: StatusSource,
        registry: CollectorRegistry,
        health: HealthCheck,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._source = source
        self._registry = registry
        self._health = health
        self._clock = clock

    def _report(self, handler: Callable[[StatusReport], Any]) -> Any:
        with self._store.session() as session:
            report = StatusReport(
                session, self._source.folders(), self._source.live(), self._clock()
            )
            return handler(report)

    def _json(
        self, request: Request, build: Callable[[StatusReport, Mapping[str, str]], Any]
    ) -> Response:
        params = request.query_params
        try:
            document = self._report(lambda report: build(report, params))
        except BadQueryError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except StoreError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return JSONResponse(document)

    def api_status(self, request: Request) -> Response:
        def build(report: StatusReport, params: Mapping[str, str]) -> Any:
            files = report.files(
                folder=params.get("folder") or None,
                states=states_param(params),
                limit=int_param(params, "limit", DEFAULT_PAGE_ROWS, 1, MAX_PAGE_ROWS),
                offset=int_param(params, "offset", 0, 0, 2**62),
            )
            overview = report.overview()
            return {**overview, "files": files.pop("files"), "files_page": files}

        return self._json(request, build)

    def api_problems(self, request: Request) -> Response:
        return self._json(
            request,
            lambda report, params: report.problems(
                folder=params.get("folder") or None,
                limit=int_param(params, "limit", DEFAULT_PAGE_ROWS, 1, MAX_PAGE_ROWS),
                offset=int_param(params, "offset", 0, 0, 2**62),
            ),
        )

    def api_activity(self, request: Request) -> Response:
        return self._json(
            request,
            lambda report, params: report.activity(
                limit=int_param(params, "limit", DEFAULT_PAGE_ROWS, 1, MAX_PAGE_ROWS),
                offset=int_param(params, "offset", 0, 0, 2**62),
            ),
        )

    def api_jobs(self, request: Request) -> Response:
        return self._json(
            request,
            lambda report, params: report.jobs(
                limit=int_param(params, "limit", DEFAULT_PAGE_ROWS, 1, MAX_PAGE_ROWS)
            ),
        )

    def api_nodes(self, request: Request) -> Response:
        return self._json(request, lambda report, _params: report.nodes())

    def api_lineage(self, request: Request) -> Response:
        def build(report: StatusReport, params: Mapping[str, str]) -> Any:
            query = params.get("q", "").strip()
            if not query:
                raise BadQueryError(
                    "q must be a path (relative to its folder, or absolute) or a sha256"
                )
            return report.lineage(query)

        return self._json(request, build)

    def api_retention(self, _request: Request) -> Response:
        preview = self._source.retention_preview(wait=True)
        next_run = self._source.live().next_retention_at
        return JSONResponse(retention_document(preview, next_run))

    def page(self, request: Request) -> Response:
        params = request.query_params
        try:
            html = self._report(
                lambda report: page.render(
                    report, params, self._source.retention_preview(wait=False), DEFAULT_PAGE_ROWS
                )
            )
        except BadQueryError as exc:
            return PlainTextResponse(f"400: {exc}\n", status_code=400)
        except StoreError as exc:
            return Response(page.render_unavailable(str(exc)), 503, media_type="text/html")
        return Response(html, media_type="text/html; charset=utf-8")

    def metrics(self, _request: Request) -> Response:
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(self, _request: Request) -> Response:
        try:
            healthy, reason = self._health()
        except Exception as exc:
            log.exception("health_check_failed")
            healthy, reason = False, f"health check failed: {type(exc).__name__}: {exc}"
        if healthy:
            return PlainTextResponse("ok\n")
        return PlainTextResponse(f"{reason or 'unhealthy'}\n", status_code=503)


def create_status_app(
    *,
    store: Store,
    source: StatusSource,
    registry: CollectorRegistry,
    health: HealthCheck,
    token: str | None = None,
    listen_host: str = "127.0.0.1",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ASGIApp:
    """The status listener's ASGI app; with ``token``, every request must carry it, without
    one only requests for the loopback listener on ``listen_host`` are answered."""
    routes = _StatusRoutes(store, source, registry, health, clock)
    app: ASGIApp = Starlette(
        routes=[
            Route("/", routes.page),
            Route("/api/status", routes.api_status),
            Route("/api/problems", routes.api_problems),
            Route("/api/activity", routes.api_activity),
            Route("/api/retention", routes.api_retention),
            Route("/api/nodes", routes.api_nodes),
            Route("/api/jobs", routes.api_jobs),
            Route("/api/lineage", routes.api_lineage),
            Route("/metrics", routes.metrics),
            Route("/healthz", routes.healthz),
            Mount("/static", StaticFiles(packages=[("syncd.web", "static")]), name="static"),
        ]
    )
    app = TokenGuard(app, token) if token is not None else HostGuard(app, listen_host)
    return SecurityHeaders(app)
