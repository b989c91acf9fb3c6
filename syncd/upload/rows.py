"""Writing an upload's outcome to its row: one transaction, waited for, never half-done.

The outcome of an upload exists only in memory until it is written, so a store that refuses a
write (locked past its busy timeout, a full disk) makes the worker wait and write again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

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

__all__ = ["RowWriter"]

#: Waits between tries to write an outcome to a store that refuses writes (locked, disk full).
_STORE_RETRY_FIRST = 0.5
_STORE_RETRY_MAX = 10.0


class RowWriter:
    """Runs outcome writes in store transactions (:meth:`persist`), and tells a claim this node
    lost (:meth:`claim_lost`).

    Threads: the upload workers. Locks: none of its own (each write is one store transaction).
    """

    def __init__(self, store: Store, settings: UploadSettings, stopping: threading.Event) -> None:
        self._store = store
        self._settings = settings
        self._stopping = stopping

    def claim_lost(
        self, s: Session, record: LocalFileRecord, file_id: str
    ) -> LocalFileRecord | None:
        """The row as it is now when this node no longer holds its claim (fleet mode: it was
        silent longer than the lease and another node took the row over), else None."""
        node = self._settings.node
        if node is None:
            return None
        current = repo.lock_local(s, record.id)
        if current is None or current.remote_file_id == file_id:
            return None
        claimed_elsewhere = current.state is LocalState.UPLOADING and current.claimed_by not in (
            None,
            node,
        )
        recorded_elsewhere = (
            current.state is LocalState.UPLOADED and current.sha256 == record.sha256
        )
        return current if claimed_elsewhere or recorded_elsewhere else None

    def persist(self, write: Callable[[Session], T]) -> T:
        """Run ``write`` in one store transaction, waiting out a store that refuses it.

        The outcome of an upload exists only in memory until it is written, so a locked or full
        database makes the worker wait and write again rather than drop it. Once the uploader is
        stopping it gives up: the row keeps its intent, and the next start adopts the upload.
        """
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
