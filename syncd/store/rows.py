"""ORM rows to frozen records, and the rules every writer of ``local_files`` shares.

Private to the store package: the repository modules build on it, callers never see a row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import fields
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.errors import StoreError
from syncd.store.records import AuditRecord, LocalFileRecord, RemoteFileRecord
from syncd.store.schema import AuditEntry, LocalFile, RemoteFile

__all__ = [
    "UNSYNCED_STATES",
    "chunked",
    "local_row",
    "move_state",
    "to_audit_record",
    "to_local_record",
    "to_remote_record",
]

#: States in which a file's current content is not (yet) on the remote.
UNSYNCED_STATES = (LocalState.PENDING, LocalState.UPLOADING, LocalState.UNSTABLE)

#: One retry cycle: moving between these keeps ``state_changed_at``.
_RETRY_CYCLE = frozenset({LocalState.PENDING, LocalState.UPLOADING})

#: States in which an upload intent may still matter (the request may have reached the server).
_INTENT_STATES = frozenset({LocalState.PENDING, LocalState.UPLOADING})

#: Bound parameters per ``IN (...)``: far below every backend's limit.
_CHUNK = 500

_LOCAL_FIELDS = tuple(f.name for f in fields(LocalFileRecord))
_REMOTE_FIELDS = tuple(f.name for f in fields(RemoteFileRecord))
_AUDIT_FIELDS = tuple(f.name for f in fields(AuditRecord))

T = TypeVar("T")


def to_local_record(row: LocalFile) -> LocalFileRecord:
    return LocalFileRecord(**{name: getattr(row, name) for name in _LOCAL_FIELDS})


def to_remote_record(row: RemoteFile) -> RemoteFileRecord:
    return RemoteFileRecord(**{name: getattr(row, name) for name in _REMOTE_FIELDS})


def to_audit_record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(**{name: getattr(row, name) for name in _AUDIT_FIELDS})


def local_row(s: Session, local_id: int) -> LocalFile:
    """The row with ``local_id``; rows are never deleted, so a missing one is a caller's bug.

    Raises:
        StoreError: no such row.
    """
    row = s.get(LocalFile, local_id)
    if row is None:
        raise StoreError(f"no local file with id {local_id} in the state store")
    return row


def move_state(row: LocalFile, state: LocalState, now: datetime) -> None:
    """Put ``row`` in ``state`` at ``now``, keeping the bookkeeping columns consistent."""
    if row.state != state and not {row.state, state} <= _RETRY_CYCLE:
        row.state_changed_at = now
    if state not in _INTENT_STATES:
        # The attempt's outcome is settled (uploaded, rejected, gone): nothing left to adopt.
        row.intent_started_at = None
        row.intent_filename = None
    row.state = state
    row.updated_at = now


def chunked(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices small enough for one ``IN (...)`` clause."""
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
