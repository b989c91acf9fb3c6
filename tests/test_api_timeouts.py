"""Issue 14.2 at the client: per-phase timeouts, a budget that grows with the upload, and
saying so while a request waits. Real loopback sockets: a server that never answers, one that
reads slowly, and the emulator's ``hang`` and ``stall`` faults."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from syncd.api import Mistral
from syncd.api.timeouts import RequestTimeouts
from syncd.emulator import EmulatorOptions, EmulatorServer
from syncd.errors import ApiTimeoutError
from syncd.outage import OutageGate
from tests.configs import chat_line
from tests.hung_servers import elapsed_since, silent_server, trickle_server
from tests.reliability_checks import stat
from tests.support import wait_until

KEY = "sk-timeouts-test-0123456789"


def test_no_answer_ends_after_the_idle_timeout_naming_the_url_not_the_key() -> None:
    with (
        silent_server() as server,
        Mistral(
            api_key=KEY, server_url=server.url, timeout=1, connect_timeout=1, max_retries=0
        ) as client,
    ):
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as caught:
            client.files.list()
        took = elapsed_since(started)
    assert 0.9 <= took < 5, took
    message = str(caught.value)
    assert server.url in message and KEY not in message
    assert "no answer" in message


def test_a_waiting_request_says_so_and_shows_in_liveness() -> None:
    """Idle timeout 2 s: the "still waiting" line comes after 1 s (half of it), with the method
    and URL; the longest wait is visible while it lasts and gone after."""
    with (
        silent_server() as server,
        Mistral(
            api_key=KEY, server_url=server.url, timeout=2, connect_timeout=1, max_retries=0
        ) as client,
    ):
        failures: list[BaseException] = []

        def call() -> None:
            try:
                client.files.list()
            except ApiTimeoutError as exc:
                failures.append(exc)

        with structlog.testing.capture_logs() as logs:
            thread = threading.Thread(target=call)
            thread.start()
            waiting = wait_until(
                client.liveness.longest_wait, timeout=5, interval=0.05, what="a long wait"
            )
            assert waiting.seconds >= 1.0
            assert waiting.what == f"GET {server.url}/v1/files"
            thread.join(timeout=10)
        assert failures, "it timed out in the end"
        assert client.liveness.longest_wait() is None
    lines = [e for e in logs if e["event"] == "api_waiting"]
    assert lines, logs
    assert lines[0]["request"] == f"GET {server.url}/v1/files"
    assert "no answer from the Files API for 1 s, still waiting" in lines[0]["message"]
    assert all(KEY not in str(e) for e in logs)


def test_an_upload_trickling_past_its_budget_is_cut_off(tmp_path: Path) -> None:
    """The server reads, but slowly: no phase is ever idle for long, and the whole-request
    budget (connect + idle + per MB) still ends it."""
    path = tmp_path / "big.bin"
    path.write_bytes(random.randbytes(12 * 1_000_000))
    budget = RequestTimeouts(connect=1, idle=2, per_mb=0.01).budget(12 * 1_000_000)
    with (
        trickle_server(pause=0.05) as server,
        Mistral(
            api_key=KEY,
            server_url=server.url,
            timeout=2,
            connect_timeout=1,
            timeout_per_mb=0.01,
            max_retries=0,
        ) as client,
    ):
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError, match="longer than its budget") as caught:
            client.files.upload(file=path, purpose="ocr")
        took = elapsed_since(started)
    assert budget <= took < budget + 4, (budget, took)
    assert not caught.value.ambiguous, "the body never finished: nothing can have landed"


def test_the_emulator_hang_fault_times_out_as_an_ambiguous_answer(tmp_path: Path) -> None:
    """``hang``: the whole request is read and never answered; the upload may have landed as
    far as the client can tell, so the answer is ambiguous (the daemon looks before re-sending).
    Stopping the emulator does not wait for the hung request."""
    emulator = EmulatorServer(
        tmp_path / "em", EmulatorOptions(fault_rate=1.0, fault_kinds=("hang",))
    )
    emulator.start()
    try:
        with (
            Mistral(
                api_key=KEY, server_url=emulator.url, timeout=1, connect_timeout=1, max_retries=0
            ) as client,
            pytest.raises(ApiTimeoutError) as caught,
        ):
            client.files.upload(
                file={"file_name": "a.jsonl", "content": (chat_line("q", "a") + "\n").encode()},
                purpose="fine-tune",
            )
        assert caught.value.ambiguous
        assert stat(emulator, "faults") >= 1
    finally:
        started = time.monotonic()
        emulator.stop()
        assert elapsed_since(started) < 10


def test_the_emulator_stall_fault_stops_a_download_midway(tmp_path: Path) -> None:
    emulator = EmulatorServer(tmp_path / "em")
    emulator.start()
    try:
        with Mistral(
            api_key=KEY, server_url=emulator.url, timeout=1, connect_timeout=1, max_retries=0
        ) as client:
            content = b"%PDF-1.4 " + random.randbytes(200_000)
            info = client.files.upload(
                file={"file_name": "a.pdf", "content": content}, purpose="ocr"
            )
            emulator.set_faults(fault_rate=1.0, fault_kinds=("stall",))
            received = bytearray()
            with pytest.raises(ApiTimeoutError), client.files.download(info.id) as response:
                for chunk in response.iter_bytes():
                    received.extend(chunk)
            assert 0 < len(received) < len(content), "part of the body, then nothing"
    finally:
        emulator.stop()


def test_two_timeouts_in_a_row_open_the_outage_gate_dated_from_the_first() -> None:
    """A timeout costs a whole idle limit: two in a row mean the API stopped answering, where
    eight scattered refusals would be needed; the outage counts from the first of them."""
    now = [100.0]
    gate = OutageGate(threshold=8, clock=lambda: now[0], rng=random.Random(3))
    assert gate.failed("no answer", unanswered=True) is False
    now[0] += 60
    assert gate.failed("no answer", unanswered=True) is True
    assert gate.down_for() == 60.0


@given(
    connect=st.floats(min_value=0.1, max_value=60),
    idle=st.floats(min_value=0.1, max_value=600),
    per_mb=st.floats(min_value=0.01, max_value=60),
    size=st.integers(min_value=0, max_value=512_000_000),
)
def test_the_budget_grows_with_the_body_and_covers_every_phase(
    connect: float, idle: float, per_mb: float, size: int
) -> None:
    timeouts = RequestTimeouts(connect=connect, idle=idle, per_mb=per_mb)
    assert timeouts.budget(size) >= connect + idle
    assert timeouts.budget(size + 1_000_000) == pytest.approx(timeouts.budget(size) + per_mb)
    phases = timeouts.for_httpx()
    assert (phases.connect, phases.read, phases.write, phases.pool) == (connect, idle, idle, idle)
    assert 0 < timeouts.waiting_after <= 30 and timeouts.waiting_after <= idle / 2


def test_defaults_say_waiting_after_thirty_seconds() -> None:
    defaults = RequestTimeouts()
    assert (defaults.connect, defaults.idle, defaults.per_mb) == (10, 60, 10)
    assert defaults.waiting_after == 30
    # A 500 MB upload may take connect + idle + 5,000 s: slow links still make it.
    assert defaults.budget(500_000_000) == 10 + 60 + 5000
