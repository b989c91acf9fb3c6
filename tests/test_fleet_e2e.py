"""Issue 12, end to end: several syncd nodes on one PostgreSQL state store.

* **Same path, two nodes.** Two hosts each have a folder at the same absolute path with
  different files. Each node runs in a mount namespace of its own (``unshare --mount``) where a
  per-node directory is bind-mounted on that one path; one of them also gets a UTS namespace
  with the host name ``n1`` and no ``[node] name``, which proves the default node name is the
  host name. Neither node's pass may take the other's rows for its own (nothing ``missing``,
  nothing uploaded twice), also on a second pass.
* **A shared folder under faults.** Two (then three) ``syncd run`` daemons sync one directory
  marked ``shared = true``, while files arrive in waves, the emulator fails ~20% of requests
  (lost responses included, dedupe off so a second upload would be a second file), ``n1`` is
  SIGKILLed and restarted, and PostgreSQL is crashed (``pg_ctl stop -m immediate``) and started
  again. At the end every daemon still runs and every file is on the remote exactly once.
* **An unmounted share.** A node whose shared folder's root is an empty mount point, or does
  not exist, must not mark the folder's files missing: another node uploaded them.
* **A node back from the dead, a pass that never comes back.** A daemon frozen (SIGSTOP) past
  its lease while its upload is on the way (held in a TCP proxy) gets the answer only after
  another node took the claim over and uploaded the file: the late answer must not undo that.
  A ``syncd sync`` pass killed mid-upload must see its claim taken over by a daemon.

Every wait polls with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from syncd.emulator.options import DEFAULT_FAULT_KINDS
from tests.configs import FolderSetup, chat_line, write_config
from tests.daemon_process import DaemonProcess
from tests.postgres_cluster import PostgresCluster
from tests.reliability_checks import alive, in_private_mounts, run_syncd, stat
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SHARED_ID = "train-nfs"
SHARED_KEY = f"shared:{SHARED_ID}"
#: Node settings for the daemons: heartbeats often enough that a lease fits a test.
NODE_TIMING = {"heartbeat": '"1s"', "lease": '"3s"'}


# -- helpers -------------------------------------------------------------------------------------


class Database:
    """The test's PostgreSQL database: its SQLAlchemy URL (for syncd) and a libpq DSN (here).

    Polling reuses one autocommit connection (a new one per poll would miss claims that last
    milliseconds), opened again after the server went away.
    """

    def __init__(self, url: str, dsn: str) -> None:
        self.url = url
        self.dsn = dsn
        self._connection: psycopg.Connection[tuple[Any, ...]] | None = None

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.dsn, connect_timeout=5, autocommit=True)
        try:
            return list(self._connection.execute(sql, params).fetchall())
        except psycopg.OperationalError:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def states(self, folder: str) -> dict[str, str]:
        """rel_path -> state of a folder's rows; {} while the server is down or unmigrated."""
        try:
            found = self.rows("select rel_path, state from local_files where folder = %s", folder)
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            return {}
        return dict(found)

    def all_uploaded(self, folder: str, expected: int) -> bool:
        states = self.states(folder)
        return len(states) == expected and set(states.values()) == {"uploaded"}

    def claims(self, node: str | None = None) -> int:
        """``uploading`` rows claimed by ``node`` (any node: None); 0 while the server is down."""
        sql = "select count(*) from local_files where state = 'uploading'"
        try:
            if node is None:
                [(count,)] = self.rows(sql + " and claimed_by is not null")
            else:
                [(count,)] = self.rows(sql + " and claimed_by = %s", node)
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            return 0
        return int(count)


@pytest.fixture
def database(postgres_cluster: PostgresCluster, postgres_url: str) -> Iterator[Database]:
    opened = Database(postgres_url, postgres_cluster.dsn(postgres_url.rsplit("/", 1)[1]))
    yield opened
    opened.close()  # before the database is dropped


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chat_bytes(tag: str, lines: int = 2) -> bytes:
    """A valid fine-tune file whose content is unique to ``tag``."""
    return "".join(chat_line(f"q{i} {tag}", f"a{i} {tag}") + "\n" for i in range(lines)).encode()


