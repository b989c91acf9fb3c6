"""Running commands as child processes and reading what they cost: wall time, CPU, memory.

Peak RSS comes from ``wait4``'s rusage of that one child (``RUSAGE_CHILDREN`` would mix every
child the suite ever waited for); live RSS and its high-water mark come from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Measured",
    "cpu_seconds",
    "peak_rss_bytes",
    "rss_bytes",
    "run_measured",
    "stop_process",
]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Measured:
    """A finished child: exit code, wall and CPU seconds, peak RSS and its output."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Measured:
        """Raise with the child's stderr tail when it did not exit 0."""
        if self.returncode != 0:
            raise RuntimeError(f"{what} exited {self.returncode}: {self.stderr[-2000:]}")
        return self


def run_measured(
    argv: Sequence[str],
    *,
    output_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900.0,
) -> Measured:
    """Run ``argv`` to completion and measure it; stdout and stderr go through files.

    Files rather than pipes: a chatty child can never block on a full pipe, and nothing in
    this process competes with the child for CPU while it runs.
    """
    out_path = output_dir / "stdout.txt"
    err_path = output_dir / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
        timer = threading.Timer(timeout, _kill, args=(proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        # Linux reports ru_maxrss in KiB.
        peak_rss_bytes=usage.ru_maxrss * 1024,
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
    )


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _status_field(pid: int, name: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` in bytes (0 once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int) -> int:
    """The process's resident set size now."""
    return _status_field(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM)."""
    return _status_field(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0.0
    fields = text.rpartition(")")[2].split()
    # Fields 14 and 15 of stat(5) (utime, stime), counted after the "(comm)" field.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen[bytes], *, grace: float = 15.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; return the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
