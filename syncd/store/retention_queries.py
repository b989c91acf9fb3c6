"""Reads the retention job needs: aged remote files with the local rows pointing at them.

Read-only: deleting goes through :func:`syncd.store.remotes.record_remote_deleted`, which keeps
the audit trail and moves the rows that held a deleted file to ``expired``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.store import rows
from syncd.store.records import RemoteFileRecord
from syncd.store.schema import LocalFile, RemoteFile

__all__ = ["RemoteHolding", "aged_remote_files", "local_row_count", "remote_holding"]


@dataclass(frozen=True, slots=True)
class RemoteHolding:
    """A live remote file and the (state, sha256) of every local row that points at it."""

    remote: RemoteFileRecord
    holders: tuple[tuple[LocalState, str | None], ...]


def aged_remote_files(s: Session, folder: str, *, created_before: datetime) -> list[RemoteHolding]:
    """Live remote files of ``folder`` created before ``created_before``, oldest first.

    Only rows of ``remote_files`` are ever returned: what syncd did not record as its own upload
    cannot become a candidate. The age cut happens in SQL, so files too young to be due are
    never loaded into memory.
    """
    query = (
        select(RemoteFile)
        .where(
            RemoteFile.folder == folder,
            RemoteFile.deleted_at.is_(None),
            RemoteFile.created_at < created_before,
        )
        .order_by(RemoteFile.created_at, RemoteFile.file_id)
    )
    remotes = [rows.to_remote_record(row) for row in s.scalars(query)]
    return _with_holders(s, remotes)


def remote_holding(s: Session, file_id: str) -> RemoteHolding | None:
    """The live remote file ``file_id`` with its holders, or None when unknown or deleted.

    Read again just before a delete: the file may have become current again meanwhile.
    """
    row = s.get(RemoteFile, file_id)
    if row is None or row.deleted_at is not None:
        return None
    return _with_holders(s, [rows.to_remote_record(row)])[0]


def local_row_count(s: Session, folder: str) -> int:
    """How many local rows ``folder`` has, in any state (the files the store knows there)."""
    query = select(func.count()).select_from(LocalFile).where(LocalFile.folder == folder)
    return s.scalar(query) or 0


def _with_holders(s: Session, remotes: Sequence[RemoteFileRecord]) -> list[RemoteHolding]:
    holders: dict[str, list[tuple[LocalState, str | None]]] = {}
    for chunk in rows.chunked([remote.file_id for remote in remotes]):
        query = select(LocalFile.remote_file_id, LocalFile.state, LocalFile.sha256).where(
            LocalFile.remote_file_id.in_(list(chunk))
        )
        for file_id, state, sha256 in s.execute(query):
            if file_id is not None:  # the IN clause says so; this tells the type checker
                holders.setdefault(file_id, []).append((LocalState(state), sha256))
    return [
        RemoteHolding(remote=remote, holders=tuple(holders.get(remote.file_id, ())))
        for remote in remotes
    ]
