"""The whole exception tree of syncd, in one place.

::

    SyncdError
    ├── ConfigError                 bad TOML, unknown key, bad value (exit code 78)
    ├── StoreError                  state database unusable (locked, corrupt, read-only, full)
    ├── LocalFileError              one local file could not be taken
    │   ├── FileVanishedError       gone between listing and reading
    │   ├── FileUnreadableError     permission denied, I/O error, not a regular file
    │   └── FileChangedError        size or mtime moved while it was hashed
    ├── UsageError                  a call that can never succeed (checked before any request)
    └── ApiError                    anything that went wrong talking to the Files API
        ├── ApiTransportError       no HTTP answer at all
        │   ├── ApiConnectionError  connect failed, connection reset or dropped
        │   └── ApiTimeoutError     connect/read/write/pool timeout
        ├── ApiProtocolError        an answer that does not match the wire contract
        └── ApiStatusError          an HTTP error status, with status_code, message and body
            ├── InvalidRequestError     400 and 422 (``errors`` holds line-numbered details)
            ├── AuthError               401
            ├── PermissionDeniedError   403
            ├── NotFoundError           404
            ├── ConflictError           409
            ├── PayloadTooLargeError    413
            ├── RateLimitedError        429 (``retry_after`` in seconds, when the server said)
            └── ServerError             5xx

``retryable`` tells the one retry policy (:mod:`syncd.retry`) whether trying again can help.
``ApiTransportError.ambiguous`` is true when the request body was sent but no answer came back:
the server may have acted on it, so a non-idempotent call (an upload) must look before it retries.

No exception message ever contains the API key: messages are built from status codes, server
bodies and file names only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "ApiProtocolError",
    "ApiStatusError",
    "ApiTimeoutError",
    "ApiTransportError",
    "AuthError",
    "ConfigError",
    "ConflictError",
    "FileChangedError",
    "FileUnreadableError",
    "FileVanishedError",
    "InvalidRequestError",
    "LocalFileError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ServerError",
    "StoreBusyError",
    "StoreError",
    "SyncdError",
    "UsageError",
]


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""

    retryable: ClassVar[bool] = False


class ConfigError(SyncdError):
    """The configuration cannot be used; the message names the key, value and what is allowed."""


class StoreError(SyncdError):
    """The state database cannot be opened, migrated, read or written."""


class StoreBusyError(StoreError):
    """Another syncd (daemon or ``syncd sync``) already works on this store as this node."""


class UsageError(SyncdError, ValueError):
    """A call that cannot succeed whatever the server says (too large, wrong extension, ...)."""


class LocalFileError(SyncdError):
    """One local file could not be taken; the daemon records it and carries on."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class FileVanishedError(LocalFileError):
    """The file disappeared between being listed and being read."""


class FileUnreadableError(LocalFileError):
    """The file exists but cannot be read (permissions, I/O error, not a regular file)."""


class FileChangedError(LocalFileError):
    """The file changed while it was being hashed; it is tried again once it settles."""

    retryable = True


class ApiError(SyncdError):
    """Anything that went wrong talking to the Files API."""


class ApiTransportError(ApiError):
    """No HTTP answer came back."""

    retryable = True

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        #: True when the request was (possibly) fully sent but no answer arrived.
        self.ambiguous = ambiguous


class ApiConnectionError(ApiTransportError):
    """Connecting failed, or the connection was reset or dropped."""


class ApiTimeoutError(ApiTransportError):
    """The request timed out."""


class ApiProtocolError(ApiError):
    """The server answered with something that does not match the wire contract."""


class ApiStatusError(ApiError):
    """The server answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.headers: Mapping[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.message}"


class InvalidRequestError(ApiStatusError):
    """400 or 422: the server rejected the request or the file's content."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, headers=headers)
        #: Line-numbered validation errors, e.g. ``{"message": ..., "line_number": 3}``.
        self.errors: list[Mapping[str, Any]] = list(errors)


class AuthError(ApiStatusError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(ApiStatusError):
    """403: the key is valid but not allowed to do this."""


class NotFoundError(ApiStatusError):
    """404: no such file."""


class ConflictError(ApiStatusError):
    """409: the request conflicts with the server's state."""


class PayloadTooLargeError(ApiStatusError):
    """413: the file is over the server's size limit."""


class RateLimitedError(ApiStatusError):
    """429: too many requests; ``retry_after`` is the server's wait in seconds, if it said."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, headers=headers)
        self.retry_after = retry_after


class ServerError(ApiStatusError):
    """5xx: the server failed; trying again later may work."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, headers=headers)
        self.retry_after = retry_after
