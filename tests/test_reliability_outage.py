"""Issue 7.3: the API down for a while, then back; and the remote losing its data.

An outage (the emulator stopped: connection refused) longer than a file's retries would last
fails no file: the uploader notices it, probes at a growing interval instead of every file
retrying on its own, and carries on without a restart once the API answers. ``syncd sync``
stops waiting after a while, with the files still pending. Remote data lost (the emulator's
data dir wiped) is reported by ``syncd verify`` and uploaded again by the next rescan or sync.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.domain import FileStat, LocalState
from syncd.emulator import EmulatorOptions, EmulatorServer
from syncd.outage import OutageGate
from syncd.store import open_store, repo
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.reliability_checks import (
    alive,
    all_uploaded,
    assert_exactly_once_and_consistent,
    local_states,
    query,
    run_syncd,
    running_daemon,
    stat,
    state_db,
)
from tests.support import wait_until

#: Tries per file: all of them (and their backoff, ~3.5 s) fit in a few seconds of outage.
MAX_ATTEMPTS = 3


@pytest.fixture
def restartable(tmp_path: Path, api_key: str) -> Iterator[EmulatorServer]:
    """An emulator that tests stop and start again on the same port (and the same data dir)."""
    server = EmulatorServer(tmp_path / "emulator", EmulatorOptions(api_key=api_key, dedupe=False))
    server.start()
    yield server
    server.stop()


def folder_of(tmp_path: Path, count: int) -> dict[str, Path]:
    return {
        f"f{i:03}.jsonl": write_chat_file(tmp_path / "ft" / f"f{i:03}.jsonl", salt=str(i))
        for i in range(count)
    }


@pytest.mark.slow
def test_an_outage_fails_no_file_retries_slowly_and_resumes_without_restart(
    tmp_path: Path, restartable: EmulatorServer, api_key: str
) -> None:
    """Connection refused for longer than all of a file's attempts: no file fails, retries are
    a handful of probes, and once the API is back every file is uploaded, once."""
    restartable.set_faults(latency_ms=60)
    local = folder_of(tmp_path, 60)
    config = write_config(
        tmp_path,
        server_url=restartable.url,
        folders=[FolderSetup(tmp_path / "ft")],
        sections={"api": {"max_attempts": str(MAX_ATTEMPTS)}},
    )
    db = state_db(tmp_path)
    with running_daemon(config, api_key) as daemon:
        pid = daemon.proc.pid
        wait_until(
            lambda: alive(daemon) and stat(restartable, "uploads") >= 10,
            timeout=30,
            what="some uploads before the outage",
        )
        restartable.stop()
        daemon.wait_event("api_unavailable", timeout=30)
        states_seen: set[str] = set()

        def probes_failed(count: int) -> bool:
            states_seen.update(local_states(db).values())
            return alive(daemon) and len(daemon.named("api_probe_failed")) >= count

        # Three failed probes: 0.25-0.5 + 0.5-1 + 1-2 s, and the next one 2-4 s later; all of a
        # file's own MAX_ATTEMPTS tries would be over in 1.5 s.
        wait_until(lambda: probes_failed(3), timeout=60, interval=0.1, what="probes failing")
        during = daemon.named("upload_retry_scheduled")
        probes = daemon.named("api_probe_failed")
        pending = query(db, "select count(*) from local_files where state = 'pending'")[0][0]
        waiting = query(
            db,
            "select count(*) from local_files where state = 'pending' and attempts > 0 "
            "and next_attempt_at is not null",
        )[0][0]

        restartable.start()
        wait_until(
            lambda: alive(daemon) and all_uploaded(db, len(local)),
            timeout=60,
            interval=0.1,
            what="every file uploaded after the API came back",
        )
        assert daemon.proc.pid == pid, "no restart"
        daemon.wait_event("api_recovered")
        # (A request started before the outage and answered after it began may log one early.)
        recovered = daemon.named("api_recovered")[-1]
        assert daemon.stop() == 0

    assert "failed" not in states_seen, "no file gave up during the outage"
    assert not daemon.named("upload_failed")
    assert pending > 0 and waiting > 0, "files wait in the store with a next attempt time"
    # Bounded: once the outage is known, the requests already under way (at most one per
    # worker) and then one probe at a time. Each file retrying on its own would be 50 files x 3
    # tries, and every one of them failed. (Before it is known, answers from requests already
    # under way when the server stopped may reset the count of failures in a row.)
    opened_at = next(i for i, e in enumerate(daemon.events) if e.get("event") == "api_unavailable")
    after_open = [e for e in daemon.events[opened_at:] if any(e is d for d in during)]
    assert len(after_open) <= 4 + len(probes), f"{len(after_open)} retries once it was known"
    once_probing = [e for e in during if e["timestamp"] >= probes[0]["timestamp"]]
    assert len(once_probing) <= len(probes), "nothing but probes once the outage is known"
    assert recovered["down_s"] >= 3.5, "the outage outlasted every file's own attempts"
    check = assert_exactly_once_and_consistent(restartable, api_key, db, local)
    print(
        f"\noutage: {len(local)} files, API down {recovered['down_s']}s (connection refused), "
        f"{len(during)} retries scheduled ({len(probes)} failed probes), 0 failed, "
        f"{check.remote_files} remote files"
    )


def test_sync_during_an_outage_stops_waiting_with_files_pending_not_failed(
    tmp_path: Path, restartable: EmulatorServer, api_key: str
) -> None:
    """``syncd sync`` with the API down exits 1 saying so, files stay pending; the next sync
    once it is back uploads them."""
    local = folder_of(tmp_path, 12)
    config = write_config(
        tmp_path,
        server_url=restartable.url,
        folders=[FolderSetup(tmp_path / "ft")],
        sections={"api": {"max_attempts": str(MAX_ATTEMPTS)}},
    )
    restartable.stop()
    down = run_syncd(config, api_key, "sync", "--no-progress")
    assert down.returncode == 1, down.stderr[-2000:]
    assert "the API has been unavailable" in down.stderr
    assert "12 file(s) not uploaded" in down.stderr
    assert set(local_states(state_db(tmp_path)).values()) == {"pending"}

    restartable.start()
    again = run_syncd(config, api_key, "sync", "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert_exactly_once_and_consistent(restartable, api_key, state_db(tmp_path), local)


def wipe_remote(server: EmulatorServer) -> None:
    """The remote loses everything: stopped, its data dir deleted, started empty (same URL)."""
    server.stop()
    shutil.rmtree(server.data_dir)
    server.start()
    assert stat(server, "files") == 0


def test_verify_reports_lost_remote_data_and_the_next_sync_uploads_it_again(
    tmp_path: Path, restartable: EmulatorServer, api_key: str
) -> None:
    """After the remote lost its files: verify exits 1 listing each one; sync records them as
    vanished (audited) and uploads them again; verify is then clean."""
    local = folder_of(tmp_path, 15)
    config = write_config(
        tmp_path, server_url=restartable.url, folders=[FolderSetup(tmp_path / "ft")]
    )
    db = state_db(tmp_path)
    assert run_syncd(config, api_key, "sync", "--no-progress").returncode == 0
    first_ids = {row[0] for row in query(db, "select remote_file_id from local_files")}

    wipe_remote(restartable)
    report = run_syncd(config, api_key, "verify", "--json")
    assert report.returncode == 1, report.stderr
    findings = json.loads(report.stdout)["findings"]
    missing = {f["path"] for f in findings if f["kind"] == "missing_remote"}
    assert missing == set(local)
    assert {f["file_id"] for f in findings if f["kind"] == "missing_remote"} == first_ids

    resync = run_syncd(config, api_key, "sync", "--no-progress")
    assert resync.returncode == 0, resync.stderr[-2000:]
    assert "15 remote file(s) had vanished" in resync.stderr
    vanished = query(
        db,
        "select file_id from remote_files where delete_reason = 'vanished_from_remote'",
    )
    assert {row[0] for row in vanished} == first_ids
    audited = query(db, "select count(*) from audit where action = 'vanished_from_remote'")
    assert audited[0][0] == 15
    assert_exactly_once_and_consistent(restartable, api_key, db, local)
    clean = run_syncd(config, api_key, "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr


@pytest.mark.slow
def test_a_running_daemon_uploads_lost_remote_data_again_at_its_next_rescan(
    tmp_path: Path, restartable: EmulatorServer, api_key: str
) -> None:
    """The remote wiped under a running daemon: its next rescan notices (warning: the listing
    is empty) and uploads everything again, without a restart."""
    local = folder_of(tmp_path, 15)
    config = write_config(
        tmp_path,
        server_url=restartable.url,
        folders=[FolderSetup(tmp_path / "ft")],
        sections={"watch": {"rescan_interval": '"1s"'}},
    )
    db = state_db(tmp_path)
    with running_daemon(config, api_key) as daemon:
        wait_until(
            lambda: alive(daemon) and all_uploaded(db, len(local)),
            timeout=30,
            what="the first upload of every file",
        )
        wipe_remote(restartable)
        wait_until(
            lambda: alive(daemon) and stat(restartable, "files") == len(local),
            timeout=30,
            what="every file uploaded again",
        )
        wait_until(lambda: all_uploaded(db, len(local)), timeout=30, what="rows uploaded again")
        assert daemon.wait_event("remote_listing_empty")["recorded"] == len(local)
        assert daemon.wait_event("remote_files_vanished")["count"] == len(local)
        assert daemon.stop() == 0
    assert_exactly_once_and_consistent(restartable, api_key, db, local)


def test_a_remote_listing_that_fails_changes_nothing(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """With every listing failing the reconcile is skipped: no file is called vanished."""
    emulator = make_emulator()
    local = folder_of(tmp_path, 5)
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])
    db = state_db(tmp_path)
    assert run_syncd(config, api_key, "sync", "--no-progress").returncode == 0
    emulator.set_faults(fault_rate=1.0, fault_kinds=("500",))
    again = run_syncd(config, api_key, "sync", "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "remote_reconcile_skipped" in again.stderr
    assert query(db, "select count(*) from remote_files where deleted_at is not null") == [(0,)]
    assert set(local_states(db).values()) == {"uploaded"}
    assert_exactly_once_and_consistent(emulator, api_key, db, local)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_outage_gate_opens_after_failures_in_a_row_and_lets_one_probe_through() -> None:
    """Scattered failures pass; `threshold` in a row open the gate; then one probe at a time,
    later and later; the first answer closes it; a straggler's answer does not."""
    clock = FakeClock()
    gate = OutageGate(threshold=3, clock=clock, rng=random.Random(1))
    assert gate.failed("reset") is False and gate.failed("reset") is False
    gate.succeeded()  # an answer in between: not an outage
    assert gate.failed("reset") is False and gate.failed("reset") is False
    assert gate.allowance(4) == (4, 0.0, False)

    gate.admit()  # this thread's request began before the outage was noticed
    assert gate.failed("refused") is True, "the third in a row opens it"
    assert gate.is_open
    allowed, wait, _probe = gate.allowance(4)
    assert allowed == 0 and 0.25 <= wait <= 0.5
    gate.succeeded()  # the straggler's late answer
    assert gate.is_open, "a request admitted before the outage does not close it"
    gate.dismiss()

    waits = []
    for _ in range(4):
        clock.now += gate.allowance(4)[1]
        assert gate.allowance(4) == (1, 0.0, True)
        assert gate.allowance(4)[0] == 0, "one probe at a time"
        gate.admit()
        assert gate.failed("refused") is True
        gate.dismiss()
        waits.append(gate.allowance(4)[1])
    assert waits == sorted(waits) and waits[-1] >= 4.0, waits

    clock.now += waits[-1]
    assert gate.allowance(4)[0] == 1
    gate.admit()
    gate.succeeded()
    gate.dismiss()
    assert gate.down_for() is None, "closed"
    assert gate.allowance(4) == (4, 0.0, False)


