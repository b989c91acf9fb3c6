"""Writing an upload's outcome to its row: committed before the worker goes on, never half-done.

The outcome of an upload exists only in memory until it is written, so a store that refuses a
write (locked past its busy timeout, a full disk) makes the worker wait and write again.

Group commit (:class:`GroupCommit`): workers whose outcomes arrive while another worker is
writing queue theirs; the next of them to lead runs every write queued at that moment in one
transaction and commits them together. Each worker waits until its write is committed, so
nothing it does next (its log line, its event) happens before its outcome is durable. Workers
finishing together cost one transaction instead of a turn each on the store's write lock. A
batch that fails in any way is rolled back whole, and each of its writes is then run alone in
its worker's own transaction, exactly as without grouping, so one bad write cannot lose
another's outcome. Successes take the same way in groups of their own, from one thread
(:meth:`RowWriter.persist_all`, called by :mod:`~syncd.upload.recorder`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

import structlog
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.errors import (
    StoreError,
)
from syncd.store import Store, repo
from syncd.store.records import LocalFileRecord
from syncd.upload.work import UploadSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")

__all__ = ["GROUP_MAX", "GroupCommit", "RowWriter"]

#: Waits between tries to write an outcome to a store that refuses writes (locked, disk full).
_STORE_RETRY_FIRST = 0.5
_STORE_RETRY_MAX = 10.0
#: Most writes committed in one transaction (a batch is whatever is queued when the leader
#: starts one; this only bounds how long the first of them waits).
GROUP_MAX = 64


class _Queued:
    """One write waiting for the group's commit."""

    __slots__ = ("committed", "done", "lead", "value", "write")

    def __init__(self, write: Callable[[Session], object]) -> None:
        self.write = write
        #: Set when the write is settled, or when its worker is handed the lead.
        self.done = threading.Event()
        self.lead = False
        self.committed = False
        self.value: object = None


def _write_together(store: Store, writes: Sequence[Callable[[Session], T]]) -> list[T] | None:
    """Run ``writes`` in one transaction: their values once it is committed, or None when any
    of them (or the commit) failed and it was rolled back whole."""
    try:
        with store.session() as s:
            written = [write(s) for write in writes]
    except Exception as exc:  # noqa: BLE001 - the callers run each write again alone
        log.debug("group_commit_rolled_back", writes=len(writes), error=str(exc))
        return None
    return written  # only once the commit at the end of the block went through


class GroupCommit:
    """Commits the upload workers' outcome writes in groups, each group led by one of them.

    A worker whose write finds no group being written leads: it takes every write queued (its
    own first) into one transaction, commits, settles them, and hands the lead to the worker of
    the oldest write queued meanwhile. The others wait for theirs. No thread of its own: a write
    that meets no other runs at once on its worker, as without grouping, and a busy moment costs
    one hand-over per group instead of a trip through a writer thread for every file.

    Threads: :meth:`run` is called by the upload workers and blocks until the write is settled.
    Locks: ``_lock`` guards the queue and who leads; a leader holds none while it writes.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._queue: list[_Queued] = []
        self._leading = False

    @property
    def waiting(self) -> int:
        """How many writes are queued behind the group being written."""
        with self._lock:
            return len(self._queue)

    def run(self, write: Callable[[Session], T]) -> tuple[bool, T | None]:
        """``(True, what write returned)`` once it is committed with its group, or ``(False,
        None)`` when the group failed (rolled back): then the caller runs it alone."""
        item = _Queued(write)
        with self._lock:
            self._queue.append(item)
            leads = not self._leading
            self._leading = True
        if not leads:
            item.done.wait()
        if leads or item.lead:
            self._lead()
        return item.committed, cast("T | None", item.value)

    def _lead(self) -> None:
        # The leader's own write is first in the queue: queued when nobody led (the queue is
        # empty then), or the oldest one when the lead was handed to it.
        with self._lock:
            batch, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
        values: list[object] | None = None
        try:
            # None when rolled back: each write is then run again alone by its worker.
            values = _write_together(self._store, [item.write for item in batch])
        finally:
            self._settle(batch, values)

    def _settle(self, batch: list[_Queued], values: list[object] | None) -> None:
        """Tell the batch's workers how it went; hand the lead on (or give it up)."""
        if values is not None:
            for item, value in zip(batch, values, strict=True):
                item.value = value
                item.committed = True
        for item in batch[1:]:
            item.done.set()
        with self._lock:
            if self._queue:
                following = self._queue[0]
                following.lead = True
                following.done.set()
            else:
                self._leading = False


