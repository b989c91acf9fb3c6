"""sd_notify over a real unix datagram socket, read back the way systemd would read it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.notify import SystemdNotifier, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket standing in for systemd's notify socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def _receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


class TestSystemdNotifier:
    def test_ready_sends_one_datagram_with_status(
        self, listener: tuple[str, socket.socket]
    ) -> None:
        """ready() sends READY=1 and STATUS in a single datagram."""
        path, sock = listener
        notifier = SystemdNotifier(path)
        assert notifier.ready("watching 2 folders") is True
        assert _receive(sock) == ["READY=1", "STATUS=watching 2 folders"]

    def test_each_convenience_call_sends_its_field(
        self, listener: tuple[str, socket.socket]
    ) -> None:
        """status, stopping, watchdog and extend_timeout each send their own field."""
        path, sock = listener
        notifier = SystemdNotifier(path)
        notifier.status("queue: 3")
        notifier.stopping()
        notifier.watchdog()
        notifier.extend_timeout(1.5)
        assert [_receive(sock) for _ in range(4)] == [
            ["STATUS=queue: 3"],
            ["STOPPING=1"],
            ["WATCHDOG=1"],
            ["EXTEND_TIMEOUT_USEC=1500000"],
        ]

    def test_reloading_carries_the_monotonic_clock(
        self, listener: tuple[str, socket.socket]
    ) -> None:
        """reloading() sends RELOADING=1 with MONOTONIC_USEC taken from CLOCK_MONOTONIC."""
        path, sock = listener
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        SystemdNotifier(path).reloading()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = _receive(sock)
        assert fields[0] == "RELOADING=1"
        key, _, value = fields[1].partition("=")
        assert key == "MONOTONIC_USEC"
        assert before <= int(value) <= after

    def test_status_newlines_cannot_inject_fields(
        self, listener: tuple[str, socket.socket]
    ) -> None:
        """A newline inside a status text is flattened, so it cannot smuggle in READY=1."""
        path, sock = listener
        SystemdNotifier(path).status("bad\nREADY=1")
        assert _receive(sock) == ["STATUS=bad READY=1"]

    def test_reads_notify_socket_from_environment(
        self, listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without an explicit path the notifier uses $NOTIFY_SOCKET."""
        path, sock = listener
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert SystemdNotifier().watchdog() is True
        assert _receive(sock) == ["WATCHDOG=1"]

    def test_abstract_namespace_socket(self) -> None:
        """A NOTIFY_SOCKET starting with '@' reaches a socket in the abstract namespace."""
        name = f"syncd-test-{os.getpid()}-{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            sock.settimeout(5)
            assert SystemdNotifier("@" + name).ready() is True
            assert _receive(sock) == ["READY=1"]

    def test_without_socket_is_a_silent_no_op(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no NOTIFY_SOCKET every call returns False and nothing is raised."""
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        notifier = SystemdNotifier()
        assert notifier.enabled is False
        assert notifier.ready("x") is False
        assert notifier.watchdog() is False

    def test_send_failure_returns_false_and_logs(self, tmp_path: Path) -> None:
        """A socket path nobody listens on gives False and a debug log, never an exception."""
        notifier = SystemdNotifier(str(tmp_path / "nobody-listens.sock"))
        with capture_logs() as logs:
            assert notifier.ready() is False
        assert [entry["event"] for entry in logs] == ["sd_notify_failed"]
        assert logs[0]["log_level"] == "debug"


class TestWatchdogInterval:
    def test_half_of_watchdog_usec(self) -> None:
        """The ping interval is half of WATCHDOG_USEC, in seconds."""
        assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0

    def test_pid_must_be_ours(self) -> None:
        """WATCHDOG_PID naming another process disables the watchdog for us."""
        env = {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}
        assert watchdog_interval(env) == 30.0
        env["WATCHDOG_PID"] = str(os.getpid() + 1)
        assert watchdog_interval(env) is None

    @pytest.mark.parametrize("value", ["", "soon", "0", "-5"])
    def test_missing_or_bad_value_means_no_watchdog(self, value: str) -> None:
        """An absent, unparsable or non-positive WATCHDOG_USEC means no watchdog."""
        assert watchdog_interval({"WATCHDOG_USEC": value}) is None
        assert watchdog_interval({}) is None

    def test_reads_process_environment_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without an argument the process environment is read."""
        monkeypatch.setenv("WATCHDOG_USEC", "10000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        assert watchdog_interval() == 5.0
