"""The state store's database file: creation, permissions, pragmas, and every way it can fail.

Against real SQLite files in tmp dirs. Lock holders run in real subprocesses; the
read-only cases run one subprocess without the capabilities that let root ignore file modes.
What is not about the file (transactions, URLs, the pool) runs on PostgreSQL too (``db_url``),
and a PostgreSQL server stopped under an open store is ridden out.
"""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import event, text

from syncd.domain import FileStat, LocalState
from syncd.errors import StoreError
from syncd.store import Store, connect, open_store, repo
from tests.reliability_checks import LockHolder

if TYPE_CHECKING:
    from tests.postgres_cluster import PostgresCluster

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "a" * 64


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def add_row(store: Store, rel_path: str = "a.jsonl", *, last_error: str | None = None) -> None:
    with store.session() as s:
        repo.upsert_local(
            s,
            "/data",
            rel_path,
            purpose="fine-tune",
            stat=FileStat(size=1, mtime_ns=1, inode=1),
            sha256=SHA,
            state=LocalState.PENDING,
            last_error=last_error,
            now=NOW,
        )


def test_new_database_file_is_0600_in_new_0700_directories(tmp_path: Path) -> None:
    """A database syncd creates is private: file 0600, every directory it made 0700."""
    path = tmp_path / "var" / "lib" / "state.db"
    opened = open_store(sqlite_url(path))
    try:
        add_row(opened)
        assert mode_of(path) == 0o600
        assert mode_of(path.parent) == 0o700
        assert mode_of(path.parent.parent) == 0o700
        sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(p.exists() for p in sidecars)
        assert all(mode_of(p) == 0o600 for p in sidecars)
    finally:
        opened.dispose()


def test_existing_directory_keeps_its_permissions(tmp_path: Path) -> None:
    """An existing state directory is not chmod-ed: its owner chose its mode."""
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o755)
    open_store(sqlite_url(directory / "state.db")).dispose()
    assert mode_of(directory) == 0o755
    assert mode_of(directory / "state.db") == 0o600


def test_every_pooled_connection_gets_the_pragmas(store: Store) -> None:
    """WAL, foreign keys, synchronous=NORMAL and the busy timeout hold on each connection."""
    with store.engine.connect() as first, store.engine.connect() as second:
        for connection in (first, second):
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_busy_timeout_is_configurable(tmp_path: Path) -> None:
    """open_store's busy_timeout_ms reaches SQLite."""
    opened = open_store(sqlite_url(tmp_path / "state.db"), busy_timeout_ms=250)
    try:
        with opened.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 250
    finally:
        opened.dispose()


def test_session_commits_on_success_and_rolls_back_on_error(engine_store: Store) -> None:
    """A session is one transaction: an exception inside it leaves nothing behind."""
    store = engine_store
    with pytest.raises(RuntimeError), store.session() as s:
        repo.audit(s, "upload", now=NOW, file_id="file-rolled-back")
        s.flush()
        raise RuntimeError("boom")
    with store.session() as s:
        repo.audit(s, "upload", now=NOW, file_id="file-kept")
    with store.session() as s:
        assert [e.file_id for e in repo.audit_entries(s)] == ["file-kept"]


def test_repr_and_url_never_show_a_password(store: Store) -> None:
    """URLs are shown with the password masked, wherever they appear."""
    target = connect.parse_target("postgresql://syncd:hunter2@db.example/syncd")
    assert "hunter2" not in target.display
    assert "***" in target.display
    assert repr(store) == f"Store(url={store.url!r})"
    assert str(store.path) in store.url


def test_a_server_store_shows_its_url_without_the_password(postgres_url: str) -> None:
    """A PostgreSQL store has no file; its URL is shown with the password masked."""
    with_password = postgres_url.replace("syncd_test@", "syncd_test:hunter2@")
    with open_store(with_password) as opened:  # trust auth: the password is not checked
        add_row(opened)
        assert opened.path is None
        assert "hunter2" not in opened.url
        assert "hunter2" not in repr(opened)
        assert opened.url == with_password.replace("hunter2", "***")


def test_corrupt_database_is_refused_not_recreated(tmp_path: Path) -> None:
    """Damaged pages fail the integrity check with a StoreError naming the file."""
    path = tmp_path / "state.db"
    opened = open_store(sqlite_url(path))
    for i in range(200):
        add_row(opened, f"dir/{i}.jsonl", last_error="x" * 200)
    opened.dispose()
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 3 + 3000] = b"Z" * 3000  # garble the middle of the file
    path.write_bytes(bytes(data))
    size = path.stat().st_size

    with pytest.raises(StoreError) as caught:
        open_store(sqlite_url(path))
    message = str(caught.value)
    assert str(path) in message
    assert "corrupt" in message
    assert "backup" in message
    assert path.stat().st_size == size  # left as it was, for the operator