def write_atomically(path: Path, data: bytes) -> None:
    """Write under a hidden ``.tmp`` name (excluded by default), then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    temp.rename(path)


def node_config(
    directory: Path,
    *,
    server_url: str,
    database: Database,
    folder: Path,
    node: str | None,
    shared: bool,
    concurrency: int = 4,
    sections: dict[str, dict[str, str]] | None = None,
) -> Path:
    """A node's config in ``directory``: the PostgreSQL store, one fine-tune folder, and
    ``[node] name`` unless ``node`` is None (then the host name is the default)."""
    directory.mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, str]] = {
        "state": {"url": f'"{database.url}"'},
        "api": {"concurrency": str(concurrency), "max_attempts": "8"},
        "node": dict(NODE_TIMING),
    }
    for table, values in (sections or {}).items():
        tables.setdefault(table, {}).update(values)
    if node is not None:
        tables["node"]["name"] = f'"{node}"'
    extra = {"shared": "true", "id": f'"{SHARED_ID}"'} if shared else {}
    return write_config(
        directory,
        server_url=server_url,
        folders=[FolderSetup(folder, extra=extra)],
        sections=tables,
    )


def remote_contents(emulator: EmulatorServer, api_key: str) -> dict[str, tuple[str, str]]:
    """file_id -> (sha256 of its bytes, purpose) for every file on the emulator (faults off)."""
    emulator.set_faults(fault_rate=0.0, latency_ms=0)
    found: dict[str, tuple[str, str]] = {}
    with Mistral(api_key=api_key, server_url=emulator.url, max_retries=3) as client:
        for info in client.files.iter_all(page_size=1000):
            with client.files.download(info.id) as response:
                found[info.id] = (sha256(response.read()), str(info.purpose))
    return found


def assert_each_once(
    remote: dict[str, tuple[str, str]], expected: dict[str, bytes], purpose: str = "fine-tune"
) -> dict[str, str]:
    """Every content in ``expected`` (name -> bytes) is on the remote exactly once with
    ``purpose``, and nothing else is; returns sha256 -> file_id."""
    wanted = {sha256(data) for data in expected.values()}
    assert len(wanted) == len(expected), "the test's files have distinct contents"
    copies = Counter(content for content, _ in remote.values())
    duplicated = sorted(content for content, n in copies.items() if n > 1)
    assert not duplicated, f"{len(duplicated)} contents uploaded more than once"
    missing = [name for name, data in expected.items() if sha256(data) not in copies]
    assert not missing, f"never uploaded: {sorted(missing)[:10]}"
    strangers = set(copies) - wanted
    assert not strangers, f"{len(strangers)} remote files hold no local file's content"
    assert {p for _, p in remote.values()} == {purpose}
    return {content: file_id for file_id, (content, _) in remote.items()}


def assert_store_matches_remote(
    database: Database, folder: str, expected: dict[str, bytes], by_content: dict[str, str]
) -> None:
    """The folder's rows are exactly ``expected``'s paths, uploaded, each pointing at the
    remote file that holds its bytes."""
    rows = database.rows(
        "select rel_path, state, sha256, remote_file_id from local_files where folder = %s",
        folder,
    )
    assert sorted(r[0] for r in rows) == sorted(expected)
    for rel_path, state, content, file_id in rows:
        assert state == "uploaded", f"{rel_path} is {state}"
        assert content == sha256(expected[rel_path]), f"{rel_path}: stored sha256 is wrong"
        assert by_content[content] == file_id, f"{rel_path} points at the wrong remote file"


def status_json(config: Path, api_key: str, prefix: Sequence[str] = ()) -> dict[str, Any]:
    done = run_syncd(config, api_key, "status", "--json", prefix=prefix)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def assert_status_all_uploaded(
    document: dict[str, Any], folder_key: str, expected: Sequence[str]
) -> None:
    """``syncd status --json``: the one folder is ``folder_key`` and every expected file in it
    is ``uploaded`` (so none is ``missing``)."""
    [folder] = document["folders"]
    assert folder["path"] == folder_key
    assert folder["counts"] == {"uploaded": len(expected)}, folder["counts"]
    states = {f["path"]: f["state"] for f in document["files"]}
    assert states == dict.fromkeys(expected, "uploaded")


def health(daemon: DaemonProcess) -> tuple[int, str]:
    """``GET /healthz`` of a daemon started with ``[metrics] listen = "127.0.0.1:0"``."""
    [listening] = daemon.named("metrics_listening")
    response = httpx.get(f"http://{listening['listen']}/healthz", timeout=5)
    return response.status_code, response.text


def health_is(daemon: DaemonProcess, code: int) -> bool:
    return alive(daemon) and health(daemon)[0] == code


def failed_to_record(daemon: DaemonProcess, since: int, paths: set[str]) -> bool:
    """Whether the daemon logged, after its ``since``-th event, that it could not record one
    of ``paths`` because the state database is unavailable."""
    return alive(daemon) and any(
        event.get("path") in paths and "unavailable" in str(event.get("event"))
        for event in daemon.events[since:]
    )


# -- a: the same path on two nodes ---------------------------------------------------------------


def test_two_nodes_with_the_same_path_keep_their_own_files(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str, database: Database
) -> None:
    """``/…/mnt/train`` on n1 and on n2 holds different files (``common.jsonl`` on both, with
    different bytes): each node's pass uploads its own files once, marks none of the other's
    missing, and a second pass of each uploads nothing."""
    emulator = make_emulator(dedupe=False)
    mount_point = tmp_path / "mnt" / "train"
    mount_point.mkdir(parents=True)
    contents: dict[str, dict[str, bytes]] = {}
    prefixes: dict[str, list[str]] = {}
    configs: dict[str, Path] = {}
    for node, count in (("n1", 7), ("n2", 5)):
        own = tmp_path / f"{node}-disk"
        files = {f"{node}-{i}.jsonl": chat_bytes(f"{node} {i}") for i in range(count)}
        files["common.jsonl"] = chat_bytes(f"common on {node}")
        files["sub/deep.jsonl"] = chat_bytes(f"deep on {node}")
        for rel_path, data in files.items():
            write_atomically(own / rel_path, data)
        contents[node] = files
        bind = f"mount --bind {own} {mount_point}"
        # n1 names itself by its host name (no [node] name): a UTS namespace of its own.
        prefixes[node] = in_private_mounts(f"hostname {node}\n{bind}" if node == "n1" else bind)
        if node == "n1":
            prefixes[node][1:1] = ["--uts"]
        configs[node] = node_config(
            tmp_path / node,
            server_url=emulator.url,
            database=database,
            folder=mount_point,
            node=None if node == "n1" else node,
            shared=False,
        )
    assert not any(mount_point.iterdir()), "outside the namespaces the mount point is empty"

    uploads: list[int] = []
    for round_ in (1, 2):
        for node in ("n1", "n2"):
            done = run_syncd(configs[node], api_key, "sync", "--no-progress", prefix=prefixes[node])
            assert done.returncode == 0, f"{node} pass {round_}: {done.stdout}{done.stderr[-3000:]}"
            uploads.append(stat(emulator, "uploads"))
            for seen_by in ("n1", "n2"):
                document = status_json(configs[seen_by], api_key, prefixes[seen_by])
                if round_ == 1 and seen_by == "n2" and node == "n1":
                    assert document["files"] == [], "n2 has not synced yet: nothing of n1's"
                    continue
                assert_status_all_uploaded(
                    document, f"{seen_by}:{mount_point}", sorted(contents[seen_by])
                )
    n1_files, n2_files = len(contents["n1"]), len(contents["n2"])
    assert uploads == [n1_files, n1_files + n2_files, n1_files + n2_files, n1_files + n2_files]

    keys = {row[0] for row in database.rows("select distinct folder from local_files")}
    assert keys == {f"n1:{mount_point}", f"n2:{mount_point}"}
    remote = remote_contents(emulator, api_key)
    everything = {
        f"{node}/{name}": data for node, files in contents.items() for name, data in files.items()
    }
    by_content = assert_each_once(remote, everything)
    for node in ("n1", "n2"):
        assert_store_matches_remote(database, f"{node}:{mount_point}", contents[node], by_content)


# -- b: a shared folder, daemons, faults ---------------------------------------------------------

WAVE = 30
FAULT_RATE = 0.2


@pytest.mark.parametrize("nodes", [2, 3], ids=["two-daemons", "three-daemons"])
def test_daemons_share_a_folder_through_a_crash_and_a_database_outage(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    postgres_cluster: PostgresCluster,
    database: Database,
    start_daemon: Callable[..., DaemonProcess],
    nodes: int,
) -> None:
    """Files arrive in four waves in a shared folder while the API fails 20% of requests;
    n1 is SIGKILLed after wave 1 (wave 2 arrives while it is down) and restarted; PostgreSQL
    crashes during wave 3 and wave 4 arrives while it is down. Every daemon keeps running and
    every file ends up on the remote exactly once, ``uploaded`` on every node's status."""
    emulator = make_emulator(
        dedupe=False,
        fault_rate=FAULT_RATE,
        fault_kinds=DEFAULT_FAULT_KINDS,
        retry_after=0.3,
        latency_ms=20,
        seed=12,
    )
    share = tmp_path / "share"
    share.mkdir()
    names = [f"n{i}" for i in range(1, nodes + 1)]
    configs = {
        name: node_config(
            tmp_path / name,
            server_url=emulator.url,
            database=database,
            folder=share,
            node=name,
            shared=True,
            # debug: a file judged while the database is down is logged at debug level.
            sections={"metrics": {"listen": '"127.0.0.1:0"'}, "log": {"level": '"debug"'}},
        )
        for name in names
    }
    daemons = {name: start_daemon(configs[name]) for name in names}
    for daemon in daemons.values():
        daemon.wait_event("rescan_finished", timeout=60)

    files: dict[str, bytes] = {}
    waves: list[str] = []

    def wave(label: str) -> None:
        waves.append(label)
        for i in range(WAVE):
            rel_path = f"wave{label}/f{i:02}.jsonl" if i % 3 else f"w{label}-f{i:02}.jsonl"
            files[rel_path] = chat_bytes(f"wave {label} file {i}", lines=1 + i % 4)
            write_atomically(share / rel_path, files[rel_path])

    def claims_while_busy(label: str, node: str | None) -> None:
        """Write wave ``label``, and return once ``node`` (any node: None) holds an upload
        claim; a wave that gets uploaded before that is followed by another one."""

        def claimed_or_done() -> str | None:
            assert all(alive(d) for d in daemons.values())
            if database.claims(node) > 0:
                return "claimed"
            return "done" if database.all_uploaded(SHARED_KEY, len(files)) else None

        for extra in "abc":
            wave(f"{label}{extra}" if extra != "a" else label)
            seen = wait_until(claimed_or_done, timeout=60, interval=0.002, what=f"wave {label}")
            if seen == "claimed":
                return
        raise AssertionError(f"{node or 'no node'} never held a claim during waves {label}*")

    # Wave 1: n1 is SIGKILLed while it holds upload claims; wave 2 arrives while it is down.
    claims_while_busy("1", "n1")
    daemons["n1"].proc.send_signal(signal.SIGKILL)
    assert daemons["n1"].proc.wait(timeout=10) == -signal.SIGKILL
    stranded = database.claims("n1")
    wave("2")
    wave2 = {rel_path for rel_path in files if rel_path.startswith(("wave2/", "w2-"))}
    wait_until(
        lambda: (
            all(alive(d) for name, d in daemons.items() if name != "n1")
            and sum(database.states(SHARED_KEY).get(p) == "uploaded" for p in wave2) >= WAVE // 2
        ),
        timeout=60,
        what="the other node(s) uploading wave 2 while n1 is down",
    )
    daemons["n1"].kill()
    daemons["n1"] = start_daemon(configs["n1"])
    daemons["n1"].wait_event("daemon_started", timeout=60)

    # Wave 3: PostgreSQL crashes while uploads are in flight (their outcomes must wait for
    # the database); wave 4 arrives while it is down.
    claims_while_busy("3", None)
    seen = {name: len(d.events) for name, d in daemons.items()}
    uploads_at_crash = stat(emulator, "uploads")
    outage_started = time.monotonic()
    postgres_cluster.kill()
    wave("4")
    # Down until every daemon has seen a wave-4 file arrive and failed to record it, and
    # says on /healthz that it is degraded.
    wave4 = {rel_path for rel_path in files if rel_path.startswith(("wave4/", "w4-"))}
    for name, daemon in daemons.items():
        wait_until(
            partial(failed_to_record, daemon, seen[name], wave4),
            timeout=30,
            what=f"{name} failing to record a wave-4 file while the database is down",
        )
        wait_until(
            partial(health_is, daemon, 503),
            timeout=30,
            what=f"{name}'s /healthz failing while the database is down",
        )
    down_health = health(daemons["n2"])[1]
    uploads_during_outage = stat(emulator, "uploads") - uploads_at_crash
    postgres_cluster.start()
    outage = time.monotonic() - outage_started

    wait_until(
        lambda: (
            all(alive(d) for d in daemons.values())
            and database.all_uploaded(SHARED_KEY, len(files))
        ),
        timeout=120,
        interval=0.2,
        what=f"all {len(files)} files uploaded after the outage",
    )
    assert all(alive(d) for d in daemons.values()), "every daemon rode it out"
    for name, daemon in daemons.items():
        wait_until(partial(health_is, daemon, 200), timeout=30, what=f"{name} healthy again")
    assert len(files) == len(waves) * WAVE

    remote = remote_contents(emulator, api_key)
    by_content = assert_each_once(remote, files)
    assert_store_matches_remote(database, SHARED_KEY, files, by_content)
    for name in names:
        assert_status_all_uploaded(status_json(configs[name], api_key), SHARED_KEY, sorted(files))
    faults = emulator.stats()["faults_by_kind"]
    assert isinstance(faults, dict) and faults.get("lost-response", 0) > 0, faults
    adopted = sum(len(d.named("file_adopted")) for d in daemons.values())
    taken_over = sum(
        e.get("count", 0) for d in daemons.values() for e in d.named("claims_taken_over")
    )
    for name, daemon in daemons.items():
        assert daemon.stop() == 0, f"{name}: {daemon.log()}"
    print(  # the figures for the README
        f"\nfleet: {nodes} daemons, {len(files)} files in {len(waves)} waves; n1 SIGKILLed holding "
        f"{stranded} claim(s), restarted; PostgreSQL down {outage:.1f}s, "
        f"{uploads_during_outage} upload(s) finished meanwhile; faults {faults}; "
        f"{stat(emulator, 'uploads')} uploads received, {adopted} adopted, {taken_over} claims "
        f"taken over, {len(remote)} remote files; /healthz while down: {down_health[:120]!r}"
    )


