"""The upload queue in the state store: claims, crash recovery, failures and retries.

Every test runs on a real SQLite file and on a real PostgreSQL database (``db_url``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from syncd.domain import FileStat, LocalState
from syncd.store import Store, open_store, repo
from syncd.store.records import LocalFileRecord

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FOLDER = "/data/fine-tune"
OTHER = "/data/batch"
SHA = "a" * 64


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store(engine_store: Store) -> Store:
    """A migrated store on each engine (overrides the suite's SQLite-only ``store``)."""
    return engine_store


def put(
    store: Store, rel_path: str, *, folder: str = FOLDER, now: datetime = T0
) -> LocalFileRecord:
    with store.session() as s:
        return repo.upsert_local(
            s,
            folder,
            rel_path,
            purpose="fine-tune",
            stat=FileStat(size=10, mtime_ns=1, inode=1),
            sha256=SHA,
            state=LocalState.PENDING,
            now=now,
        )


def claim(store: Store, *, now: datetime = T0, limit: int = 10, **kw: object) -> list[str]:
    with store.session() as s:
        claimed = repo.claim_due_uploads(s, now=now, limit=limit, **kw)  # type: ignore[arg-type]
    return [r.rel_path for r in claimed]


def test_claim_takes_due_rows_oldest_first_and_marks_intent(store: Store) -> None:
    """Claimed rows are the due ones, earliest first, now uploading with an intent."""
    put(store, "late.jsonl", now=at(2))
    put(store, "early.jsonl", now=at(1))
    waiting = put(store, "waiting.jsonl", now=T0)
    with store.session() as s:
        repo.record_failure(
            s, waiting.id, error="503", next_attempt_at=at(60), give_up=False, now=T0
        )
    with store.session() as s:
        claimed = repo.claim_due_uploads(s, now=at(5), limit=10)
    assert [r.rel_path for r in claimed] == ["early.jsonl", "late.jsonl"]
    for record in claimed:
        assert record.state is LocalState.UPLOADING
        assert record.attempts == 1
        assert record.intent_started_at == at(5)
        assert record.intent_filename == record.rel_path
    assert claim(store, now=at(5)) == []
    assert claim(store, now=at(61)) == ["waiting.jsonl"]


def test_claim_respects_limit_and_folders(store: Store) -> None:
    """limit caps the claim; folders restricts it (an empty list claims nothing)."""
    for i in range(3):
        put(store, f"{i}.jsonl", now=at(i))
    put(store, "other.jsonl", folder=OTHER)
    assert claim(store, limit=0) == []
    assert claim(store, folders=[]) == []
    assert claim(store, limit=1, folders=[FOLDER]) == ["0.jsonl"]
    assert claim(store, folders=[OTHER]) == ["other.jsonl"]
    assert claim(store) == ["1.jsonl", "2.jsonl"]


def race_claims(stores: list[Store]) -> tuple[list[str], list[str]]:
    """Two threads released together, each claiming batches through its own store."""
    barrier = threading.Barrier(2)
    results: list[list[str]] = [[], []]

    def worker(index: int) -> None:
        barrier.wait()
        for _ in range(4):
            results[index].extend(claim(stores[index], limit=12))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results[0], results[1]


def test_concurrent_claims_never_hand_out_a_row_twice(db_url: str) -> None:
    """Two threads claim disjoint rows, with one shared store or one engine each (processes)."""
    stores = [open_store(db_url), open_store(db_url)]
    try:
        for round_number in range(3):
            names = {f"r{round_number}-{i:03d}.jsonl" for i in range(60)}
            with stores[0].session() as s:
                for name in sorted(names):
                    repo.upsert_local(
                        s,
                        FOLDER,
                        name,
                        purpose="fine-tune",
                        stat=FileStat(1, 1, 1),
                        sha256=SHA,
                        state=LocalState.PENDING,
                        now=T0,
                    )
            pair = stores if round_number < 2 else [stores[0], stores[0]]
            first, second = race_claims(pair)
            assert not set(first) & set(second)
            assert len(first) + len(second) == len(set(first) | set(second))
            assert set(first) | set(second) == names
    finally:
        for opened in stores:
            opened.dispose()


def test_a_claim_never_takes_a_row_put_back_meanwhile_with_a_later_retry(db_url: str) -> None:
    """Between one claimer reading the due rows and updating one of them, another claims that
    row, fails and schedules a later retry: the first claim must not take it (it would send
    the file early, and without looking for the failed attempt's upload)."""
    first, second = open_store(db_url), open_store(db_url)
    interfered: list[str] = []

    def interfere(*args: Any) -> None:
        statement = str(args[2])
        if interfered or not statement.lstrip().upper().startswith("UPDATE LOCAL_FILES"):
            return
        with second.session() as s:
            (taken,) = repo.claim_due_uploads(s, now=at(1), limit=1)
            repo.record_failure(
                s,
                taken.id,
                error="connection lost",
                next_attempt_at=at(30),
                give_up=False,
                keep_intent=True,
                now=at(1),
            )
        interfered.append(taken.rel_path)

    try:
        put(first, "raced.jsonl")
        event.listen(first.engine, "before_cursor_execute", interfere)
        assert claim(first, now=at(2)) == []
        assert interfered == ["raced.jsonl"]
        with first.session() as s:
            row = repo.get_local(s, FOLDER, "raced.jsonl")
        assert row is not None
        assert row.state is LocalState.PENDING
        assert row.attempts == 1
        assert row.intent_started_at == at(1)
        assert claim(first, now=at(30)) == ["raced.jsonl"]
    finally:
        first.dispose()
        second.dispose()


def test_reset_inflight_requeues_and_keeps_the_first_intent(store: Store) -> None:
    """After a crash: uploading rows go back to pending, due now, keeping the intent time."""
    record = put(store, "a.jsonl")
    put(store, "b.jsonl")
    claim(store, now=at(1), limit=1)
    with store.session() as s:
        assert [r.id for r in repo.inflight_uploads(s)] == [record.id]
        assert repo.reset_inflight(s, now=at(2)) == 1
        assert repo.inflight_uploads(s) == []
    with store.session() as s:
        again = repo.claim_due_uploads(s, now=at(3), limit=2)
    reclaimed = {r.rel_path: r for r in again}
    assert reclaimed["a.jsonl"].intent_started_at == at(1)  # look on the server since then
    assert reclaimed["a.jsonl"].attempts == 2
    assert reclaimed["b.jsonl"].intent_started_at == at(3)


def test_record_failure_retry_then_give_up(store: Store) -> None:
    """A retryable failure re-queues with a time; giving up marks failed and audits."""
    record = put(store, "a.jsonl")
    claim(store)
    with store.session() as s:
        repo.record_failure(
            s, record.id, error="HTTP 503", next_attempt_at=at(5), give_up=False, now=at(1)
        )
        retry = repo.get_local_by_id(s, record.id)
    assert retry is not None
    assert (retry.state, retry.next_attempt_at, retry.last_error) == (
        LocalState.PENDING,
        at(5),
        "HTTP 503",
    )
    assert retry.intent_started_at is None
    claim(store, now=at(5))
    with store.session() as s:
        repo.record_failure(
            s, record.id, error="HTTP 500", next_attempt_at=None, give_up=True, now=at(6)
        )
        failed = repo.get_local_by_id(s, record.id)
        (entry,) = repo.audit_entries(s)
    assert failed is not None
    assert (failed.state, failed.next_attempt_at, failed.attempts) == (LocalState.FAILED, None, 2)
    assert failed.state_changed_at == at(6)
    assert (entry.action, entry.rel_path) == ("give_up", "a.jsonl")
    assert entry.detail == "after 2 attempt(s): HTTP 500"
    assert claim(store, now=at(100)) == []


def test_record_failure_can_keep_the_intent(store: Store) -> None:
    """keep_intent leaves the intent for an adoption check before the next send."""
    record = put(store, "a.jsonl")
    claim(store, now=at(1))
    with store.session() as s:
        repo.record_failure(
            s,
            record.id,
            error="timeout",
            next_attempt_at=at(2),
            give_up=False,
            now=at(1),
            keep_intent=True,
        )
        kept = repo.get_local_by_id(s, record.id)
    assert kept is not None
    assert kept.intent_started_at == at(1)


def test_next_due_at(store: Store) -> None:
    """The earliest due time among pending rows; None when none are pending."""
    with store.session() as s:
        assert repo.next_due_at(s) is None
    first = put(store, "a.jsonl", now=at(1))
    with store.session() as s:
        assert repo.next_due_at(s) == at(1)
        repo.record_failure(
            s, first.id, error="x", next_attempt_at=at(30), give_up=False, now=at(2)
        )
    put(store, "b.jsonl", folder=OTHER, now=at(40))
    with store.session() as s:
        assert repo.next_due_at(s) == at(30)
        assert repo.next_due_at(s, folders=[OTHER]) == at(40)


def test_retry_failed_requeues_with_fresh_attempts(store: Store) -> None:
    """Failed rows get attempts 0 and are due at once; other folders are left alone."""
    record = put(store, "a.jsonl")
    other = put(store, "b.jsonl", folder=OTHER)
    claim(store)
    with store.session() as s:
        for local_id in (record.id, other.id):
            repo.record_failure(s, local_id, error="x", next_attempt_at=None, give_up=True, now=T0)
    with store.session() as s:
        assert repo.retry_failed(s, folders=[FOLDER], now=at(1)) == 1
        again = repo.get_local_by_id(s, record.id)
        untouched = repo.get_local_by_id(s, other.id)
    assert again is not None
    assert untouched is not None
    assert (again.state, again.attempts, again.state_changed_at) == (LocalState.PENDING, 0, at(1))
    assert untouched.state is LocalState.FAILED
    assert claim(store, now=at(1)) == ["a.jsonl"]
