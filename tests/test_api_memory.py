"""A large upload streams: the process's peak memory grows by far less than the file's size."""

from __future__ import annotations

import os
from pathlib import Path

from syncd.api import Mistral
from syncd.emulator import EmulatorServer

FILE_BYTES = 200 * 1000 * 1000
#: Generous for buffers on both ends (the emulator runs in this process too), far below the file.
MAX_GROWTH_BYTES = 48 * 1024 * 1024


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise AssertionError(f"{field} not in /proc/self/status")


def test_200_mb_upload_keeps_memory_flat(
    emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    """Uploading a 200 MB file raises peak RSS by under 48 MiB, and the server gets every byte."""
    path = tmp_path / "scan.pdf"
    with path.open("wb") as handle:
        handle.write(b"%PDF-1.7\n")
    os.truncate(path, FILE_BYTES)  # sparse: no disk used, but every byte is read and sent
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        client.files.list()  # warm up: imports and the connection pool are not the upload's
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        baseline = _status_bytes("VmRSS")
        info = client.files.upload(file=path, purpose="ocr")
        growth = _status_bytes("VmHWM") - baseline
    assert info.bytes == FILE_BYTES
    assert emulator.stats()["bytes_received"] == FILE_BYTES
    assert growth < MAX_GROWTH_BYTES, f"peak RSS grew by {growth / 2**20:.1f} MiB"
