"""Issue 7.2: 30% of API requests failing, every way the emulator can fail them, during a sync.

Every file is uploaded exactly once, no file gives up, a 429/503's Retry-After is honoured (the
next attempt never starts before it), and the requests stay a small multiple of the files.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.emulator import EmulatorServer
from syncd.emulator.options import DEFAULT_FAULT_KINDS
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.reliability_checks import assert_exactly_once_and_consistent, stat, state_db

FILES = 300
FAULT_RATE = 0.3
RETRY_AFTER = 0.3
#: Expected requests per file with 30% failing: ~1.4 uploads, plus a lookup (and a download)
#: before re-sending after an ambiguous failure. Five per file is generous; a busy loop is not.
MAX_REQUESTS_PER_FILE = 5


def run_sync(config: Path, api_key: str) -> tuple[int, list[dict[str, Any]], str]:
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "sync", "--no-progress"],
        env={**os.environ, "MISTRAL_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    events = []
    for line in result.stderr.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return result.returncode, events, result.stdout + result.stderr[-3000:]


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["timestamp"]))


@pytest.mark.slow
def test_thirty_percent_faults_upload_everything_once_honouring_retry_after(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """429/500/503/reset/lost-response on 30% of requests: all uploaded once, none failed,
    no retry before Retry-After, requests bounded."""
    emulator = make_emulator(
        dedupe=False,
        fault_rate=FAULT_RATE,
        fault_kinds=DEFAULT_FAULT_KINDS,
        retry_after=RETRY_AFTER,
        seed=1234,
    )
    folder = tmp_path / "ft"
    local = {
        f"f{i:03}.jsonl": write_chat_file(folder / f"f{i:03}.jsonl", 2, salt=str(i))
        for i in range(FILES)
    }
    # max_attempts stays at the tests' 6: scattered transient failures must not exhaust it.
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"log": {"level": '"debug"'}},
    )

    code, events, output = run_sync(config, api_key)

    assert code == 0, output
    stats = emulator.stats()
    faults = stats["faults_by_kind"]
    assert isinstance(faults, dict)
    assert set(faults) == set(DEFAULT_FAULT_KINDS), f"every kind of fault was injected: {faults}"
    assert not [e for e in events if e["event"] == "upload_failed"], "no file gave up"
    requests = stat(emulator, "requests")
    assert requests <= FILES * MAX_REQUESTS_PER_FILE, f"{requests} requests for {FILES} files"

    # Retry-After: every 429/503 retry was scheduled at least RETRY_AFTER later, and the next
    # attempt of that file started no sooner than scheduled.
    by_path: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["event"] in ("upload_retry_scheduled", "upload_started"):
            by_path[event["path"]].append(event)
    honoured = 0
    for path, timeline in by_path.items():
        for scheduled, following in itertools.pairwise(timeline):
            if scheduled["event"] != "upload_retry_scheduled":
                continue
            assert following["event"] == "upload_started", f"{path}: {scheduled} {following}"
            due = datetime.fromisoformat(scheduled["next_attempt_at"])
            assert at(following) >= due, f"{path}: retried before its time: {scheduled}"
            if scheduled["status_code"] in (429, 503):
                assert scheduled["retry_in_s"] >= RETRY_AFTER
                honoured += 1
    assert honoured >= 10, f"only {honoured} 429/503 retries seen"

    check = assert_exactly_once_and_consistent(emulator, api_key, state_db(tmp_path), local)
    retries = sum(1 for e in events if e["event"] == "upload_retry_scheduled")
    print(
        f"\nfaults: {FILES} files, {stats['faults']} faults {faults}, {requests} requests, "
        f"{retries} retries ({honoured} after 429/503 with Retry-After {RETRY_AFTER}s), "
        f"{check.uploads_seen_by_server} uploads received, {check.remote_files} remote files"
    )
