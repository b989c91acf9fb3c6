"""Group commit of upload outcomes (syncd.upload.rows, syncd.upload.recorder): writes that arrive
while another is written share one transaction; a write alone runs at once; a failed group loses
no outcome.

Real threads on a real SQLite store; the writes are plain functions of the session, as the
upload workers' are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

from syncd.errors import StoreError
from syncd.store import Store
from syncd.upload.recorder import Recorder
from syncd.upload.rows import GroupCommit, RowWriter
from syncd.upload.work import UploadSettings
from tests.support import wait_until

_NOTE = text("INSERT INTO meta (key, value) VALUES (:key, :value)")


def _note(key: str, sessions: list[Session]) -> Callable[[Session], str]:
    """A write that records which transaction (session) it ran in, and a row to show it."""

    def write(s: Session) -> str:
        sessions.append(s)  # the object itself: an id could be reused once it is gone
        s.execute(_NOTE, {"key": key, "value": "x"})
        return key

    return write


class _Slow:
    """A write that holds its group's lead until released: the writes arriving meanwhile queue."""

    def __init__(self, write: Callable[[Session], str]) -> None:
        self.write = write
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, s: Session) -> str:
        self.started.set()
        self.release.wait(10)
        return self.write(s)


def _keys(store: Store) -> set[str]:
    with store.connection() as connection:
        return {row[0] for row in connection.execute(text("SELECT key FROM meta"))}


def test_a_write_alone_runs_at_once_on_its_own_thread(store: Store) -> None:
    """No other write waiting: the caller writes and commits it itself, no thread is started."""
    group = GroupCommit(store)
    threads_before = threading.active_count()
    ran_on: list[threading.Thread] = []

    def write(s: Session) -> int:
        ran_on.append(threading.current_thread())
        s.execute(_NOTE, {"key": "alone", "value": "x"})
        return 7

    assert group.run(write) == (True, 7)
    assert ran_on == [threading.current_thread()]
    assert threading.active_count() == threads_before
    assert _keys(store) == {"alone"}


def test_writes_arriving_while_one_is_written_share_the_next_transaction(store: Store) -> None:
    """Six outcomes queued behind a slow one are committed together, in one transaction led by
    one of their workers, and each worker gets its own write's value."""
    group = GroupCommit(store)
    sessions: list[Session] = []
    slow = _Slow(_note("first", sessions))

    results: dict[str, tuple[bool, str | None]] = {}

    def worker(key: str, write: Callable[[Session], str]) -> None:
        results[key] = group.run(write)

    leader = threading.Thread(target=worker, args=("first", slow))
    leader.start()
    assert slow.started.wait(10)
    followers = [
        threading.Thread(target=worker, args=(f"f{n}", _note(f"f{n}", sessions))) for n in range(6)
    ]
    for thread in followers:
        thread.start()
    wait_until(lambda: group.waiting == 6, what="six writes queued behind the first")
    slow.release.set()
    for thread in [leader, *followers]:
        thread.join(10)
    assert results == {key: (True, key) for key in ["first", *(f"f{n}" for n in range(6))]}
    assert len(sessions) == 7
    assert len({id(s) for s in sessions}) == 2, "the six queued writes shared one transaction"
    assert _keys(store) == set(results)


def test_a_failed_group_loses_no_outcome(store: Store) -> None:
    """One write of a group fails: the group is rolled back, every worker writes its own again
    alone, and only the failing one reports its failure."""
    stopping = threading.Event()
    stopping.set()  # a write the store refuses is reported at once, not tried again later
    writer = RowWriter(store, UploadSettings(), stopping)
    sessions: list[Session] = []
    slow = _Slow(_note("first", sessions))

    def failing(s: Session) -> str:
        s.execute(_NOTE, {"key": "bad", "value": "x"})
        raise StoreError("this outcome cannot be written")

    outcomes: dict[str, object] = {}

    def worker(key: str, write: Callable[[Session], str]) -> None:
        try:
            outcomes[key] = writer.persist(write)
        except StoreError as exc:
            outcomes[key] = exc

    leader = threading.Thread(target=worker, args=("first", slow))
    leader.start()
    assert slow.started.wait(10)
    queued = [("good1", _note("good1", sessions)), ("bad", failing), ("good2", _note("good2", []))]
    threads = [threading.Thread(target=worker, args=item) for item in queued]
    for thread in threads:
        thread.start()
    group = writer.group
    assert group is not None
    wait_until(lambda: group.waiting == 3, what="three writes queued behind the first")
    slow.release.set()
    for thread in [leader, *threads]:
        thread.join(10)
    assert outcomes["first"] == "first"
    assert outcomes["good1"] == "good1"
    assert outcomes["good2"] == "good2"
    assert isinstance(outcomes["bad"], StoreError)
    assert _keys(store) == {"first", "good1", "good2"}


def test_the_recorder_writes_successes_queued_together_in_one_transaction(store: Store) -> None:
    """Successes handed to the recorder while it writes one are committed together by its one
    thread; each future holds what follows its own commit, and the caller never waits."""
    recorder = Recorder(RowWriter(store, UploadSettings(), threading.Event()))
    sessions: list[Session] = []
    slow = _Slow(_note("first", sessions))
    written_on: list[str] = []

    def then(key: str) -> str:
        written_on.append(threading.current_thread().name)
        return key.upper()

    first = recorder.submit(slow, then)
    assert slow.started.wait(10)
    queued = {f"s{n}": recorder.submit(_note(f"s{n}", sessions), then) for n in range(5)}
    assert not any(future.done() for future in queued.values())
    slow.release.set()
    assert first.result(10) == "FIRST"
    assert {key: future.result(10) for key, future in queued.items()} == {
        key: key.upper() for key in queued
    }
    assert len(sessions) == 6
    assert len({id(s) for s in sessions}) == 2, "the five queued successes shared one transaction"
    assert set(written_on) == {"syncd-record"}
    assert _keys(store) == {"first", *queued}
    recorder.close()


def test_a_success_whose_write_fails_leaves_the_others_written(store: Store) -> None:
    """One write of a recorder's group fails: its future holds the error, the others are
    committed (each alone after the group was rolled back)."""
    stopping = threading.Event()
    stopping.set()  # a write the store refuses is reported at once, not tried again later
    recorder = Recorder(RowWriter(store, UploadSettings(), stopping))
    slow = _Slow(_note("first", []))

    def failing(s: Session) -> str:
        s.execute(_NOTE, {"key": "bad", "value": "x"})
        raise StoreError("this outcome cannot be written")

    first = recorder.submit(slow, str)
    assert slow.started.wait(10)
    good = recorder.submit(_note("good1", []), str)
    bad = recorder.submit(failing, str)
    after = recorder.submit(_note("good2", []), str)
    slow.release.set()
    assert (first.result(10), good.result(10), after.result(10)) == ("first", "good1", "good2")
    assert isinstance(bad.exception(10), StoreError)
    assert _keys(store) == {"first", "good1", "good2"}
    recorder.close()
    # Closed: a late success is written on its caller's thread, not lost.
    assert recorder.submit(_note("late", []), str).result(0) == "late"
    assert "late" in _keys(store)
