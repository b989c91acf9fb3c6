"""What the reliability tests check at the end of every ordeal, and how they drive the daemon.

The end state that matters: every local file is on the remote exactly once with its own bytes,
and the state store agrees with the remote (nothing recorded that the remote lacks, nothing on
the remote the store does not point at).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from tests.daemon_process import DaemonProcess


def state_db(config_dir: Path) -> Path:
    """Where ``tests.configs.write_config`` puts the state database."""
    return config_dir / "state" / "state.db"


_QUERY_SCRIPT = """
import json, sqlite3, sys
connection = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
print(json.dumps(connection.execute(sys.argv[2]).fetchall()))
"""


def query(db: Path, sql: str, *, mounts_of: int | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` from the state database, read without writing (the daemon may run).

    ``mounts_of``: read it inside that process's mount namespace (a database on a tmpfs only
    that process sees; SQLite resolves ``/proc/PID/root`` links, so that path does not work).
    """
    if mounts_of is None:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as connection:
            return connection.execute(sql).fetchall()
    enter = ["nsenter", f"--target={mounts_of}", "--mount", "--"]
    result = subprocess.run(
        [*enter, sys.executable, "-c", _QUERY_SCRIPT, str(db), sql],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [tuple(row) for row in json.loads(result.stdout)]


def local_states(db: Path, *, mounts_of: int | None = None) -> dict[str, str]:
    """rel_path -> state of every local row (an empty dict before the database exists)."""
    if mounts_of is None and not db.exists():
        return {}
    tables = query(db, "select name from sqlite_master where type = 'table'", mounts_of=mounts_of)
    if ("local_files",) not in tables:
        return {}  # created, not migrated yet
    return dict(query(db, "select rel_path, state from local_files", mounts_of=mounts_of))


def all_uploaded(db: Path, expected: int, *, mounts_of: int | None = None) -> bool:
    """Whether the store holds ``expected`` rows and every one is ``uploaded``."""
    states = local_states(db, mounts_of=mounts_of)
    return len(states) == expected and set(states.values()) == {"uploaded"}


def stat(emulator: EmulatorServer, name: str) -> int:
    """One of the emulator's counters (uploads, requests, faults, files)."""
    value = emulator.stats()[name]
    assert isinstance(value, int)
    return value


@dataclass(frozen=True)
class RemoteCheck:
    """What the final comparison found."""

    remote_files: int
    uploads_seen_by_server: int


def assert_exactly_once_and_consistent(
    emulator: EmulatorServer,
    api_key: str,
    db: Path,
    local: dict[str, Path],
    *,
    mounts_of: int | None = None,
) -> RemoteCheck:
    """Every file in ``local`` (name -> path) is on the remote once, with its bytes, and the
    store agrees with the remote in both directions. Faults are switched off to look."""
    emulator.set_faults(fault_rate=0.0, latency_ms=0)
    with Mistral(api_key=api_key, server_url=emulator.url, max_retries=3) as client:
        remote = {info.id: info for info in client.files.iter_all(page_size=1000)}
        names = Counter(info.filename for info in remote.values())
        duplicated = sorted(name for name, n in names.items() if n > 1)
        assert not duplicated, f"uploaded more than once: {duplicated[:10]}"
        missing = sorted(set(local) - set(names))
        assert not missing, f"never uploaded: {missing[:10]}"
        assert sorted(names) == sorted(local), "nothing on the remote but the local files"
        for info in remote.values():
            with client.files.download(info.id) as response:
                body = response.read()
            expected = hashlib.sha256(local[info.filename].read_bytes()).hexdigest()
            assert hashlib.sha256(body).hexdigest() == expected, f"{info.filename}: wrong bytes"

    rows = query(
        db, "select rel_path, state, remote_file_id, size from local_files", mounts_of=mounts_of
    )
    assert len(rows) == len(local)
    for rel_path, state, file_id, size in rows:
        assert state == "uploaded", f"{rel_path} is {state}"
        assert file_id in remote, f"{rel_path} points at {file_id}, which the remote lacks"
        assert remote[file_id].bytes == size, f"{rel_path}: remote size differs"
        assert remote[file_id].filename == Path(rel_path).name
    live_sql = "select file_id from remote_files where deleted_at is null"
    live = {file_id for (file_id,) in query(db, live_sql, mounts_of=mounts_of)}
    assert live <= set(remote), f"recorded live but not on the remote: {sorted(live - set(remote))}"
    assert set(remote) <= live, "every remote file is one the store recorded"
    return RemoteCheck(len(remote), stat(emulator, "uploads"))


@contextmanager
def running_daemon(config: Path, api_key: str, **kwargs: Any) -> Iterator[DaemonProcess]:
    """A ``syncd run`` subprocess, killed on the way out whatever happened."""
    daemon = DaemonProcess(config, api_key=api_key, **kwargs)
    try:
        yield daemon
    finally:
        daemon.kill()


def alive(daemon: DaemonProcess) -> bool:
    """True while the daemon runs; raises with its log when it has died."""
    if daemon.proc.poll() is not None:
        raise AssertionError(f"daemon exited {daemon.proc.returncode}:\n{daemon.log()}")
    return True


class LockHolder:
    """Another process holding ``BEGIN EXCLUSIVE`` on a SQLite database until released."""

    _SCRIPT = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""

    def __init__(self, path: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", self._SCRIPT, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        # Blocks until the lock is held: no sleeping, no polling.
        assert self._process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        if self._process.poll() is None:
            self._process.stdin.write("\n")
            self._process.stdin.close()
            assert self._process.wait(timeout=10) == 0
        self._process.stdout.close()


def in_private_mounts(setup: str) -> list[str]:
    """A command prefix that runs ``setup`` (shell) in a private mount namespace, then the
    command. As root this changes nothing outside the child: the mounts vanish with it."""
    assert shutil.which("unshare") is not None, "util-linux unshare is needed"
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-ec",
        setup + '\nexec "$@"',
        "sh",
    ]


def run_syncd(
    config: Path, api_key: str, *args: str, prefix: Sequence[str] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One ``syncd`` command as a subprocess (with ``prefix``), its output captured."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "syncd", "-c", str(config), *args],
        env={**os.environ, "MISTRAL_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
