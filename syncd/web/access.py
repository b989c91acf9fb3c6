"""Who may read the status listener, and the headers every answer carries.

With a token (``[metrics] token_file``) every request must carry it: ``Authorization: Bearer
<token>`` (Prometheus' ``authorization`` setting, scripts) or HTTP Basic with the token as the
password and any user name (what a browser asks for when it sees the 401's challenge). Without a
token the listener is on loopback (the config refuses anything else) and answers anyone on the
host.

Every answer says: never cache, never frame, never sniff a type, no referrer, and a Content
Security Policy that allows only this listener's own stylesheet and script: a file name that
got past the escaping still could not run code.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECURITY_HEADERS", "SecurityHeaders", "TokenGuard"]

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
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(_UNAUTHORIZED_BODY)).encode()),
                    *_CHALLENGES,
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED_BODY})
