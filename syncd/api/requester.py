"""Sending one Files API request, and retrying an operation under the one retry policy.

:class:`Requester` owns what every call shares: the base URL, the auth and default headers, the
timeout, the httpx client, and the in-call retry loop (:meth:`Requester.retrying`), whose delays
come from :func:`syncd.retry.retry_delay`. It knows nothing about files; :mod:`syncd.api.files`
builds the calls.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TypeVar

import httpx
import pydantic
import structlog

from syncd.api.errormap import (
    error_from_response,
    parse_json_body,
    translating_transport_errors,
)
from syncd.api.liveness import Liveness, RequestWatch
from syncd.api.timeouts import RequestTimeouts
from syncd.errors import ApiError, ApiTimeoutError
from syncd.retry import RetryPolicy, is_retryable, retry_after_of, retry_delay

__all__ = ["QueryParams", "Requester", "StreamedResponse"]

QueryParams = Sequence[tuple[str, str | int]]
T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

_log = structlog.get_logger(__name__)


def _always_sent() -> bool:
    return True


def _transport_for(http: httpx.Client, server_url: str) -> httpx.BaseTransport | None:
    """The transport ``http`` sends requests to ``server_url`` through: its connection pool,
    or the proxy the environment names for that host (``HTTPS_PROXY``, ``NO_PROXY``...).

    httpx keeps that choice private (``Client._transport_for_url``, httpx pinned in uv.lock);
    without it every request goes through the client.
    """
    choose = getattr(http, "_transport_for_url", None)
    if choose is None:
        return None
    transport = choose(httpx.URL(server_url))
    return transport if isinstance(transport, httpx.BaseTransport) else None


class Requester:
    """Builds, sends and checks requests against one Files API server."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        server_url: str,
        api_key: str,
        user_agent: str,
        timeouts: RequestTimeouts,
        max_retries: int,
        retry_policy: RetryPolicy,
        sleep: Callable[[float], None],
        owns_http: bool = False,
    ) -> None:
        self._http = http
        #: Where answers that are read whole go (see :meth:`_send_direct`), or None: through the
        #: client (one it was handed keeps its hooks, auth and mounts; or httpx lacks the hook).
        self._direct = _transport_for(http, server_url) if owns_http else None
        self.server_url = server_url
        # The key lives only inside this header value; nothing prints headers.
        self.__authorization = (
            api_key if api_key.lower().startswith("bearer ") else f"Bearer {api_key}"
        )
        self._user_agent = user_agent
        self.timeouts = timeouts
        self._timeout = timeouts.for_httpx()
        #: Requests in flight and how long each has waited (``api_waiting``, STATUS=).
        self.liveness = Liveness(timeouts.waiting_after)
        self._bodies: weakref.WeakKeyDictionary[httpx.Request, _PacedBody] = (
            weakref.WeakKeyDictionary()
        )
        self.max_retries = max_retries
        self.retry_policy = retry_policy
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"Requester(server_url={self.server_url!r})"

    def url(self, path: str) -> str:
        """Absolute URL of an API path; a path prefix in ``server_url`` is kept."""
        return f"{self.server_url}{path}"

    def build(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        accept: str = "application/json",
        content: Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """A request with auth, Accept and User-Agent set; a body is sent against a budget that
        grows with its ``Content-Length`` (see :mod:`syncd.api.timeouts`)."""
        all_headers = {
            "Accept": accept,
            "User-Agent": self._user_agent,
            "Authorization": self.__authorization,
            **(headers or {}),
        }
        paced: _PacedBody | None = None
        if content is not None:
            length = int(all_headers.get("Content-Length", "0") or 0)
            paced = _PacedBody(content, self.timeouts.budget(length), self.url(path))
        request = self._http.build_request(
            method,
            self.url(path),
            params=list(params) if params else None,
            headers=all_headers,
            content=paced,
            timeout=self._timeout,
        )
        if paced is not None:
            self._bodies[request] = paced
        return request

    def send(
        self, request: httpx.Request, *, body_sent: Callable[[], bool] = _always_sent
    ) -> httpx.Response:
        """Send once and read the answer; return it if 2xx, raise the mapped error otherwise."""
        return self._send(request, stream=False, body_sent=body_sent)

    def open_stream(self, request: httpx.Request) -> StreamedResponse:
        """Send once; return the 2xx answer with its body still unread (the caller closes it).

        Transport failures while the body is read raise ``ApiTransportError`` too.
        """
        response = self._send(request, stream=True, body_sent=_always_sent)
        inner = response.stream
        assert isinstance(inner, httpx.SyncByteStream)  # a sync client gives sync streams
        url = str(response.request.url.copy_with(query=None))
        return StreamedResponse(
            response.status_code,
            headers=response.headers,
            stream=_TranslatedStream(inner, response.request.method, url),
            request=response.request,
            extensions=response.extensions,
            history=response.history,
        )

    def _send(
        self, request: httpx.Request, *, stream: bool, body_sent: Callable[[], bool]
    ) -> httpx.Response:
        # Named without its query (a signed URL's is a credential); most requests have none.
        url = str(request.url.copy_with(query=None) if request.url.query else request.url)
        watch = self.liveness.watch(f"{request.method} {url}")
        paced = self._bodies.get(request)
        if paced is not None:
            paced.start(watch)
        try:
            with translating_transport_errors(request.method, url, body_sent=body_sent):
                if self._direct is not None and not stream and not self._http.is_closed:
                    response = self._send_direct(self._direct, request)
                else:
                    response = self._http.send(request, stream=stream, follow_redirects=True)
                try:
                    if not response.is_success:
                        response.read()
                except BaseException:
                    response.close()
                    raise
        finally:
            watch.close()
        if response.is_success:
            return response
        response.close()
        raise error_from_response(response)

    def _send_direct(
        self, transport: httpx.BaseTransport, request: httpx.Request
    ) -> httpx.Response:
        """``request`` sent on the client's own transport for the API, its answer read whole.

        What ``Client.send`` adds around the transport is for features syncd's own client does
        not use (auth flows, cookies, event hooks) and cost about a fifth of a small upload's
        HTTP CPU (issue 25). A redirect is still followed, by the client, as before.
        """
        response = transport.handle_request(request)
        response.request = request
        try:
            if response.is_redirect:
                response.close()
                return self._http.send(request, follow_redirects=True)
            response.read()
        except BaseException:
            response.close()
            raise
        return response

    def send_json(
        self,
        request: httpx.Request,
        model: type[ModelT],
        *,
        operation: str,
        body_sent: Callable[[], bool] = _always_sent,
    ) -> ModelT:
        """Send once and parse the JSON answer as ``model``."""
        response = self.send(request, body_sent=body_sent)
        return parse_json_body(response, model, operation=operation)

    def post_json_once(
        self, path: str, body: Mapping[str, object], model: type[ModelT], *, operation: str
    ) -> ModelT:
        """POST ``body`` as JSON exactly once (never retried: for requests that start work,
        where a retry could start it twice) and parse the answer as ``model``."""
        payload = json.dumps(body).encode()
        request = self.build(
            "POST",
            path,
            content=[payload],
            headers={"Content-Type": "application/json", "Content-Length": str(len(payload))},
        )
        return self.send_json(request, model, operation=operation)

    def retrying(self, attempt: Callable[[], T], *, operation: str) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or ``max_retries`` retries are used.

        Only retryable errors (429, 5xx, transport failures) are tried again, after
        :func:`syncd.retry.retry_delay` seconds (the server's Retry-After wins).
        """
        failures = 0
        while True:
            try:
                return attempt()
            except ApiError as exc:
                if not is_retryable(exc) or failures >= self.max_retries:
                    raise
                failures += 1
                delay = retry_delay(failures, self.retry_policy, retry_after=retry_after_of(exc))
                _log.debug(
                    "api_call_retrying",
                    operation=operation,
                    attempt=failures,
                    delay_s=round(delay, 3),
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
                self._sleep(delay)


class _PacedBody:
    """A request body that reports progress to its watch and ends when its budget is spent.

    Iterable again from the start (a redirect or a retry sends it again); the clock starts at
    :meth:`start`. A chunk is pulled only once the one before it was written, so the check
    between chunks sees the time the body has really taken.
    """

    def __init__(self, inner: Iterable[bytes], budget: float, url: str) -> None:
        self._inner = inner
        self._budget = budget
        self._url = url
        self._deadline = float("inf")
        self._watch: RequestWatch | None = None

    def start(self, watch: RequestWatch) -> None:
        self._watch = watch
        self._deadline = time.monotonic() + self._budget

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            yield chunk
            if self._watch is not None:
                self._watch.moved()
            if time.monotonic() > self._deadline:
                raise ApiTimeoutError(
                    f"sending the body to {self._url} took longer than its budget of "
                    f"{self._budget:.0f} s ([api] timeout_per_mb); the server takes it too slowly",
                    ambiguous=False,
                )


class StreamedResponse(httpx.Response):
    """A response whose body is streamed; also a context manager that closes it on exit."""

    def __enter__(self) -> StreamedResponse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _TranslatedStream(httpx.SyncByteStream):
    """A streamed body whose transport failures surface as ``syncd.errors``, not httpx's."""

    def __init__(self, inner: httpx.SyncByteStream, method: str, url: str) -> None:
        self._inner = inner
        self._method = method
        self._url = url

    def __iter__(self) -> Iterator[bytes]:
        with translating_transport_errors(self._method, self._url, body_sent=_always_sent):
            yield from self._inner

    def close(self) -> None:
        self._inner.close()
