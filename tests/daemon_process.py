"""Running ``syncd run`` as a real subprocess, with a real NOTIFY_SOCKET and its JSON log."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from tests.support import wait_until


class NotifySocket:
    """A unix datagram socket standing in for systemd's notification socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.05)
        self.messages: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return self.messages
            self.messages.append(data.decode())

    def saw(self, field: str) -> bool:
        return any(field in message.split("\n") for message in self.poll())

    def close(self) -> None:
        self._sock.close()


class DaemonProcess:
    """``python -m syncd -c CONFIG run`` with its stderr parsed as JSON log events."""

    def __init__(
        self,
        config: Path,
        *,
        api_key: str,
        notify: NotifySocket | None = None,
        prefix: Sequence[str] = (),
        extra_env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        env = {**os.environ, "MISTRAL_API_KEY": api_key, **(extra_env or {})}
        env.pop("NOTIFY_SOCKET", None)
        if notify is not None:
            env["NOTIFY_SOCKET"] = str(notify.path)
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "syncd", "-c", str(config), "run", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                self.events.append(event)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("event") == name]

    def wait_event(self, name: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.named(name):
                if all(event.get(k) == v for k, v in match.items()):
                    return event
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            return None

        return wait_until(found, timeout=timeout, what=f"log event {name} {match}")

    def log(self) -> str:
        return "".join(self.raw[-60:])

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=5)
        if self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()


def remote_names(emulator: EmulatorServer, api_key: str) -> list[str]:
    """Sorted filenames of every file on the emulator."""
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        return sorted(f.filename for f in client.files.iter_all())


def db_states(directory: Path) -> dict[str, str]:
    """rel_path -> state from the store of a config written by ``tests.configs.write_config``."""
    with sqlite3.connect(directory / "state" / "state.db") as db:
        return dict(db.execute("select rel_path, state from local_files").fetchall())
