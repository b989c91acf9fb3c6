"""``syncd run`` as a child process, with its JSON log lines and its state database readable.

The daemon logs to a file, not a pipe, so it never waits on the suite; :class:`LogTail` reads
what has been written since the last look. The state database is read read-only through
SQLite's WAL, which never blocks the daemon's writers.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from benchmarks.configs import SyncdSetup, syncd_env
from benchmarks.processes import peak_rss_bytes, rss_bytes, stop_process

__all__ = ["DaemonProcess", "LogTail", "count_state", "event_time", "poll"]

T = TypeVar("T")


def poll(predicate: Callable[[], T | None], *, timeout: float, interval: float, what: str) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a value; fail at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def event_time(event: dict[str, object]) -> float:
    """The Unix time of a JSON log line (structlog's ISO UTC ``timestamp``)."""
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


class LogTail:
    """The JSON lines appended to a log file since the last :meth:`read`."""

    def __init__(self, path: Path, *, offset: int = 0) -> None:
        self._path = path
        self._offset = offset
        self._partial = b""

    def read(self) -> list[dict[str, object]]:
        try:
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        events: list[dict[str, object]] = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a traceback or a library's plain line
            if isinstance(event, dict):
                events.append(event)
        return events


def count_state(state_db: Path, state: str) -> int:
    """Rows in ``state`` in the daemon's state database (0 before it exists).

    One indexed count, cheap enough to poll while the daemon works.
    """
    if not state_db.exists():
        return 0
    connection = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5)
    try:
        row = connection.execute("SELECT count(*) FROM local_files WHERE state = ?", (state,))
        return int(row.fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not migrated yet
    finally:
        connection.close()


class DaemonProcess:
    """``syncd -c CONFIG run`` in the background; use it as a context manager."""

    def __init__(self, python: str, setup: SyncdSetup, *, cwd: Path) -> None:
        self.setup = setup
        self.log_path = setup.config.parent / "daemon.log"
        self.log = LogTail(self.log_path)
        self._python = python
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def start(self) -> None:
        # Read only this run's lines: an earlier daemon may have logged to the same file.
        self.log = LogTail(
            self.log_path, offset=self.log_path.stat().st_size if self.log_path.exists() else 0
        )
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self._proc = subprocess.Popen(
                [self._python, "-m", "syncd", "-c", str(self.setup.config), "run", "--grace", "5"],
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=syncd_env(dict(os.environ)),
                cwd=self._cwd,
            )

    def check_alive(self) -> None:
        """Raise with the log's tail if the daemon has exited."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"syncd run exited {self._proc.returncode}: {tail}")

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def peak_rss(self) -> int:
        return peak_rss_bytes(self.pid)

    def stop(self) -> int:
        if self._proc is None:
            return 0
        code = stop_process(self._proc, grace=30)
        self._proc = None
        return code

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
