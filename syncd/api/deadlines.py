"""A whole-request deadline that holds during every socket read of a streamed answer.

httpx bounds each socket operation by the idle timeout, so an answer that trickles a byte
just inside it never ends; checking a deadline between chunks does not help either, since a
read in progress blocks until its own timeout. :func:`answer_deadline` arms a timer that, when
the budget runs out, shuts the connection's socket down (``network_stream`` and its
``get_extra_info("socket")`` are documented httpcore response extensions): the blocked read
returns at once, and the failure is reported as the timeout it is.

Threads: the timer's thread only shuts the socket down; everything else runs on the caller's.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import httpx

from syncd.errors import ApiTimeoutError, ApiTransportError

__all__ = ["answer_deadline"]


@contextmanager
def answer_deadline(
    response: httpx.Response, seconds: float, what: str
) -> Iterator[Callable[[], bool]]:
    """Bound reading ``response``'s body to ``seconds`` from now; yields "has it expired?".

    Raises:
        ApiTimeoutError: the body was still being read when the budget ran out.
    """
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(seconds, 0.0), cut)
    timer.daemon = True
    timer.start()
    try:
        yield expired.is_set
    except ApiTransportError:
        if expired.is_set():
            raise ApiTimeoutError(
                f"{what}: took longer than its budget of {seconds:.0f} s"
            ) from None
        raise
    finally:
        timer.cancel()
