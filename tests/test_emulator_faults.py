"""Injected faults: statuses with Retry-After, dropped connections, latency, runtime changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from syncd.emulator import EmulatorServer
from tests.support import wait_until

CHAT = b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n'

Make = Callable[..., EmulatorServer]


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def upload(server: EmulatorServer, api_key: str, name: str = "a.jsonl") -> httpx.Response:
    return httpx.post(
        server.url + "/v1/files",
        headers=auth(api_key),
        files={"file": (name, CHAT)},
        data={"purpose": "fine-tune"},
    )


def only(kind: str, make_emulator: Make, **extra: object) -> EmulatorServer:
    return make_emulator(fault_rate=1.0, fault_kinds=(kind,), **extra)


def test_429_carries_retry_after(make_emulator: Make, api_key: str) -> None:
    """A 429 fault answers with Retry-After (seconds) and retry-after-ms, and stores nothing."""
    server = only("429", make_emulator, retry_after=1.5)
    response = upload(server, api_key)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["type"] == "rate_limited"
    assert server.stats()["files"] == 0


def test_503_carries_retry_after_and_500_does_not(make_emulator: Make, api_key: str) -> None:
    """503 gets the Retry-After header; 500 is a bare JSON error."""
    unavailable = only("503", make_emulator, retry_after=2)
    response = httpx.get(unavailable.url + "/v1/files", headers=auth(api_key))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    broken = only("500", make_emulator, retry_after=2)
    response = httpx.get(broken.url + "/v1/files", headers=auth(api_key))
    assert response.status_code == 500
    assert "retry-after" not in response.headers
    assert "detail" in response.json()


def test_reset_is_a_transport_error_and_stores_nothing(make_emulator: Make, api_key: str) -> None:
    """A reset drops the connection before anything happens: no status, no stored file."""
    server = only("reset", make_emulator)
    with pytest.raises(httpx.TransportError):
        upload(server, api_key)
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/v1/files", headers=auth(api_key))
    stats = server.stats()
    assert stats["files"] == 0
    assert stats["faults_by_kind"] == {"reset": 2}


def test_lost_response_stores_the_upload(make_emulator: Make, api_key: str) -> None:
    """A lost response is a transport error for the client, yet the file exists afterwards."""
    server = only("lost-response", make_emulator)
    with pytest.raises(httpx.TransportError):
        upload(server, api_key)
    assert server.stats()["files"] == 1
    assert server.stats()["uploads"] == 1
    server.set_faults(fault_rate=0.0)
    listed = httpx.get(server.url + "/v1/files", headers=auth(api_key)).json()
    assert [f["filename"] for f in listed["data"]] == ["a.jsonl"]
    # The client's retry of the same name and content gets the stored file back (dedupe).
    assert upload(server, api_key).json()["id"] == listed["data"][0]["id"]


def test_lost_response_on_a_read_behaves_like_reset(make_emulator: Make, api_key: str) -> None:
    """Outside uploads, lost-response drops the connection like reset."""
    server = only("lost-response", make_emulator)
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/v1/files", headers=auth(api_key))


def test_latency_delays_api_requests_only(make_emulator: Make, api_key: str) -> None:
    """latency_ms slows every /v1 request but not the control endpoints."""
    server = make_emulator(latency_ms=300)
    started = time.monotonic()
    assert httpx.get(server.url + "/v1/files", headers=auth(api_key)).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert httpx.get(server.url + "/_emulator/stats", headers=auth(api_key)).status_code == 200
    assert time.monotonic() - started < 0.3


def test_latency_is_the_time_to_the_answer_with_the_work_inside_it(
    make_emulator: Make, api_key: str
) -> None:
    """An upload is stored as it arrives and answered once the latency has passed since then:
    the emulator's own work is part of the latency, not added to it (eight clients at a time
    would otherwise queue on the emulator's one event loop after every delay)."""
    server = make_emulator(latency_ms=1500)
    answered: list[httpx.Response] = []
    started = time.monotonic()
    sender = threading.Thread(target=lambda: answered.append(upload(server, api_key)))
    sender.start()
    wait_until(lambda: server.stats()["uploads"] == 1, timeout=5)
    stored_after = time.monotonic() - started
    sender.join(timeout=10)
    took = time.monotonic() - started
    assert stored_after < 1.0, "the upload waited for the latency before it was handled"
    assert answered and answered[0].status_code == 200
    assert took >= 1.5


def test_seeded_faults_repeat(make_emulator: Make, api_key: str) -> None:
    """The same seed yields the same sequence of faulted and served requests."""

    def outcomes(server: EmulatorServer) -> list[int]:
        with httpx.Client(headers=auth(api_key)) as client:
            return [client.get(server.url + "/v1/files").status_code for _ in range(20)]

    first = outcomes(make_emulator(fault_rate=0.5, fault_kinds=("429", "503"), seed=7))
    second = outcomes(make_emulator(fault_rate=0.5, fault_kinds=("429", "503"), seed=7))
    assert first == second
    assert {200, 429, 503} <= set(first) | {429, 503}
    assert 200 in first


def test_faults_change_at_runtime_over_http(emulator: EmulatorServer, api_key: str) -> None:
    """POST /_emulator/faults switches faults on and off for a running server."""
    control = emulator.url + "/_emulator/faults"
    response = httpx.post(
        control, headers=auth(api_key), json={"fault_rate": 1, "fault_kinds": "503"}
    )
    assert response.status_code == 200
    assert response.json()["fault_kinds"] == ["503"]
    assert httpx.get(emulator.url + "/v1/files", headers=auth(api_key)).status_code == 503
    httpx.post(control, headers=auth(api_key), json={"fault_rate": 0})
    assert httpx.get(emulator.url + "/v1/files", headers=auth(api_key)).status_code == 200
    assert httpx.post(control, json={"fault_rate": 0}).status_code == 401
    bad = httpx.post(control, headers=auth(api_key), json={"fault_kinds": ["boom"]})
    assert bad.status_code == 422
    assert "boom" in bad.json()["detail"]


def test_set_faults_in_process(emulator: EmulatorServer, api_key: str) -> None:
    """EmulatorServer.set_faults takes effect on the next request and is counted in stats."""
    emulator.set_faults(fault_rate=1.0, fault_kinds=("429",), retry_after=0)
    response = httpx.get(emulator.url + "/v1/files", headers=auth(api_key))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0"
    assert emulator.options.fault_kinds == ("429",)
    assert emulator.stats()["faults"] == 1
    with pytest.raises(ValueError, match="unknown fault kind"):
        emulator.set_faults(fault_kinds=("404",))
