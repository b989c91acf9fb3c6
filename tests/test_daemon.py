"""`syncd run` as a real subprocess: watching, renames, slow writers, signals, sd_notify."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, chat_line, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.daemon_process import NotifySocket, db_states, remote_names
from tests.reliability_checks import query, state_db
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def test_new_files_are_uploaded_and_systemd_hears_ready_and_stopping(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    start_daemon: StartDaemon,
    notify: NotifySocket,
) -> None:
    """READY=1 after start, a new file is uploaded, SIGTERM sends STOPPING=1 and exits 0."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "before.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    daemon = start_daemon(config, notify=notify, extra_env={"WATCHDOG_USEC": "1000000"})
    wait_until(lambda: notify.saw("READY=1"), timeout=20, what="READY=1")
    daemon.wait_event("file_uploaded", path="before.jsonl")
    wait_until(lambda: notify.saw("WATCHDOG=1"), what="a watchdog ping every WatchdogSec/2")

    write_chat_file(folder / "sub" / "after.jsonl", salt="new")
    daemon.wait_event("file_uploaded", path="sub/after.jsonl")
    assert remote_names(emulator, api_key) == ["after.jsonl", "before.jsonl"]
    assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in notify.poll())

    assert daemon.stop() == 0
    assert notify.saw("STOPPING=1")


