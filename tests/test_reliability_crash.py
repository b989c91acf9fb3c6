"""Issue 7.1: the daemon SIGKILLed at random moments, again and again, loses and duplicates nothing.

1,000 files, the emulator without dedupe (a second upload would be a second file) and with lost
responses (the upload is stored, the answer never comes). ``syncd run`` is killed with SIGKILL
once while it hashes at start and at random numbers of uploads after that, restarted each time.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.reliability_checks import (
    alive,
    all_uploaded,
    assert_exactly_once_and_consistent,
    running_daemon,
    stat,
    state_db,
)
from tests.support import wait_until

FILES = 1000
KILLS_AFTER_UPLOADS = 9
LOST_RESPONSE_RATE = 0.1


@pytest.mark.slow
def test_sigkill_ten_times_during_a_sync_of_1000_files_loses_and_duplicates_nothing(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """Killed during the startup scan and 9 times mid-upload: every file once, store agrees."""
    rng = random.Random(20261127)
    emulator = make_emulator(
        dedupe=False,
        fault_rate=LOST_RESPONSE_RATE,
        fault_kinds=("lost-response",),
        seed=5,
    )
    folder = tmp_path / "ft"
    local = {
        f"f{i:04}.jsonl": write_chat_file(
            folder / f"d{i % 8}" / f"f{i:04}.jsonl", 1 + i % 3, salt=str(i)
        )
        for i in range(FILES)
    }
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    db = state_db(tmp_path)

    # 1: during the startup scan, once some files are hashed and queued but not all.
    with running_daemon(config, api_key) as daemon:
        wait_until(
            lambda: alive(daemon) and len(daemon.named("file_queued")) >= 50,
            timeout=60,
            interval=0.005,
            what="the startup scan under way",
        )
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=10)
        assert not daemon.named("rescan_finished"), "killed while the startup scan ran"
    kills = 1
    adopted = 0

    # 2..10: at random numbers of uploads the server has seen.
    thresholds = sorted(rng.sample(range(20, FILES - 50), KILLS_AFTER_UPLOADS))
    for threshold in thresholds:
        with running_daemon(config, api_key) as daemon:
            wait_until(
                lambda: alive(daemon) and stat(emulator, "uploads") >= threshold,  # noqa: B023
                timeout=90,
                interval=0.005,
                what=f"{threshold} uploads before the kill",
            )
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(timeout=10)
            adopted += len(daemon.named("file_adopted"))
        kills += 1
    assert kills == 10

    with running_daemon(config, api_key) as daemon:
        wait_until(
            lambda: alive(daemon) and all_uploaded(db, FILES),
            timeout=120,
            interval=0.2,
            what="every file uploaded after the last restart",
        )
        assert daemon.stop() == 0
        adopted += len(daemon.named("file_adopted"))
    faults = emulator.stats()["faults_by_kind"]
    check = assert_exactly_once_and_consistent(emulator, api_key, db, local)
    assert check.remote_files == FILES
    assert isinstance(faults, dict) and faults.get("lost-response", 0) > 0
    assert adopted > 0, "some uploads were found on the server and adopted, not sent again"
    print(  # the figures quoted in the README's Reliability section
        f"\ncrash: {FILES} files, {kills} SIGKILLs, {faults} faults, "
        f"{check.uploads_seen_by_server} uploads received, {adopted} adopted after a lost answer "
        f"or a kill, {check.remote_files} remote files"
    )
