"""Issue 21.1: one syncd per node and state store.

A second ``syncd run`` on the same store as the same node, or a ``syncd sync`` beside a running
daemon, is refused: exit 75 with one line naming the store, the node and the holder's pid and
host; the first daemon carries on untouched (its claims are not "recovered"). On PostgreSQL the
lock is per node name: another node name on the same database is a fleet and is welcome.
"""

from __future__ import annotations

import socket
from pathlib import Path

from syncd.emulator import EmulatorServer
from syncd.store.connect import parse_target
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.reliability_checks import run_syncd, stat

EXIT_BUSY = 75


def node_config(
    directory: Path, server_url: str, folder: Path, *, db_url: str | None = None, node: str = "n1"
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sections = {"node": {"name": f'"{node}"'}}
    if db_url is not None:
        sections["state"] = {"url": f'"{db_url}"'}
    return write_config(
        directory, server_url=server_url, folders=[FolderSetup(folder)], sections=sections
    )


def assert_refused(result_stderr: str, returncode: int, *, store: str, pid: int) -> None:
    lines = result_stderr.strip().splitlines()
    assert returncode == EXIT_BUSY, result_stderr
    assert "Traceback" not in result_stderr
    refusal = [line for line in lines if line.startswith("error: ")]
    assert len(refusal) == 1, result_stderr
    assert store in refusal[0] and "'n1'" in refusal[0], refusal[0]
    assert f"pid {pid} on" in refusal[0] and socket.gethostname() in refusal[0], refusal[0]


def test_second_daemon_and_sync_are_refused_while_the_first_runs(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    start_daemon: StartDaemon,
    db_url: str,
) -> None:
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = node_config(tmp_path / "one", emulator.url, folder, db_url=db_url)
    first = start_daemon(config)
    first.wait_event("file_uploaded", path="a.jsonl")
    store = parse_target(db_url).display

    second = run_syncd(config, api_key, "run", timeout=60)
    assert_refused(second.stderr, second.returncode, store=store, pid=first.proc.pid)

    sync = run_syncd(config, api_key, "sync", "--no-progress", timeout=60)
    assert_refused(sync.stderr, sync.returncode, store=store, pid=first.proc.pid)
    # One line on stderr and nothing else: no log noise, no traceback.
    assert len(sync.stderr.strip().splitlines()) == 1, sync.stderr

    # The first daemon never saw its claims reset and still works.
    write_chat_file(folder / "b.jsonl", salt="b")
    first.wait_event("file_uploaded", path="b.jsonl")
    assert first.proc.poll() is None
    assert stat(emulator, "uploads") == 2

    # Once it is gone (even by SIGKILL) the lock is free again.
    first.kill()
    after = run_syncd(config, api_key, "sync", "--no-progress", timeout=60)
    assert after.returncode == 0, after.stderr


def test_sync_beside_a_daemon_with_the_embedded_emulator_is_one_line(
    tmp_path: Path, api_key: str, start_daemon: StartDaemon
) -> None:
    """`syncd sync` beside `make run` (embedded emulator) died with a 45-line traceback."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = node_config(tmp_path, "embedded", folder)
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded", path="a.jsonl")
    sync = run_syncd(config, api_key, "sync", "--no-progress", timeout=60)
    assert_refused(
        sync.stderr,
        sync.returncode,
        store=str(tmp_path / "state" / "state.db"),
        pid=daemon.proc.pid,
    )
    assert len(sync.stderr.strip().splitlines()) == 1, sync.stderr


def test_postgres_lock_is_per_node_name(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    start_daemon: StartDaemon,
    postgres_url: str,
) -> None:
    """Another config (another "host") with the same [node] name is refused; another name is a
    fleet node and runs."""
    shared = tmp_path / "shared"
    write_chat_file(shared / "a.jsonl")
    first = start_daemon(node_config(tmp_path / "h1", emulator.url, shared, db_url=postgres_url))
    first.wait_event("daemon_started")
    same_name = node_config(tmp_path / "h2", emulator.url, shared, db_url=postgres_url)
    refused = run_syncd(same_name, api_key, "run", timeout=60)
    assert_refused(
        refused.stderr,
        refused.returncode,
        store=parse_target(postgres_url).display,
        pid=first.proc.pid,
    )
    other = start_daemon(
        node_config(tmp_path / "h3", emulator.url, shared, db_url=postgres_url, node="n2")
    )
    other.wait_event("daemon_started")
    assert other.proc.poll() is None and first.proc.poll() is None