# -- c: an unmounted share -----------------------------------------------------------------------


@pytest.mark.parametrize("root", ["empty", "missing"])
@pytest.mark.parametrize("command", ["sync", "run"])
def test_a_node_without_the_share_mounted_marks_nothing_missing(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    database: Database,
    start_daemon: Callable[..., DaemonProcess],
    root: str,
    command: str,
) -> None:
    """n1 syncs the share; on n2 the share is not mounted (its mount point is an empty
    directory, or does not exist). n2's ``sync`` or daemon must leave every row ``uploaded``;
    once the share is mounted on n2, its pass uploads nothing; a file really deleted is still
    marked missing."""
    emulator = make_emulator(dedupe=False)
    share = tmp_path / "share"
    files = {f"d{i % 2}/f{i}.jsonl": chat_bytes(f"share {i}") for i in range(6)}
    for rel_path, data in files.items():
        write_atomically(share / rel_path, data)
    mount_point = tmp_path / "n2-mnt" / "train"
    configs = {
        node: node_config(
            tmp_path / node,
            server_url=emulator.url,
            database=database,
            folder=folder,
            node=node,
            shared=True,
        )
        for node, folder in (("n1", share), ("n2", mount_point))
    }
    first = run_syncd(configs["n1"], api_key, "sync", "--no-progress")
    assert first.returncode == 0, first.stderr[-3000:]
    assert database.all_uploaded(SHARED_KEY, len(files))
    if root == "missing":
        mount_point.rmdir()

    if command == "sync":
        done = run_syncd(configs["n2"], api_key, "sync", "--no-progress")
        # A missing root is a folder that cannot be read (exit 1); an empty one holds nothing
        # to upload.
        assert done.returncode == (1 if root == "missing" else 0), done.stderr[-3000:]
        log = done.stderr
    else:
        daemon = start_daemon(configs["n2"])
        if root == "missing":
            daemon.wait_event("folder_degraded", timeout=60)
        daemon.wait_event("rescan_finished", timeout=60)
        wait_until(lambda: daemon.named("daemon_started"), timeout=30, what="n2 started")
        log = "".join(daemon.raw)
        assert daemon.stop() == 0
    states = database.states(SHARED_KEY)
    assert states == dict.fromkeys(files, "uploaded"), f"n2 changed the share's rows: {log}"
    for node in ("n1", "n2"):
        assert_status_all_uploaded(status_json(configs[node], api_key), SHARED_KEY, sorted(files))
    assert stat(emulator, "uploads") == len(files)

    # Mounted on n2 at last: same files, nothing to do.
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = in_private_mounts(f"mount --bind {share} {mount_point}")
    again = run_syncd(configs["n2"], api_key, "sync", "--no-progress", prefix=mounted)
    assert again.returncode == 0, again.stderr[-3000:]
    assert stat(emulator, "uploads") == len(files)
    assert database.all_uploaded(SHARED_KEY, len(files))

    # The guard is for a share that shows nothing: one file really deleted is missing.
    (share / "d0/f0.jsonl").unlink()
    last = run_syncd(configs["n2"], api_key, "sync", "--no-progress", prefix=mounted)
    assert last.returncode == 0, last.stderr[-3000:]
    expected = {**dict.fromkeys(files, "uploaded"), "d0/f0.jsonl": "missing"}
    assert database.states(SHARED_KEY) == expected
    by_content = assert_each_once(remote_contents(emulator, api_key), files)
    assert len(by_content) == len(files)


