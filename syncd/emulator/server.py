"""Running the emulator: uvicorn on a socket we bind ourselves, in a daemon thread.

Binding first means the URL (and a ``port=0`` choice) is known before uvicorn starts, and a busy
port fails in the caller, not inside a thread. Two small uvicorn subclasses add what the emulator
needs: a protocol that can drop a connection without answering (for the ``reset`` and
``lost-response`` faults) and that ends a connection whose request body was abandoned; the
server that starts and stops without polling sleeps is :mod:`syncd.serving`'s.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import h11
import uvicorn
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from syncd.emulator.app import JobParts, create_app, make_job_parts
from syncd.emulator.faults import DROP_CONNECTION_EXTENSION, FaultInjector, FaultSettings
from syncd.emulator.options import EmulatorOptions
from syncd.emulator.signing import UrlSigner, load_or_create_secret
from syncd.emulator.state import FileStore
from syncd.emulator.stats import EmulatorStats
from syncd.serving import ThreadedUvicorn, bind_socket, start_serving, stop_serving, url_host

__all__ = ["EmulatorServer"]


#: How long a connection closed after its answer may take to flush it before it is aborted.
_CLOSE_GRACE_SECONDS = 10.0
_UNSET: Any = object()


class _EmulatorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus connection drops and an end to abandoned request bodies.

    * A scope extension drops the connection unanswered (the ``reset`` and ``lost-response``
      faults).
    * An answer that starts before the request body has fully arrived (an upload refused part
      way, an unauthorised body drained only so far) gets ``Connection: close``, so the
      connection ends with it. Without that uvicorn keeps the connection alive and silently reads
      and discards the rest of the body, which for a body that never ends means reading forever
      while the client blocks in its write.
    * A connection closed after its answer is aborted if the peer has not taken the answer
      within :data:`_CLOSE_GRACE_SECONDS`: a client that neither reads nor stops sending must not
      pin the socket.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app_with_extras(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})[DROP_CONNECTION_EXTENSION] = self._drop

            async def send_closing_if_body_unread(message: Message) -> None:
                if message["type"] == "http.response.start" and self._request_body_unread():
                    message = _with_connection_close(message)
                await send(message)

            await inner(scope, receive, send_closing_if_body_unread)

        self.app = app_with_extras

    def _request_body_unread(self) -> bool:
        # h11 leaves SEND_BODY only once the body's end has been parsed; an app that read the
        # whole body has necessarily seen that end (uvicorn reports more_body=False on it).
        return self.conn.their_state is h11.SEND_BODY

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            # close() first writes out what is buffered; abort() (a no-op once the connection
            # is gone) bounds how long that may take.
            self.loop.call_later(_CLOSE_GRACE_SECONDS, self.transport.abort)

    def _drop(self, reset: bool) -> None:
        # Mark the cycle gone first, so uvicorn does not try to answer (a 500) for the app.
        if self.cycle is not None:
            self.cycle.disconnected = True
        if reset:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() sends an RST, so the client sees "connection reset".
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        else:
            self.transport.close()


def _with_connection_close(start: Message) -> Message:
    """The ``http.response.start`` message with a ``Connection: close`` header (added once)."""
    headers = list(start.get("headers", []))
    for name, value in headers:
        if bytes(name).lower() == b"connection" and b"close" in bytes(value).lower():
            return start
    return {**start, "headers": [*headers, (b"connection", b"close")]}


class EmulatorServer:
    """The emulator served by uvicorn in a daemon thread, for the daemon's embedded mode and tests.

    Example::

        with EmulatorServer(tmp_path, EmulatorOptions(api_key="k")) as server:
            httpx.get(server.url + "/v1/files", headers={"Authorization": "Bearer k"})
    """

    def __init__(
        self,
        data_dir: Path,
        options: EmulatorOptions = EmulatorOptions(),  # noqa: B008 (frozen, so sharing is safe)
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_log: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.options = options
        self.host = host
        self.port = port
        self.url = ""
        self._access_log = access_log
        self._clock = clock
        self._stats = EmulatorStats()
        self._faults = FaultInjector(FaultSettings.from_options(options), seed=options.seed)
        self._store: FileStore | None = None
        self._jobs: JobParts | None = None
        self._uvicorn: ThreadedUvicorn | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"EmulatorServer(url={self.url!r}, data_dir={str(self.data_dir)!r})"

    def start(self) -> str:
        """Bind, start serving in a daemon thread and return the base URL once it is listening.

        Raises:
            OSError: the address cannot be bound or the data dir cannot be written.
            DataDirBusyError: another emulator serves the same data dir.
            RuntimeError: already started, or uvicorn failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        sock = bind_socket(self.host, self.port)
        store: FileStore | None = None
        try:
            store = FileStore(self.data_dir, clock=self._clock)
            signer = UrlSigner(load_or_create_secret(self.data_dir))
            jobs = make_job_parts(store, self.options, signer, self._clock)
        except BaseException:
            if store is not None:
                store.close()
            sock.close()
            raise
        app = create_app(
            store,
            self.options,
            faults=self._faults,
            stats=self._stats,
            signer=signer,
            clock=self._clock,
            jobs=jobs,
        )
        config = uvicorn.Config(
            app,
            http=_EmulatorH11Protocol,
            lifespan="off",
            log_config=None,  # never reconfigure the host process's logging
            log_level="info" if self._access_log else "warning",
            access_log=self._access_log,
        )
        server = ThreadedUvicorn(config)
        port = sock.getsockname()[1]
        self._store, self._uvicorn, self._jobs = store, server, jobs
        jobs.runner.start()
        try:
            self._thread = start_serving(server, sock, name="syncd-emulator")
        except RuntimeError:
            self._cleanup()
            raise
        self.port = port
        self.url = f"http://{url_host(self.host)}:{port}"
        return self.url

    def stop(self) -> None:
        """Stop serving and close the store; safe to call twice."""
        if self._uvicorn is not None and self._thread is not None:
            stop_serving(self._uvicorn, self._thread)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._jobs is not None:
            self._jobs.runner.stop()  # before the store closes: the runner writes to it
        self._jobs = None
        if self._store is not None:
            self._store.close()
        self._store = None
        self._uvicorn = None
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, object]:
        """The same numbers as ``GET /_emulator/stats``, read in-process."""
        files = self._store.count() if self._store is not None else 0
        return self._stats.snapshot(files)

    def set_faults(
        self,
        *,
        fault_rate: float = _UNSET,
        fault_kinds: tuple[str, ...] = _UNSET,
        retry_after: float | None = _UNSET,
        latency_ms: int = _UNSET,
    ) -> None:
        """Change fault injection on the running server; omitted settings stay as they are.

        Raises:
            ValueError: a setting is out of range or names an unknown fault kind.
        """
        current = self._faults.settings
        settings = FaultSettings(
            fault_rate=current.fault_rate if fault_rate is _UNSET else fault_rate,
            fault_kinds=current.fault_kinds if fault_kinds is _UNSET else tuple(fault_kinds),
            retry_after=current.retry_after if retry_after is _UNSET else retry_after,
            latency_ms=current.latency_ms if latency_ms is _UNSET else latency_ms,
        )
        self._faults.configure(settings)
        self.options = dataclasses.replace(
            self.options,
            fault_rate=settings.fault_rate,
            fault_kinds=settings.fault_kinds,
            retry_after=settings.retry_after,
            latency_ms=settings.latency_ms,
        )
