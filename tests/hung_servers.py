"""Real TCP servers that misbehave below HTTP: one that accepts and never answers, one that
reads a request body slowly. Each runs in a daemon thread on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class _Server:
    def __init__(self, handle_read: float | None) -> None:
        """``handle_read``: None reads and discards everything at once (the request goes out
        whole, then no answer); a number reads 64 KiB that many seconds apart (a trickle)."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self._pause = handle_read
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self.accepted = 0
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._connections.append(connection)
            threading.Thread(
                target=self._read_and_never_answer, args=(connection,), daemon=True
            ).start()

    def _read_and_never_answer(self, connection: socket.socket) -> None:
        connection.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data = connection.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            if self._pause is not None:
                self._stop.wait(self._pause)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for connection in self._connections:
            with suppress(OSError):
                connection.close()
        self._thread.join(timeout=5)


@contextmanager
def silent_server() -> Iterator[_Server]:
    """Accepts connections and reads requests; never sends a byte back."""
    server = _Server(handle_read=None)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def trickle_server(pause: float = 0.05) -> Iterator[_Server]:
    """Reads a request body 64 KiB at a time, ``pause`` seconds apart; never answers."""
    server = _Server(handle_read=pause)
    try:
        yield server
    finally:
        server.close()


def elapsed_since(started: float) -> float:
    return time.monotonic() - started
