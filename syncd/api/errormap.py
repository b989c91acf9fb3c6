"""The one place where httpx failures and HTTP error statuses become :mod:`syncd.errors`.

Transport failures are translated by :func:`translating_transport_errors`, error statuses by
:func:`error_from_response`, malformed success bodies by :func:`parse_json_body`. Messages are
built from status codes, server bodies and URLs only, never from request headers, so the API key
cannot leak into an exception.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import pydantic

from syncd.errors import (
    ApiConnectionError,
    ApiProtocolError,
    ApiStatusError,
    ApiTimeoutError,
    AuthError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    UsageError,
)

__all__ = [
    "MAX_ERROR_BODY_CHARS",
    "error_from_response",
    "message_from_body",
    "parse_json_body",
    "parse_retry_after",
    "translating_transport_errors",
]

#: Error bodies are kept on the exception, cut here (the SDK's limit too).
MAX_ERROR_BODY_CHARS = 10_000
#: How many line errors a message spells out before summarising the rest.
_LINE_ERRORS_IN_MESSAGE = 5

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

_STATUS_ERRORS: dict[int, type[ApiStatusError]] = {
    401: AuthError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
}


@contextmanager
def translating_transport_errors(
    method: str, url: str, *, body_sent: Callable[[], bool]
) -> Iterator[None]:
    """Turn any httpx transport failure inside the block into an ``ApiTransportError``.

    ``body_sent`` reports whether the whole request body had left this process when the failure
    happened: only then can the server have acted on the request, so only then is a lost answer
    ``ambiguous``. A failure while connecting never is.
    """
    where = f"{method} {url}"
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Nothing reached the server.
        kind = ApiTimeoutError if isinstance(exc, httpx.TimeoutException) else ApiConnectionError
        message = f"cannot connect for {where}: {_describe(exc)}"
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            # Verification is never switched off; a private CA is trusted through the env.
            message += " (for a private CA, point SSL_CERT_FILE at its certificate bundle)"
        raise kind(message, ambiguous=False) from exc
    except (httpx.WriteError, httpx.WriteTimeout) as exc:
        # The body did not finish leaving: the server cannot hold a complete request.
        kind = ApiTimeoutError if isinstance(exc, httpx.TimeoutException) else ApiConnectionError
        raise kind(f"sending {where} failed: {_describe(exc)}", ambiguous=False) from exc
    except httpx.TimeoutException as exc:
        raise ApiTimeoutError(
            f"no answer in time for {where}: {_describe(exc)}", ambiguous=body_sent()
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise UsageError(f"cannot send {where}: {_describe(exc)}") from exc
    except (httpx.DecodingError, httpx.TooManyRedirects) as exc:
        raise ApiProtocolError(f"bad answer to {where}: {_describe(exc)}") from exc
    except httpx.TransportError as exc:
        # ReadError, RemoteProtocolError ("Server disconnected without sending a response"),
        # ProxyError, ...: the connection died somewhere after it was made.
        raise ApiConnectionError(
            f"connection lost during {where}: {_describe(exc)}", ambiguous=body_sent()
        ) from exc


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_from_response(response: httpx.Response, *, now: float | None = None) -> ApiStatusError:
    """The exception for an HTTP error status; the response body must already be read."""
    status = response.status_code
    body = response.text[:MAX_ERROR_BODY_CHARS]
    headers = dict(response.headers)
    message, line_errors = message_from_body(body, fallback=response.reason_phrase)
    if status in (400, 422):
        return InvalidRequestError(
            message, status_code=status, body=body, headers=headers, errors=line_errors
        )
    retry_after = parse_retry_after(response.headers, now=now)
    if status == 429:
        return RateLimitedError(
            message, status_code=status, body=body, headers=headers, retry_after=retry_after
        )
    if status >= 500:
        return ServerError(
            message, status_code=status, body=body, headers=headers, retry_after=retry_after
        )
    error_class = _STATUS_ERRORS.get(status, ApiStatusError)
    return error_class(message, status_code=status, body=body, headers=headers)


def message_from_body(body: str, *, fallback: str = "") -> tuple[str, list[Mapping[str, Any]]]:
    """A one-line message and the line-numbered errors from an error body of any known shape.

    Shapes seen from the API: ``{"detail": "..."}``, ``{"detail": [{"loc", "msg", ...}]}``,
    ``{"message": "..."}``, ``{"detail", "description", "errors": [{"message",
    "line_number"}]}``, the ``{"object": "error", "message", ...}`` envelope, and OpenAI's
    ``{"error": {"message"}}``. Anything else falls back to the raw text.
    """
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = " ".join(body.split())
        return (text[:500] or fallback or "no details given"), []
    parts: list[str] = []
    _add_detail(parts, data.get("detail"))
    for key in ("message", "description"):
        _add_text(parts, data.get(key))
    nested = data.get("error")
    if isinstance(nested, dict):
        _add_text(parts, nested.get("message"))
    else:
        _add_text(parts, nested)
    raw_errors = data.get("errors")
    line_errors: list[Mapping[str, Any]] = (
        [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
    )
    if line_errors:
        parts.append(_summarise_line_errors(line_errors))
    message = " ".join(parts) or fallback or "no details given"
    return message, line_errors


def _add_text(parts: list[str], value: object) -> None:
    if isinstance(value, str) and value.strip() and value.strip() not in parts:
        parts.append(value.strip())


def _add_detail(parts: list[str], detail: object) -> None:
    if isinstance(detail, list):
        items = [_validation_item(item) for item in detail]
        _add_text(parts, "; ".join(item for item in items if item))
    else:
        _add_text(parts, detail)


def _validation_item(item: object) -> str:
    """``{"loc": ["body", "purpose"], "msg": "..."}`` -> ``body.purpose: ...``."""
    if not isinstance(item, dict):
        return str(item)
    msg = str(item.get("msg") or item.get("message") or "")
    loc = item.get("loc")
    if isinstance(loc, list | tuple) and loc:
        return f"{'.'.join(str(part) for part in loc)}: {msg}"
    return msg


def _summarise_line_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    shown = []
    for error in errors[:_LINE_ERRORS_IN_MESSAGE]:
        text = str(error.get("message") or error.get("msg") or error.get("detail") or "")
        line = error.get("line_number", error.get("line"))
        shown.append(f"line {line}: {text}" if line is not None else text)
    more = len(errors) - len(shown)
    summary = "; ".join(shown)
    return f"{summary}; and {more} more" if more > 0 else summary


def parse_retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms`` wins over ``Retry-After``.

    ``Retry-After`` may be delta-seconds or an HTTP-date; a date in the past means "now" (0).
    An unparsable value is ignored: our own backoff applies then.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        reference = time.time() if now is None else now
        return max(0.0, when.timestamp() - reference)
    return seconds if seconds >= 0 else None


def parse_json_body(response: httpx.Response, model: type[ModelT], *, operation: str) -> ModelT:
    """The success body as ``model``; anything that is not that JSON is an ``ApiProtocolError``."""
    try:
        data = response.json()
    except ValueError as exc:
        content_type = response.headers.get("content-type", "no content type")
        snippet = " ".join(response.text[:200].split())
        raise ApiProtocolError(
            f"{operation}: expected a JSON body, got {content_type}: {snippet!r}"
        ) from exc
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise ApiProtocolError(
            f"{operation}: the answer is not a {model.__name__}: {problems}"
        ) from exc
