"""A streamed answer that trickles inside the idle timeout still ends at its budget (issue 24:
"the deadline must hold for every socket read, not only between chunks")."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from syncd.api import Mistral
from syncd.api.deadlines import answer_deadline
from syncd.errors import ApiTimeoutError


@contextmanager
def trickling_answer(pause: float = 0.05) -> Iterator[str]:
    """A server that answers 200 with a 1 MB body, one byte every ``pause`` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: 1000000\r\n\r\n"
            )
            with suppress(OSError):
                while not stop.is_set():
                    connection.sendall(b"x")
                    time.sleep(pause)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def test_a_trickling_download_is_cut_off_at_its_budget_during_a_read() -> None:
    """Every read returns within the idle timeout (1 s), and a 1 MiB chunk size means no
    chunk is ever handed over: only a deadline on the socket read itself can end it."""
    with (
        trickling_answer() as url,
        Mistral(api_key="k", server_url=url, timeout=1.0, max_retries=0) as client,
    ):
        started = time.monotonic()
        with (
            pytest.raises(ApiTimeoutError, match="budget of 1 s"),
            client.files.download("f") as response,
            answer_deadline(response, 0.6, "downloading f") as expired,
        ):
            for _chunk in response.iter_bytes(1 << 20):
                pass
        elapsed = time.monotonic() - started
    assert expired()
    assert elapsed < 3.0


def test_an_answer_read_within_its_budget_is_untouched() -> None:
    with (
        trickling_answer(pause=0.001) as url,
        Mistral(api_key="k", server_url=url, timeout=1.0, max_retries=0) as client,
        client.files.download("f") as response,
        answer_deadline(response, 30, "downloading f") as expired,
    ):
        first = next(response.iter_bytes())
    assert first and not expired()
