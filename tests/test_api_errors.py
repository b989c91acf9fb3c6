"""Each error class, produced by the emulator over loopback HTTP (or by a closed port)."""

from __future__ import annotations

import io
import os
import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.api import Mistral
from syncd.domain import MAX_UPLOAD_BYTES
from syncd.emulator import EmulatorServer
from syncd.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    AuthError,
    FileChangedError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UsageError,
)

CHAT_LINE = (
    b'{"messages": [{"role": "user", "content": "hi"}, '
    b'{"role": "assistant", "content": "hello"}]}\n'
)
UNKNOWN_ID = "6f1c1d0e-0000-4000-8000-000000000001"


@pytest.fixture
def client(emulator: EmulatorServer, api_key: str) -> Iterator[Mistral]:
    """A client for the ``emulator`` fixture, with in-call retries off."""
    with Mistral(api_key=api_key, server_url=emulator.url, max_retries=0) as client:
        yield client


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _sparse_file(path: Path, size: int) -> Path:
    with path.open("wb"):
        pass
    os.truncate(path, size)
    return path


def test_wrong_key_is_auth_error_without_the_key(emulator: EmulatorServer) -> None:
    """A wrong key gives AuthError (401); no message, repr or traceback shows the key."""
    secret = "sk-wrong-but-secret-0123456789"
    with Mistral(api_key=secret, server_url=emulator.url) as client:
        with pytest.raises(AuthError) as caught:
            client.files.list()
        shown = [repr(client), str(client), repr(client.files)]
    error = caught.value
    assert error.status_code == 401
    assert str(error) == "HTTP 401: Unauthorized"
    shown += [str(error), repr(error), "".join(traceback.format_exception(error)), error.body]
    assert not [text for text in shown if secret in text]


def test_missing_key_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No api_key and no MISTRAL_API_KEY is refused when the client is built."""
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(UsageError, match="MISTRAL_API_KEY"):
        Mistral(server_url="http://127.0.0.1:9")


def test_environment_supplies_key_and_url(
    emulator: EmulatorServer, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MISTRAL_API_KEY and MISTRAL_SERVER_URL are used when no arguments are given."""
    monkeypatch.setenv("MISTRAL_API_KEY", api_key)
    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url + "/")
    with Mistral() as client:
        assert repr(client) == f"Mistral(server_url={emulator.url!r})"
        assert client.files.list().data == []


def test_unknown_id_is_not_found(client: Mistral) -> None:
    """An unknown id gives NotFoundError with the server's message."""
    with pytest.raises(NotFoundError) as caught:
        client.files.retrieve(UNKNOWN_ID)
    assert caught.value.status_code == 404
    assert UNKNOWN_ID in str(caught.value)


def test_bad_fine_tune_jsonl_lists_line_errors(client: Mistral) -> None:
    """Invalid fine-tune JSONL gives InvalidRequestError (422) with line-numbered errors."""
    content = CHAT_LINE + b"not json\n" + CHAT_LINE + b'{"messages": 3}\n'
    with pytest.raises(InvalidRequestError) as caught:
        client.files.upload(file=content, filename="bad.jsonl", purpose="fine-tune")
    error = caught.value
    assert error.status_code == 422
    assert [item["line_number"] for item in error.errors] == [2, 4]
    assert "line 2: line contains invalid json" in error.message
    assert "line 4:" in error.message


def test_upload_over_the_server_limit_is_payload_too_large(
    make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """An upload over the server's limit gives PayloadTooLargeError (413)."""
    server = make_emulator(max_upload_bytes=1000)
    client = Mistral(api_key=api_key, server_url=server.url, max_retries=0)
    with client, pytest.raises(PayloadTooLargeError) as caught:
        client.files.upload(file=CHAT_LINE * 20, filename="big.jsonl", purpose="fine-tune")
    assert caught.value.status_code == 413
    assert server.stats()["files"] == 0


def test_over_512_mb_is_refused_before_any_request(
    client: Mistral, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A (sparse) file over 512 MB is a UsageError naming it, and nothing is sent."""
    path = _sparse_file(tmp_path / "huge.jsonl", MAX_UPLOAD_BYTES + 1)
    before = emulator.stats()["requests"]
    with pytest.raises(UsageError, match=r"huge\.jsonl"):
        client.files.upload(file=path, purpose="fine-tune")
    assert emulator.stats()["requests"] == before


def test_fine_tune_txt_is_refused_before_any_request(
    client: Mistral, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """fine-tune with a .txt name is a UsageError naming the file, and nothing is sent."""
    path = tmp_path / "notes.txt"
    path.write_bytes(CHAT_LINE)
    before = emulator.stats()["requests"]
    with pytest.raises(UsageError, match=r"notes\.txt"):
        client.files.upload(file=path, purpose="fine-tune")
    assert emulator.stats()["requests"] == before


def test_closed_port_is_a_connection_error() -> None:
    """Nothing listening gives ApiConnectionError, never ambiguous (nothing was sent)."""
    url = f"http://127.0.0.1:{_closed_port()}"
    client = Mistral(api_key="k", server_url=url, max_retries=0)
    with client, pytest.raises(ApiConnectionError) as caught:
        client.files.upload(file=CHAT_LINE, filename="a.jsonl", purpose="fine-tune")
    assert caught.value.ambiguous is False
    assert url in str(caught.value)


def test_slow_answer_is_an_ambiguous_timeout(
    make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """An answer slower than the timeout gives ApiTimeoutError, ambiguous (the request left)."""
    server = make_emulator(latency_ms=400)
    client = Mistral(api_key=api_key, server_url=server.url, timeout=0.1, max_retries=0)
    with client, pytest.raises(ApiTimeoutError) as caught:
        client.files.list()
    assert caught.value.ambiguous is True


def test_bad_server_url_is_a_usage_error() -> None:
    """A server URL without http(s):// is refused when the client is built."""
    with pytest.raises(UsageError, match="http"):
        Mistral(api_key="k", server_url="api.mistral.ai")


def test_file_changed_while_uploading_is_reported_and_nothing_stored(
    client: Mistral, emulator: EmulatorServer
) -> None:
    """A source that shrinks mid-upload raises FileChangedError; the server keeps nothing."""

    class ShrinksWhenRead(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            self.truncate(10)
            return super().read(size)

    with pytest.raises(FileChangedError, match="shrank"):
        client.files.upload(
            file=ShrinksWhenRead(CHAT_LINE * 10), filename="moving.jsonl", purpose="fine-tune"
        )
    assert emulator.stats()["files"] == 0
