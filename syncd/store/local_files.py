"""Rows of ``local_files``: what the pipeline observed on disk, and the queue's totals and ages.

Writers here record observations (stat, hash, verdict, renames, vanished paths); the upload
queue's transitions live in :mod:`syncd.store.upload_queue`. What runs once per file or once
per scan (lookups, the upsert, the fingerprints, the counts) is SQLAlchemy Core on prebuilt
statements; the rare writers keep the ORM.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime
from types import EllipsisType
from typing import Any

from sqlalchemy import (
    CursorResult,
    String,
    bindparam,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from syncd import plan
from syncd.domain import FileStat, LocalState
from syncd.errors import StoreError
from syncd.store import audit_log, rows
from syncd.store.prepared import Prepared
from syncd.store.records import LocalFileRecord
from syncd.store.schema import LocalFile

__all__ = [
    "FINGERPRINT_BATCH_ROWS",
    "Fingerprint",
    "find_missing_by_stat",
    "folder_fingerprints",
    "get_local",
    "get_local_by_id",
    "get_locals",
    "iter_fingerprints",
    "mark_missing",
    "oldest_unsynced_since",
    "pending_count",
    "pending_totals",
    "record_ctimes",
    "rename_local",
    "set_state",
    "upsert_local",
]

_QUEUED = (LocalState.PENDING, LocalState.UPLOADING)


_T = rows.LOCAL_TABLE
_BY_PATH = select(*rows.LOCAL_COLUMNS).where(
    _T.c.folder == bindparam("b_folder"), _T.c.rel_path == bindparam("b_rel_path")
)
_BY_PATHS = select(*rows.LOCAL_COLUMNS).where(
    _T.c.folder == bindparam("b_folder"),
    _T.c.rel_path.in_(bindparam("b_rel_paths", expanding=True)),
)
# The state is read as its plain string and looked up below: a TypeDecorator call per row is
# a good share of a 100,000-row scan.
_FINGERPRINTS = select(
    _T.c.rel_path,
    _T.c.size,
    _T.c.mtime_ns,
    _T.c.inode,
    type_coerce(_T.c.state, String),
    _T.c.sha256,
    _T.c.ctime_ns,
    _T.c.racy,
).where(_T.c.folder == bindparam("b_folder"))
_STATES = {state.value: state for state in LocalState}
_SET_CTIME = (
    update(_T)
    .where(
        _T.c.folder == bindparam("b_folder"),
        _T.c.rel_path == bindparam("b_rel_path"),
        _T.c.ctime_ns.is_(None),
    )
    .values(ctime_ns=bindparam("b_ctime_ns"))
)

#: One row of :func:`iter_fingerprints`: rel_path, size, mtime_ns, inode, state, sha256,
#: ctime_ns (0: not recorded), racy.
Fingerprint = tuple[str, int, int, int, LocalState, str | None, int, bool]
#: Rows :func:`iter_fingerprints` fetches from the cursor at a time.
FINGERPRINT_BATCH_ROWS = 2000


# Key order is the byte order of the UTF-8 keys, i.e. code point order: what SQLite's default
# BINARY collation gives (the (folder, rel_path) unique index serves it, no sort). PostgreSQL
# compares text by the database's locale unless told otherwise, so it is told "C" (bytes).
# Any other backend gets the plain order; the scan's merge checks the order as it reads.
_KEY_ORDER_BY_DIALECT = {
    "sqlite": _FINGERPRINTS.order_by(_T.c.rel_path),
    "postgresql": _FINGERPRINTS.order_by(_T.c.rel_path.collate("C")),
}
_KEY_ORDER_DEFAULT = _KEY_ORDER_BY_DIALECT["sqlite"]
#: Read for a write: on PostgreSQL the row stays locked until the transaction ends, so another
#: node's claim of it waits instead of being overwritten by a verdict read before it.
_BY_PATH_FOR_UPDATE = Prepared(_BY_PATH.with_for_update())
#: A new row, unless another node (or thread) inserted the same path first: then nothing is
#: inserted and the row is updated like any stored one.
_INSERT_LOCAL = insert(_T)


#: The columns a new row is inserted with (the others take their defaults).
_NEW_ROW_COLUMNS = (
    "folder",
    "rel_path",
    "purpose",
    "size",
    "mtime_ns",
    "inode",
    "ctime_ns",
    "racy",
    "sha256",
    "state",
    "attempts",
    "next_attempt_at",
    "last_error",
    "remote_file_id",
    "intent_started_at",
    "intent_filename",
    "first_seen_at",
    "updated_at",
    "state_changed_at",
    "warnings",
)


@functools.cache
def _insert_unless_present_statement(dialect: str) -> Prepared | None:
    """The dialect's INSERT ... ON CONFLICT DO NOTHING RETURNING id, or None for others.

    Its parameters are the columns prefixed ``v_``: a scan of new files runs it once per file.
    """
    insert_into = rows.dialect_insert(dialect, _T.name)
    if insert_into is None:
        return None
    values = rows.column_binds(_T, _NEW_ROW_COLUMNS)
    return Prepared(insert_into.values(values).on_conflict_do_nothing().returning(_T.c.id))


def get_local(s: Session, folder: str, rel_path: str) -> LocalFileRecord | None:
    """The row of ``rel_path`` in ``folder``, or None."""
    s.flush()  # Core reads do not autoflush: let them see this session's pending changes
    row = s.execute(_BY_PATH, {"b_folder": folder, "b_rel_path": rel_path}).one_or_none()
    return None if row is None else LocalFileRecord(*row)


def get_locals(s: Session, folder: str, rel_paths: Iterable[str]) -> dict[str, LocalFileRecord]:
    """The rows of those of ``rel_paths`` that have one, by path: one query per few hundred."""
    s.flush()
    found: dict[str, LocalFileRecord] = {}
    for chunk in rows.chunked(list(rel_paths)):
        result = s.execute(_BY_PATHS, {"b_folder": folder, "b_rel_paths": list(chunk)})
        for row in result:
            record = LocalFileRecord(*row)
            found[record.rel_path] = record
    return found


def lock_local(s: Session, local_id: int) -> LocalFileRecord | None:
    """The row with ``local_id``, locked until the transaction ends, or None.

    On PostgreSQL the row is read ``FOR UPDATE``; on SQLite the transaction takes the write lock
    first (:func:`~syncd.store.rows.begin_write`), so no other writer changes it meanwhile.
    """
    s.flush()
    rows.begin_write(s)
    row = _LOCK_BY_ID.first(s, {"b_id": local_id})
    return None if row is None else LocalFileRecord(*row)


#: Prebuilt: an upload's outcome reads its row this way once per file.
_LOCK_BY_ID = Prepared(
    select(*rows.LOCAL_COLUMNS).where(_T.c.id == bindparam("b_id")).with_for_update()
)


def get_local_by_id(s: Session, local_id: int) -> LocalFileRecord | None:
    """The row with ``local_id``, or None."""
    row = s.get(LocalFile, local_id)
    return None if row is None else rows.to_local_record(row)


def folder_fingerprints(
    s: Session, folder: str
) -> dict[str, tuple[FileStat, LocalState, str | None]]:
    """Every known path of ``folder`` with its stat, state and sha256, in one query (for a scan)."""
    s.flush()
    states = _STATES
    return {
        rel_path: (FileStat(size, mtime_ns, inode, ctime_ns or 0), states[state], sha256)
        for rel_path, size, mtime_ns, inode, state, sha256, ctime_ns, _racy in s.execute(
            _FINGERPRINTS, {"b_folder": folder}
        )
    }


def iter_fingerprints(
    s: Session, folder: str, *, batch_rows: int = FINGERPRINT_BATCH_ROWS
) -> Iterator[Fingerprint]:
    """Every known path of ``folder`` with its stat, state and sha256, in key order.

    Key order is strictly ascending code point order of ``rel_path`` (the byte order of its
    UTF-8 form): the order of :func:`syncd.scanner.scan_folder`, so a scan merges both in one
    pass. Rows stream from one cursor ``batch_rows`` at a time, as plain tuples, so a folder of
    any size costs constant memory; iterate inside the Session that produced the iterator.

    Raises:
        StoreError: the database returned the rows in another order (a text collation that
            does not compare bytes): a merge would take present files for vanished ones.
    """
    s.flush()
    query = _KEY_ORDER_BY_DIALECT.get(s.get_bind().dialect.name, _KEY_ORDER_DEFAULT)
    states = _STATES
    last_key = ""  # sorts before every key
    options = {"yield_per": batch_rows}
    # Closed however the caller stops: an abandoned cursor must not hold its read snapshot.
    with s.execute(query, {"b_folder": folder}, execution_options=options) as result:
        for rel_path, size, mtime_ns, inode, state, sha256, ctime_ns, racy in result:
            if rel_path <= last_key:
                raise StoreError(
                    f"rows of folder {folder} came out of key order ({rel_path!r} after "
                    f"{last_key!r}): the database does not compare local_files.rel_path bytewise"
                )
            last_key = rel_path
            yield rel_path, size, mtime_ns, inode, states[state], sha256, ctime_ns or 0, racy


def record_ctimes(s: Session, folder: str, ctimes: Iterable[tuple[str, int]]) -> None:
    """Fill in the ctime of rows recorded before syncd kept it (``(rel_path, ctime_ns)``
    pairs), whose fingerprint is otherwise unchanged: they are not hashed again for it."""
    params = [
        {"b_folder": folder, "b_rel_path": rel_path, "b_ctime_ns": ctime_ns}
        for rel_path, ctime_ns in ctimes
    ]
    if params:
        s.execute(_SET_CTIME, params)


def _insert_unless_present(s: Session, values: dict[str, Any]) -> int | None:
    """Insert a new row; its id, or None when the path's row exists already (a race)."""
    statement = _insert_unless_present_statement(s.get_bind().dialect.name)
    if statement is None:
        result = s.execute(_INSERT_LOCAL, values)
        assert isinstance(result, CursorResult)
        (local_id,) = result.inserted_primary_key or (None,)
        assert isinstance(local_id, int)
        return local_id
    assert len(values) == len(_NEW_ROW_COLUMNS), "a new row names every column of the insert"
    inserted = statement.first(s, rows.column_params(values))
    return None if inserted is None else int(inserted[0])


