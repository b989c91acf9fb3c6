"""In-call retries under each emulator fault, and the upload's look-before-re-sending.

Each test lets the emulator fault every request, and the client's retry wait (its ``sleep``)
turns the faults off: so exactly the first attempt fails, whatever the fault draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from syncd.errors import ApiConnectionError, RateLimitedError, ServerError
from syncd.retry import RetryPolicy

CHAT_LINE = (
    b'{"messages": [{"role": "user", "content": "hi"}, '
    b'{"role": "assistant", "content": "hello"}]}\n'
)
FAST = RetryPolicy(initial=0.01, maximum=0.05)


@dataclass
class Recorder:
    """Request start times (from an httpx event hook) and the waits the client asked for."""

    server: EmulatorServer
    heal_after_first_wait: bool = True
    sent: list[tuple[float, str, str]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def on_request(self, request: httpx.Request) -> None:
        self.sent.append((time.monotonic(), request.method, request.url.path))

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.heal_after_first_wait:
            self.server.set_faults(fault_rate=0.0)
        time.sleep(seconds)


@contextmanager
def _client(
    server: EmulatorServer, api_key: str, recorder: Recorder, *, max_retries: int = 4
) -> Iterator[Mistral]:
    """A client with fast backoff whose requests and waits ``recorder`` sees."""
    http = httpx.Client(event_hooks={"request": [recorder.on_request]})
    client = Mistral(
        api_key=api_key,
        server_url=server.url,
        http_client=http,
        max_retries=max_retries,
        retry_policy=FAST,
        sleep=recorder.sleep,
    )
    with http, client:
        yield client


@pytest.fixture
def faulty(make_emulator: Callable[..., EmulatorServer]) -> Callable[..., EmulatorServer]:
    """``faulty(kind, **options)``: an emulator that faults every request with ``kind``."""

    def make(kind: str, **options: object) -> EmulatorServer:
        return make_emulator(fault_rate=1.0, fault_kinds=(kind,), seed=1, **options)

    return make


def test_429_waits_at_least_retry_after(
    faulty: Callable[..., EmulatorServer], api_key: str
) -> None:
    """A 429 with Retry-After 0.2 s is retried no sooner than 0.2 s later, then succeeds."""
    server = faulty("429", retry_after=0.2)
    recorder = Recorder(server)
    with _client(server, api_key, recorder) as client:
        info = client.files.upload(file=CHAT_LINE, filename="r.jsonl", purpose="fine-tune")
    assert recorder.waits == [0.2]
    (first, *_), (second, *_) = recorder.sent
    assert second - first >= 0.2
    assert server.stats()["faults_by_kind"] == {"429": 1}
    assert server.stats()["files"] == 1
    assert info.filename == "r.jsonl"


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors_are_retried_once_stored(
    faulty: Callable[..., EmulatorServer], api_key: str, kind: str
) -> None:
    """A 5xx on upload is retried; the retry looks first, and exactly one file results."""
    server = faulty(kind, dedupe=False)
    recorder = Recorder(server)
    with _client(server, api_key, recorder) as client:
        info = client.files.upload(file=CHAT_LINE, filename="s.jsonl", purpose="fine-tune")
        listed = client.files.list().data
    assert [f.id for f in listed] == [info.id]
    assert server.stats()["faults_by_kind"] == {kind: 1}
    # Fault, then a look for a file that may have landed, then the real upload.
    assert [(method, path) for _, method, path in recorder.sent[:3]] == [
        ("POST", "/v1/files"),
        ("GET", "/v1/files"),
        ("POST", "/v1/files"),
    ]


def test_reset_connection_is_retried(faulty: Callable[..., EmulatorServer], api_key: str) -> None:
    """A connection reset on a read is retried and succeeds."""
    server = faulty("reset")
    recorder = Recorder(server)
    with _client(server, api_key, recorder) as client:
        assert client.files.list().data == []
    assert server.stats()["faults_by_kind"] == {"reset": 1}
    assert len(recorder.waits) == 1


def test_reset_during_upload_leaves_one_file(
    faulty: Callable[..., EmulatorServer], api_key: str
) -> None:
    """A reset upload is retried and exactly one file ends up on the server."""
    server = faulty("reset", dedupe=False)
    recorder = Recorder(server)
    with _client(server, api_key, recorder) as client:
        info = client.files.upload(file=CHAT_LINE, filename="x.jsonl", purpose="fine-tune")
        assert [f.id for f in client.files.list().data] == [info.id]


def test_lost_response_adopts_the_stored_file(
    faulty: Callable[..., EmulatorServer], api_key: str
) -> None:
    """The server stores the upload but the answer is lost: the retry finds and returns that
    file instead of uploading again (dedupe off, so a second upload would show)."""
    server = faulty("lost-response", dedupe=False)
    recorder = Recorder(server)
    with _client(server, api_key, recorder) as client:
        info = client.files.upload(file=CHAT_LINE * 2, filename="lost.jsonl", purpose="fine-tune")
        listed = client.files.list().data
    assert [f.id for f in listed] == [info.id]
    assert server.stats()["uploads"] == 1
    assert [method for _, method, _ in recorder.sent].count("POST") == 1


def test_lost_response_without_retries_is_ambiguous_then_findable(
    faulty: Callable[..., EmulatorServer], api_key: str
) -> None:
    """With max_retries=0 a lost answer raises an ambiguous error; find_upload recovers the id
    (the daemon's crash-recovery path)."""
    server = faulty("lost-response", dedupe=False)
    recorder = Recorder(server, heal_after_first_wait=False)
    started = time.time()
    with _client(server, api_key, recorder, max_retries=0) as client:
        with pytest.raises(ApiConnectionError) as caught:
            client.files.upload(file=CHAT_LINE, filename="crash.jsonl", purpose="fine-tune")
        assert caught.value.ambiguous is True
        server.set_faults(fault_rate=0.0)
        found = client.files.find_upload("crash.jsonl", len(CHAT_LINE), started - 2)
    assert found is not None
    assert found.filename == "crash.jsonl"
    assert recorder.waits == []


def test_retries_give_up_after_max_retries(
    faulty: Callable[..., EmulatorServer], api_key: str
) -> None:
    """A server that keeps answering 503 is asked 1 + max_retries times, then ServerError."""
    server = faulty("503")
    recorder = Recorder(server, heal_after_first_wait=False)
    with (
        _client(server, api_key, recorder, max_retries=2) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.files.list()
    assert caught.value.status_code == 503
    assert len(recorder.sent) == 3
    assert len(recorder.waits) == 2


def test_no_retries_when_disabled(faulty: Callable[..., EmulatorServer], api_key: str) -> None:
    """max_retries=0 surfaces the first 429 at once, with the server's retry_after."""
    server = faulty("429", retry_after=3)
    recorder = Recorder(server, heal_after_first_wait=False)
    with (
        _client(server, api_key, recorder, max_retries=0) as client,
        pytest.raises(RateLimitedError) as caught,
    ):
        client.files.list()
    assert caught.value.retry_after == 3.0
    assert len(recorder.sent) == 1
