"""Writing an upload's outcome to its row: committed before the worker goes on, never half-done.

The outcome of an upload exists only in memory until it is written, so a store that refuses a
write (locked past its busy timeout, a full disk) makes the worker wait and write again.

Group commit: the workers do not each open a transaction. They hand their outcome's write to
one writer thread (:class:`GroupCommit`), which runs every write queued at that moment in one
transaction and commits them together; each worker waits until its write is committed, so
nothing it does next (the log line, the event, the next upload, whose intent the same write
claimed) happens before its outcome is durable. Eight workers finishing together cost one
transaction instead of eight turns on the store's write lock. A batch that fails in any way is
rolled back whole, and each of its writes is then run alone in its worker's own transaction,
exactly as without grouping, so one bad write cannot lose another's outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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

__all__ = ["GroupCommit", "RowWriter"]

#: Waits between tries to write an outcome to a store that refuses writes (locked, disk full).
_STORE_RETRY_FIRST = 0.5
_STORE_RETRY_MAX = 10.0
#: Most writes committed in one transaction (a batch is whatever is queued when the writer
#: starts one; this only bounds how long the first of them waits).
_GROUP_MAX = 64
#: The writer thread ends after this many idle seconds; the next write starts it again.
_GROUP_IDLE_S = 5.0


class _Queued:
    """One write waiting for the group's commit."""

    __slots__ = ("committed", "done", "value", "write")

    def __init__(self, write: Callable[[Session], object]) -> None:
        self.write = write
        self.done = threading.Event()
        self.committed = False
        self.value: object = None


class GroupCommit:
    """Commits the upload workers' outcome writes in groups, on one writer thread.

    Threads: :meth:`run` is called by the upload workers and blocks until the write is settled;
    the writer (``syncd-upload-writer``) is started by the first write and ends after
    :data:`_GROUP_IDLE_S` idle seconds. Locks: ``_cond`` guards the queue and the thread.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._queue: list[_Queued] = []
        self._writer: threading.Thread | None = None

    def run(self, write: Callable[[Session], T]) -> tuple[bool, T | None]:
        """``(True, what write returned)`` once it is committed with its group, or ``(False,
        None)`` when the group failed (rolled back): then the caller runs it alone."""
        item = _Queued(write)
        with self._cond:
            self._queue.append(item)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._loop, name="syncd-upload-writer", daemon=True
                )
                self._writer.start()
            else:
                self._cond.notify()
        item.done.wait()
        return item.committed, cast("T | None", item.value)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(timeout=_GROUP_IDLE_S)
                    if not self._queue:
                        self._writer = None
                        return
                batch, self._queue = self._queue[:_GROUP_MAX], self._queue[_GROUP_MAX:]
            try:
                with self._store.session() as s:
                    values = [item.write(s) for item in batch]
            except BaseException as exc:
                # Rolled back: each write is run again alone by its worker, which reports it.
                for item in batch:
                    item.done.set()
                if isinstance(exc, Exception):
                    continue
                with self._cond:
                    self._writer = None
                    for item in self._queue:
                        item.done.set()
                    self._queue.clear()
                raise
            for item, value in zip(batch, values, strict=True):
                item.value = value
                item.committed = True
                item.done.set()


class RowWriter:
    """Runs outcome writes in store transactions (:meth:`persist`), and tells a claim this node
    lost (:meth:`claim_lost`).

    Threads: the upload workers (a write may run on the group's writer thread, see
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
