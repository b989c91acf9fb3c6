"""Issue 7.4: the state database locked, on a read-only file system, corrupt, or on a full disk.

At start ``syncd run`` and ``syncd sync`` exit 1 with a message naming the database and the
cause, change nothing (no upload without a record, the corrupt file never recreated). While the
daemon runs, a lock held by another process or a full disk make its work wait, and it carries
on once they are gone. Read-only mounts and tiny full disks are made in a private mount
namespace (``unshare --mount``), so nothing on the machine changes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.reliability_checks import (
    LockHolder,
    alive,
    all_uploaded,
    assert_exactly_once_and_consistent,
    in_private_mounts,
    local_states,
    run_syncd,
    running_daemon,
    stat,
    state_db,
)
from tests.support import wait_until

COMMANDS: tuple[tuple[str, ...], ...] = (("run",), ("sync", "--no-progress"))


def synced_folder(tmp_path: Path, emulator: EmulatorServer, api_key: str) -> tuple[Path, Path]:
    """A folder synced once (the database exists and holds rows), plus one file not yet synced;
    returns (config, database)."""
    folder = tmp_path / "ft"
    for i in range(5):
        write_chat_file(folder / f"f{i}.jsonl", salt=str(i))
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    first = run_syncd(config, api_key, "sync", "--no-progress")
    assert first.returncode == 0, first.stderr
    write_chat_file(folder / "later.jsonl", salt="later")
    return config, state_db(tmp_path)


def run_both(
    config: Path, api_key: str, prefix: Sequence[str] = ()
) -> list[subprocess.CompletedProcess[str]]:
    """``syncd run``, then ``syncd sync``; both are expected to exit.

    One after the other: side by side, whichever came second would be refused by the first's
    instance lock (exit 75, issue 21) before it ever met the broken store.
    """
    env = {**os.environ, "MISTRAL_API_KEY": api_key}
    results = []
    for args in COMMANDS:
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "syncd", "-c", str(config), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"syncd {' '.join(args)} did not exit:\n{stderr[-2000:]}"
            ) from None
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


def assert_clear_failure(
    results: list[subprocess.CompletedProcess[str]], db: Path, *causes: str
) -> None:
    for result in results:
        command = " ".join(result.args)
        assert result.returncode == 1, f"syncd {command}: {result.stderr[-2000:]}"
        error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert error_lines, f"syncd {command} printed no error line: {result.stderr[-2000:]}"
        assert str(db) in error_lines[-1], error_lines[-1]
        assert any(cause in error_lines[-1] for cause in causes), error_lines[-1]
        assert "Traceback" not in result.stderr


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_a_database_locked_by_another_process_stops_run_and_sync_with_exit_1(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """A lock held past the busy timeout: both exit 1 naming the file and the lock; nothing is
    uploaded meanwhile; once the lock is gone a sync works."""
    config, db = synced_folder(tmp_path, emulator, api_key)
    uploads = stat(emulator, "uploads")
    holder = LockHolder(db)
    try:
        results = run_both(config, api_key)
    finally:
        holder.release()
    assert_clear_failure(results, db, "locked by another process")
    assert stat(emulator, "uploads") == uploads
    assert run_syncd(config, api_key, "sync", "--no-progress").returncode == 0
    assert local_states(db)["later.jsonl"] == "uploaded"


def test_a_read_only_file_system_stops_run_and_sync_with_exit_1(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """The state directory mounted read-only: both exit 1 saying so; the file is untouched and
    nothing is uploaded that could not be recorded."""
    config, db = synced_folder(tmp_path, emulator, api_key)
    before = snapshot(db.parent)
    uploads = stat(emulator, "uploads")
    state = db.parent
    prefix = in_private_mounts(f"mount --bind {state} {state}\nmount -o remount,bind,ro {state}")
    results = run_both(config, api_key, prefix)
    assert_clear_failure(results, db, "read-only file system")
    assert snapshot(db.parent) == before
    assert stat(emulator, "uploads") == uploads


@pytest.mark.parametrize("damage", ["garbled pages", "not a database"])
def test_a_corrupt_database_is_refused_and_never_recreated(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, damage: str
) -> None:
    """Damaged pages fail the integrity check at start, garbage is not a database: both exit 1
    naming the file, which stays byte for byte as it was, with nothing created beside it."""
    config, db = synced_folder(tmp_path, emulator, api_key)
    for i in range(40):  # enough rows for several pages
        write_chat_file(tmp_path / "ft" / "more" / f"m{i:02}.jsonl", salt=f"m{i}")
    assert run_syncd(config, api_key, "sync", "--no-progress").returncode == 0
    data = bytearray(db.read_bytes())
    if damage == "garbled pages":
        data[4096 * 2 : 4096 * 2 + 3000] = b"\xde\xad\xbe\xef" * 750
    else:
        data = bytearray(os.urandom(len(data)))
    db.write_bytes(bytes(data))
    before = snapshot(db.parent)
    uploads = stat(emulator, "uploads")
    write_chat_file(tmp_path / "ft" / "newest.jsonl", salt="newest")

    results = run_both(config, api_key)

    assert_clear_failure(results, db, "corrupt", "not a SQLite database")
    assert snapshot(db.parent) == before, "the damaged file is left exactly as it was"
    assert stat(emulator, "uploads") == uploads


def test_a_full_disk_stops_run_and_sync_with_exit_1(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """No room for the database (a tiny tmpfs, filled): both exit 1 saying the disk is full."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    state = state_db(tmp_path).parent
    state.mkdir(mode=0o700)
    prefix = in_private_mounts(
        f"mount -t tmpfs -o size=256k tmpfs {state}\n"
        f"dd if=/dev/zero of={state}/filler bs=4k 2>/dev/null || true"
    )
    results = run_both(config, api_key, prefix)
    assert_clear_failure(results, state_db(tmp_path), "disk is full")
    assert stat(emulator, "uploads") == 0