def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    """A text file at the database path gives a StoreError saying so, and is left alone."""
    path = tmp_path / "state.db"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError) as caught:
        open_store(sqlite_url(path))
    assert str(path) in str(caught.value)
    assert "not a SQLite database" in str(caught.value)
    assert path.read_text().startswith("these are my notes")


def test_database_locked_by_another_process_at_open(tmp_path: Path) -> None:
    """Another process's exclusive lock past the busy timeout is a StoreError saying 'locked'."""
    path = tmp_path / "state.db"
    path.touch(mode=0o600)
    holder = LockHolder(path)
    try:
        with pytest.raises(StoreError) as caught:
            open_store(sqlite_url(path), busy_timeout_ms=100)
    finally:
        holder.release()
    assert "locked" in str(caught.value)
    assert str(path) in str(caught.value)


def test_write_while_locked_fails_cleanly_and_later_works(tmp_path: Path) -> None:
    """A write blocked past the busy timeout raises StoreError; the store works once released."""
    path = tmp_path / "state.db"
    opened = open_store(sqlite_url(path), busy_timeout_ms=100)
    try:
        holder = LockHolder(path)
        try:
            with pytest.raises(StoreError, match="locked"):
                add_row(opened, "blocked.jsonl")
        finally:
            holder.release()
        add_row(opened, "after.jsonl")
        with opened.session() as s:
            assert [r.rel_path for r in repo.list_local(s)] == ["after.jsonl"]
    finally:
        opened.dispose()


