"""curl as the reference HTTP client: ``curl -F`` uploads, one or many in parallel.

curl is C and keeps out of the way: what it measures is the server (and the loopback).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.servers import API_KEY

__all__ = [
    "CurlRun",
    "curl_upload",
    "curl_upload_argv",
    "curl_upload_many",
    "parse_curl_output",
]


@dataclass(frozen=True, slots=True)
class CurlRun:
    """Seconds the transfer(s) took and the HTTP status of each."""

    seconds: float
    statuses: list[int]

    @property
    def ok(self) -> int:
        return sum(1 for status in self.statuses if status == 200)


def curl_upload_argv(
    url: str, path: Path, *, purpose: str, filename: str | None = None
) -> list[str]:
    """The ``curl -F file=@path`` command line; it prints ``<status> <time_total>``."""
    name = f";filename={filename}" if filename else ""
    return [
        "curl",
        "--silent",
        "--show-error",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code} %{time_total}",
        "--header",
        f"Authorization: Bearer {API_KEY}",
        "--form",
        f"purpose={purpose}",
        "--form",
        f"file=@{path}{name}",
        f"{url}/v1/files",
    ]


def parse_curl_output(out: str) -> CurlRun:
    """The status and seconds :func:`curl_upload_argv`'s command printed."""
    status, seconds = out.split()
    return CurlRun(seconds=float(seconds), statuses=[int(status)])


def curl_upload(url: str, path: Path, *, purpose: str, filename: str | None = None) -> CurlRun:
    """``curl -F file=@path`` to ``url``/v1/files; the time is curl's own ``time_total``."""
    argv = curl_upload_argv(url, path, purpose=purpose, filename=filename)
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return parse_curl_output(out)


def curl_upload_many(
    url: str, paths: Sequence[Path], *, purpose: str, parallel: int, workdir: Path
) -> CurlRun:
    """Upload every path with one ``curl --parallel`` (``parallel`` at once); wall time."""
    entry = (
        'url = "{url}/v1/files"\n'
        f'header = "Authorization: Bearer {API_KEY}"\n'
        f'form = "purpose={purpose}"\n'
        'form = "file=@{path}"\n'
        'output = "/dev/null"\n'
        'write-out = "%{{http_code}}\\n"\n'
    )
    config = workdir / "curl-uploads.conf"
    config.write_text(
        "next\n".join(entry.format(url=url, path=path) for path in paths), encoding="utf-8"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--parallel",
            "--parallel-max",
            str(parallel),
            "--config",
            str(config),
        ],
        check=False,
        capture_output=True,
        text=True,
    ).stdout
    seconds = time.perf_counter() - started
    return CurlRun(seconds=seconds, statuses=[int(code) for code in out.split()])