def upsert_local(
    s: Session,
    folder: str,
    rel_path: str,
    *,
    purpose: str,
    stat: FileStat,
    sha256: str | None,
    state: LocalState,
    last_error: str | None = None,
    warnings: str | None = None,
    remote_file_id: str | None = None,
    reset_attempts: bool = False,
    keep_settled: bool = False,
    racy: bool = False,
    seen_new: bool = False,
    now: datetime,
) -> LocalFileRecord:
    """Record what was observed at ``rel_path``: create the row or update it in place.

    ``last_error`` and ``warnings`` replace the stored ones (None clears them).
    ``racy``: the fingerprint is too new to trust (see :func:`syncd.plan.is_racy`).
    ``remote_file_id`` None keeps the stored pointer: it names the last uploaded version, which
    a later upload supersedes.
    ``reset_attempts`` starts a fresh retry series (new content): attempts 0, due now, and any
    earlier upload intent forgotten (it was for other bytes). With ``keep_settled``, a row that
    already holds this content in a judged state (as another node or thread may have recorded
    since the caller read it) keeps its state: the content was judged, and maybe claimed.
    ``seen_new``: the caller found no row for the path, so the insert is tried first (a scan of
    new files saves a look-up per file); a row another writer inserted meanwhile is then read
    and updated as usual.
    """
    s.flush()
    rows.begin_write(s)
    key = {"b_folder": folder, "b_rel_path": rel_path}
    stored = None if seen_new else _BY_PATH_FOR_UPDATE.first(s, key)
    if stored is None:
        values: dict[str, Any] = {
            "folder": folder,
            "rel_path": rel_path,
            "purpose": purpose,
            "size": stat.size,
            "mtime_ns": stat.mtime_ns,
            "inode": stat.inode,
            "ctime_ns": stat.ctime_ns or None,
            "racy": racy,
            "sha256": sha256,
            "state": state,
            "attempts": 0,
            "next_attempt_at": None,
            "last_error": last_error,
            "remote_file_id": remote_file_id,
            "intent_started_at": None,
            "intent_filename": None,
            "first_seen_at": now,
            "updated_at": now,
            "state_changed_at": now,
            "warnings": warnings,
        }
        local_id = _insert_unless_present(s, values)
        if local_id is not None:
            return LocalFileRecord(id=local_id, **values)
        stored = _BY_PATH_FOR_UPDATE.first(s, key)
        assert stored is not None, "the row the insert conflicted with is there"
    record = LocalFileRecord(*stored)
    if (
        keep_settled
        and record.sha256 == sha256
        and record.state in plan.SETTLED_STATES
        and state in plan.SETTLED_STATES
    ):
        state, reset_attempts = record.state, False
    if rows.forgets_upload(record.state, record.sha256, record.remote_file_id, state, sha256):
        # The caller judged a row it read before this content's upload was recorded: the
        # state machine refuses to forget a recorded upload whatever a caller asks.
        state, reset_attempts = record.state, False
    changes = rows.state_transition(record.state, state, now)
    changes.update(
        purpose=purpose,
        size=stat.size,
        mtime_ns=stat.mtime_ns,
        inode=stat.inode,
        ctime_ns=stat.ctime_ns or None,
        racy=racy,
        sha256=sha256,
        last_error=last_error,
        warnings=warnings,
    )
    if remote_file_id is not None:
        changes["remote_file_id"] = remote_file_id
    if reset_attempts:
        changes.update(
            attempts=0, next_attempt_at=None, intent_started_at=None, intent_filename=None
        )
    rows.update_local(s, record.id, changes)
    return dataclasses.replace(record, **changes)


