"""Rows of ``remote_files``: what is (or was) on the Files API because of syncd.

A remote file is *current* while some local row points at it (``remote_file_id``), *superseded*
once none does, and *deleted* when syncd deleted it (rows are kept, for the audit and for dedup).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.store import audit_log, rows
from syncd.store.records import RemoteFileRecord
from syncd.store.schema import AuditEntry, LocalFile, RemoteFile

__all__ = [
    "find_live_remote_by_content",
    "find_live_remotes_by_content",
    "get_remote",
    "record_remote_deleted",
    "remote_files",
    "remote_ids_with_filename",
    "supersede_if_orphaned",
]


def get_remote(s: Session, file_id: str) -> RemoteFileRecord | None:
    """The remote file ``file_id`` as recorded, or None."""
    row = s.get(RemoteFile, file_id)
    return None if row is None else rows.to_remote_record(row)


_R = rows.REMOTE_TABLE
_LIVE_BY_CONTENTS = (
    select(*rows.REMOTE_COLUMNS)
    .where(
        _R.c.sha256.in_(bindparam("b_sha256s", expanding=True)),
        _R.c.purpose == bindparam("b_purpose"),
        _R.c.deleted_at.is_(None),
    )
    .order_by(
        _R.c.sha256,
        case((_R.c.superseded_at.is_(None), 0), else_=1),
        _R.c.uploaded_at.desc(),
        _R.c.file_id,
    )
)


def find_live_remote_by_content(s: Session, sha256: str, purpose: str) -> RemoteFileRecord | None:
    """A not-deleted remote file with this content and purpose: current ones first, then the
    most recently uploaded."""
    return find_live_remotes_by_content(s, (sha256,), purpose).get(sha256)


def find_live_remotes_by_content(
    s: Session, sha256s: Collection[str], purpose: str
) -> dict[str, RemoteFileRecord]:
    """:func:`find_live_remote_by_content` for many contents at once (one query per few
    hundred): the pick for each sha256 that has one."""
    s.flush()  # Core reads do not autoflush: let them see this session's pending changes
    found: dict[str, RemoteFileRecord] = {}
    for chunk in rows.chunked(sorted(sha256s)):
        result = s.execute(_LIVE_BY_CONTENTS, {"b_sha256s": list(chunk), "b_purpose": purpose})
        for row in result:
            record = RemoteFileRecord(*row)
            found.setdefault(record.sha256, record)  # the first of each is the pick
    return found


def remote_files(
    s: Session, *, folder: str | None = None, include_deleted: bool = False
) -> list[RemoteFileRecord]:
    """Recorded remote files, oldest upload first; optionally of one folder and with deleted."""
    query = select(RemoteFile).order_by(RemoteFile.uploaded_at, RemoteFile.file_id)
    if folder is not None:
        query = query.where(RemoteFile.folder == folder)
    if not include_deleted:
        query = query.where(RemoteFile.deleted_at.is_(None))
    return [rows.to_remote_record(row) for row in s.scalars(query)]


def remote_ids_with_filename(s: Session, filename: str) -> set[str]:
    """Ids of every recorded remote file (deleted too) uploaded under ``filename``.

    Used before adopting an unrecorded upload: these are known, so not candidates.
    """
    return set(s.scalars(select(RemoteFile.file_id).where(RemoteFile.filename == filename)))


def record_remote_deleted(s: Session, file_id: str, *, reason: str, now: datetime) -> None:
    """Record that ``file_id`` was deleted from the remote, and why (idempotent).

    Local rows still showing it as their uploaded content become ``expired``: their bytes are
    no longer on the remote, and they are not uploaded again unless the content changes.
    An id syncd never recorded gets one audit line.
    """
    row = s.get(RemoteFile, file_id)
    if row is None:
        already = s.scalar(
            select(AuditEntry.id)
            .where(AuditEntry.action == "delete", AuditEntry.file_id == file_id)
            .limit(1)
        )
        if already is None:
            audit_log.audit(
                s, "delete", now=now, file_id=file_id, detail=f"{reason} (not recorded by syncd)"
            )
        return
    if row.deleted_at is not None:
        return
    row.deleted_at = now
    row.delete_reason = reason
    audit_log.audit_remote(s, "delete", row, now=now, detail=reason)
    holders = s.scalars(
        select(LocalFile).where(
            LocalFile.remote_file_id == file_id, LocalFile.state == LocalState.UPLOADED
        )
    )
    for holder in holders:
        rows.move_state(holder, LocalState.EXPIRED, now)
    s.flush()


def supersede_if_orphaned(s: Session, file_id: str, *, now: datetime) -> list[str]:
    """Mark ``file_id`` superseded when no local row points at it any more.

    Another row may still point at it (the same bytes at two paths, after a reuse): then it is
    current for that row and must stay. Returns ``[file_id]`` when it was superseded here.
    """
    s.flush()
    holders = s.scalar(
        select(func.count()).select_from(LocalFile).where(LocalFile.remote_file_id == file_id)
    )
    row = s.get(RemoteFile, file_id)
    if holders or row is None or row.deleted_at is not None or row.superseded_at is not None:
        return []
    row.superseded_at = now
    audit_log.audit_remote(s, "supersede", row, now=now)
    return [file_id]
