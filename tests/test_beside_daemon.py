"""Reading commands beside a running daemon with the embedded emulator: `verify`, `cleanup
--dry-run` and `files` reach the daemon's own emulator (found through its data dir) instead
of refusing, and `sync --dry-run` (which needs no API) works too; the real CLI as a
subprocess, the daemon as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.configs import FolderSetup, write_chat_file, write_config
from tests.conftest import StartDaemon


def syncd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MISTRAL_API_KEY", "SYNCD_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_verify_cleanup_dry_run_and_files_work_beside_the_daemon(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """With `syncd run` up on the embedded emulator, the reading commands see its uploads."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = write_config(
        tmp_path,
        server_url="embedded",
        folders=[FolderSetup(folder, extra={"retention": '"30d"'})],
    )
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded", path="a.jsonl")

    verified = syncd(config, "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    document = json.loads(verified.stdout)
    assert (document["ok"], document["remote_files"]) == (True, 1)

    dry = syncd(config, "cleanup", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert "Traceback" not in dry.stderr

    # A file the daemon has not judged yet (its watcher may race us: either verdict is fine).
    write_chat_file(folder / "b.jsonl", salt="b")
    dry_sync = syncd(config, "sync", "--dry-run")
    assert dry_sync.returncode == 0, dry_sync.stderr
    assert "Traceback" not in dry_sync.stderr
    assert "nothing was sent and the state database was not changed" in dry_sync.stderr
    daemon.wait_event("file_uploaded", path="b.jsonl")

    listed = syncd(config, "files", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(f["filename"] for f in json.loads(listed.stdout)["data"]) == [
        "a.jsonl",
        "b.jsonl",
    ]

    status = syncd(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert [f["state"] for f in json.loads(status.stdout)["files"]] == ["uploaded", "uploaded"]


def test_a_real_cleanup_beside_the_daemon_is_refused_in_one_line(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """Deleting is the daemon's job while it runs: one line says so, and how to look instead."""
    config = write_config(tmp_path, server_url="embedded", folders=[FolderSetup(tmp_path / "ft")])
    daemon = start_daemon(config)
    daemon.wait_event("daemon_started")
    refused = syncd(config, "cleanup")
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: the embedded emulator's data in")
    assert "a dry run or `syncd verify` works beside it" in line
