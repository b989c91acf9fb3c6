"""uvicorn in a daemon thread, on a socket bound by the caller: the emulator and the status page.

Binding first means the URL (and a ``port=0`` choice) is known before uvicorn starts, and a busy
port fails in the caller, not inside a thread. :class:`ThreadedUvicorn` reports readiness
through an Event and stops without tick polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time

import uvicorn

__all__ = [
    "GRACEFUL_SECONDS",
    "ThreadedUvicorn",
    "bind_socket",
    "start_serving",
    "stop_serving",
    "url_host",
]

_log = logging.getLogger(__name__)

#: How long a stop lets in-flight requests finish before cancelling them.
GRACEFUL_SECONDS = 3.0


class ThreadedUvicorn(uvicorn.Server):
    """uvicorn.Server that reports readiness through an Event and stops without tick polling."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await super().startup(sockets=sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        assert self._stop is not None
        while not self.should_exit:
            # on_tick refreshes the Date header once a second; the Event ends the wait early.
            await self.on_tick(0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        deadline = time.monotonic() + GRACEFUL_SECONDS
        while self.server_state.tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in list(self.server_state.tasks):
            task.cancel()
        for connection in list(self.server_state.connections):
            connection.transport.close()
        for server in self.servers:
            await server.wait_closed()

    def request_stop(self) -> None:
        """Ask the server (from any thread) to shut down."""
        self.should_exit = True
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)


def start_serving(server: ThreadedUvicorn, sock: socket.socket, *, name: str) -> threading.Thread:
    """Serve on ``sock`` from a daemon thread called ``name``; return once it listens.

    Raises:
        RuntimeError: the thread ended during start-up (its log line says why).
    """
    thread = threading.Thread(target=_serve, args=(server, sock, name), name=name, daemon=True)
    thread.start()
    while not server.ready.wait(timeout=0.05):
        if not thread.is_alive():
            raise RuntimeError(f"the {name} server thread stopped during start-up")
    return thread


def _serve(server: ThreadedUvicorn, sock: socket.socket, name: str) -> None:
    try:
        server.run(sockets=[sock])
    # uvicorn raises SystemExit on start-up failures; report it, never end the host process.
    except (Exception, SystemExit):  # noqa: BLE001
        _log.exception("%s: server crashed", name)
    finally:
        sock.close()


def stop_serving(server: ThreadedUvicorn, thread: threading.Thread) -> bool:
    """Stop ``server`` and wait for its thread; False when it did not end in time."""
    server.request_stop()
    thread.join(timeout=GRACEFUL_SECONDS + 5)
    if thread.is_alive():
        _log.warning("%s: server did not stop in time", thread.name)
        return False
    return True


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (IPv6 when the host has a colon).

    Raises:
        OSError: the address cannot be bound (in use, not local, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every response pays Nagle's 40 ms delayed-ACK stall.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def url_host(host: str) -> str:
    """The host as written in a URL: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host