def test_a_request_granted_before_the_outage_is_a_straggler_even_if_it_starts_after() -> None:
    """The ticket taken at the claim decides, not the moment the worker thread gets going; and
    a straggler's failure neither counts as the probe's nor lets a second probe through."""
    clock = FakeClock()
    gate = OutageGate(threshold=2, clock=clock, rng=random.Random(2))
    ticket = gate.ticket()  # claimed while the API still answered
    assert gate.failed("refused") is False and gate.failed("refused") is True
    clock.now += gate.allowance(4)[1]
    assert gate.allowance(4) == (1, 0.0, True), "the probe is granted"
    gate.admit(ticket)  # the earlier claim's worker starts only now
    assert gate.failed("refused") is True
    gate.succeeded()
    gate.dismiss()
    assert gate.is_open, "a straggler's answer does not close the gate"
    assert gate.allowance(4)[0] == 0, "the probe is still out: no second one"


def test_a_vanished_remote_file_requeues_its_holders_once(tmp_path: Path) -> None:
    """record_vanished: the remote file is deleted with its reason and audited, uploaded rows
    that held it go back to pending with fresh attempts; a second call changes nothing."""
    now = datetime(2026, 1, 2, tzinfo=UTC)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.session() as s:
            row = repo.upsert_local(
                s,
                "/data",
                "a.jsonl",
                purpose="fine-tune",
                stat=FileStat(size=3, mtime_ns=1, inode=1),
                sha256="a" * 64,
                state=LocalState.PENDING,
                now=now,
            )
            claimed = repo.claim_due_uploads(s, now=now, limit=1)
            assert [r.id for r in claimed] == [row.id]
            repo.record_upload(
                s,
                row.id,
                file_id="file-1",
                filename="a.jsonl",
                bytes=3,
                sha256="a" * 64,
                purpose="fine-tune",
                created_at=now,
                now=now,
            )
        with store.session() as s:
            assert repo.record_vanished(s, "file-1", now=now) == 1
            assert repo.record_vanished(s, "file-1", now=now) == 0
            assert repo.record_vanished(s, "never-recorded", now=now) == 0
        with store.session() as s:
            local = repo.get_local(s, "/data", "a.jsonl")
            remote = repo.get_remote(s, "file-1")
            audit = repo.audit_entries(s, action=repo.VANISHED_REASON)
            live = list(repo.live_remote_ids(s, uploaded_before=now + timedelta(days=1)))
    finally:
        store.dispose()
    assert local is not None and local.state is LocalState.PENDING and local.attempts == 0
    assert remote is not None and remote.delete_reason == "vanished_from_remote"
    assert [a.file_id for a in audit] == ["file-1"]
    assert live == []
