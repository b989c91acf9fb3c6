"""The raw-ASGI layer in front of the routes: bearer auth, latency, and injected faults.

It plays the part of the real API's gateway. Every ``/v1`` request is counted, answered no
sooner than the configured latency after it arrived, and may get a fault; ``/_emulator`` control
endpoints need the key too, but signed downloads (``/_emulator/signed/...``) carry their own HMAC
and need no key.

Latency is the time from a request's arrival to its answer, the emulator's own work included
(as a server that takes that long would answer): a request is handled at once and its answer
held until then. Added on top instead, the emulator's work (a few milliseconds of one event
loop's time per upload, queued behind its other clients) made the latency bound of a client
sending eight requests at a time out of reach whatever the client did. A fault's request waits
out the latency first, as before, then gets its fault.
"""

from __future__ import annotations

import hmac
import json
import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.emulator.faults import (
    DROP_CONNECTION_EXTENSION,
    JOB_FATE_EXTENSION,
    DropConnection,
    FaultInjector,
)
from syncd.emulator.options import JOB_FAULT_KINDS, TARGETED_FAULT_KINDS
from syncd.emulator.stats import EmulatorStats

__all__ = ["Gateway"]

_log = logging.getLogger(__name__)

_SIGNED_PREFIX = "/_emulator/signed/"
#: Requests whose lost response leaves something behind (a file, a job): ``lost-response``
#: serves them fully, then drops the answer. Elsewhere it drops the connection like ``reset``.
_CREATES = frozenset({"/v1/files", "/v1/batch/jobs", "/v1/fine_tuning/jobs"})
_FAULT_BODIES: dict[str, tuple[int, dict[str, object]]] = {
    # The 2026 gateway envelope seen on real 429s.
    "429": (
        429,
        {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
        },
    ),
    "500": (500, {"detail": "Internal Server Error (injected by the syncd emulator)"}),
    "503": (503, {"detail": "Service Unavailable (injected by the syncd emulator)"}),
}


