"""Who may read the status listener, and the headers every answer carries.

With a token (``[metrics] token_file``) every request must carry it: ``Authorization: Bearer
<token>`` (Prometheus' ``authorization`` setting, scripts) or HTTP Basic with the token as the
password and any user name (what a browser asks for when it sees the 401's challenge). Without a
token the listener is on loopback (the config refuses anything else) and answers only requests
whose ``Host`` names this machine's loopback (``localhost``, a loopback literal, the listen
address) with the listener's port: a web page the operator opens cannot read it through DNS
rebinding (its requests carry the attacker's host name), so they get 421.

Every answer says: never cache, never frame, never sniff a type, no referrer, and a Content
Security Policy that allows only this listener's own stylesheet and script: a file name that
got past the escaping still could not run code.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.hosts import is_loopback_host, split_host_port

__all__ = ["SECURITY_HEADERS", "HostGuard", "SecurityHeaders", "TokenGuard"]

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)

_CHALLENGES = (
    (b"www-authenticate", b'Bearer realm="syncd"'),
    (b"www-authenticate", b'Basic realm="syncd status (any user name, the token as password)"'),
)
_UNAUTHORIZED_BODY = (
    b"401: this listener needs its token: 'Authorization: Bearer <token>' "
    b"(or the token as the password of HTTP Basic)\n"
)


_MISDIRECTED_BODY = (
    b"421: this listener answers only requests for its own loopback address "
    b"(Host: localhost, 127.0.0.1 or [::1] with its port)\n"
)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every answer (app-set ones win)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(name).lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TokenGuard:
    """ASGI middleware answering 401 to any request without the token (see module docstring)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    def allows(self, authorization: bytes | None) -> bool:
        """Whether an ``Authorization`` header value carries the token."""
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer":
            given = credentials.strip()
        elif scheme == b"basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            given = decoded.partition(b":")[2]
        else:
            return False
        # Constant time: how much of a guess matched must not show in the answer's timing.
        return hmac.compare_digest(given, self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if self.allows(headers.get(b"authorization")):
            await self.app(scope, receive, send)
            return
        await _refuse(send, 401, _UNAUTHORIZED_BODY, _CHALLENGES)


class HostGuard:
    """ASGI middleware answering 421 to a request whose ``Host`` is not this loopback listener.

    For a listener without a token (see the module docstring). The port must be the one the
    request arrived on (absent only for port 80, as browsers send it).
    """

    def __init__(self, app: ASGIApp, listen_host: str) -> None:
        self.app = app
        self._listen_host = listen_host.strip("[]").lower()

    def allows(self, host_header: bytes | None, server_port: int | None) -> bool:
        """Whether a ``Host`` header value names this listener."""
        if not host_header:
            return False
        parsed = split_host_port(host_header.decode("latin-1").strip())
        if parsed is None:
            return False
        host, port = parsed
        if port != server_port and not (port is None and server_port == 80):
            return False
        host = host.lower()
        return host == self._listen_host or is_loopback_host(host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        server_port = server[1] if server else None
        if self.allows(dict(scope.get("headers", [])).get(b"host"), server_port):
            await self.app(scope, receive, send)
            return
        await _refuse(send, 421, _MISDIRECTED_BODY)


async def _refuse(
    send: Send, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer ``status`` with a plain-text ``body`` without calling the app."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
