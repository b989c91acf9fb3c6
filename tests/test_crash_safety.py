"""Exactly once across crashes: `syncd sync` SIGKILLed at random moments, lost responses on."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.support import wait_until


def start_sync(config: Path, api_key: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MISTRAL_API_KEY": api_key}
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", "-c", str(config), "sync", "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """After repeated SIGKILLs every file is on the remote exactly once, with the right bytes."""
    rng = random.Random(20261127)
    emulator = make_emulator(
        api_key=api_key, dedupe=False, fault_rate=0.15, fault_kinds=("lost-response",), seed=3
    )
    folder = tmp_path / "ft"
    local = {
        f"f{i:03}.jsonl": write_chat_file(folder / f"f{i:03}.jsonl", 2 + i % 5, salt=str(i))
        for i in range(60)
    }
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"api": {"max_attempts": "50", "concurrency": "4"}},
    )
    kills = 0
    for _ in range(8):
        target = int(emulator.stats()["uploads"]) + rng.randint(1, 8)  # type: ignore[call-overload]
        proc = start_sync(config, api_key)
        wait_until(
            lambda: proc.poll() is not None or emulator.stats()["uploads"] >= target,  # noqa: B023
            timeout=60,
            interval=0.005,
            what="some uploads before the kill",
        )
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert kills >= 3, "the process should have been killed mid-sync several times"

    final = start_sync(config, api_key)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr.decode()

    emulator.set_faults(fault_rate=0.0)
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        remote = list(client.files.iter_all())
        names = sorted(f.filename for f in remote)
        assert names == sorted(local), "each file exactly once, none missing, none duplicated"
        for info in remote:
            with client.files.download(info.id) as response:
                body = response.read()
            expected = local[info.filename].read_bytes()
            assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected).hexdigest()
