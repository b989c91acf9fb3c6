"""The audit trail (what syncd did to the remote, and why) and the small ``meta`` table.

Audit lines are only ever appended: they outlive renames, deletions and row changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from syncd.store import rows
from syncd.store.prepared import Prepared
from syncd.store.records import AuditRecord
from syncd.store.schema import AuditEntry, Meta, RemoteFile

__all__ = ["audit", "audit_entries", "audit_remote", "get_meta", "set_meta"]

assert isinstance(AuditEntry.__table__, Table)
_AUDIT = AuditEntry.__table__
_COLUMNS = ("at", "action", "folder", "rel_path", "sha256", "file_id", "bytes", "detail")
#: Runs once per upload: prepared (see :mod:`syncd.store.prepared`).
_INSERT = Prepared(insert(_AUDIT).values(rows.column_binds(_AUDIT, _COLUMNS)))


def audit(
    s: Session,
    action: str,
    *,
    now: datetime,
    folder: str | None = None,
    rel_path: str | None = None,
    sha256: str | None = None,
    file_id: str | None = None,
    bytes: int | None = None,
    detail: str | None = None,
) -> None:
    """Append one line: ``action`` is upload | adopt | reuse | quarantine | supersede | delete |
    rename | give_up | vanished_from_remote | ... (free text, kept short)."""
    # A Core insert: one line per upload, and the ORM's unit of work would cost several times
    # the statement itself.
    _INSERT.run(
        s,
        rows.column_params(
            {
                "at": now,
                "action": action,
                "folder": folder,
                "rel_path": rel_path,
                "sha256": sha256,
                "file_id": file_id,
                "bytes": bytes,
                "detail": detail,
            }
        ),
    )


def audit_remote(
    s: Session, action: str, row: RemoteFile, *, now: datetime, detail: str | None = None
) -> None:
    """An audit line about a recorded remote file, naming the local file it came from."""
    audit(
        s,
        action,
        now=now,
        folder=row.folder,
        rel_path=row.rel_path,
        sha256=row.sha256,
        file_id=row.file_id,
        bytes=row.bytes,
        detail=detail,
    )


def audit_entries(
    s: Session,
    *,
    limit: int | None = None,
    action: str | None = None,
    file_id: str | None = None,
) -> list[AuditRecord]:
    """Audit lines, newest first; optionally only one action or one remote file."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if file_id is not None:
        query = query.where(AuditEntry.file_id == file_id)
    if limit is not None:
        query = query.limit(limit)
    return [rows.to_audit_record(row) for row in s.scalars(query)]


def get_meta(s: Session, key: str) -> str | None:
    """The value stored under ``key``, or None."""
    row = s.get(Meta, key)
    return None if row is None else row.value


def set_meta(s: Session, key: str, value: str) -> None:
    """Store ``value`` under ``key`` (replacing any earlier value).

    One upsert statement: several nodes starting together on one store each read the key as
    absent and would each insert it (a duplicate key on ``pk_meta``, which ended a node).
    """
    s.flush()
    table = Meta.__table__
    assert isinstance(table, Table)
    upsert: Any
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        upsert = postgresql.insert(table).values(key=key, value=value)
    else:
        from sqlalchemy.dialects import sqlite

        upsert = sqlite.insert(table).values(key=key, value=value)
    s.execute(upsert.on_conflict_do_update(index_elements=["key"], set_={"value": value}))
    s.expire_all()
