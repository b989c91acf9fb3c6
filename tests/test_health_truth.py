"""Issue 21.5: health that tells the truth, and a full disk that frees up.

The SQLite state store sits on a small tmpfs mounted for the test (the suite runs as root).
While no write can land, ``/healthz``, ``STATUS=`` and the page stay degraded (a read that
succeeds proves nothing); the same store error is logged once, then with a count at most every
few seconds; the WAL stays bounded, so the daemon never fills a small volume by itself and
freeing space is enough for it to carry on.
"""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.daemon_process import NotifySocket
from tests.reliability_checks import all_uploaded, stat, state_db
from tests.support import wait_until

MiB = 1 << 20
#: The daemon's bound on its WAL file (syncd.store.connect.WAL_SIZE_LIMIT) plus one page set.
WAL_BOUND = 2 * MiB


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[Path, str], Path]]:
    mounted: list[Path] = []

    def mount(directory: Path, size: str) -> Path:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
        )
        mounted.append(directory)
        return directory

    yield mount
    for directory in reversed(mounted):
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill_up(directory: Path) -> Path:
    filler = directory / "filler"
    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_the_wal_never_fills_a_small_volume_by_itself(
    tmp_path: Path,
    emulator: EmulatorServer,
    start_daemon: StartDaemon,
    small_tmpfs: Callable[[Path, str], Path],
) -> None:
    """400 files synced with the state store on a 2 MB volume: the WAL used to grow to the
    volume's size (its auto-checkpoint is at 4 MB) and wedge the store for good."""
    folder = tmp_path / "ft"
    count = 400
    for i in range(count):
        write_chat_file(folder / f"f{i:03}.jsonl", salt=str(i))
    state = small_tmpfs(tmp_path / "state", "2m")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    daemon = start_daemon(config)
    db = state_db(tmp_path)
    wal = db.with_name(db.name + "-wal")
    biggest = 0

    def done() -> bool:
        nonlocal biggest
        biggest = max(biggest, wal.stat().st_size if wal.exists() else 0)
        assert not any("disk is full" in str(e.get("error")) for e in list(daemon.events)), (
            daemon.log()
        )
        return all_uploaded(db, count)

    wait_until(done, timeout=90, interval=0.1, what="every file uploaded")
    assert biggest <= WAL_BOUND, f"WAL reached {biggest} bytes on {state}"
    assert stat(emulator, "uploads") == count
    assert daemon.stop() == 0


def test_health_stays_degraded_until_a_write_lands_and_errors_are_not_repeated(
    tmp_path: Path,
    emulator: EmulatorServer,
    start_daemon: StartDaemon,
    notify: NotifySocket,
    small_tmpfs: Callable[[Path, str], Path],
) -> None:
    folder = tmp_path / "ft"
    write_chat_file(folder / "first.jsonl")
    state = small_tmpfs(tmp_path / "state", "2m")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={
            "metrics": {"listen": '"127.0.0.1:0"'},
            "node": {"heartbeat": '"1s"', "lease": '"3s"'},
        },
    )
    daemon = start_daemon(config, notify=notify)
    daemon.wait_event("file_uploaded", path="first.jsonl")
    health_url = "http://" + daemon.wait_event("metrics_listening")["listen"] + "/healthz"
    assert httpx.get(health_url).status_code == 200

    filler = fill_up(state)
    for i in range(20):
        write_chat_file(folder / f"late{i}.jsonl", salt=str(i))
    daemon.wait_event("state_database_unavailable", timeout=30)
    logged_from = len(daemon.raw)

    # Every sample over several status ticks (5 s apart) is degraded: reads still succeed.
    samples: list[int] = []
    started = time.monotonic()

    def sampled_for_a_while() -> bool:
        samples.append(httpx.get(health_url).status_code)
        return time.monotonic() - started > 12

    wait_until(sampled_for_a_while, timeout=30, interval=0.25)
    assert set(samples) == {503}, f"{samples.count(200)} of {len(samples)} samples said ok"
    assert "state_database_unavailable_for=" in notify.poll()[-1]

    # The same store error is not logged over and over (it was, ~60 lines a second, while the
    # outage flapped on every successful read): the outage is logged once, then at debug.
    repeated = [line for line in daemon.raw[logged_from:] if "disk is full" in line]
    assert len(repeated) <= 3, f"{len(repeated)} lines in 12 s:\n{''.join(repeated[:20])}"

    # Freeing the space is enough.
    filler.unlink()
    db = state_db(tmp_path)
    wait_until(lambda: all_uploaded(db, 21), timeout=60, what="every file uploaded")
    wait_until(lambda: httpx.get(health_url).status_code == 200, timeout=30, what="healthy")
    assert daemon.stop() == 0