def set_state(
    s: Session,
    local_id: int,
    state: LocalState,
    *,
    now: datetime,
    last_error: str | None = None,
    remote_file_id: str | EllipsisType | None = ...,
    next_attempt_at: datetime | None = None,
    expect_sha256: str | None = None,
) -> None:
    """Move one row to ``state``; ``last_error`` and ``next_attempt_at`` are set as given.

    ``remote_file_id`` is left alone unless passed (None clears it). Leaving ``pending`` and
    ``uploading`` forgets the upload intent. With ``expect_sha256`` (an attempt's outcome) the
    row is left alone unless it still holds that content and the move forgets no upload.
    """
    rows.begin_write(s)
    row = rows.local_row(s, local_id, lock=True)
    if expect_sha256 is not None and (
        row.sha256 != expect_sha256
        or rows.forgets_upload(row.state, row.sha256, row.remote_file_id, state, expect_sha256)
    ):
        return  # an outcome for other bytes, or for content recorded meanwhile: not this row's
    rows.move_state(row, state, now)
    row.last_error = last_error
    row.next_attempt_at = next_attempt_at
    if not isinstance(remote_file_id, EllipsisType):
        row.remote_file_id = remote_file_id


def rename_local(
    s: Session, local_id: int, new_rel_path: str, *, now: datetime, ctime_ns: int = 0
) -> None:
    """Move a row to ``new_rel_path`` in its folder, keeping its state, history and remote file.

    ``ctime_ns``: the file's ctime after the move (a rename moves it), kept in the fingerprint
    so the next look does not read the file again; 0: not known, and the next rescan records
    it without reading the file.

    Raises:
        StoreError: another row already holds ``new_rel_path`` (judge that path instead).
    """
    row = rows.local_row(s, local_id)
    old_rel_path = row.rel_path
    if old_rel_path == new_rel_path:
        return
    taken = s.scalar(
        select(LocalFile.id).where(
            LocalFile.folder == row.folder, LocalFile.rel_path == new_rel_path
        )
    )
    if taken is not None:
        raise StoreError(
            f"cannot rename {old_rel_path!r} to {new_rel_path!r} in {row.folder}: "
            "that path already has its own row"
        )
    row.rel_path = new_rel_path
    row.updated_at = now
    row.ctime_ns = ctime_ns or None
    audit_log.audit(
        s,
        "rename",
        now=now,
        folder=row.folder,
        rel_path=new_rel_path,
        sha256=row.sha256,
        file_id=row.remote_file_id,
        bytes=row.size,
        detail=f"renamed from {old_rel_path}",
    )
    s.flush()


