"""`syncd run` as a real subprocess: scheduled retention deletes expired files for good."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.daemon_process import DaemonProcess, db_states, remote_names
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def start(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    daemons: list[DaemonProcess],
    *,
    dry_run: bool,
) -> DaemonProcess:
    folder = tmp_path / "ft"
    write_chat_file(folder / "old.jsonl")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder, extra={"retention": '"1s"'})],
        sections={
            "retention": {"schedule": '"1s"', "dry_run": "true" if dry_run else "false"},
            "watch": {"rescan_interval": '"1s"'},
        },
    )
    daemon = DaemonProcess(config, api_key=api_key)
    daemons.append(daemon)
    return daemon


def test_the_daemon_deletes_expired_files_and_never_uploads_them_again(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, daemons: list[DaemonProcess]
) -> None:
    """With retention 1s on a 1s schedule the file is deleted, its row expires, and later
    rescans leave it expired instead of uploading it again."""
    daemon = start(tmp_path, emulator, api_key, daemons, dry_run=False)
    uploaded = daemon.wait_event("file_uploaded", path="old.jsonl")
    deleted = daemon.wait_event("file_deleted", path="old.jsonl", reason="expired", timeout=30)
    assert deleted["file_id"] == uploaded["file_id"]
    assert remote_names(emulator, api_key) == []
    assert db_states(tmp_path) == {"old.jsonl": "expired"}

    # A touch (new stat, same bytes) and two full rescans later: still expired, still gone.
    (tmp_path / "ft" / "old.jsonl").touch()
    rescans = len(daemon.named("rescan_finished"))
    wait_until(
        lambda: len(daemon.named("rescan_finished")) >= rescans + 2,
        timeout=20,
        what="two rescans after the delete",
    )
    assert len(daemon.named("file_queued")) == 1
    assert len(daemon.named("file_uploaded")) == 1
    assert remote_names(emulator, api_key) == []
    assert db_states(tmp_path) == {"old.jsonl": "expired"}
    assert emulator.stats()["uploads"] == 1
    assert daemon.stop() == 0


def test_a_dry_run_daemon_logs_the_plan_and_deletes_nothing(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, daemons: list[DaemonProcess]
) -> None:
    """[retention] dry_run = true logs what would be deleted; the file stays on the remote."""
    daemon = start(tmp_path, emulator, api_key, daemons, dry_run=True)
    daemon.wait_event("file_uploaded", path="old.jsonl")
    would = daemon.wait_event("file_would_delete", path="old.jsonl", timeout=30)
    assert would["reason"] == "expired"
    planned = daemon.wait_event("retention_planned", dry_run=True)
    assert planned["deleting"] == 0
    assert remote_names(emulator, api_key) == ["old.jsonl"]
    assert db_states(tmp_path) == {"old.jsonl": "uploaded"}
    assert daemon.named("file_deleted") == []
    assert daemon.stop() == 0


def test_sighup_applies_a_new_retention_age_without_a_restart(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, daemons: list[DaemonProcess]
) -> None:
    """A folder that gains retention 1s through SIGHUP loses its expired file, no restart."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "old.jsonl")
    sections = {"retention": {"schedule": '"1s"'}}
    config = write_config(
        tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)], sections=sections
    )
    daemon = DaemonProcess(config, api_key=api_key)
    daemons.append(daemon)
    daemon.wait_event("file_uploaded", path="old.jsonl")
    write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder, extra={"retention": '"1s"'})],
        sections=sections,
    )
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("config_reloaded")
    daemon.wait_event("file_deleted", path="old.jsonl", reason="expired", timeout=30)
    assert remote_names(emulator, api_key) == []
    assert daemon.stop() == 0
