"""Mapping of error bodies, statuses and Retry-After headers; malformed replies the emulator
cannot produce go through ``httpx.MockTransport``."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from syncd.api import Mistral
from syncd.api.errormap import (
    MAX_ERROR_BODY_CHARS,
    error_from_response,
    message_from_body,
    parse_retry_after,
)
from syncd.errors import (
    ApiProtocolError,
    ApiStatusError,
    AuthError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)

SECRET = "sk-very-secret-key-123"
FILE_JSON = {
    "id": "6f1c1d0e-0000-4000-8000-000000000001",
    "object": "file",
    "bytes": 3,
    "created_at": 1_700_000_000,
    "filename": "a.jsonl",
    "purpose": "fine-tune",
    "sample_type": "instruct",
    "source": "upload",
}


def _mock_client(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float] | None = None
) -> Mistral:
    recorded = sleeps if sleeps is not None else []
    return Mistral(
        api_key=SECRET,
        server_url="https://mock.invalid",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=recorded.append,
    )


class TestMessageFromBody:
    def test_detail_string(self) -> None:
        """{"detail": "..."} gives that text."""
        assert message_from_body('{"detail": "No file with id x"}') == ("No file with id x", [])

    def test_detail_list_of_validation_errors(self) -> None:
        """A FastAPI detail list is joined as loc: msg."""
        body = '{"detail": [{"loc": ["path", "file_id"], "msg": "bad uuid", "type": "x"}]}'
        assert message_from_body(body)[0] == "path.file_id: bad uuid"

    def test_gateway_message(self) -> None:
        """{"message": ...} (gateway format) gives the message."""
        assert message_from_body('{"message":"Unauthorized","request_id":"ab"}')[0] == (
            "Unauthorized"
        )

    def test_line_errors_summarised(self) -> None:
        """errors[] with line numbers are summarised "line N: ..." and kept as data."""
        body = (
            '{"detail": "Invalid file format.", "description": "Found 2 errors.", '
            '"errors": [{"message": "invalid json", "line_number": 1},'
            ' {"message": "no messages", "line_number": 3}]}'
        )
        message, errors = message_from_body(body)
        assert message == (
            "Invalid file format. Found 2 errors. line 1: invalid json; line 3: no messages"
        )
        assert [e["line_number"] for e in errors] == [1, 3]

    def test_many_line_errors_are_cut(self) -> None:
        """Beyond five line errors the message says how many more there are."""
        items = ",".join(f'{{"message": "bad", "line_number": {n}}}' for n in range(1, 9))
        message, errors = message_from_body(f'{{"errors": [{items}]}}')
        assert message.endswith("line 5: bad; and 3 more")
        assert len(errors) == 8

    def test_openai_error_envelope(self) -> None:
        """{"error": {"message": ...}} gives the nested message."""
        assert message_from_body('{"error": {"message": "quota"}}')[0] == "quota"

    def test_non_json_body_falls_back_to_text(self) -> None:
        """A plain-text or HTML body is used as is, whitespace collapsed."""
        assert message_from_body("<html>\n Bad  Gateway </html>")[0] == "<html> Bad Gateway </html>"

    def test_empty_body_uses_the_reason(self) -> None:
        """An empty body gives the reason phrase."""
        assert message_from_body("", fallback="Not Found")[0] == "Not Found"


class TestRetryAfter:
    def test_ms_header_wins(self) -> None:
        """retry-after-ms wins over Retry-After."""
        headers = httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})
        assert parse_retry_after(headers) == 0.25

    def test_seconds(self) -> None:
        """Retry-After in seconds."""
        assert parse_retry_after(httpx.Headers({"retry-after": "3"})) == 3.0

    def test_http_date(self) -> None:
        """Retry-After as an HTTP-date is the time left until then."""
        now = datetime(2026, 1, 1, tzinfo=UTC)
        header = format_datetime(now + timedelta(seconds=30), usegmt=True)
        headers = httpx.Headers({"retry-after": header})
        assert parse_retry_after(headers, now=now.timestamp()) == pytest.approx(30)

    def test_past_date_is_zero(self) -> None:
        """A date in the past means retry now."""
        headers = httpx.Headers({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"})
        assert parse_retry_after(headers) == 0.0

    def test_garbage_is_ignored(self) -> None:
        """An unparsable or missing value gives None (our backoff applies)."""
        assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None
        assert parse_retry_after(httpx.Headers()) is None


class TestStatusMapping:
    @pytest.mark.parametrize(
        ("status", "error_class"),
        [
            (400, InvalidRequestError),
            (422, InvalidRequestError),
            (401, AuthError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (409, ConflictError),
            (413, PayloadTooLargeError),
            (429, RateLimitedError),
            (500, ServerError),
            (503, ServerError),
            (418, ApiStatusError),
        ],
    )
    def test_each_status_has_its_class(self, status: int, error_class: type) -> None:
        """Every status maps to its own class, carrying the code, message and body."""
        response = httpx.Response(status, json={"detail": "why"})
        error = error_from_response(response)
        assert type(error) is error_class
        assert (error.status_code, error.message) == (status, "why")
        assert str(error) == f"HTTP {status}: why"
        assert '"why"' in error.body

    def test_body_is_truncated(self) -> None:
        """A huge error body is kept only up to the limit."""
        error = error_from_response(httpx.Response(500, text="x" * (MAX_ERROR_BODY_CHARS * 2)))
        assert len(error.body) == MAX_ERROR_BODY_CHARS

    def test_server_error_keeps_retry_after(self) -> None:
        """A 503's Retry-After is kept for the retry policy."""
        error = error_from_response(httpx.Response(503, headers={"Retry-After": "7"}))
        assert isinstance(error, ServerError)
        assert error.retry_after == 7.0


