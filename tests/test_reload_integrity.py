"""Issue 21.2: a reload never takes back a recorded upload, and leaves unchanged folders alone.

A SIGHUP storm while files arrive, with the config rewritten in place and a folder removed and
re-added, raced the re-added folder's rescan with the uploader's record: the rescan wrote back
the ``uploading`` state it had read before the upload was recorded, so the row kept the new
``remote_file_id`` in ``uploading`` without an intent, and the next start uploaded it again and
deleted the announced id as superseded.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.reliability_checks import all_uploaded, query, run_syncd, stat, state_db
from tests.support import wait_until


def test_a_reload_with_unchanged_folders_leaves_them_alone(
    tmp_path: Path, emulator: EmulatorServer, start_daemon: StartDaemon
) -> None:
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded", path="a.jsonl")
    write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])  # rewritten
    daemon.signal(signal.SIGHUP)
    reloaded = daemon.wait_event("config_reloaded")
    assert reloaded["changed"] == [] and reloaded["added"] == [] and reloaded["removed"] == []
    # Still watched: a new file is seen by the watcher (rescan_interval is an hour).
    write_chat_file(folder / "b.jsonl", salt="b")
    daemon.wait_event("file_uploaded", path="b.jsonl")
    assert daemon.stop() == 0


def test_a_sighup_storm_never_takes_back_a_recorded_upload(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    stay, flaky = tmp_path / "stay", tmp_path / "flaky"
    both = [FolderSetup(stay), FolderSetup(flaky)]
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=both,
        sections={"watch": {"settle": '"20ms"'}, "api": {"concurrency": "8"}},
    )
    daemon = start_daemon(config)
    daemon.wait_event("daemon_started")
    files = 60
    done = threading.Event()

    def write_files() -> None:
        for i in range(files):
            write_chat_file((stay if i % 2 else flaky) / f"f{i}.jsonl", salt=str(i))
            time.sleep(0.03)
        done.set()

    writer = threading.Thread(target=write_files)
    writer.start()
    for i in range(60):
        # Rewritten in place, the flaky folder dropped and re-added every other time.
        write_config(
            tmp_path,
            server_url=emulator.url,
            folders=both if i % 2 else both[:1],
            sections={"watch": {"settle": '"20ms"'}, "api": {"concurrency": "8"}},
        )
        daemon.signal(signal.SIGHUP)
        time.sleep(0.04)
    writer.join()
    write_config(
        tmp_path,
        server_url=emulator.url,
        folders=both,
        sections={"watch": {"settle": '"20ms"'}, "api": {"concurrency": "8"}},
    )
    daemon.signal(signal.SIGHUP)
    db = state_db(tmp_path)
    try:
        wait_until(lambda: all_uploaded(db, files), timeout=30, what="every file uploaded")
    except AssertionError as exc:
        stuck = query(
            db,
            "select rel_path, state, remote_file_id, intent_started_at from local_files"
            " where state != 'uploaded'",
        )
        raise AssertionError(f"{exc}; not uploaded: {stuck}") from None
    assert daemon.stop() == 0
    announced = {e["file_id"] for e in daemon.named("file_uploaded")}

    # Nothing left half-recorded: an uploaded id is never in an uploading row without intent.
    assert query(db, "select rel_path from local_files where state != 'uploaded'") == []
    uploads = stat(emulator, "uploads")
    again = run_syncd(config, api_key, "sync", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert stat(emulator, "uploads") == uploads, "the next sync uploaded something again"
    live = {row[0] for row in query(db, "select remote_file_id from local_files")}
    assert announced <= live | set(), "an announced id was taken back"
    assert stat(emulator, "files") == files == uploads, "a duplicate or a deletion on the remote"