# -- d: a node paused past its lease, then back --------------------------------------------------


class HoldingProxy:
    """A TCP proxy to ``upstream`` that can hold the uploads clients send (:meth:`hold`), then
    let them through late or cut their connection instead (:meth:`release`): an upload that was
    sent but reaches the server late, or whose answer is a failure that comes late. Other
    requests (listings, lookups) pass.

    Each client connection gets its server connection when it first has bytes to pass on, so
    a request held for longer than the server's keep-alive goes out on a fresh connection.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._drop = False
        self.held_bytes = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self) -> None:
        """Hold uploads from now on; idle keep-alive connections are cut, so the next request
        comes on a new connection."""
        self.held_bytes = 0
        self._open.clear()
        for end in list(self._sockets):
            _shut(end)

    def release(self, *, drop: bool = False) -> None:
        """Pass on what was held, or (``drop``) cut every held connection without an answer."""
        self._drop = drop
        self._open.set()

    def close(self) -> None:
        self._drop = True
        self._open.set()
        self._listener.close()
        for end in self._sockets:
            _shut(end)
            end.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server: socket.socket | None = None
        uploading = False
        try:
            while chunk := client.recv(65536):
                uploading = uploading or chunk.startswith(_UPLOAD_REQUEST)
                if uploading and not self._open.is_set():
                    self.held_bytes += len(chunk)
                    self._open.wait()
                    if self._drop:
                        break
                if server is None:
                    server = socket.create_connection(self._upstream)
                    self._sockets.append(server)
                    threading.Thread(
                        target=self._answer, args=(server, client), daemon=True
                    ).start()
                server.sendall(chunk)
        except OSError:
            pass
        for end in (client, server):
            _shut(end)

    @staticmethod
    def _answer(server: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := server.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass
        for end in (client, server):
            _shut(end)


#: How an upload request starts on the wire (``Files.upload``).
_UPLOAD_REQUEST = b"POST /v1/files "


def _shut(end: socket.socket | None) -> None:
    if end is not None:
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


def _n2_behind_a_proxy(
    tmp_path: Path, emulator: EmulatorServer, database: Database
) -> tuple[HoldingProxy, Path, dict[str, Path]]:
    """Nodes n1 and n2 on one share (made here); n2 reaches the emulator through a proxy
    that can hold its requests."""
    host, port = emulator.url.removeprefix("http://").rsplit(":", 1)
    proxy = HoldingProxy((host, int(port)))
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    configs = {
        node: node_config(
            tmp_path / node,
            server_url=server_url,
            database=database,
            folder=share,
            node=node,
            shared=True,
        )
        for node, server_url in (("n1", emulator.url), ("n2", proxy.url))
    }
    return proxy, share, configs


@pytest.mark.parametrize(
    "late_answer",
    ["uploaded", "failed"],
)
def test_a_node_paused_past_its_lease_does_not_undo_the_takeover(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    database: Database,
    start_daemon: Callable[..., DaemonProcess],
    late_answer: str,
) -> None:
    """n2 claims a file and sends it, then freezes (SIGSTOP: a paused VM, a stalled process)
    before its request reaches the server. After the lease n1 takes the claim over, finds no
    earlier upload and uploads the file. Then n2 wakes up and gets the answer to its request
    late: the upload went through (``uploaded``), or the connection was cut (``failed``).
    Either way the file n1 recorded must stay the file's one remote copy: not repointed, not
    deleted as "superseded", not queued and uploaded again."""
    emulator = make_emulator(dedupe=False)
    proxy, share, configs = _n2_behind_a_proxy(tmp_path, emulator, database)
    data = chat_bytes("sent late")

    def row() -> tuple[str, str | None]:
        [(state, file_id)] = database.rows(
            "select state, remote_file_id from local_files where rel_path = 'late.jsonl'"
        )
        return state, file_id

    try:
        n2 = start_daemon(configs["n2"])
        n2.wait_event("rescan_finished", timeout=60)
        proxy.hold()
        write_atomically(share / "late.jsonl", data)
        wait_until(
            lambda: alive(n2) and database.claims("n2") == 1 and proxy.held_bytes >= len(data),
            timeout=30,
            what="n2's upload sent and held on the way",
        )
        n2.proc.send_signal(signal.SIGSTOP)

        n1 = start_daemon(configs["n1"])
        taken = n1.wait_event("claims_taken_over", timeout=60)
        first_id = n1.wait_event("file_uploaded", timeout=30, path="late.jsonl")["file_id"]
        assert taken["count"] == 1
        assert stat(emulator, "uploads") == 1
        assert row() == ("uploaded", first_id)

        resumed_at = len(n2.events)
        n2.proc.send_signal(signal.SIGCONT)
        proxy.release(drop=late_answer == "failed")
        if late_answer == "uploaded":
            wait_until(lambda: stat(emulator, "uploads") == 2, timeout=30, what="the late upload")
        # n2 has dealt with the late answer once it logs anything about the file.
        wait_until(
            lambda: (
                alive(n2) and any(e.get("path") == "late.jsonl" for e in n2.events[resumed_at:])
            ),
            timeout=30,
            what="n2 handling the late answer",
        )
        # Whatever n2 did to the row, let the fleet act on it before looking.
        wait_until(
            lambda: row()[0] == "uploaded" and database.claims() == 0,
            timeout=30,
            what="the file uploaded and nothing in flight",
        )
        assert n2.stop() == 0 and n1.stop() == 0
    finally:
        proxy.close()

    state, file_id = row()
    remote = remote_contents(emulator, api_key)
    copies = sorted(fid for fid, (content, _) in remote.items() if content == sha256(data))
    assert first_id in remote, (
        f"{first_id}, which n1 recorded and logged as uploaded, is gone from the remote; the "
        f"row now points at {file_id}; copies on the remote: {copies}"
    )
    assert (state, file_id) == ("uploaded", first_id), "the row was repointed"
    assert copies == [first_id], f"more than one copy on the remote: {copies}"
    sent = 2 if late_answer == "uploaded" else 1
    assert stat(emulator, "uploads") == sent, "nothing was uploaded again"


def test_the_claims_of_a_sync_pass_killed_mid_upload_are_taken_over(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    database: Database,
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """n2 runs ``syncd sync`` (a cron job) and dies (SIGKILL, a host lost) while its upload is
    on the way; n2 never runs again. The daemon on n1 syncing the same share must take n2's
    claim over after the lease and upload the file, once."""
    emulator = make_emulator(dedupe=False)
    proxy, share, configs = _n2_behind_a_proxy(tmp_path, emulator, database)
    data = chat_bytes("cron job killed")
    write_atomically(share / "cron.jsonl", data)
    try:
        proxy.hold()
        sync = subprocess.Popen(
            [sys.executable, "-m", "syncd", "-c", str(configs["n2"]), "sync", "--no-progress"],
            env={**os.environ, "MISTRAL_API_KEY": api_key},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(
                lambda: database.claims("n2") == 1 and proxy.held_bytes >= len(data),
                timeout=30,
                what="n2's sync pass uploading",
            )
        finally:
            sync.kill()
            sync.wait(timeout=10)
        proxy.release(drop=True)  # its request never reaches the server

        n1 = start_daemon(configs["n1"])
        n1.wait_event("daemon_started", timeout=60)
        wait_until(
            lambda: alive(n1) and database.all_uploaded(SHARED_KEY, 1),
            timeout=15,  # the lease is 3 s, heartbeats every second
            what="n1 taking n2's claim over and uploading the file",
        )
        assert n1.stop() == 0
    finally:
        proxy.close()
    assert_each_once(remote_contents(emulator, api_key), {"cron.jsonl": data})
