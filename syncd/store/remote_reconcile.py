"""Remote files that vanished without syncd deleting them: what the store does about it.

The remote can lose files nobody asked syncd to delete (a workspace wiped, someone deleting by
hand, a server losing data). Such a file is recorded as deleted with the reason
:data:`VANISHED_REASON`, and every local row whose uploaded content it held goes back to
``pending``, so the content is uploaded again. That is unlike retention's deletions, after which
rows become ``expired`` and stay off the remote: here nobody asked for the file to go.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.store import audit_log, rows
from syncd.store.schema import LocalFile, RemoteFile

__all__ = ["VANISHED_REASON", "any_live_remote", "live_remote_ids", "record_vanished"]

#: Ids read at a time by :func:`live_remote_ids`.
_BATCH_ROWS = 1000
#: ``remote_files.delete_reason`` (and the audit action) for a file the remote lost on its own.
VANISHED_REASON = "vanished_from_remote"


def live_remote_ids(s: Session, *, uploaded_before: datetime) -> Iterator[str]:
    """Ids of remote files recorded as live (not deleted) and recorded before ``uploaded_before``.

    Uploads recorded later may be missing from a listing that started at ``uploaded_before``
    without being gone, so they are left out. Read in batches as the caller goes (inside the
    session): a set of 100,000 ids, built at once, left its mark on the daemon's idle RSS.
    """
    query = _live_before(uploaded_before)
    # Closed however the caller stops: an abandoned cursor must not hold its read snapshot.
    with s.scalars(query, execution_options={"yield_per": _BATCH_ROWS}) as ids:
        yield from ids


def any_live_remote(s: Session, *, uploaded_before: datetime) -> bool:
    """Whether :func:`live_remote_ids` would name any file (the read stops at the first)."""
    return s.execute(_live_before(uploaded_before).limit(1)).first() is not None


def _live_before(uploaded_before: datetime) -> Select[str]:
    return select(RemoteFile.file_id).where(
        RemoteFile.deleted_at.is_(None), RemoteFile.uploaded_at < uploaded_before
    )


def record_vanished(s: Session, file_id: str, *, now: datetime) -> int:
    """Record that the live remote file ``file_id`` is gone from the remote, not by syncd.

    Local rows that show it as their uploaded content go back to ``pending`` (due now, with a
    fresh series of attempts). Returns how many rows were queued again; 0 when the file is not
    recorded or already deleted (idempotent).
    """
    remote = s.get(RemoteFile, file_id)
    if remote is None or remote.deleted_at is not None:
        return 0
    remote.deleted_at = now
    remote.delete_reason = VANISHED_REASON
    audit_log.audit_remote(
        s,
        VANISHED_REASON,
        remote,
        now=now,
        detail="no longer on the remote, and not deleted by syncd: uploading it again",
    )
    holders = s.scalars(
        select(LocalFile).where(
            LocalFile.remote_file_id == file_id, LocalFile.state == LocalState.UPLOADED
        )
    )
    requeued = 0
    for holder in holders:
        rows.move_state(holder, LocalState.PENDING, now)
        holder.attempts = 0
        holder.next_attempt_at = None
        holder.last_error = f"its remote copy {file_id} vanished from the remote"
        requeued += 1
    s.flush()
    return requeued
