"""Repository functions for local rows, remote files, the audit trail and meta.

Every test runs on a real SQLite file and on a real PostgreSQL database (``db_url``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from syncd.domain import FileStat, LocalState
from syncd.errors import StoreError
from syncd.store import Store, repo
from syncd.store.records import LocalFileRecord

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FOLDER = "/data/fine-tune"
OTHER = "/data/batch"
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store(engine_store: Store) -> Store:
    """A migrated store on each engine (overrides the suite's SQLite-only ``store``)."""
    return engine_store


def put(
    store: Store,
    rel_path: str,
    *,
    folder: str = FOLDER,
    sha256: str | None = SHA_A,
    state: LocalState = LocalState.PENDING,
    stat: FileStat | None = None,
    now: datetime = T0,
    **extra: object,
) -> LocalFileRecord:
    with store.session() as s:
        return repo.upsert_local(
            s,
            folder,
            rel_path,
            purpose="fine-tune",
            stat=stat or FileStat(size=10, mtime_ns=1, inode=7),
            sha256=sha256,
            state=state,
            now=now,
            **extra,  # type: ignore[arg-type]
        )


def upload(
    store: Store, local_id: int, file_id: str, *, sha256: str = SHA_A, now: datetime = T0
) -> list[str]:
    with store.session() as s:
        return repo.record_upload(
            s,
            local_id,
            file_id=file_id,
            filename="x.jsonl",
            bytes=10,
            sha256=sha256,
            purpose="fine-tune",
            created_at=now,
            now=now,
        )


def _content_history(store: Store) -> None:
    """SHA_A uploaded as file-old (then superseded by SHA_B's file-b at the same path) and as
    file-current at another path, later."""
    one = put(store, "one.jsonl")
    upload(store, one.id, "file-old", now=T0)
    put(store, "one.jsonl", sha256=SHA_B, reset_attempts=True)
    upload(store, one.id, "file-b", sha256=SHA_B, now=at(1))  # file-old now superseded
    two = put(store, "two.jsonl")
    upload(store, two.id, "file-current", now=at(2))


def local(store: Store, local_id: int) -> LocalFileRecord:
    with store.session() as s:
        record = repo.get_local_by_id(s, local_id)
    assert record is not None
    return record


class TestLocalRows:
    def test_a_path_seen_new_but_inserted_meanwhile_is_updated_in_place(self, store: Store) -> None:
        """A scan that saw no row inserts first; when another writer inserted the path since,
        that row is read and updated like any stored one (same id, no second row)."""
        first = put(store, "a.jsonl", now=at(1))
        again = put(store, "a.jsonl", sha256=SHA_B, seen_new=True, now=at(2))
        assert again.id == first.id
        assert (again.sha256, again.first_seen_at) == (SHA_B, at(1))
        with store.session() as s:
            assert [r.id for r in repo.list_local(s, folder=FOLDER)] == [first.id]
        fresh = put(store, "b.jsonl", seen_new=True)
        assert fresh.id != first.id and local(store, fresh.id).rel_path == "b.jsonl"

    def test_upsert_creates_a_row_with_aware_utc_times(self, store: Store) -> None:
        """A new row starts with zero attempts and first_seen/updated/state_changed = now."""
        record = put(store, "a.jsonl")
        assert record.id > 0
        assert record.attempts == 0
        assert record.state is LocalState.PENDING
        assert record.first_seen_at == record.updated_at == record.state_changed_at == T0
        with store.session() as s:
            fetched = repo.get_local(s, FOLDER, "a.jsonl")
        assert fetched == record
        assert fetched.first_seen_at.tzinfo is not None

    def test_get_locals_finds_the_rows_of_many_paths_at_once(self, store: Store) -> None:
        """Rows of the asked paths in the asked folder, by path, past one IN clause's chunk;
        paths without a row and rows of other folders are left out."""
        wanted = [f"d/{i:04d}.jsonl" for i in range(1200)]
        for rel_path in wanted[::3]:
            put(store, rel_path)
        put(store, wanted[1], folder="/data/other")
        with store.session() as s:
            found = repo.get_locals(s, FOLDER, wanted)
            one = repo.get_local(s, FOLDER, wanted[3])
        assert sorted(found) == wanted[::3]
        assert found[wanted[3]] == one
        assert all(record.folder == FOLDER for record in found.values())

    def test_times_in_other_zones_are_stored_as_utc(self, store: Store) -> None:
        """An aware non-UTC time comes back as the same instant in UTC."""
        paris = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
        record = put(store, "a.jsonl", now=paris)
        assert local(store, record.id).first_seen_at == T0
        assert local(store, record.id).first_seen_at.utcoffset() == timedelta(0)

    def test_naive_times_are_refused(self, store: Store) -> None:
        """A naive datetime never reaches the database."""
        with pytest.raises(StatementError, match="naive datetime"):
            put(store, "a.jsonl", now=datetime(2025, 1, 1))  # noqa: DTZ001 - the point of the test

    def test_upsert_updates_in_place(self, store: Store) -> None:
        """Same path: same row; state_changed_at moves only when the state does."""
        first = put(store, "a.jsonl", state=LocalState.UPLOADED)
        same_state = put(store, "a.jsonl", state=LocalState.UPLOADED, now=at(5))
        assert same_state.id == first.id
        assert same_state.state_changed_at == T0
        assert same_state.updated_at == at(5)
        changed = put(store, "a.jsonl", sha256=SHA_B, state=LocalState.QUARANTINED, now=at(9))
        assert changed.state_changed_at == at(9)
        assert changed.sha256 == SHA_B
        assert changed.first_seen_at == T0

    def test_upsert_keeps_remote_pointer_unless_given(self, store: Store) -> None:
        """remote_file_id None keeps the stored pointer; a value replaces it."""
        record = put(store, "a.jsonl", remote_file_id="file-1")
        assert put(store, "a.jsonl").remote_file_id == "file-1"
        assert put(store, "a.jsonl", remote_file_id="file-2").remote_file_id == "file-2"
        assert local(store, record.id).remote_file_id == "file-2"

    def test_reset_attempts_starts_a_fresh_series(self, store: Store) -> None:
        """reset_attempts zeroes attempts and forgets the retry time and the old intent."""
        record = put(store, "a.jsonl")
        with store.session() as s:
            repo.claim_due_uploads(s, now=T0, limit=1)
            repo.record_failure(
                s,
                record.id,
                error="503",
                next_attempt_at=at(10),
                give_up=False,
                now=T0,
                keep_intent=True,
            )
        kept = put(store, "a.jsonl")
        assert (kept.attempts, kept.next_attempt_at, kept.intent_started_at) == (1, at(10), T0)
        fresh = put(store, "a.jsonl", sha256=SHA_B, reset_attempts=True)
        assert (fresh.attempts, fresh.next_attempt_at, fresh.intent_started_at) == (0, None, None)

    def test_folder_fingerprints_cover_one_folder(self, store: Store) -> None:
        """The scan's snapshot maps each path of the folder to (stat, state, sha256)."""
        put(store, "a.jsonl", stat=FileStat(1, 2, 3))
        put(store, "b.jsonl", sha256=None, state=LocalState.UNSTABLE, stat=FileStat(4, 5, 6))
        put(store, "c.jsonl", folder=OTHER)
        with store.session() as s:
            prints = repo.folder_fingerprints(s, FOLDER)
        assert prints == {
            "a.jsonl": (FileStat(1, 2, 3), LocalState.PENDING, SHA_A),
            "b.jsonl": (FileStat(4, 5, 6), LocalState.UNSTABLE, None),
        }
        assert prints["a.jsonl"][1] is LocalState.PENDING

    def test_set_state_leaves_remote_pointer_unless_passed(self, store: Store) -> None:
        """set_state changes the state; remote_file_id only when passed (None clears it)."""
        record = put(store, "a.jsonl", remote_file_id="file-1")
        with store.session() as s:
            repo.set_state(s, record.id, LocalState.UNSTABLE, now=at(1), last_error="changed")
        moved = local(store, record.id)
        assert (moved.state, moved.last_error, moved.remote_file_id) == (
            LocalState.UNSTABLE,
            "changed",
            "file-1",
        )
        assert moved.state_changed_at == at(1)
        with store.session() as s:
            repo.set_state(s, record.id, LocalState.UNSTABLE, now=at(2), remote_file_id=None)
        assert local(store, record.id).remote_file_id is None

    def test_set_state_away_from_the_queue_forgets_the_intent(self, store: Store) -> None:
        """Quarantining a claimed row clears its upload intent (the outcome is settled)."""
        record = put(store, "a.jsonl")
        with store.session() as s:
            repo.claim_due_uploads(s, now=T0, limit=1)
            repo.set_state(s, record.id, LocalState.QUARANTINED, now=at(1), last_error="422")
        assert local(store, record.id).intent_started_at is None

    def test_set_state_of_unknown_row_is_an_error(self, store: Store) -> None:
        """Writing to a row that does not exist is reported, not ignored."""
        with pytest.raises(StoreError, match="no local file with id 999"), store.session() as s:
            repo.set_state(s, 999, LocalState.FAILED, now=T0)

    def test_rename_keeps_the_row_and_audits(self, store: Store) -> None:
        """A rename moves the path and keeps id, state, content and remote file."""
        record = put(store, "old.jsonl", state=LocalState.UPLOADED, remote_file_id="file-1")
        with store.session() as s:
            repo.rename_local(s, record.id, "sub/new.jsonl", now=at(3))
        with store.session() as s:
            assert repo.get_local(s, FOLDER, "old.jsonl") is None
            moved = repo.get_local(s, FOLDER, "sub/new.jsonl")
            (entry,) = repo.audit_entries(s)
        assert moved is not None
        assert (moved.id, moved.state, moved.remote_file_id, moved.sha256) == (
            record.id,
            LocalState.UPLOADED,
            "file-1",
            SHA_A,
        )
        assert (entry.action, entry.rel_path, entry.file_id) == (
            "rename",
            "sub/new.jsonl",
            "file-1",
        )
        assert entry.detail == "renamed from old.jsonl"

    def test_rename_onto_an_existing_row_is_refused(self, store: Store) -> None:
        """Renaming onto a path that has its own row raises instead of merging histories."""
        record = put(store, "a.jsonl")
        put(store, "b.jsonl")
        with pytest.raises(StoreError, match="already has its own row"), store.session() as s:
            repo.rename_local(s, record.id, "b.jsonl", now=T0)
        assert local(store, record.id).rel_path == "a.jsonl"

    def test_mark_missing_counts_only_changed_rows(self, store: Store) -> None:
        """Only rows of that folder not already missing change; unknown paths are ignored."""
        put(store, "a.jsonl")
        put(store, "b.jsonl", state=LocalState.MISSING)
        put(store, "a.jsonl", folder=OTHER)
        with store.session() as s:
            changed = repo.mark_missing(s, FOLDER, ["a.jsonl", "b.jsonl", "nope"], now=at(1))
            states = {(r.folder, r.rel_path): r.state for r in repo.list_local(s)}
        assert changed == 1
        assert states == {
            (FOLDER, "a.jsonl"): LocalState.MISSING,
            (FOLDER, "b.jsonl"): LocalState.MISSING,
            (OTHER, "a.jsonl"): LocalState.PENDING,
        }

    def test_mark_missing_handles_more_paths_than_one_query_takes(self, store: Store) -> None:
        """Hundreds of vanished paths (split into several IN clauses) are all marked."""
        paths = [f"f{i:04d}.jsonl" for i in range(600)]
        with store.session() as s:
            for rel_path in paths:
                repo.upsert_local(
                    s,
                    FOLDER,
                    rel_path,
                    purpose="fine-tune",
                    stat=FileStat(1, 1, 1),
                    sha256=SHA_A,
                    state=LocalState.UPLOADED,
                    now=T0,
                )
        with store.session() as s:
            assert repo.mark_missing(s, FOLDER, iter(paths), now=at(1)) == 600
            assert repo.state_counts(s) == {FOLDER: {"missing": 600}}

    def test_mark_missing_is_visible_to_the_same_session(self, store: Store) -> None:
        """Rows loaded earlier in a session do not hide the update from later reads."""
        record = put(store, "a.jsonl")
        with store.session() as s:
            assert repo.get_local(s, FOLDER, "a.jsonl") is not None
            repo.mark_missing(s, FOLDER, ["a.jsonl"], now=at(1))
            again = repo.get_local_by_id(s, record.id)
        assert again is not None
        assert again.state is LocalState.MISSING

    def test_find_missing_by_stat_matches_exact_stat_of_missing_rows(self, store: Store) -> None:
        """A moved file is found by (size, mtime, inode) among missing rows only."""
        stat = FileStat(size=5, mtime_ns=6, inode=77)
        put(store, "gone.jsonl", stat=stat, state=LocalState.MISSING)
        put(store, "here.jsonl", stat=FileStat(5, 6, 78))
        with store.session() as s:
            found = repo.find_missing_by_stat(s, FOLDER, stat)
            assert repo.find_missing_by_stat(s, FOLDER, FileStat(5, 7, 77)) is None
            assert repo.find_missing_by_stat(s, OTHER, stat) is None
            assert repo.find_missing_by_stat(s, FOLDER, FileStat(5, 6, 78)) is None
            assert repo.find_missing_by_stat(s, FOLDER, FileStat(0, 0, 0)) is None
        assert found is not None
        assert found.rel_path == "gone.jsonl"

    def test_fingerprints_stream_in_code_point_order_on_every_engine(self, store: Store) -> None:
        """The scan merges the stored keys with a sorted walk, so they must come out in Python's
        string order, whatever the database's collation (PostgreSQL's sorts by language)."""
        keys = [
            "a-b.jsonl",
            "a.b.jsonl",
            "a/x.jsonl",
            "a/b-c.jsonl",
            "a0.jsonl",
            "B.jsonl",
            "b.jsonl",
            "Z.jsonl",
            "_x.jsonl",
            " space.jsonl",
            "\u00e9t\u00e9.jsonl",
            "e\u0301te\u0301.jsonl",  # the NFD spelling of the key before: another file
            "\U0001f600/deep.jsonl",
            "\uffff.jsonl",
            "line\nbreak.jsonl",
        ]
        for index, key in enumerate(keys):
            put(store, key, stat=FileStat(index, index, index, index))
        put(store, "a.jsonl", folder=OTHER)
        with store.session() as s:
            streamed = list(repo.iter_fingerprints(s, FOLDER))
            one_by_one = list(repo.iter_fingerprints(s, FOLDER, batch_rows=1))
        assert [row[0] for row in streamed] == sorted(keys)
        assert streamed == one_by_one
        assert streamed[0] == (" space.jsonl", 9, 9, 9, LocalState.PENDING, SHA_A, 9, False)

    def test_free_text_with_any_character_is_stored(self, store: Store) -> None:
        """Errors and warnings may quote what a server or a file said, control characters and
        all: every one is stored (PostgreSQL text cannot hold NUL, so it is kept visible as
        ``\\x00`` on every engine) and the row is never left unwritable."""
        said = "line 1: bad \x00 byte\tand \x1b[31m colour \U0001f600"
        shown = said.replace("\x00", "\\x00")
        record = put(store, "a.jsonl", last_error=said, warnings=said)
        stored = local(store, record.id)
        assert (stored.last_error, stored.warnings) == (shown, shown)
        with store.session() as s:
            repo.record_failure(
                s, record.id, error=said, next_attempt_at=None, give_up=True, now=at(1)
            )
        with store.session() as s:
            (entry,) = repo.audit_entries(s)
        assert local(store, record.id).last_error == shown
        assert entry.detail == f"after 0 attempt(s): {shown}"


class TestCounts:
    def test_state_counts_list_local_and_totals(self, store: Store) -> None:
        """Counts per folder and state; listing filters by folder and state; totals add up."""
        put(store, "a.jsonl")
        put(store, "b.jsonl", state=LocalState.UPLOADED)
        put(store, "c.jsonl", state=LocalState.FAILED)
        put(store, "d.jsonl", folder=OTHER, stat=FileStat(100, 1, 1))
        with store.session() as s:
            assert repo.state_counts(s) == {
                FOLDER: {"pending": 1, "uploaded": 1, "failed": 1},
                OTHER: {"pending": 1},
            }
            listed = repo.list_local(
                s, folder=FOLDER, states=[LocalState.PENDING, LocalState.FAILED]
            )
            assert [r.rel_path for r in listed] == ["a.jsonl", "c.jsonl"]
            assert len(repo.list_local(s, limit=2)) == 2
            assert repo.pending_totals(s) == (2, 110)
            assert repo.pending_totals(s, folders=[OTHER]) == (1, 100)
            assert repo.pending_totals(s, folders=[]) == (0, 0)

    def test_pending_count_with_and_without_due_time(self, store: Store) -> None:
        """pending_count counts queued rows; with ``now`` only those due (and in flight)."""
        first = put(store, "a.jsonl")
        put(store, "b.jsonl")
        put(store, "c.jsonl")
        put(store, "d.jsonl", state=LocalState.UPLOADED)
        with store.session() as s:
            repo.record_failure(
                s, first.id, error="x", next_attempt_at=at(30), give_up=False, now=T0
            )
        with store.session() as s:
            repo.claim_due_uploads(s, now=T0, limit=1)
        with store.session() as s:
            assert repo.pending_count(s) == 3
            assert repo.pending_count(s, now=at(1)) == 2
            assert repo.pending_count(s, now=at(31)) == 3

    def test_oldest_unsynced_survives_retries(self, store: Store) -> None:
        """'Unsynced since' is when the file became pending, not its latest retry."""
        with store.session() as s:
            assert repo.oldest_unsynced_since(s) is None
        record = put(store, "a.jsonl", now=at(1))
        put(store, "b.jsonl", state=LocalState.UPLOADED, now=T0)
        with store.session() as s:
            repo.claim_due_uploads(s, now=at(2), limit=1)
        with store.session() as s:
            repo.record_failure(
                s, record.id, error="x", next_attempt_at=at(9), give_up=False, now=at(3)
            )
        with store.session() as s:
            since = repo.oldest_unsynced_since(s)
        assert since == at(1)
        assert since is not None
        assert since.tzinfo is not None


class TestRemoteFiles:
    def test_record_upload_marks_uploaded_and_audits(self, store: Store) -> None:
        """Success: row uploaded, pointer set, intent/error/retry cleared, remote row recorded."""
        record = put(store, "a.jsonl")
        with store.session() as s:
            repo.claim_due_uploads(s, now=T0, limit=1)
        assert upload(store, record.id, "file-1", now=at(1)) == []
        done = local(store, record.id)
        assert done.state is LocalState.UPLOADED
        assert done.remote_file_id == "file-1"
        assert (done.intent_started_at, done.next_attempt_at, done.last_error) == (None, None, None)
        with store.session() as s:
            remote = repo.get_remote(s, "file-1")
            entries = repo.audit_entries(s)
        assert remote is not None
        assert (remote.local_file_id, remote.folder, remote.rel_path) == (
            record.id,
            FOLDER,
            "a.jsonl",
        )
        assert remote.uploaded_at == at(1)
        assert remote.is_live
        assert [(e.action, e.file_id, e.detail) for e in entries] == [
            ("upload", "file-1", "as x.jsonl")
        ]

    def test_record_upload_returns_superseded_ids(self, store: Store) -> None:
        """A new version supersedes the previous one, whose id is returned once."""
        record = put(store, "a.jsonl")
        upload(store, record.id, "file-1")
        put(store, "a.jsonl", sha256=SHA_B, reset_attempts=True)
        assert upload(store, record.id, "file-2", sha256=SHA_B, now=at(5)) == ["file-1"]
        with store.session() as s:
            old = repo.get_remote(s, "file-1")
            assert [e.action for e in repo.audit_entries(s, limit=2)] == ["supersede", "upload"]
        assert old is not None
        assert old.superseded_at == at(5)
        assert old.deleted_at is None

    def test_recording_a_known_id_again_makes_it_current_and_keeps_its_record(
        self, store: Store
    ) -> None:
        """An id recorded before (an upload adopted after its version was superseded) is made
        current again in place: one row, its first upload time kept, no second insert."""
        record = put(store, "a.jsonl")
        upload(store, record.id, "file-1", now=at(1))
        put(store, "a.jsonl", sha256=SHA_B, reset_attempts=True)
        assert upload(store, record.id, "file-2", sha256=SHA_B, now=at(2)) == ["file-1"]
        put(store, "a.jsonl", sha256=SHA_A, reset_attempts=True)
        assert upload(store, record.id, "file-1", now=at(3)) == ["file-2"]
        with store.session() as s:
            again = repo.get_remote(s, "file-1")
            superseded = repo.get_remote(s, "file-2")
        assert again is not None and superseded is not None
        assert again.superseded_at is None
        assert again.uploaded_at == at(1)
        assert superseded.superseded_at == at(3)
        assert local(store, record.id).remote_file_id == "file-1"

    def test_version_still_used_by_another_row_is_not_superseded(self, store: Store) -> None:
        """The same bytes at another path keep the old version current: nothing to delete."""
        first = put(store, "a.jsonl")
        upload(store, first.id, "file-1")
        copy = put(store, "copy.jsonl", state=LocalState.UPLOADED)
        with store.session() as s:
            remote = repo.get_remote(s, "file-1")
            assert remote is not None
            assert repo.reuse_remote(s, copy.id, remote, now=at(1)) == []
        put(store, "a.jsonl", sha256=SHA_B, reset_attempts=True)
        assert upload(store, first.id, "file-2", sha256=SHA_B) == []
        with store.session() as s:
            still = repo.get_remote(s, "file-1")
        assert still is not None
        assert still.superseded_at is None

    def test_upload_of_outdated_content_keeps_the_new_state(self, store: Store) -> None:
        """If the row's content moved on during the upload, it stays pending for the new bytes."""
        record = put(store, "a.jsonl")
        with store.session() as s:
            repo.claim_due_uploads(s, now=T0, limit=1)
        put(store, "a.jsonl", sha256=SHA_B, reset_attempts=True)
        upload(store, record.id, "file-1", sha256=SHA_A)
        after = local(store, record.id)
        assert after.state is LocalState.PENDING
        assert after.remote_file_id == "file-1"  # superseded by the next upload

    def test_reuse_revives_a_superseded_version(self, store: Store) -> None:
        """Reusing content makes the row uploaded and its remote current again."""
        record = put(store, "a.jsonl")
        upload(store, record.id, "file-a")
        put(store, "a.jsonl", sha256=SHA_B, reset_attempts=True)
        assert upload(store, record.id, "file-b", sha256=SHA_B) == ["file-a"]
        with store.session() as s:
            found = repo.find_live_remote_by_content(s, SHA_A, "fine-tune")
            assert found is not None
            put_back = repo.upsert_local(
                s,
                FOLDER,
                "a.jsonl",
                purpose="fine-tune",
                stat=FileStat(10, 1, 7),
                sha256=SHA_A,
                state=LocalState.UPLOADED,
                now=at(2),
            )
            superseded = repo.reuse_remote(s, put_back.id, found, now=at(2))
        assert superseded == ["file-b"]
        with store.session() as s:
            revived = repo.get_remote(s, "file-a")
            assert revived is not None
            assert revived.superseded_at is None
            assert repo.audit_entries(s, limit=2)[1].action == "reuse"
        assert local(store, record.id).remote_file_id == "file-a"

    def test_find_live_remote_prefers_current_and_ignores_deleted(self, store: Store) -> None:
        """Lookup by content: not deleted, current before superseded, purpose must match."""
        _content_history(store)
        with store.session() as s:
            assert repo.find_live_remote_by_content(s, SHA_A, "batch") is None
            found = repo.find_live_remote_by_content(s, SHA_A, "fine-tune")
            assert found is not None
            assert found.file_id == "file-current"
            repo.record_remote_deleted(s, "file-current", reason="retention", now=at(3))
            fallback = repo.find_live_remote_by_content(s, SHA_A, "fine-tune")
            assert fallback is not None
            assert fallback.file_id == "file-old"
            repo.record_remote_deleted(s, "file-old", reason="retention", now=at(3))
            assert repo.find_live_remote_by_content(s, SHA_A, "fine-tune") is None

    def test_the_batch_lookup_by_content_makes_the_single_lookups_pick(self, store: Store) -> None:
        """A scan batch looks its contents up at once: for each sha256 the same remote file as
        the one-by-one lookup (current first, then the newest; deleted and other purposes
        left out), and nothing for a content without one."""
        _content_history(store)
        unknown = "c" * 64
        with store.session() as s:
            found = repo.find_live_remotes_by_content(s, {SHA_A, SHA_B, unknown}, "fine-tune")
            assert {sha: r.file_id for sha, r in found.items()} == {
                SHA_A: "file-current",
                SHA_B: "file-b",
            }
            assert found[SHA_A] == repo.find_live_remote_by_content(s, SHA_A, "fine-tune")
            assert repo.find_live_remotes_by_content(s, {SHA_A, SHA_B, unknown}, "batch") == {}
            current = repo.find_live_remotes_by_content(s, {SHA_A}, "fine-tune")[SHA_A]
            assert current.file_id == "file-current"
            repo.record_remote_deleted(s, "file-current", reason="retention", now=at(3))
            after = repo.find_live_remotes_by_content(s, {SHA_A, SHA_B}, "fine-tune")
            assert {sha: r.file_id for sha, r in after.items()} == {
                SHA_A: "file-old",
                SHA_B: "file-b",
            }
            assert repo.find_live_remotes_by_content(s, set(), "fine-tune") == {}

    def test_record_remote_deleted_is_idempotent_and_expires_holders(self, store: Store) -> None:
        """Deletion is recorded once; rows whose uploaded content it was become expired."""
        record = put(store, "a.jsonl")
        upload(store, record.id, "file-1")
        with store.session() as s:
            repo.record_remote_deleted(s, "file-1", reason="retention", now=at(1))
            repo.record_remote_deleted(s, "file-1", reason="again", now=at(2))
        with store.session() as s:
            remote = repo.get_remote(s, "file-1")
            deletes = repo.audit_entries(s, action="delete")
            assert repo.remote_files(s) == []
            assert [r.file_id for r in repo.remote_files(s, include_deleted=True)] == ["file-1"]
        assert remote is not None
        assert (remote.deleted_at, remote.delete_reason, remote.is_live) == (
            at(1),
            "retention",
            False,
        )
        assert [(e.file_id, e.detail) for e in deletes] == [("file-1", "retention")]
        assert local(store, record.id).state is LocalState.EXPIRED

    def test_deleting_an_unrecorded_file_is_audited_once(self, store: Store) -> None:
        """An id syncd never recorded gets a single audit line however often it is reported."""
        with store.session() as s:
            repo.record_remote_deleted(s, "stranger", reason="cleanup", now=T0)
            repo.record_remote_deleted(s, "stranger", reason="cleanup", now=T0)
        with store.session() as s:
            entries = repo.audit_entries(s)
        assert [(e.action, e.file_id) for e in entries] == [("delete", "stranger")]

    def test_remote_files_by_folder_and_known_names(self, store: Store) -> None:
        """remote_files filters by folder; known ids per filename include deleted ones."""
        first = put(store, "a.jsonl")
        second = put(store, "b.jsonl", folder=OTHER)
        upload(store, first.id, "file-1", now=T0)
        upload(store, second.id, "file-2", now=at(1))
        with store.session() as s:
            repo.record_remote_deleted(s, "file-1", reason="retention", now=at(2))
        with store.session() as s:
            assert [r.file_id for r in repo.remote_files(s, folder=OTHER)] == ["file-2"]
            assert repo.remote_files(s, folder=FOLDER) == []
            assert repo.remote_ids_with_filename(s, "x.jsonl") == {"file-1", "file-2"}
            assert repo.remote_ids_with_filename(s, "y.jsonl") == set()

    def test_lineage_streams_every_upload_in_upload_order(self, store: Store) -> None:
        """iter_remote_files yields every recorded upload, deleted ones too, oldest first,
        through one cursor whatever the batch size."""
        first = put(store, "a.jsonl")
        second = put(store, "b.jsonl", folder=OTHER)
        upload(store, second.id, "file-2", now=at(2))
        upload(store, first.id, "file-1", now=at(1))
        put(store, "a.jsonl", sha256=SHA_B, reset_attempts=True)
        upload(store, first.id, "file-3", sha256=SHA_B, now=at(3))
        with store.session() as s:
            repo.record_remote_deleted(s, "file-1", reason="retention", now=at(4))
        with store.session() as s:
            streamed = list(repo.iter_remote_files(s))
            one_by_one = [r.file_id for r in repo.iter_remote_files(s, batch_rows=1)]
        assert [r.file_id for r in streamed] == one_by_one == ["file-1", "file-2", "file-3"]
        assert [r.uploaded_at for r in streamed] == [at(1), at(2), at(3)]
        assert streamed[0].deleted_at == at(4)

    def test_retention_reads_aged_files_with_their_holders(self, store: Store) -> None:
        """Live remote files of a folder created before a time, oldest first, each with the
        (state, sha256) of the rows pointing at it; deleted and younger files are left out."""
        old = put(store, "old.jsonl")
        young = put(store, "young.jsonl")
        upload(store, old.id, "file-old", now=T0)
        upload(store, young.id, "file-young", now=at(60))
        put(store, "old.jsonl", sha256=SHA_B, state=LocalState.PENDING)
        with store.session() as s:
            (aged,) = repo.aged_remote_files(s, FOLDER, created_before=at(30))
            assert repo.aged_remote_files(s, OTHER, created_before=at(90)) == []
            assert [
                h.remote.file_id for h in repo.aged_remote_files(s, FOLDER, created_before=at(90))
            ] == [
                "file-old",
                "file-young",
            ]
            assert repo.local_row_count(s, FOLDER) == 2
            holding = repo.remote_holding(s, "file-young")
            repo.record_remote_deleted(s, "file-old", reason="retention", now=at(90))
            assert repo.remote_holding(s, "file-old") is None
            assert repo.aged_remote_files(s, FOLDER, created_before=at(30)) == []
        assert aged.remote.file_id == "file-old"
        assert aged.holders == ((LocalState.PENDING, SHA_B),)
        assert holding is not None
        assert holding.holders == ((LocalState.UPLOADED, SHA_A),)

    def test_a_vanished_remote_file_queues_its_holders_again(self, store: Store) -> None:
        """A live file that the remote lost is recorded deleted (reason and audit line), and the
        rows it held go back to pending with fresh attempts; only once."""
        record = put(store, "a.jsonl")
        upload(store, record.id, "file-1", now=T0)
        late = put(store, "late.jsonl")
        upload(store, late.id, "file-late", now=at(10))
        with store.session() as s:
            assert set(repo.live_remote_ids(s, uploaded_before=at(5))) == {"file-1"}
            assert repo.record_vanished(s, "file-1", now=at(20)) == 1
            assert repo.record_vanished(s, "file-1", now=at(21)) == 0
            assert repo.record_vanished(s, "never-recorded", now=at(21)) == 0
            assert set(repo.live_remote_ids(s, uploaded_before=at(30))) == {"file-late"}
            (line,) = repo.audit_entries(s, action=repo.VANISHED_REASON)
        again = local(store, record.id)
        assert (again.state, again.attempts, again.next_attempt_at) == (
            LocalState.PENDING,
            0,
            None,
        )
        assert line.file_id == "file-1"


class TestAuditAndMeta:
    def test_audit_entries_newest_first_with_limit(self, store: Store) -> None:
        """The audit trail reads newest first and honours the limit."""
        with store.session() as s:
            for i, action in enumerate(["upload", "supersede", "delete"]):
                repo.audit(s, action, now=at(i), file_id=f"file-{i}", bytes=i, detail="d")
        with store.session() as s:
            entries = repo.audit_entries(s, limit=2)
            everything = repo.audit_entries(s)
        assert [e.action for e in entries] == ["delete", "supersede"]
        assert [e.at for e in everything] == [at(2), at(1), at(0)]

    def test_meta_values_round_trip(self, store: Store) -> None:
        """meta stores one value per key, replaced on write."""
        with store.session() as s:
            assert repo.get_meta(s, "clean_shutdown") is None
            repo.set_meta(s, "clean_shutdown", "no")
        with store.session() as s:
            repo.set_meta(s, "clean_shutdown", "yes")
        with store.session() as s:
            assert repo.get_meta(s, "clean_shutdown") == "yes"


def test_nodes_starting_together_both_record_a_meta_key(db_url: str) -> None:
    """Two nodes read a meta key as absent at the same moment and both set it: neither fails
    (it was read-then-insert: a duplicate key on pk_meta ended a node of a fleet)."""
    import threading

    from syncd.store import open_store

    store = open_store(db_url)
    both_read = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def node(value: str) -> None:
        try:
            with store.session() as s:
                assert repo.get_meta(s, "judged:shared") is None
                both_read.wait()
                repo.set_meta(s, "judged:shared", value)
        except Exception as exc:  # noqa: BLE001 - any failure of a node is the finding
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(v,)) for v in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == []
        with store.session() as s:
            assert repo.get_meta(s, "judged:shared") in ("a", "b")
    finally:
        store.dispose()