def mark_missing(s: Session, folder: str, rel_paths: Iterable[str], *, now: datetime) -> int:
    """Mark these paths of ``folder`` as gone from disk; returns how many rows changed.

    Their remote files stay (retention decides); a pending upload of a vanished file is dropped.
    """
    changed = 0
    for chunk in rows.chunked(sorted(set(rel_paths))):
        result = s.execute(
            update(LocalFile)
            .where(
                LocalFile.folder == folder,
                LocalFile.rel_path.in_(chunk),
                LocalFile.state != LocalState.MISSING,
            )
            .values(
                state=LocalState.MISSING,
                state_changed_at=now,
                updated_at=now,
                next_attempt_at=None,
                intent_started_at=None,
                intent_filename=None,
            )
        )
        assert isinstance(result, CursorResult)
        changed += result.rowcount
    return changed


def find_missing_by_stat(s: Session, folder: str, stat: FileStat) -> LocalFileRecord | None:
    """A ``missing`` row of ``folder`` with exactly this stat (inode included): a moved file.

    Without an inode (0: unknown) nothing matches, since size and mtime alone are weak evidence.
    """
    if not stat.inode:
        return None
    row = s.scalars(
        select(LocalFile)
        .where(
            LocalFile.folder == folder,
            LocalFile.state == LocalState.MISSING,
            LocalFile.inode == stat.inode,
            LocalFile.size == stat.size,
            LocalFile.mtime_ns == stat.mtime_ns,
        )
        .order_by(LocalFile.state_changed_at.desc(), LocalFile.id.desc())
        .limit(1)
    ).one_or_none()
    return None if row is None else rows.to_local_record(row)