class Gateway:
    """ASGI middleware: auth for the API and control endpoints; latency and faults for ``/v1``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        faults: FaultInjector,
        stats: EmulatorStats,
        max_drain_bytes: int,
    ) -> None:
        self._app = app
        self._api_key = api_key
        self._faults = faults
        self._stats = stats
        self._max_drain_bytes = max_drain_bytes

    def __repr__(self) -> str:
        return "Gateway(<api key hidden>)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/v1" or path.startswith("/v1/"):
            await self._serve_api(scope, receive, send)
        elif path.startswith(_SIGNED_PREFIX):
            await self._app(scope, receive, send)
        elif self._api_key is not None and not self._is_authorized(scope):
            # Control endpoints are open when the emulator runs without a key.
            await self._reject_unauthorized(receive, send)
        else:
            await self._app(scope, receive, send)

    async def _serve_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._stats.count_request()
        settings = self._faults.settings
        answer_at = anyio.current_time() + settings.latency_ms / 1000
        kind = self._faults.draw()
        if settings.latency_ms:
            if kind is None:
                send = _answering_at(send, answer_at)
            else:
                await anyio.sleep_until(answer_at)
        if kind in JOB_FAULT_KINDS:
            # Not a fault of this request: the job it creates (if it creates one) gets it, and
            # the jobs endpoint counts it then.
            scope.setdefault("extensions", {})[JOB_FATE_EXTENSION] = kind
            kind = None
        if kind in TARGETED_FAULT_KINDS and not _is_target(kind, scope):
            kind = None
        if kind == "job-create-hang":
            self._stats.count_fault(kind)
            await self._serve_then_hang(scope, receive, send)
            return
        if kind == "download-stall":
            kind = "stall"
        if kind is not None:
            self._stats.count_fault(kind)
            _log.debug("emulator_fault_injected kind=%s path=%s", kind, scope["path"])
            if kind in _FAULT_BODIES:
                await self._send_fault_status(kind, settings.retry_after, receive, send)
                return
            if kind == "hang":
                # Read the request, then never answer (until the server stops).
                await _drain(receive, self._max_drain_bytes)
                await anyio.sleep_forever()
            if kind == "stall":
                await self._app(scope, receive, _stalling(send))
                return
            creates = scope["method"] == "POST" and scope["path"].rstrip("/") in _CREATES
            if kind == "lost-response" and creates:
                await self._serve_then_drop(scope, receive, send)
                return
            _drop_connection(scope, reset=True)
            return
        if not self._is_authorized(scope):
            await self._reject_unauthorized(receive, send)
            return
        await self._app(scope, receive, send)

    async def _serve_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle the request completely (the upload or job is stored), then vanish without
        answering."""

        async def swallow(message: Message) -> None:
            return None

        if self._is_authorized(scope):
            await self._app(scope, receive, swallow)
        else:
            await _drain(receive, self._max_drain_bytes)
        _drop_connection(scope, reset=False)

    async def _serve_then_hang(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle the request completely (the job is created), then never answer."""

        async def swallow(message: Message) -> None:
            return None

        if self._is_authorized(scope):
            await self._app(scope, receive, swallow)
        await anyio.sleep_forever()

    def _is_authorized(self, scope: Scope) -> bool:
        token = _bearer_token(scope)
        if token is None:
            return False
        if self._api_key is None:
            return True
        return hmac.compare_digest(token.encode(), self._api_key.encode())

    async def _reject_unauthorized(self, receive: Receive, send: Send) -> None:
        headers = await _drain(receive, self._max_drain_bytes)
        headers.append((b"www-authenticate", b"Bearer"))
        await _send_json(send, 401, {"detail": "Unauthorized"}, headers)

    async def _send_fault_status(
        self, kind: str, retry_after: float | None, receive: Receive, send: Send
    ) -> None:
        status, body = _FAULT_BODIES[kind]
        headers: list[tuple[bytes, bytes]] = []
        if retry_after is not None and status in (429, 503):
            headers.append((b"retry-after", f"{retry_after:g}".encode()))
            headers.append((b"retry-after-ms", str(round(retry_after * 1000)).encode()))
        # Read the body first: answering early and closing makes the kernel reset the
        # connection, and the client may never see the status we want it to handle.
        headers += await _drain(receive, self._max_drain_bytes)
        await _send_json(send, status, body, headers)


def _is_target(kind: str, scope: Scope) -> bool:
    """Whether a targeted fault applies to this request (see TARGETED_FAULT_KINDS)."""
    path = str(scope["path"]).rstrip("/")
    method = str(scope["method"])
    if kind == "job-create-hang":
        return method == "POST" and path in ("/v1/batch/jobs", "/v1/ocr")
    return method == "GET" and path.startswith("/v1/files/") and path.endswith("/content")


def _answering_at(send: Send, answer_at: float) -> Send:
    """``send`` that holds the answer's start until ``answer_at`` (anyio's clock)."""

    async def held(message: Message) -> None:
        if message["type"] == "http.response.start":
            await anyio.sleep_until(answer_at)
        await send(message)

    return held


def _stalling(send: Send) -> Send:
    """``send`` that passes the status and headers, then half of the first body chunk, and
    then stops sending for good (until the server stops): an answer stalled mid-body."""

    async def stalled(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        body: bytes = message.get("body", b"")
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        await anyio.sleep_forever()

    return stalled


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            return None
    return None


def _drop_connection(scope: Scope, *, reset: bool) -> None:
    drop: DropConnection | None = scope.get("extensions", {}).get(DROP_CONNECTION_EXTENSION)
    if drop is None:
        # Without the emulator's own server there is no socket to drop; failing loudly (the
        # server answers 500) beats silently answering a request that should get nothing.
        raise RuntimeError("dropping a connection needs syncd's emulator server (uvicorn)")
    drop(reset)


async def _drain(receive: Receive, limit: int) -> list[tuple[bytes, bytes]]:
    """Read and discard the request body, up to ``limit`` bytes.

    Returns the headers the answer needs: ``Connection: close`` when the body was not read to
    its end, because the rest of it must not be taken for the next request on this connection.
    """
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return []
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return []
    return [(b"connection", b"close")]


async def _send_json(
    send: Send, status: int, body: object, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
