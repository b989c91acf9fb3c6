"""The sd_notify protocol, spoken directly: one datagram per state change to ``$NOTIFY_SOCKET``.

Owns talking to the service manager (READY, STATUS, RELOADING, STOPPING, WATCHDOG) and reading
the watchdog interval it asks for. Without ``NOTIFY_SOCKET`` (not started by systemd) every call
is a no-op, and a failed send is logged, never raised: telling systemd is never worth a crash.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

__all__ = ["SystemdNotifier", "watchdog_interval"]

log = structlog.get_logger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages to systemd (see ``sd_notify(3)``).

    ``socket_path`` defaults to ``$NOTIFY_SOCKET``; a leading ``@`` names a socket in the
    abstract namespace. Holds no open socket, so it is safe to share between threads.
    """

    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = _socket_address(path) if path else None

    @property
    def enabled(self) -> bool:
        """True when there is a socket to talk to (we were started by a service manager)."""
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value`` strings) as one datagram; return whether it was sent."""
        if self._address is None or not fields:
            return False
        payload = "\n".join(fields).encode()
        try:
            # A socket per message, as libsystemd does: messages are rare, and nothing is left
            # open to leak or to share between threads.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            # systemd may be restarting or the socket gone; the daemon must carry on regardless.
            log.debug("sd_notify_failed", error=str(exc), fields=list(fields))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (``READY=1``), optionally with a status line."""
        return self.notify("READY=1", *_status_fields(status))

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def reloading(self, status: str | None = None) -> bool:
        """Announce a configuration reload; send :meth:`ready` when it is done.

        systemd >= 253 requires ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, microseconds) beside
        ``RELOADING=1`` to tell this reload apart from earlier ones.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status_fields(status))

    def stopping(self, status: str | None = None) -> bool:
        """Announce a clean shutdown has begun (``STOPPING=1``)."""
        return self.notify("STOPPING=1", *_status_fields(status))

    def watchdog(self) -> bool:
        """Keep the service watchdog from firing (``WATCHDOG=1``)."""
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before the start/stop timeout kills us (a long first scan)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def __repr__(self) -> str:
        return f"SystemdNotifier(address={self._address!r})"


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or None when systemd asked for no watchdog.

    Half of ``WATCHDOG_USEC`` (the margin ``sd_watchdog_enabled(3)`` recommends), and only when
    ``WATCHDOG_PID`` is unset or names this process (a child must not ping for its parent).
    """
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000


def _socket_address(path: str) -> str:
    # "@name" is the abstract namespace: the kernel address starts with a NUL byte instead.
    return "\0" + path[1:] if path.startswith("@") else path


def _status_fields(status: str | None) -> tuple[str, ...]:
    return () if status is None else (f"STATUS={_one_line(status)}",)


def _one_line(text: str) -> str:
    # A newline would start a new KEY=value field and could smuggle in e.g. READY=1.
    return " ".join(text.splitlines())
