"""Paged reads for the status page and its JSON: problems, files, activity, lineage lookups.

Every list is one page (``limit``/``offset``) with the total beside it, so a store with 100k
rows answers in milliseconds and nothing is held in memory past the page. Counts that cover
whole folders use the same indexes as the daemon's status tick.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.store import rows
from syncd.store.records import AuditRecord, LocalFileRecord, RemoteFileRecord
from syncd.store.schema import AuditEntry, LocalFile, RemoteFile

__all__ = [
    "LINEAGE_LIMIT",
    "PROBLEM_STATES",
    "UPLOAD_ACTIONS",
    "Page",
    "activity_page",
    "files_page",
    "lineage",
    "problems_page",
    "uploads_since",
]

#: States a person has to look at: the file is not on the remote and will not get there alone.
PROBLEM_STATES = (LocalState.QUARANTINED, LocalState.FAILED, LocalState.UNSTABLE)
#: Audit actions that put content on the remote (an adoption found a lost upload's file).
UPLOAD_ACTIONS = ("upload", "adopt")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: A lineage lookup never returns more than this many remote files.
LINEAGE_LIMIT = 100


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a longer list, and how long the whole list is."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


def _paged(s: Session, query: Select[Any], *, limit: int, offset: int) -> tuple[list[Any], int]:
    total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return list(s.scalars(query.limit(limit).offset(offset))), total


def _local_page(
    s: Session,
    folders: Collection[str],
    folder: str | None,
    states: Collection[LocalState] | None,
    order: tuple[Any, ...],
    *,
    limit: int,
    offset: int,
) -> Page[LocalFileRecord]:
    scope = [folder] if folder is not None else list(folders)
    query = select(LocalFile).where(LocalFile.folder.in_(scope)).order_by(*order)
    if states is not None:
        query = query.where(LocalFile.state.in_(list(states)))
    found, total = _paged(s, query, limit=limit, offset=offset)
    return Page(tuple(rows.to_local_record(r) for r in found), total, limit, offset)


def problems_page(
    s: Session,
    folders: Collection[str],
    *,
    folder: str | None = None,
    limit: int,
    offset: int = 0,
) -> Page[LocalFileRecord]:
    """Quarantined, failed and unstable rows of ``folders`` (or only ``folder``), newest first."""
    newest_first = (LocalFile.state_changed_at.desc(), LocalFile.id.desc())
    return _local_page(s, folders, folder, PROBLEM_STATES, newest_first, limit=limit, offset=offset)


def files_page(
    s: Session,
    folders: Collection[str],
    *,
    folder: str | None = None,
    states: Collection[LocalState] | None = None,
    limit: int,
    offset: int = 0,
) -> Page[LocalFileRecord]:
    """Rows of ``folders`` (or only ``folder``, only ``states``) by folder and path."""
    by_path = (LocalFile.folder, LocalFile.rel_path)
    return _local_page(s, folders, folder, states, by_path, limit=limit, offset=offset)


def activity_page(
    s: Session, folders: Collection[str], *, limit: int, offset: int = 0
) -> Page[AuditRecord]:
    """Audit lines of ``folders`` (and those about no folder), newest first.

    ``total`` is not counted (the trail only grows; counting it would read all of it): it is
    ``offset`` plus the rows on this page, plus one when an older page exists.
    """
    query = (
        select(AuditEntry)
        .where(or_(AuditEntry.folder.in_(list(folders)), AuditEntry.folder.is_(None)))
        .order_by(AuditEntry.id.desc())
        .limit(limit + 1)
        .offset(offset)
    )
    found = [rows.to_audit_record(r) for r in s.scalars(query)]
    total = offset + len(found)
    return Page(tuple(found[:limit]), total, limit, offset)


def uploads_since(s: Session, folders: Collection[str], since: datetime) -> tuple[int, int]:
    """(files, bytes) uploaded or adopted in ``folders`` since ``since`` (the audit's index)."""
    query = select(func.count(), func.coalesce(func.sum(AuditEntry.bytes), 0)).where(
        AuditEntry.at >= since,
        AuditEntry.action.in_(UPLOAD_ACTIONS),
        AuditEntry.folder.in_(list(folders)),
    )
    files, size = s.execute(query).one()
    return int(files or 0), int(size or 0)


def lineage(
    s: Session, query_text: str, places: Collection[tuple[str, str]]
) -> list[RemoteFileRecord]:
    """Remote files whose content or source matches ``query_text``, newest upload first.

    A sha256 (64 hex digits) matches the content; anything else is a path in one of
    ``places`` (folder key, folder root on this node): relative to the folder, or absolute
    under its root. Every upload of the path's row counts (its versions, and the file the row
    holds after a rename). Both lookups use an index: a folder's path, a remote file's sha256.
    """
    text = query_text.strip()
    if not text:
        return []
    if _SHA256.fullmatch(text.lower()):
        where: Any = RemoteFile.sha256 == text.lower()
    else:
        relative = text.removeprefix("./")
        candidates = [(key, relative) for key, _root in places]
        candidates += [
            (key, text[len(root.rstrip("/")) + 1 :])
            for key, root in places
            if text.startswith(root.rstrip("/") + "/")
        ]
        local_ids = select(LocalFile.id).where(
            or_(
                *[
                    (LocalFile.folder == key) & (LocalFile.rel_path == rel)
                    for key, rel in candidates
                ]
            )
        )
        if not candidates:
            return []
        where = RemoteFile.local_file_id.in_(local_ids)
    found = s.scalars(
        select(RemoteFile)
        .where(where)
        .order_by(RemoteFile.uploaded_at.desc(), RemoteFile.file_id)
        .limit(LINEAGE_LIMIT)
    )
    return [rows.to_remote_record(r) for r in found]
