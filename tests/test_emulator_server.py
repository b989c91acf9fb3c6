"""EmulatorServer's lifecycle in-process: start/stop, data-dir ownership, clock, secrets."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from syncd.emulator import DataDirBusyError, EmulatorOptions, EmulatorServer
from tests.support import wait_until

Make = Callable[..., EmulatorServer]
TEXT = b'{"text":"x"}\n'


class FakeClock:
    """A settable wall clock for the server (unix seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def test_context_manager_serves_then_releases_the_port(tmp_path: Path) -> None:
    """Inside ``with`` the URL answers; after it the port is closed and stop() is idempotent."""
    with EmulatorServer(tmp_path / "d", EmulatorOptions(api_key="k")) as server:
        assert httpx.get(server.url + "/v1/files", headers=auth("k")).status_code == 200
        port = server.port
    assert not server.is_running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    server.stop()


def test_a_data_dir_serves_one_emulator_at_a_time(make_emulator: Make, tmp_path: Path) -> None:
    """A second server on a busy data dir fails clearly; once the first stops, it works."""
    data_dir = tmp_path / "shared"
    first = make_emulator(data_dir=data_dir)
    second = EmulatorServer(data_dir, EmulatorOptions())
    with pytest.raises(DataDirBusyError, match="in use"):
        second.start()
    assert not second.is_running
    first.stop()
    assert make_emulator(data_dir=data_dir).is_running


def test_start_twice_is_an_error(emulator: EmulatorServer) -> None:
    """Starting a running server again raises instead of leaking a second thread."""
    with pytest.raises(RuntimeError, match="already started"):
        emulator.start()


def test_options_repr_hides_the_api_key() -> None:
    """The API key never appears in the options' repr."""
    assert "secret-key" not in repr(EmulatorOptions(api_key="secret-key"))


@pytest.mark.parametrize(
    "overrides",
    [{"fault_rate": 1.5}, {"fault_kinds": ("418",)}, {"latency_ms": -1}, {"max_upload_bytes": 0}],
)
def test_invalid_options_are_rejected(overrides: dict[str, object]) -> None:
    """Out-of-range options fail at construction, naming the setting."""
    with pytest.raises(ValueError, match=next(iter(overrides)).split("_")[0]):
        EmulatorOptions(**overrides)  # type: ignore[arg-type]


def test_upload_expiry_removes_the_file_when_due(tmp_path: Path) -> None:
    """A file uploaded with expiry=H is listed until H hours pass, then gone everywhere."""
    clock = FakeClock()
    with EmulatorServer(tmp_path / "d", EmulatorOptions(api_key="k"), clock=clock) as server:
        created = httpx.post(
            server.url + "/v1/files",
            headers=auth("k"),
            files={"file": ("t.jsonl", TEXT)},
            data={"expiry": "2"},
        ).json()
        assert created["expires_at"] == int(clock.now) + 7200
        clock.now += 7199
        assert httpx.get(f"{server.url}/v1/files/{created['id']}", headers=auth("k")).is_success
        clock.now += 1
        assert (
            httpx.get(f"{server.url}/v1/files/{created['id']}", headers=auth("k")).status_code
            == 404
        )
        assert httpx.get(server.url + "/v1/files", headers=auth("k")).json()["total"] == 0
        assert server.stats()["files"] == 0


def test_signed_url_expires_with_the_clock(tmp_path: Path) -> None:
    """A signed URL works until its expiry hour has passed, then answers 403."""
    clock = FakeClock()
    with EmulatorServer(tmp_path / "d", EmulatorOptions(api_key="k"), clock=clock) as server:
        file_id = httpx.post(
            server.url + "/v1/files", headers=auth("k"), files={"file": ("t.jsonl", TEXT)}
        ).json()["id"]
        url = httpx.get(f"{server.url}/v1/files/{file_id}/url?expiry=1", headers=auth("k")).json()[
            "url"
        ]
        assert httpx.get(url).content == TEXT
        clock.now += 3600
        assert httpx.get(url).status_code == 403


def test_client_vanishing_mid_upload_leaves_nothing(emulator: EmulatorServer, api_key: str) -> None:
    """A client that disconnects half-way through an upload leaves no temp file and no file."""
    head = (
        "POST /v1/files HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {api_key}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="file"; filename="x.jsonl"\r\n\r\n'
    ).encode()
    tmp_dir = emulator.data_dir / "tmp"
    with socket.create_connection(("127.0.0.1", emulator.port)) as client:
        client.sendall(head + b"a" * 5000)
        wait_until(lambda: any(tmp_dir.iterdir()), what="the upload to start")
    wait_until(lambda: not any(tmp_dir.iterdir()), what="the partial upload to be removed")
    assert emulator.stats()["files"] == 0
    assert not any((emulator.data_dir / "blobs").iterdir())


def test_head_on_content_sends_headers_only(emulator: EmulatorServer, api_key: str) -> None:
    """HEAD on /content reports the length without sending the bytes."""
    file_id = httpx.post(
        emulator.url + "/v1/files", headers=auth(api_key), files={"file": ("t.jsonl", TEXT)}
    ).json()["id"]
    response = httpx.head(f"{emulator.url}/v1/files/{file_id}/content", headers=auth(api_key))
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(TEXT))
    assert response.content == b""