class RowWriter:
    """Runs outcome writes in store transactions (:meth:`persist`), and tells a claim this node
    lost (:meth:`claim_lost`).

    Threads: the upload workers (a write may run on another worker leading its group, see
    :class:`GroupCommit`). Locks: none of its own beyond the group's.
    """

    def __init__(
        self,
        store: Store,
        settings: UploadSettings,
        stopping: threading.Event,
        *,
        group: bool = True,
    ) -> None:
        self._store = store
        self._settings = settings
        self._stopping = stopping
        # SQLite only: there every write waits for the one write lock anyway, so writing in
        # groups only saves turns. A server database locks rows; a group holding several for
        # its whole transaction deadlocked with other nodes' scans and groups (fleet mode).
        self._group = GroupCommit(store) if group and store.path is not None else None

    @property
    def group(self) -> GroupCommit | None:
        """The group commit outcome writes go through (None: each is its own transaction)."""
        return self._group

    def claim_lost(
        self, s: Session, record: LocalFileRecord, file_id: str
    ) -> LocalFileRecord | None:
        """The row as it is now when this node no longer holds its claim (fleet mode: it was
        silent longer than the lease and another node took the row over), else None."""
        return self.read_claim(s, record, file_id)[1]

    def read_claim(
        self, s: Session, record: LocalFileRecord, file_id: str
    ) -> tuple[LocalFileRecord | None, LocalFileRecord | None]:
        """:meth:`claim_lost`, and the row it read (locked), to be written without reading it
        again: ``(row or None when not read, row when the claim was lost or None)``."""
        node = self._settings.node
        if node is None:
            return None, None
        current = repo.lock_local(s, record.id)
        if current is None or current.remote_file_id == file_id:
            return current, None
        claimed_elsewhere = current.state is LocalState.UPLOADING and current.claimed_by not in (
            None,
            node,
        )
        recorded_elsewhere = (
            current.state is LocalState.UPLOADED and current.sha256 == record.sha256
        )
        return current, (current if claimed_elsewhere or recorded_elsewhere else None)

    def persist_all(self, writes: Sequence[Callable[[Session], T]]) -> list[T | Exception]:
        """Each write's value, or the error that failed it (see :meth:`persist`).

        On SQLite they share one transaction; should it fail, or on a server database (where a
        transaction holding several rows' locks deadlocked with other nodes), each runs alone.
        """
        if self._group is not None and len(writes) > 1:
            together = _write_together(self._store, writes)
            if together is not None:
                return list(together)
        written: list[T | Exception] = []
        for write in writes:
            try:
                written.append(self.persist(write))
            except Exception as exc:  # noqa: BLE001 - that write's own outcome, for its caller
                written.append(exc)
        return written

    def persist(self, write: Callable[[Session], T]) -> T:
        """Run ``write`` in one store transaction, waiting out a store that refuses it.

        The outcome of an upload exists only in memory until it is written, so a locked or full
        database makes the worker wait and write again rather than drop it. Once the uploader is
        stopping it gives up: the row keeps its intent, and the next start adopts the upload.

        The write is committed with whatever other workers' writes are queued (see
        :class:`GroupCommit`); should that group fail, it is run again alone, here.
        """
        if self._group is not None:
            committed, value = self._group.run(write)
            if committed:
                return cast(T, value)
        wait = _STORE_RETRY_FIRST
        while True:
            try:
                with self._store.session() as s:
                    return write(s)
            except StoreError as exc:
                if self._stopping.is_set():
                    raise
                log.warning("store_unavailable", error=str(exc), retry_in_s=wait)
                self._stopping.wait(wait)
                wait = min(wait * 2, _STORE_RETRY_MAX)
