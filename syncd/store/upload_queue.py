"""The upload queue: ``pending`` rows are the work; claiming, finishing and failing them.

The database is the queue, so every step is one transaction on the row: a claim records the
upload intent before any byte is sent, and an outcome clears it. A crash leaves the intent on
the row, so the next start can look for that upload on the server before sending it again.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import PurePosixPath

from sqlalchemy import CursorResult, func, literal, or_, select, update
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.store import audit_log, remotes, rows
from syncd.store.records import LocalFileRecord, RemoteFileRecord
from syncd.store.schema import LocalFile, RemoteFile, UTCDateTime

__all__ = [
    "claim_due_uploads",
    "inflight_uploads",
    "next_due_at",
    "record_failure",
    "record_upload",
    "reset_inflight",
    "retry_failed",
    "reuse_remote",
]

#: When a pending row is due: its retry time, or (never tried) since it became pending.
_DUE_AT = func.coalesce(LocalFile.next_attempt_at, LocalFile.state_changed_at)


def claim_due_uploads(
    s: Session, *, now: datetime, limit: int, folders: Collection[str] | None = None
) -> list[LocalFileRecord]:
    """Take up to ``limit`` due ``pending`` rows (earliest due first) and mark them ``uploading``.

    Each claim is its own ``UPDATE ... WHERE state = 'pending'``: when two threads or processes
    race for a row, exactly one update matches, so no row is ever handed out twice. The claim
    counts the attempt and records the upload intent; an intent left by an earlier, unsettled
    attempt is kept (it is the moment from which to look for that upload on the server).
    """
    if limit <= 0 or (folders is not None and not folders):
        return []
    claimed: list[int] = []
    tried: set[int] = set()
    while len(claimed) < limit:
        query = (
            select(LocalFile.id, LocalFile.rel_path)
            .where(
                LocalFile.state == LocalState.PENDING,
                or_(LocalFile.next_attempt_at.is_(None), LocalFile.next_attempt_at <= now),
            )
            .order_by(_DUE_AT, LocalFile.id)
            .limit(limit - len(claimed))
        )
        if folders is not None:
            query = query.where(LocalFile.folder.in_(list(folders)))
        if tried:
            query = query.where(LocalFile.id.not_in(tried))
        candidates = s.execute(query).all()
        if not candidates:
            break
        for local_id, rel_path in candidates:
            tried.add(local_id)
            if _claim_one(s, local_id, PurePosixPath(rel_path).name, now):
                claimed.append(local_id)
    if not claimed:
        return []
    fresh = s.scalars(
        select(LocalFile).where(LocalFile.id.in_(claimed)).execution_options(populate_existing=True)
    )
    by_id = {row.id: rows.to_local_record(row) for row in fresh}
    return [by_id[local_id] for local_id in claimed]


def _claim_one(s: Session, local_id: int, filename: str, now: datetime) -> bool:
    result = s.execute(
        update(LocalFile)
        .where(LocalFile.id == local_id, LocalFile.state == LocalState.PENDING)
        .values(
            state=LocalState.UPLOADING,
            attempts=LocalFile.attempts + 1,
            intent_started_at=func.coalesce(
                LocalFile.intent_started_at, literal(now, UTCDateTime())
            ),
            intent_filename=func.coalesce(LocalFile.intent_filename, filename),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def inflight_uploads(s: Session) -> list[LocalFileRecord]:
    """Rows in ``uploading``: after a crash, each must be adopted or retried."""
    query = select(LocalFile).where(LocalFile.state == LocalState.UPLOADING)
    return [rows.to_local_record(row) for row in s.scalars(query.order_by(LocalFile.id))]


def reset_inflight(s: Session, *, now: datetime) -> int:
    """After a restart: every ``uploading`` row goes back to ``pending``, due now.

    The intent stays, so the next attempt first looks for the earlier upload on the server.
    Returns how many rows were reset.
    """
    result = s.execute(
        update(LocalFile)
        .where(LocalFile.state == LocalState.UPLOADING)
        .values(state=LocalState.PENDING, next_attempt_at=None, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    assert isinstance(result, CursorResult)
    return result.rowcount


def next_due_at(s: Session, *, folders: Collection[str] | None = None) -> datetime | None:
    """When the earliest ``pending`` row is (or was) due; None when nothing is pending.

    A row never tried is due since it became pending, so the answer may lie in the past.
    """
    query = select(func.min(_DUE_AT)).where(LocalFile.state == LocalState.PENDING)
    if folders is not None:
        query = query.where(LocalFile.folder.in_(list(folders)))
    return s.scalar(query)


def record_upload(
    s: Session,
    local_id: int,
    *,
    file_id: str,
    filename: str,
    bytes: int,
    sha256: str,
    purpose: str,
    created_at: datetime,
    now: datetime,
    action: str = "upload",
) -> list[str]:
    """Record that the row's content now exists remotely as ``file_id`` (uploaded or adopted).

    The row becomes ``uploaded`` pointing at ``file_id``, with intent, retry time and error
    cleared, unless its content moved on meanwhile (its sha256 differs): then it keeps its
    state and only the pointer moves. The version the row pointed at before is superseded when
    no other row still points at it; those ids are returned (the caller deletes them when the
    folder replaces changed files).
    """
    row = rows.local_row(s, local_id)
    remote = s.get(RemoteFile, file_id)
    if remote is None:
        s.add(
            RemoteFile(
                file_id=file_id,
                purpose=purpose,
                filename=filename,
                bytes=bytes,
                sha256=sha256,
                created_at=created_at,
                uploaded_at=now,
                local_file_id=row.id,
                folder=row.folder,
                rel_path=row.rel_path,
            )
        )
    else:
        remote.superseded_at = None  # recorded before and current again
    previous = row.remote_file_id
    row.remote_file_id = file_id
    row.intent_started_at = None
    row.intent_filename = None
    if row.sha256 == sha256:
        rows.move_state(row, LocalState.UPLOADED, now)
        row.next_attempt_at = None
        row.last_error = None
    row.updated_at = now
    audit_log.audit(
        s,
        action,
        now=now,
        folder=row.folder,
        rel_path=row.rel_path,
        sha256=sha256,
        file_id=file_id,
        bytes=bytes,
        detail=None if filename == PurePosixPath(row.rel_path).name else f"as {filename}",
    )
    if previous is None or previous == file_id:
        s.flush()
        return []
    return remotes.supersede_if_orphaned(s, previous, now=now)


def reuse_remote(
    s: Session, local_id: int, remote: RemoteFileRecord, *, now: datetime
) -> list[str]:
    """The row's content is already on the remote as ``remote``: point at it, ``uploaded``.

    A superseded ``remote`` becomes current again. Like :func:`record_upload`, returns the ids
    of versions this superseded (none in the common case).
    """
    row = rows.local_row(s, local_id)
    previous = row.remote_file_id
    row.remote_file_id = remote.file_id
    rows.move_state(row, LocalState.UPLOADED, now)
    row.next_attempt_at = None
    row.last_error = None
    stored = s.get(RemoteFile, remote.file_id)
    if stored is not None:
        stored.superseded_at = None
    audit_log.audit(
        s,
        "reuse",
        now=now,
        folder=row.folder,
        rel_path=row.rel_path,
        sha256=remote.sha256,
        file_id=remote.file_id,
        bytes=remote.bytes,
        detail=f"same content as {remote.rel_path} in {remote.folder}",
    )
    if previous is None or previous == remote.file_id:
        s.flush()
        return []
    return remotes.supersede_if_orphaned(s, previous, now=now)


def record_failure(
    s: Session,
    local_id: int,
    *,
    error: str,
    next_attempt_at: datetime | None,
    give_up: bool,
    now: datetime,
    keep_intent: bool = False,
) -> None:
    """An attempt failed: back to ``pending`` until ``next_attempt_at``, or ``failed``.

    ``keep_intent`` keeps the upload intent when the request may have reached the server, so
    the next attempt looks for it before sending again; giving up always forgets it.
    """
    row = rows.local_row(s, local_id)
    if give_up:
        rows.move_state(row, LocalState.FAILED, now)
        row.next_attempt_at = None
        audit_log.audit(
            s,
            "give_up",
            now=now,
            folder=row.folder,
            rel_path=row.rel_path,
            sha256=row.sha256,
            bytes=row.size,
            detail=f"after {row.attempts} attempt(s): {error}",
        )
    else:
        rows.move_state(row, LocalState.PENDING, now)
        row.next_attempt_at = next_attempt_at
        if not keep_intent:
            row.intent_started_at = None
            row.intent_filename = None
    row.last_error = error
    s.flush()


def retry_failed(
    s: Session, *, folders: Collection[str] | None = None, now: datetime | None = None
) -> int:
    """Give ``failed`` rows a fresh series of attempts, due now; returns how many.

    ``now`` defaults to the current time (pass the injected clock's value when there is one).
    """
    moment = now if now is not None else datetime.now(UTC)
    query = select(LocalFile).where(LocalFile.state == LocalState.FAILED)
    if folders is not None:
        query = query.where(LocalFile.folder.in_(list(folders)))
    count = 0
    for row in s.scalars(query):
        rows.move_state(row, LocalState.PENDING, moment)
        row.attempts = 0
        row.next_attempt_at = None
        count += 1
    s.flush()
    return count
