"""Issue 21.2 and 21.4: the state machine never forgets a recorded upload, and an outcome for
an old version never touches the row of a newer one. On a real SQLite file and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.domain import FileStat, LocalState
from syncd.store import Store, repo
from syncd.store.records import LocalFileRecord

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FOLDER = "/data/fine-tune"
OLD, NEW = "a" * 64, "b" * 64


@pytest.fixture
def store(engine_store: Store) -> Store:
    return engine_store


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def put(store: Store, sha256: str, *, state: LocalState, now: datetime) -> LocalFileRecord:
    with store.session() as s:
        return repo.upsert_local(
            s,
            FOLDER,
            "a.jsonl",
            purpose="fine-tune",
            stat=FileStat(size=10, mtime_ns=int(now.timestamp()) * 10**9, inode=1),
            sha256=sha256,
            state=state,
            reset_attempts=True,
            now=now,
        )


def claim(store: Store, now: datetime) -> list[LocalFileRecord]:
    with store.session() as s:
        return repo.claim_due_uploads(s, now=now, limit=10)


def row(store: Store, local_id: int) -> LocalFileRecord:
    with store.session() as s:
        current = repo.get_local_by_id(s, local_id)
    assert current is not None
    return current


def record(store: Store, local_id: int, sha256: str, file_id: str, now: datetime) -> None:
    with store.session() as s:
        repo.record_upload(
            s,
            local_id,
            file_id=file_id,
            filename="a.jsonl",
            bytes=10,
            sha256=sha256,
            purpose="fine-tune",
            created_at=now,
            now=now,
        )


@pytest.mark.parametrize("stale", [LocalState.UPLOADING, LocalState.PENDING, LocalState.FAILED])
def test_a_recorded_upload_is_never_put_back_into_a_sending_state(
    store: Store, stale: LocalState
) -> None:
    """A caller that judged the row before the upload was recorded (a reload's rescan) asks
    to write the state it read: the row keeps ``uploaded`` and its id."""
    local = put(store, OLD, state=LocalState.PENDING, now=at(0))
    claim(store, at(1))
    record(store, local.id, OLD, "file-1", at(2))
    with store.session() as s:
        repo.upsert_local(
            s,
            FOLDER,
            "a.jsonl",
            purpose="fine-tune",
            stat=FileStat(size=10, mtime_ns=5, inode=1),
            sha256=OLD,
            state=stale,
            now=at(3),
        )
        repo.set_state(s, local.id, stale, now=at(3), expect_sha256=OLD)
    after = row(store, local.id)
    assert (after.state, after.remote_file_id) == (LocalState.UPLOADED, "file-1")
    # New content may of course be queued again; the old id stays recorded until superseded.
    put(store, NEW, state=LocalState.PENDING, now=at(4))
    assert row(store, local.id).state is LocalState.PENDING


def test_a_failure_of_an_old_version_leaves_the_new_versions_claim_alone(store: Store) -> None:
    """Worker 1 sends version A; A changes to B, which worker 2 claims; A's upload fails: the
    row stays B's in-flight claim (before: back to pending, and B was sent a second time)."""
    local = put(store, OLD, state=LocalState.PENDING, now=at(0))
    (first,) = claim(store, at(1))
    put(store, NEW, state=LocalState.PENDING, now=at(2))
    (second,) = claim(store, at(3))
    assert second.sha256 == NEW
    with store.session() as s:
        repo.record_failure(
            s,
            local.id,
            error="HTTP 503",
            next_attempt_at=at(10),
            give_up=False,
            expect_sha256=first.sha256,
            now=at(4),
        )
    after = row(store, local.id)
    assert (after.state, after.sha256) == (LocalState.UPLOADING, NEW)
    assert claim(store, at(20)) == [], "the new version would be sent twice"
    # Its own failure does put it back.
    with store.session() as s:
        repo.record_failure(
            s,
            local.id,
            error="HTTP 503",
            next_attempt_at=at(10),
            give_up=False,
            expect_sha256=NEW,
            now=at(5),
        )
    assert row(store, local.id).state is LocalState.PENDING