def pending_count(s: Session, *, now: datetime | None = None) -> int:
    """Rows waiting for or in an upload; with ``now``, pending rows not yet due are left out."""
    query = select(func.count()).select_from(LocalFile).where(LocalFile.state.in_(_QUEUED))
    if now is not None:
        query = query.where(
            or_(
                LocalFile.state == LocalState.UPLOADING,
                LocalFile.next_attempt_at.is_(None),
                LocalFile.next_attempt_at <= now,
            )
        )
    return s.scalar(query) or 0


def pending_totals(s: Session, *, folders: Collection[str] | None = None) -> tuple[int, int]:
    """(files, bytes) waiting for or in an upload, optionally only in ``folders``."""
    query = select(func.count(), func.coalesce(func.sum(LocalFile.size), 0)).where(
        LocalFile.state.in_(_QUEUED)
    )
    if folders is not None:
        query = query.where(LocalFile.folder.in_(list(folders)))
    files, size = s.execute(query).one()
    return int(files), int(size)


def oldest_unsynced_by_folder(s: Session, folders: Collection[str]) -> dict[str, datetime]:
    """folder key -> since when its longest-waiting file (pending, uploading or unstable) has
    not been on the remote; folders with nothing waiting are left out."""
    if not folders:
        return {}
    query = (
        select(LocalFile.folder, func.min(LocalFile.state_changed_at))
        .where(LocalFile.state.in_(rows.UNSYNCED_STATES), LocalFile.folder.in_(list(folders)))
        .group_by(LocalFile.folder)
    )
    # min() keeps the column's type, so the values come back aware (UTCDateTime).
    return {folder: since for folder, since in s.execute(query)}


def oldest_unsynced_since(s: Session) -> datetime | None:
    """Since when the longest-waiting file's current content has not been on the remote."""
    query = select(func.min(LocalFile.state_changed_at)).where(
        LocalFile.state.in_(rows.UNSYNCED_STATES)
    )
    # min() keeps the column's type, so the value comes back aware (UTCDateTime).
    return s.scalar(query)
