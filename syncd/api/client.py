"""``Mistral``: the Files API client, shaped like the official SDK (``client.files.upload(...)``).

It resolves the key and server URL (arguments, then ``MISTRAL_API_KEY`` / ``MISTRAL_SERVER_URL``,
then the public API), owns or borrows one ``httpx.Client`` (TLS verification always on), and
hands a :class:`~syncd.api.requester.Requester` to its resources. The key is kept out of every
repr, log and exception.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import TracebackType

import httpx

from syncd import __version__
from syncd.api.files import Files
from syncd.api.jobs import Batch, FineTuning
from syncd.api.liveness import Liveness
from syncd.api.ocr import Ocr
from syncd.api.requester import Requester
from syncd.api.timeouts import RequestTimeouts
from syncd.domain import is_sendable_api_key
from syncd.errors import UsageError
from syncd.hosts import check_key_transport
from syncd.retry import DEFAULT_RETRY_POLICY, RetryPolicy

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_SERVER_URL",
    "DEFAULT_TIMEOUT_SECONDS",
    "SERVER_URL_ENV",
    "Mistral",
]

DEFAULT_SERVER_URL = "https://api.mistral.ai"
API_KEY_ENV = "MISTRAL_API_KEY"
SERVER_URL_ENV = "MISTRAL_SERVER_URL"
#: No byte moved for this long (sending, or waiting for the answer): the request failed.
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_USER_AGENT = f"syncd/{__version__}"


class Mistral:
    """A Files API client: ``Mistral(api_key=...).files.upload(file=..., purpose=...)``.

    ``timeout`` is the longest a request may go without a byte moving (sending, or waiting for
    the answer); ``connect_timeout`` bounds reaching the server, and a request's whole budget
    is ``connect_timeout + timeout + timeout_per_mb`` per MB of its body
    (:mod:`syncd.api.timeouts`). ``max_retries`` bounds in-call retries of 429, 5xx and
    transport failures (0 disables them: the daemon schedules its own). ``sleep`` waits between
    retries (injectable for tests). Use it as a context manager, or call :meth:`close`; an
    injected ``http_client`` is left open.
    """

    def __init__(
        self,
        api_key: str | None = None,
        server_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout: float = 10.0,
        timeout_per_mb: float = 10.0,
        max_retries: int = 4,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        http_client: httpx.Client | None = None,
        user_agent: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key or not key.strip():
            raise UsageError(f"no API key: pass api_key= or set {API_KEY_ENV}")
        if not is_sendable_api_key(key.strip()):
            # Never quote it: the message would carry the key into logs.
            raise UsageError(
                "the API key holds a space, a control character or a non-ASCII character;"
                " an API key is one token of printable ASCII"
            )
        url = (server_url or os.environ.get(SERVER_URL_ENV) or DEFAULT_SERVER_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"server URL must start with http:// or https://, got {url!r}")
        try:
            check_key_transport(url)  # the daemon's rule, with its message
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        for name, value in (
            ("timeout", timeout),
            ("connect_timeout", connect_timeout),
            ("timeout_per_mb", timeout_per_mb),
        ):
            if not value > 0:
                raise UsageError(f"{name} must be positive, got {value}")
        timeouts = RequestTimeouts(connect=connect_timeout, idle=timeout, per_mb=timeout_per_mb)
        if max_retries < 0:
            raise UsageError(f"max_retries must be 0 or more, got {max_retries}")
        self.server_url = url
        self.timeouts = timeouts
        """Per-phase limits and the whole-request budget (:meth:`RequestTimeouts.budget`)."""
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            follow_redirects=True, timeout=timeouts.for_httpx()
        )
        self._requester = Requester(
            http=self._http,
            server_url=url,
            api_key=key.strip(),
            user_agent=user_agent or DEFAULT_USER_AGENT,
            timeouts=timeouts,
            max_retries=max_retries,
            retry_policy=retry_policy,
            sleep=sleep,
            owns_http=self._owns_http,
        )
        self.files = Files(self._requester)
        """The Files API: upload, list, iter_all, find_upload, retrieve, delete, download, ..."""
        self.fine_tuning = FineTuning(self._requester)
        """Fine-tuning jobs (``.jobs``: list, iter_all, get, create)."""
        self.batch = Batch(self._requester)
        """Batch jobs (``.jobs``: list, iter_all, get, create)."""
        self.ocr = Ocr(self._requester)
        """OCR (``process``)."""

    def __repr__(self) -> str:
        return f"Mistral(server_url={self.server_url!r})"

    @property
    def liveness(self) -> Liveness:
        """Requests in flight and how long the longest has waited for an answer."""
        return self._requester.liveness

    @property
    def max_retries(self) -> int:
        """In-call retries per operation."""
        return self._requester.max_retries

    def close(self) -> None:
        """Close the connection pool, unless the httpx client was injected."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Mistral:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