def test_rename_inside_a_folder_uploads_nothing(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """A move within the folder updates the path in the store and sends nothing."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded", path="a.jsonl")
    uploads = emulator.stats()["uploads"]

    (folder / "moved").mkdir()
    (folder / "a.jsonl").rename(folder / "moved" / "b.jsonl")
    wait_until(
        lambda: db_states(tmp_path) == {"moved/b.jsonl": "uploaded"},
        timeout=20,
        what="the row to follow the rename",
    )
    assert daemon.wait_event("file_renamed")["path"] == "moved/b.jsonl"
    assert emulator.stats()["uploads"] == uploads
    assert daemon.stop() == 0


def test_a_slowly_written_file_is_uploaded_once_and_whole(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """Writes with pauses shorter than the settle window produce one upload of the full file."""
    folder = tmp_path / "ft"
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"watch": {"settle": '"700ms"'}},
    )
    daemon = start_daemon(config)
    daemon.wait_event("rescan_finished")
    lines = [chat_line(f"q{i}", f"a{i}") for i in range(12)]

    def slow_writer() -> None:
        with (folder / "slow.jsonl").open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line + "\n")
                handle.flush()
                time.sleep(0.1)  # the workload: a writer that trickles, not a wait

    writer = threading.Thread(target=slow_writer)
    writer.start()
    writer.join()
    event = daemon.wait_event("file_uploaded", path="slow.jsonl")
    assert event["bytes"] == (folder / "slow.jsonl").stat().st_size
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        (info,) = list(client.files.iter_all())
        with client.files.download(info.id) as response:
            assert response.read() == (folder / "slow.jsonl").read_bytes()
    assert emulator.stats()["uploads"] == 1
    assert daemon.stop() == 0


def test_sighup_adds_a_folder_without_restart(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    start_daemon: StartDaemon,
    notify: NotifySocket,
) -> None:
    """SIGHUP re-reads the config; a new folder is watched and synced, old files not rehashed."""
    first, second = tmp_path / "ft", tmp_path / "batch"
    write_chat_file(first / "a.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(first)])
    daemon = start_daemon(config, notify=notify)
    daemon.wait_event("file_uploaded", path="a.jsonl")
    pid = daemon.proc.pid

    write_chat_file(second / "b.jsonl", salt="b")
    write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(first), FolderSetup(second)],
    )
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("config_reloaded")
    assert notify.saw("RELOADING=1")
    daemon.wait_event("file_uploaded", path="b.jsonl")
    assert daemon.proc.pid == pid and daemon.proc.poll() is None
    assert len(daemon.named("file_queued")) == 2, "a.jsonl was not judged again"

    (first / "c.jsonl").write_text(chat_line("c", "c") + "\n", encoding="utf-8")
    daemon.wait_event("file_uploaded", path="c.jsonl")
    assert daemon.stop() == 0


def test_an_invalid_reload_keeps_the_old_config_running(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """A bad config on SIGHUP is rejected with a log line; the daemon keeps syncing."""
    folder = tmp_path / "ft"
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    daemon = start_daemon(config)
    daemon.wait_event("rescan_finished")
    good = config.read_text(encoding="utf-8")
    config.write_text(good + "\n[bogus]\nkey = 1\n", encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    rejected = daemon.wait_event("reload_rejected")
    assert "bogus" in rejected["error"]
    write_chat_file(folder / "still.jsonl")
    daemon.wait_event("file_uploaded", path="still.jsonl")
    assert daemon.stop() == 0


def test_sigterm_keeps_pending_work_and_the_next_start_resumes_it(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    start_daemon: StartDaemon,
) -> None:
    """SIGTERM exits 0 with unsent files left pending; the next start uploads exactly those."""
    emulator = make_emulator(api_key=api_key, latency_ms=400)
    folder = tmp_path / "ft"
    for i in range(12):
        write_chat_file(folder / f"f{i:02}.jsonl", salt=str(i))
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"api": {"concurrency": "1"}},
    )
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded")
    assert daemon.stop() == 0
    states = db_states(tmp_path)
    assert set(states) == {f"f{i:02}.jsonl" for i in range(12)}
    assert "pending" in states.values(), states
    uploaded_before = sorted(p for p, s in states.items() if s == "uploaded")
    # No claim is left behind: the row the worker held in reserve (claimed with the first
    # upload's record, to be sent next) went back unsent, its attempt given back, no intent.
    unsent = query(
        state_db(tmp_path),
        "SELECT rel_path, state, attempts, intent_started_at FROM local_files"
        " WHERE state != 'uploaded'",
    )
    assert unsent and all(row[1:] == ("pending", 0, None) for row in unsent), unsent
    assert remote_names(emulator, api_key) == uploaded_before

    emulator.set_faults(latency_ms=0)
    again = start_daemon(config)
    wait_until(
        lambda: set(db_states(tmp_path).values()) == {"uploaded"},
        timeout=30,
        what="every file uploaded after restart",
    )
    assert remote_names(emulator, api_key) == sorted(states)
    assert uploaded_before, "some files were uploaded before the stop"
    assert again.stop() == 0


def test_bad_config_exits_78(tmp_path: Path, start_daemon: StartDaemon) -> None:
    """A configuration error exits with 78 (EX_CONFIG) and names the bad key."""
    config = tmp_path / "config.toml"
    config.write_text('[[folders]]\npath = "x"\npurpose = "fine-tune"\nfrobnicate = 1\n')
    daemon = start_daemon(config)
    assert daemon.proc.wait(timeout=30) == 78
    daemon.kill()
    assert "frobnicate" in "".join(daemon.raw)


def test_a_watch_that_cannot_be_added_degrades_and_files_still_sync(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    start_daemon: StartDaemon,
    notify: NotifySocket,
) -> None:
    """No inotify instance available: a warning names the sysctl, files sync by rescans.

    The daemon runs in its own user namespace whose inotify instance limit is 0, so the kernel
    itself refuses the watch; nothing on the machine changes.
    """
    folder = tmp_path / "ft"
    write_chat_file(folder / "first.jsonl")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"metrics": {"listen": '"127.0.0.1:0"'}},
    )
    prefix = [
        "unshare",
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        'echo 0 > /proc/sys/user/max_inotify_instances && exec "$@"',
        "sh",
    ]
    daemon = start_daemon(config, prefix=prefix, notify=notify)
    degraded = daemon.wait_event("folder_degraded")
    assert degraded["folder"] == "ft"
    assert "max_user_instances" in "".join(daemon.raw)
    daemon.wait_event("file_uploaded", path="first.jsonl")
    write_chat_file(folder / "later.jsonl", salt="later")
    daemon.wait_event("file_uploaded", path="later.jsonl", timeout=30)
    wait_until(lambda: any("degraded=ft" in m for m in notify.poll()), what="STATUS degraded")
    metrics_url = "http://" + daemon.wait_event("metrics_listening")["listen"]
    health = httpx.get(metrics_url + "/healthz")
    assert health.status_code == 503
    assert "ft" in health.text
    text = httpx.get(metrics_url + "/metrics").text
    assert "syncd_degraded 1.0" in text
    assert 'syncd_uploads_total{folder="ft",outcome="uploaded",purpose="fine-tune"} 2.0' in text
    assert daemon.stop() == 0