def test_read_only_connection_write_is_a_store_error(tmp_path: Path) -> None:
    """Through a read-only (mode=ro) URL the store opens, and a write names the read-only file."""
    path = tmp_path / "state.db"
    open_store(sqlite_url(path)).dispose()
    read_only = open_store(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        assert read_only.path == path
        with read_only.session() as s:
            assert repo.list_local(s) == []
        with pytest.raises(StoreError) as caught:
            add_row(read_only)
    finally:
        read_only.dispose()
    assert "read-only" in str(caught.value)
    assert str(path) in str(caught.value)


_UNPRIVILEGED_OPEN = textwrap.dedent(
    """
    import sys
    from syncd.errors import StoreError
    from datetime import UTC, datetime
    from syncd.store import open_store, repo
    for url in sys.argv[1:]:
        try:
            store = open_store(url)
            with store.session() as s:
                repo.audit(s, "upload", now=datetime.now(UTC))
            print("written")
        except StoreError as exc:
            print("StoreError:", exc)
    """
)


def test_read_only_file_and_directory_as_unprivileged_process(tmp_path: Path) -> None:
    """A 0400 database and a 0500 directory give StoreErrors naming the path and the cause.

    Tests run as root, which ignores file modes; the check runs in a subprocess started by
    ``setpriv`` without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so the modes apply for real.
    """
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "util-linux setpriv is needed to drop root's file capabilities"
    read_only_db = tmp_path / "ro-file" / "state.db"
    read_only_db.parent.mkdir()
    open_store(sqlite_url(read_only_db)).dispose()
    read_only_db.chmod(0o400)
    read_only_db.parent.chmod(0o500)
    locked_dir = tmp_path / "ro-dir"
    locked_dir.mkdir(mode=0o500)
    locked_dir.chmod(0o500)
    try:
        result = subprocess.run(
            [
                setpriv,
                "--bounding-set",
                "-dac_override,-dac_read_search",
                sys.executable,
                "-c",
                _UNPRIVILEGED_OPEN,
                sqlite_url(read_only_db),
                sqlite_url(locked_dir / "state.db"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        read_only_db.parent.chmod(0o700)
    file_line, dir_line = result.stdout.strip().splitlines()
    assert file_line.startswith("StoreError:")
    assert str(read_only_db) in file_line
    assert "read-only" in file_line
    assert dir_line.startswith("StoreError:")
    assert str(locked_dir / "state.db") in dir_line
    assert "permission denied" in dir_line


def test_full_disk_is_a_store_error(store: Store) -> None:
    """SQLITE_FULL (a database that cannot grow) becomes a StoreError saying the disk is full."""
    with pytest.raises(StoreError) as caught, store.session() as s:
        pages = s.execute(text("PRAGMA page_count")).scalar_one()
        # max_page_count makes SQLite report exactly what a full disk reports.
        s.execute(text(f"PRAGMA max_page_count = {int(pages)}"))
        for i in range(500):
            repo.audit(s, "upload", now=NOW, detail=f"{i}" + "x" * 1000)
        s.flush()
    assert "full" in str(caught.value)
    assert str(store.path) in str(caught.value)


def test_in_memory_database_is_shared_between_threads() -> None:
    """``sqlite://`` is migrated once and seen by every thread (tests and demos use it)."""
    opened = open_store("sqlite://")
    seen: list[int] = []
    try:
        add_row(opened)
        thread = threading.Thread(target=lambda: seen.append(count_rows(opened)))
        thread.start()
        thread.join(timeout=10)
    finally:
        opened.dispose()
    assert opened.path is None
    assert seen == [1]


def count_rows(store: Store) -> int:
    with store.session() as s:
        return len(repo.list_local(s))


def test_invalid_url_is_a_store_error() -> None:
    """A malformed database URL is reported as such."""
    with pytest.raises(StoreError, match="invalid database URL"):
        open_store("not a url at all")


def _connections_opened(store: Store, holders: int, rounds: int) -> int:
    """SQLite connections opened while ``holders`` threads each hold a session at once, in
    ``rounds`` rounds (a barrier makes the sessions overlap)."""
    opened: list[object] = []
    event.listen(store.engine, "connect", lambda *_args: opened.append(None))
    for _ in range(rounds):
        barrier = threading.Barrier(holders)

        def hold(barrier: threading.Barrier) -> None:
            with store.session() as s:
                s.execute(text("SELECT 1"))
                barrier.wait(timeout=30)

        threads = [threading.Thread(target=hold, args=(barrier,)) for _ in range(holders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    return len(opened)


def test_a_pool_sized_for_the_threads_reuses_its_connections(db_url: str) -> None:
    """With ``threads`` covering the sessions held at once, each round reuses the connections
    of the first; with fewer, connections beyond the pool are opened and closed every round."""
    url = db_url
    with open_store(url, threads=10) as sized:
        assert _connections_opened(sized, holders=10, rounds=3) <= 10
    with open_store(url, threads=2) as small:
        # At most 2 of the 10 sessions of a round find a pooled connection: 8 new ones a round.
        assert _connections_opened(small, holders=10, rounds=3) >= 3 * 8


def test_a_postgresql_restart_under_an_open_store_is_ridden_out(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """The server crashes (immediate stop) under an open store with pooled connections: while
    it is down a session is a StoreError naming the database (password masked); once it is
    back, the next session works on a fresh connection and nothing committed is lost."""
    with_password = postgres_url.replace("syncd_test@", "syncd_test:hunter2@")
    with open_store(with_password) as opened:
        add_row(opened, "before.jsonl")
        postgres_cluster.kill()
        try:
            with pytest.raises(StoreError) as caught:
                add_row(opened, "while-down.jsonl")
        finally:
            postgres_cluster.start()
        message = str(caught.value)
        assert opened.url in message
        address = f"{postgres_cluster.host}:{postgres_cluster.port}"
        assert message.endswith(f"is PostgreSQL running and reachable at {address}?")
        assert "hunter2" not in message
        add_row(opened, "after.jsonl")
        assert count_rows(opened) == 2


def test_pooled_connections_killed_by_a_server_restart_are_replaced(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """Every pooled connection dies with a server crash and restart; the next sessions (no
    attempt made while the server was down) work at once on fresh connections: each pooled
    connection is pinged before use and replaced when dead."""
    holders = 3
    with open_store(postgres_url, threads=holders) as opened:
        add_row(opened, "before.jsonl")
        _connections_opened(opened, holders=holders, rounds=1)  # the pool holds 3 connections
        backends_before = _backend_pids(opened, holders)
        postgres_cluster.kill()
        postgres_cluster.start()
        for index in range(holders):
            add_row(opened, f"after-{index}.jsonl")
        assert count_rows(opened) == 1 + holders
        assert not _backend_pids(opened, holders) & backends_before


def test_a_server_lost_in_mid_session_is_named_with_host_and_port(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """The server dies under an open transaction: a StoreError saying the connection was
    lost and where the server should be; the store works again once the server is back."""
    with open_store(postgres_url) as opened:
        with pytest.raises(StoreError) as caught, opened.session() as s:
            s.execute(text("SELECT 1"))
            postgres_cluster.kill()
            try:
                s.execute(text("SELECT 1"))
            finally:
                postgres_cluster.start()
        address = f"{postgres_cluster.host}:{postgres_cluster.port}"
        assert str(caught.value).startswith(f"lost the connection to state database {opened.url} (")
        assert str(caught.value).endswith(f"is PostgreSQL running and reachable at {address}?")
        add_row(opened)
        assert count_rows(opened) == 1


def _backend_pids(store: Store, holders: int) -> set[int]:
    """The server process ids behind ``holders`` sessions held at once."""
    pids: set[int] = set()
    barrier = threading.Barrier(holders)

    def hold() -> None:
        with store.session() as s:
            pids.add(int(s.execute(text("SELECT pg_backend_pid()")).scalar_one()))
            barrier.wait(timeout=30)

    threads = [threading.Thread(target=hold) for _ in range(holders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return pids


def _open_in_thread(url: str) -> tuple[threading.Thread, list[BaseException], list[float]]:
    """``open_store(url)`` in a thread (a hang must not hang the test): what it raised and
    how long it took."""
    raised: list[BaseException] = []
    took: list[float] = []

    def attempt() -> None:
        began = time.monotonic()
        try:
            open_store(url).dispose()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)
        took.append(time.monotonic() - began)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    return thread, raised, took


def test_a_closed_port_fails_at_once_naming_host_and_port() -> None:
    """Nothing listens: a StoreError naming the database (password masked) and where to look,
    within a few seconds, with no password anywhere in the error or its chained causes."""
    with socket.socket() as probe:  # bound, never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        thread, raised, took = _open_in_thread(
            f"postgresql+psycopg://syncd:hunter2-pw@127.0.0.1:{port}/syncd"
        )
        thread.join(timeout=30)
    assert not thread.is_alive()
    (error,) = raised
    assert isinstance(error, StoreError)
    assert took[0] < 5
    message = str(error)
    assert message.startswith(
        f"cannot connect to state database postgresql+psycopg://syncd:***@127.0.0.1:{port}/syncd "
    )
    assert message.endswith(f"is PostgreSQL running and reachable at 127.0.0.1:{port}?")
    assert "hunter2-pw" not in "".join(traceback.format_exception(error))


def test_a_server_that_never_answers_fails_after_the_connect_timeout() -> None:
    """A host that takes the TCP connection but never answers (a hung server, a black-holing
    firewall) fails after connect_timeout, not after the kernel's minutes or never."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts the handshake; nobody ever speaks
        port = silent.getsockname()[1]
        thread, raised, took = _open_in_thread(f"postgresql+psycopg://syncd@127.0.0.1:{port}/syncd")
        thread.join(timeout=connect.CONNECT_TIMEOUT_S + 10)
        hung = thread.is_alive()
    thread.join(timeout=30)  # closing the socket ends a hung attempt
    assert not hung, "connecting to a silent server did not time out"
    (error,) = raised
    assert isinstance(error, StoreError)
    assert connect.CONNECT_TIMEOUT_S - 1 <= took[0] < connect.CONNECT_TIMEOUT_S + 5
    assert str(error).startswith(
        f"cannot connect to state database postgresql+psycopg://syncd@127.0.0.1:{port}/syncd "
        "(connection timeout expired); is PostgreSQL running and reachable at "
        f"127.0.0.1:{port}?"
    )


def test_a_row_lock_waits_no_longer_than_the_busy_timeout(postgres_url: str) -> None:
    """A row locked by another transaction: the store's write gives up after busy_timeout
    (PostgreSQL's lock_timeout) with a StoreError saying so, instead of waiting forever."""
    import psycopg

    with open_store(postgres_url, busy_timeout_ms=300) as opened:
        add_row(opened)
        with opened.session() as s:
            assert s.execute(text("SHOW lock_timeout")).scalar_one() == "300ms"
        dsn = opened.engine.url.set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(dsn) as blocker:
            blocker.execute("UPDATE local_files SET last_error = 'held' WHERE rel_path = 'a.jsonl'")
            raised: list[BaseException] = []

            def write() -> None:
                try:
                    add_row(opened, last_error="mine")
                except BaseException as exc:  # noqa: BLE001 - handed to the test
                    raised.append(exc)

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            writer.join(timeout=30)
            hung = writer.is_alive()
            blocker.rollback()  # ends a hung write
        writer.join(timeout=30)
        assert not hung, "the write waited for the row lock without a timeout"
        (error,) = raised
        assert isinstance(error, StoreError)
        assert "locked by another connection for longer than 300 ms" in str(error)
        add_row(opened, last_error="mine")  # the lock is gone: the write goes through


def test_options_and_timeouts_in_the_url_are_kept() -> None:
    """A URL (or libpq's environment) that sets connect_timeout or options keeps them; options
    without a lock timeout get one added."""
    url = connect.parse_target("postgresql+psycopg://syncd@db/syncd").url
    assert connect.postgres_connect_args(url, 5000, {}) == {
        "connect_timeout": connect.CONNECT_TIMEOUT_S,
        "options": "-c lock_timeout=5000",
    }
    own = url.update_query_dict({"connect_timeout": "30", "options": "-c lock_timeout=1s"})
    assert connect.postgres_connect_args(own, 5000, {}) == {}
    other = url.update_query_dict({"options": "-c statement_timeout=60s"})
    assert connect.postgres_connect_args(other, 250, {"PGCONNECT_TIMEOUT": "20"}) == {
        "options": "-c statement_timeout=60s -c lock_timeout=250"
    }
    assert connect.postgres_connect_args(url, 5000, {"PGOPTIONS": "-c lock_timeout=9s"}) == {
        "connect_timeout": connect.CONNECT_TIMEOUT_S
    }