class TestMalformedReplies:
    def test_non_json_success_body(self) -> None:
        """A 200 whose body is not JSON is an ApiProtocolError naming the operation."""
        client = _mock_client(lambda request: httpx.Response(200, text="<html>oops</html>"))
        with client, pytest.raises(ApiProtocolError, match="retrieve: expected a JSON body"):
            client.files.retrieve("x")

    def test_wrong_shape_success_body(self) -> None:
        """A 200 JSON body missing required fields is an ApiProtocolError naming them."""
        client = _mock_client(lambda request: httpx.Response(200, json={"id": "x"}))
        with client, pytest.raises(ApiProtocolError, match="created_at"):
            client.files.retrieve("x")

    def test_bytes_null_and_unknown_values_are_tolerated(self) -> None:
        """bytes: null, an unknown purpose and extra fields parse (the API is an open set)."""
        listing = {
            "object": "list",
            "data": [{**FILE_JSON, "bytes": None, "purpose": "audio", "novel": 1}],
        }
        client = _mock_client(lambda request: httpx.Response(200, json=listing))
        with client:
            page = client.files.list()
        assert page.total is None
        assert page.data[0].size_bytes is None
        assert page.data[0].purpose == "audio"
        assert page.data[0].model_dump()["novel"] == 1

    def test_signed_url_without_expiry_gets_one(self) -> None:
        """A signed-URL answer with only ``url`` (the spec's shape) gets request time + expiry."""
        seen: list[httpx.Request] = []

        def only_url(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"url": "https://blob.example/f?sig=x"})

        client = _mock_client(only_url)
        before = int(time.time())
        with client:
            signed = client.files.get_signed_url("x", expiry=3)
        assert seen[0].url.params["expiry"] == "3"
        assert signed.url == "https://blob.example/f?sig=x"
        assert signed.expires_at is not None
        assert before + 3 * 3600 <= signed.expires_at <= time.time() + 3 * 3600

    def test_retry_after_ms_and_http_date_are_honoured(self) -> None:
        """429 with retry-after-ms, then 503 with an HTTP-date, wait what they say, then succeed."""
        answers = iter(
            [
                httpx.Response(429, headers={"retry-after-ms": "150", "retry-after": "99"}),
                httpx.Response(
                    503,
                    headers={
                        "retry-after": format_datetime(
                            datetime.now(UTC) + timedelta(seconds=60), usegmt=True
                        )
                    },
                ),
                httpx.Response(200, json={**FILE_JSON, "deleted": False}),
            ]
        )
        sleeps: list[float] = []
        client = _mock_client(lambda request: next(answers), sleeps)
        with client:
            assert client.files.retrieve("x").deleted is False
        assert sleeps[0] == 0.15
        assert 55 < sleeps[1] <= 60

    def test_retries_stop_at_max_retries(self) -> None:
        """With max_retries=2, a server that always fails is asked three times."""
        calls: list[httpx.Request] = []

        def always_503(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            return httpx.Response(503, json={"message": "busy"})

        sleeps: list[float] = []
        client = Mistral(
            api_key=SECRET,
            server_url="https://mock.invalid",
            http_client=httpx.Client(transport=httpx.MockTransport(always_503)),
            max_retries=2,
            sleep=sleeps.append,
        )
        with client, pytest.raises(ServerError, match="busy"):
            client.files.delete("x")
        assert len(calls) == 3
        assert len(sleeps) == 2

    def test_key_never_in_errors(self) -> None:
        """Neither the message, repr nor traceback of a status error contains the key."""
        client = _mock_client(lambda request: httpx.Response(401, json={"detail": "Unauthorized"}))
        with client, pytest.raises(AuthError) as caught:
            client.files.list()
        rendered = "".join(traceback.format_exception(caught.value))
        for text in (str(caught.value), repr(caught.value), rendered, repr(client)):
            assert SECRET not in text
