"""Fleet mode in a running daemon: heartbeats, `syncd nodes`, taking over a silent node's
uploads, and riding out a PostgreSQL outage.

Real ``syncd run`` subprocesses on a real PostgreSQL cluster (and SQLite where the heartbeat
must work too), the emulator over loopback; every wait polls with a deadline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from click.testing import CliRunner

from syncd import __version__
from syncd.api import Mistral
from syncd.cli import cli
from syncd.domain import LocalState
from syncd.emulator import EmulatorServer
from syncd.hashing import stat_file
from syncd.store import Store, open_store, repo
from syncd.store.records import LocalFileRecord, NodeRecord
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.daemon_process import DaemonProcess, NotifySocket, remote_names
from tests.support import wait_until

if TYPE_CHECKING:
    from tests.postgres_cluster import PostgresCluster

pytestmark = pytest.mark.e2e

LONG_AGO = datetime.now(UTC) - timedelta(hours=1)


def fleet_config(
    tmp_path: Path,
    emulator: EmulatorServer,
    *,
    db: str,
    folders: list[FolderSetup],
    node: str = "alpha",
    heartbeat: str = "300ms",
    lease: str = "2s",
    level: str = "info",
    password_file: Path | None = None,
) -> Path:
    state = {"url": f'"{db}"'}
    if password_file is not None:
        state["password_file"] = f'"{password_file}"'
    return write_config(
        tmp_path,
        server_url=emulator.url,
        folders=folders,
        sections={
            "state": state,
            "node": {"name": f'"{node}"', "heartbeat": f'"{heartbeat}"', "lease": f'"{lease}"'},
            "metrics": {"listen": '"127.0.0.1:0"'},
            "log": {"level": f'"{level}"'},
        },
    )


def node_row(store: Store, name: str) -> NodeRecord | None:
    with store.session() as s:
        return next((n for n in repo.list_nodes(s) if n.name == name), None)


def local_rows(store: Store) -> dict[str, LocalFileRecord]:
    with store.session() as s:
        return {r.rel_path: r for r in repo.list_local(s)}


def all_uploaded(store: Store, names: set[str]) -> bool:
    rows = local_rows(store)
    return set(rows) == names and all(r.state is LocalState.UPLOADED for r in rows.values())


def alive(daemon: DaemonProcess) -> bool:
    if daemon.proc.poll() is not None:
        raise AssertionError(f"daemon exited {daemon.proc.returncode}:\n{daemon.log()}")
    return True


def nodes_json(config: Path) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["-c", str(config), "nodes", "--json"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_the_daemon_heartbeats_and_syncd_nodes_shows_it_alive_beside_a_stale_node(
    tmp_path: Path,
    db_url: str,
    emulator: EmulatorServer,
    start_daemon: StartDaemon,
) -> None:
    """The heartbeat row appears at once and refreshes (on SQLite too: one row); it carries the
    version, pid, folders and the node's problems (a folder that is gone). ``syncd nodes``
    lists it alive and a node silent for an hour stale; /metrics names the node."""
    own = tmp_path / "ft"
    write_chat_file(own / "a.jsonl")
    gone = tmp_path / "gone"
    config = fleet_config(
        tmp_path, emulator, db=db_url, folders=[FolderSetup(own), FolderSetup(gone)]
    )
    gone.rmdir()  # configured, missing: the daemon is degraded and its heartbeat says why
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded", path="a.jsonl")

    with open_store(db_url) as store:
        first = wait_until(lambda: node_row(store, "alpha"), what="alpha's heartbeat row")
        assert first.version == __version__
        assert first.pid == daemon.proc.pid
        assert set(first.folders) == {f"alpha:{own}", f"alpha:{gone}"}
        refreshed = wait_until(
            lambda: (row := node_row(store, "alpha")) and row.last_seen_at > first.last_seen_at,
            what="a later heartbeat",
        )
        assert refreshed

        def reporting_the_missing_folder() -> NodeRecord | None:
            row = node_row(store, "alpha")
            return row if row and any("gone" in p for p in row.problems) else None

        row = wait_until(reporting_the_missing_folder, what="the missing folder among problems")
        assert row.queue_depth >= 0
        with store.session() as s:
            repo.heartbeat(
                s,
                "ghost",
                version="0.0.9",
                pid=4242,
                started_at=LONG_AGO,
                now=LONG_AGO,
                queue_depth=7,
                folders=["ghost:/srv/data"],
                problems=["disk [red]full[/red]"],
            )

    document = nodes_json(config)
    assert document["this_node"] == "alpha"
    by_name = {n["name"]: n for n in document["nodes"]}
    assert set(by_name) == {"alpha", "ghost"}
    alpha, ghost = by_name["alpha"], by_name["ghost"]
    assert alpha["state"] == "alive" and alpha["this_node"] is True
    assert alpha["version"] == __version__ and alpha["pid"] == daemon.proc.pid
    assert {f["name"] for f in alpha["folders"]} == {"ft", "gone"}
    assert alpha["last_seen_age_s"] < 2
    assert ghost["state"] == "stale" and ghost["this_node"] is False
    assert ghost["last_seen_age_s"] >= 3500
    assert ghost["queue_depth"] == 7
    assert ghost["folders"] == [{"key": "ghost:/srv/data", "name": None}]
    assert ghost["problems"] == ["disk [red]full[/red]"]

    table = CliRunner().invoke(cli, ["-c", str(config), "nodes", "--table"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "alpha (this node)" in table.stdout
    assert "stale" in table.stdout and "alive" in table.stdout
    assert "disk [red]full[/red]" in table.stdout  # shown as written, not as markup
    assert "ghost:/srv/data" in table.stdout

    metrics_url = "http://" + daemon.wait_event("metrics_listening")["listen"]
    assert 'syncd_node_info{node="alpha"} 1.0' in httpx.get(metrics_url + "/metrics").text
    assert daemon.stop() == 0


def test_syncd_status_shows_this_nodes_folders_and_the_shared_ones_only(
    tmp_path: Path, postgres_url: str, emulator: EmulatorServer
) -> None:
    """Another node's own folder in the same store stays out of this node's status."""
    own, share = tmp_path / "ft", tmp_path / "share"
    config = fleet_config(
        tmp_path,
        emulator,
        db=postgres_url,
        folders=[FolderSetup(own), FolderSetup(share, extra={"id": '"data"', "shared": "true"})],
    )
    with open_store(postgres_url) as store, store.session() as s:
        for key in ("beta:/srv/other", "shared:data", f"alpha:{own}"):
            repo.upsert_local(
                s,
                key,
                "x.jsonl",
                purpose="fine-tune",
                stat=stat_file(config),
                sha256="0" * 64,
                state=LocalState.PENDING,
                now=LONG_AGO,
            )
    result = CliRunner().invoke(cli, ["-c", str(config), "status", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [(f["name"], f["path"]) for f in document["folders"]] == [
        ("ft", f"alpha:{own}"),
        ("share", "shared:data"),
    ]
    assert sorted(f["folder"] for f in document["files"]) == ["ft", "share"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_silent_nodes_uploads_in_flight_are_taken_over_and_land_exactly_once(
    tmp_path: Path,
    postgres_url: str,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    start_daemon: StartDaemon,
) -> None:
    """``ghost`` claimed two files of a shared folder an hour ago and went silent; one of its
    uploads had reached the server. A running node takes both over once it has heartbeated
    for a lease: it adopts the landed upload and uploads the other, each once. A live peer's
    claim in the same folder is left alone."""
    emulator = make_emulator(dedupe=False)  # a second upload would be a second file
    share = tmp_path / "share"
    files = {
        name: write_chat_file(share / name, salt=name)
        for name in ("landed.jsonl", "lost.jsonl", "peer.jsonl")
    }
    config = fleet_config(
        tmp_path,
        emulator,
        db=postgres_url,
        folders=[FolderSetup(share, extra={"id": '"data"', "shared": "true"})],
    )
    key = "shared:data"
    with open_store(postgres_url) as store:
        with store.session() as s:

            def queue(name: str) -> None:
                repo.upsert_local(
                    s,
                    key,
                    name,
                    purpose="fine-tune",
                    stat=stat_file(files[name]),
                    sha256=_sha256(files[name]),
                    state=LocalState.PENDING,
                    now=LONG_AGO,
                )

            queue("landed.jsonl")
            queue("lost.jsonl")
            ghost = repo.claim_due_uploads(s, now=LONG_AGO, limit=10, folders=[key], node="ghost")
            queue("peer.jsonl")
            peer = repo.claim_due_uploads(s, now=LONG_AGO, limit=10, folders=[key], node="peer")
            for name, seen in (
                ("ghost", LONG_AGO),
                ("peer", datetime.now(UTC) + timedelta(days=1)),
            ):
                repo.heartbeat(
                    s,
                    name,
                    version="0.0.9",
                    pid=1,
                    started_at=LONG_AGO,
                    now=seen,
                    queue_depth=1,
                    folders=[key],
                )
        assert sorted(r.rel_path for r in ghost) == ["landed.jsonl", "lost.jsonl"]
        assert [r.rel_path for r in peer] == ["peer.jsonl"]
        # The ghost's upload of landed.jsonl reached the server before the ghost died.
        with Mistral(api_key=api_key, server_url=emulator.url) as client:
            landed_id = client.files.upload(file=files["landed.jsonl"], purpose="fine-tune").id

        daemon = start_daemon(config)
        started = daemon.wait_event("daemon_started")
        taken = daemon.wait_event("claims_taken_over", timeout=30)
        assert taken["count"] == 2
        assert taken["from_nodes"] == ["ghost"]
        waited = datetime.fromisoformat(taken["timestamp"]) - datetime.fromisoformat(
            started["timestamp"]
        )
        # The first heartbeat and the start line are a few milliseconds apart.
        assert waited >= timedelta(seconds=1.5), "not before this node heartbeated for a lease"

        wait_until(
            lambda: (
                alive(daemon)
                and all(
                    local_rows(store)[n].state is LocalState.UPLOADED
                    for n in ("landed.jsonl", "lost.jsonl")
                )
            ),
            timeout=30,
            what="both taken-over files uploaded",
        )
        rows = local_rows(store)
        assert rows["landed.jsonl"].remote_file_id == landed_id, "adopted, not uploaded again"
        assert rows["peer.jsonl"].state is LocalState.UPLOADING
        assert rows["peer.jsonl"].claimed_by == "peer", "a live node keeps its claims"
    assert remote_names(emulator, api_key) == ["landed.jsonl", "lost.jsonl"]
    assert emulator.stats()["uploads"] == 2  # the ghost's one and lost.jsonl
    assert daemon.named("file_uploaded")[0]["path"] == "lost.jsonl"
    assert len(daemon.named("file_uploaded")) == 1
    assert daemon.stop() == 0


def test_the_daemon_rides_out_a_postgresql_outage_and_syncs_what_arrived_meanwhile(
    tmp_path: Path,
    postgres_cluster: PostgresCluster,
    postgres_url: str,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    start_daemon: StartDaemon,
    notify: NotifySocket,
) -> None:
    """PostgreSQL crashes under a running daemon: it stays up, /healthz answers 503 naming the
    database (password masked), STATUS= and the log say so; files written while it is down are
    synced once it is back, each exactly once, and the daemon is healthy again."""
    emulator = make_emulator(dedupe=False)
    # Trust auth ignores the password: it is there to prove it never shows.
    password_file = tmp_path / "pgpass"
    password_file.write_text("hunter2\n")
    password_file.chmod(0o600)
    masked = postgres_url.replace("syncd_test@", "syncd_test:***@")
    folder = tmp_path / "ft"
    before = {f"before{i}.jsonl" for i in range(5)}
    for name in before:
        write_chat_file(folder / name, salt=name)
    config = fleet_config(
        tmp_path,
        emulator,
        db=postgres_url,
        folders=[FolderSetup(folder)],
        heartbeat="500ms",
        level="debug",
        password_file=password_file,
    )
    daemon = start_daemon(config, notify=notify)
    metrics_url = "http://" + daemon.wait_event("metrics_listening")["listen"]

    with open_store(postgres_url) as store:
        wait_until(lambda: alive(daemon) and all_uploaded(store, before), timeout=30)
        assert httpx.get(metrics_url + "/healthz").status_code == 200

        postgres_cluster.kill()
        try:
            down = daemon.wait_event("state_database_unavailable", timeout=30)
            assert down["database"] == masked

            def unhealthy() -> httpx.Response | None:
                answer = httpx.get(metrics_url + "/healthz")
                return answer if answer.status_code == 503 else None

            health = wait_until(unhealthy, what="/healthz 503")
            assert f"state database {masked} unavailable" in health.text
            wait_until(
                lambda: any("state_database_unavailable_for=" in m for m in notify.poll()),
                what="STATUS= naming the outage",
            )
            during = {f"during{i}.jsonl" for i in range(5)}
            for name in during:
                write_chat_file(folder / name, salt=name)
            # The daemon saw each new file and could not record it (the database is down).
            for name in during:
                daemon.wait_event("store_unavailable", path=name, timeout=30)
            assert alive(daemon)
        finally:
            postgres_cluster.start()

        daemon.wait_event("state_database_recovered", timeout=30)
        wait_until(
            lambda: alive(daemon) and all_uploaded(store, before | during),
            timeout=60,
            what="every file uploaded after the outage",
        )
    assert remote_names(emulator, api_key) == sorted(before | during)
    assert emulator.stats()["uploads"] == len(before | during)
    wait_until(lambda: httpx.get(metrics_url + "/healthz").status_code == 200, what="healthy again")
    everything = "".join(daemon.raw) + "".join(notify.poll())
    assert "hunter2" not in everything
    assert not daemon.named("upload_failed")
    assert daemon.stop() == 0
