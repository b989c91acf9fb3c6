"""HTTP servers as child processes: the syncd emulator, and a bare sink to compare it with.

A child process rather than a thread, so the server never shares a GIL with the code being
measured. Both print ``... listening on <url>`` once they accept connections; the port is
chosen by the OS.
"""

from __future__ import annotations

import select
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from benchmarks.processes import cpu_seconds, stop_process

__all__ = ["API_KEY", "EmulatorProcess", "ServerProcess", "SinkProcess"]

#: Every emulator in the suite accepts any bearer token; this one fills the header.
API_KEY = "bench-key"

_STARTUP_SECONDS = 60.0


class ServerProcess:
    """A child process that serves HTTP until stopped; use it as a context manager."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self._argv = argv
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def start(self) -> str:
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
            )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], _STARTUP_SECONDS)
        line = self._proc.stdout.readline().decode() if ready else ""
        if "listening on " not in line:
            self.stop()
            log_tail = self._log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"{self._argv[:4]} did not start: {line!r} {log_tail}")
        self.url = line.rsplit(" ", 1)[1].strip()
        return self.url

    def cpu_seconds(self) -> float:
        """CPU seconds the server has used so far."""
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None

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


class EmulatorProcess(ServerProcess):
    """``syncd emulator`` on a fresh port, with its data in ``data_dir``."""

    def __init__(self, python: str, data_dir: Path, *, latency_ms: int = 0) -> None:
        argv = [python, "-m", "syncd", "emulator", "--port", "0", "--data-dir", str(data_dir)]
        argv += ["--latency-ms", str(latency_ms)]
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(argv, data_dir.parent / f"{data_dir.name}.log")

    def stats(self) -> dict[str, object]:
        """``GET /_emulator/stats``: uploads, files, bytes received, ..."""
        response = httpx.get(
            f"{self.url}/_emulator/stats", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        response.raise_for_status()
        stats: dict[str, object] = response.json()
        return stats


class SinkProcess(ServerProcess):
    """The bare HTTP stack the emulator is built on, doing nothing (:mod:`benchmarks.sink`)."""

    def __init__(self, python: str, log_path: Path) -> None:
        super().__init__([python, "-m", "benchmarks.sink"], log_path)
