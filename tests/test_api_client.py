"""The ``Mistral`` client itself: headers, URL handling and who closes the connection pool."""

from __future__ import annotations

import httpx
import pytest

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from syncd.errors import NotFoundError, UsageError


class RequestLog:
    """Collects every request an httpx client sends (an event hook, not a mock)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)


def test_headers_sent(emulator: EmulatorServer, api_key: str) -> None:
    """Every call sends the bearer key, Accept and the User-Agent; download accepts bytes."""
    log = RequestLog()
    with httpx.Client(event_hooks={"request": [log]}) as http:
        client = Mistral(
            api_key=api_key, server_url=emulator.url, http_client=http, user_agent="probe/1"
        )
        client.files.list()
        with pytest.raises(NotFoundError):
            client.files.download("6f1c1d0e-0000-4000-8000-000000000001")
    listing, download = log.requests
    assert listing.headers["authorization"] == f"Bearer {api_key}"
    assert listing.headers["user-agent"] == "probe/1"
    assert listing.headers["accept"] == "application/json"
    assert download.headers["accept"] == "application/octet-stream"
    assert str(listing.url.params) == "page=0&page_size=100&include_total=true"


def test_bearer_prefix_is_not_doubled(emulator: EmulatorServer, api_key: str) -> None:
    """A key given with its "Bearer " prefix still authenticates."""
    with Mistral(api_key=f"Bearer {api_key}", server_url=emulator.url) as client:
        assert client.files.list().data == []


def test_list_filters_repeat_their_key(emulator: EmulatorServer, api_key: str) -> None:
    """Array filters go out as repeated keys in the SDK's order, as the wire contract says."""
    log = RequestLog()
    with httpx.Client(event_hooks={"request": [log]}) as http:
        client = Mistral(api_key=api_key, server_url=emulator.url, http_client=http)
        client.files.list(
            page=2,
            page_size=10,
            include_total=False,
            sample_type=["instruct", "batch_result"],
            source=["upload"],
            search="train",
            purpose="fine-tune",
            mimetypes=["application/jsonl", "text/plain"],
        )
    assert str(log.requests[0].url.params) == (
        "page=2&page_size=10&include_total=false&sample_type=instruct&sample_type=batch_result"
        "&source=upload&search=train&purpose=fine-tune"
        "&mimetypes=application%2Fjsonl&mimetypes=text%2Fplain"
    )


def test_server_url_path_prefix_is_kept(emulator: EmulatorServer, api_key: str) -> None:
    """A path prefix in server_url prefixes every API path (trailing slash ignored)."""
    log = RequestLog()
    with httpx.Client(event_hooks={"request": [log]}) as http:
        client = Mistral(api_key=api_key, server_url=emulator.url + "/gw/", http_client=http)
        with pytest.raises(NotFoundError):
            client.files.list()
    assert log.requests[0].url.path == "/gw/v1/files"


def test_injected_http_client_stays_open(emulator: EmulatorServer, api_key: str) -> None:
    """close() closes the client's own pool, never an injected one."""
    with httpx.Client() as http:
        with Mistral(api_key=api_key, server_url=emulator.url, http_client=http) as client:
            client.files.list()
        assert not http.is_closed
    owned = Mistral(api_key=api_key, server_url=emulator.url)
    owned.close()
    with pytest.raises(RuntimeError):
        owned.files.list()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    """A negative retry count or a non-positive timeout is refused up front."""
    with pytest.raises(UsageError, match=message):
        Mistral(api_key="k", server_url="http://127.0.0.1:9", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["sk-abc\ndef", "sk abc", "sk-\u00e9t\u00e9"])
def test_unsendable_key_is_refused_without_quoting_it(key: str) -> None:
    """A key that cannot be a header token is refused before sending, and never echoed."""
    with pytest.raises(UsageError, match="printable ASCII") as caught:
        Mistral(api_key=key, server_url="http://127.0.0.1:9")
    assert key not in str(caught.value)