def fill_up(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system has no room left."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


@pytest.mark.slow
def test_a_disk_filling_up_mid_run_makes_the_daemon_wait_then_carry_on(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """The database's disk full while files upload: the daemon logs it and keeps every outcome
    until there is room again, then finishes; every file once, none failed, same process."""
    emulator = make_emulator(dedupe=False, latency_ms=40)
    folder = tmp_path / "ft"
    local = {
        f"f{i:03}.jsonl": write_chat_file(folder / f"f{i:03}.jsonl", salt=str(i))
        for i in range(120)
    }
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    db = state_db(tmp_path)
    state = db.parent
    state.mkdir(mode=0o700)
    prefix = in_private_mounts(f"mount -t tmpfs -o size=16m tmpfs {state}")
    with running_daemon(config, api_key, prefix=prefix) as daemon:
        # The tmpfs exists only in the daemon's mount namespace: reach it through its root.
        pid = daemon.proc.pid
        seen_state = Path(f"/proc/{pid}/root") / state.relative_to("/")
        wait_until(
            lambda: alive(daemon) and stat(emulator, "uploads") >= 20,
            timeout=30,
            what="some uploads",
        )
        filler = fill_up(seen_state)
        full = daemon.wait_event("store_unavailable", timeout=30)
        assert "disk is full" in full["error"]
        assert str(db) in full["error"]
        filler.unlink()
        wait_until(
            lambda: alive(daemon) and all_uploaded(db, len(local), mounts_of=pid),
            timeout=60,
            interval=0.2,
            what="every file uploaded once there is room again",
        )
        assert not daemon.named("upload_failed")
        assert_exactly_once_and_consistent(emulator, api_key, db, local, mounts_of=pid)
        assert daemon.stop() == 0


@pytest.mark.slow
def test_a_lock_held_mid_run_makes_the_daemon_wait_then_carry_on(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """Another process holds the database past the busy timeout while files upload: the daemon
    waits without crashing or failing files, and finishes once the lock is released."""
    emulator = make_emulator(dedupe=False, latency_ms=40)
    folder = tmp_path / "ft"
    local = {
        f"f{i:03}.jsonl": write_chat_file(folder / f"f{i:03}.jsonl", salt=str(i))
        for i in range(120)
    }
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    db = state_db(tmp_path)
    with running_daemon(config, api_key) as daemon:
        wait_until(
            lambda: alive(daemon) and stat(emulator, "uploads") >= 20,
            timeout=30,
            what="some uploads",
        )
        holder = LockHolder(db)
        try:
            locked = daemon.wait_event("store_unavailable", timeout=30)
            uploads_while_locked = stat(emulator, "uploads")
        finally:
            holder.release()
        assert "locked" in locked["error"] and str(db) in locked["error"]
        assert alive(daemon)
        wait_until(
            lambda: alive(daemon) and all_uploaded(db, len(local)),
            timeout=60,
            interval=0.1,
            what="every file uploaded after the lock is released",
        )
        assert uploads_while_locked < len(local), "the lock was taken mid-run"
        assert not daemon.named("upload_failed")
        assert daemon.stop() == 0
    assert_exactly_once_and_consistent(emulator, api_key, db, local)
