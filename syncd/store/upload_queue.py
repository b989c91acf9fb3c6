"""The upload queue: ``pending`` rows are the work; claiming, finishing and failing them.

The database is the queue, so every step is one transaction on the row: a claim records the
upload intent before any byte is sent, and an outcome clears it. A crash leaves the intent on
the row, so the next start can look for that upload on the server before sending it again.

Claims, the next due time and recording an upload run once per file, so they are SQLAlchemy
Core on prebuilt statements, and they find the earliest due rows through the
``(state, next_attempt_at, state_changed_at)`` index instead of sorting the whole queue: with
100,000 files queued, a claim stays a few index lookups.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from sqlalchemy import (
    BindParameter,
    CursorResult,
    Select,
    Text,
    bindparam,
    func,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.errors import StoreError
from syncd.store import audit_log, remotes, rows
from syncd.store.prepared import Prepared
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

_T = rows.LOCAL_TABLE
_PENDING = _T.c.state == LocalState.PENDING
_NOW = bindparam("b_now", type_=UTCDateTime())
_FOLDER: BindParameter[Any] = bindparam("b_folder")
_FOLDERS: BindParameter[Any] = bindparam("b_folders", expanding=True)
_TRIED: BindParameter[Any] = bindparam("b_tried", expanding=True)
_LIMIT: BindParameter[Any] = bindparam("b_limit")

#: A pending row is due at its retry time, or (never tried) since it became pending. The two
#: kinds are read apart, each in index order, and merged: ``coalesce`` would need a full sort.
_NEVER_TRIED = _PENDING & _T.c.next_attempt_at.is_(None)
_RETRYING = _PENDING & _T.c.next_attempt_at.is_not(None)

#: The claim re-checks that the row is still pending *and due*: between reading the due rows
#: and this update another worker may have claimed the row, failed, and put it back with a
#: later retry time; claiming it then would send it early, before looking for that attempt.
_CLAIM = (
    update(_T)
    .where(
        _T.c.id == bindparam("b_id"),
        _PENDING,
        _T.c.next_attempt_at.is_(None) | (_T.c.next_attempt_at <= _NOW),
    )
    .values(
        state=LocalState.UPLOADING,
        attempts=_T.c.attempts + 1,
        intent_started_at=func.coalesce(_T.c.intent_started_at, _NOW),
        intent_filename=func.coalesce(_T.c.intent_filename, bindparam("b_filename", type_=Text)),
        claimed_by=bindparam("b_node"),
        updated_at=_NOW,
    )
)
#: The claim and the claimed row in one statement where the database can (SQLite 3.35+,
#: PostgreSQL); elsewhere the row is read after the claim.
_CLAIM_RETURNING = Prepared(_CLAIM.returning(*rows.LOCAL_COLUMNS))
#: PostgreSQL, where several nodes claim from one queue: a row another node is claiming right
#: now (its row lock held) is skipped at once instead of waited for (``FOR UPDATE SKIP
#: LOCKED``, as Procrastinate, River and Oban claim jobs); the next due row is tried instead.
_CLAIM_SKIP_LOCKED = Prepared(
    _CLAIM.where(
        _T.c.id.in_(
            select(_T.c.id).where(_T.c.id == bindparam("b_id")).with_for_update(skip_locked=True)
        )
    ).returning(*rows.LOCAL_COLUMNS)
)
_CLAIM_COUNTED = Prepared(_CLAIM)
_ROW_BY_ID = Prepared(select(*rows.LOCAL_COLUMNS).where(_T.c.id == bindparam("b_id")))
_UPLOAD_TARGET = (
    select(_T.c.folder, _T.c.rel_path, _T.c.sha256, _T.c.state, _T.c.remote_file_id)
    .where(_T.c.id == bindparam("b_id"))
    .with_for_update()
)
_R = rows.REMOTE_TABLE
_REMOTE_EXISTS = select(_R.c.file_id).where(_R.c.file_id == bindparam("b_file_id"))
_INSERT_REMOTE = insert(_R)
_UNSUPERSEDE = update(_R).where(_R.c.file_id == bindparam("b_file_id")).values(superseded_at=None)


_REMOTE_COLUMNS = (
    "file_id",
    "purpose",
    "filename",
    "bytes",
    "sha256",
    "created_at",
    "uploaded_at",
    "local_file_id",
    "folder",
    "rel_path",
)


@functools.cache
def _record_remote_statement(dialect: str) -> Prepared | None:
    """The dialect's INSERT of a remote file that, for an id recorded before, only makes it
    current again (ON CONFLICT DO UPDATE); None for others (then: look, insert or update).

    One statement per upload instead of a look-up and an insert; its parameters are the
    columns prefixed ``v_``.
    """
    insert_into = rows.dialect_insert(dialect, _R.name)
    if insert_into is None:
        return None
    values = rows.column_binds(_R, _REMOTE_COLUMNS)
    return Prepared(
        insert_into.values(values).on_conflict_do_update(
            index_elements=[_R.c.file_id], set_={"superseded_at": None}
        )
    )


#: Which folders a query covers: all, one (``folder = ?``) or several (``folder IN (...)``).
#: One is the common case, and an expanding ``IN`` costs a re-render on every execution.
_Scope = Literal["all", "one", "many"]


def _scope(folders: Collection[str] | None) -> tuple[_Scope, dict[str, Any]]:
    if folders is None:
        return "all", {}
    listed = list(folders)
    if len(listed) == 1:
        return "one", {"b_folder": listed[0]}
    return "many", {"b_folders": listed}


def _in_scope(query: Select[Any], scope: _Scope) -> Select[Any]:
    if scope == "one":
        return query.where(_T.c.folder == _FOLDER)
    if scope == "many":
        return query.where(_T.c.folder.in_(_FOLDERS))
    return query


@functools.cache
def _due_query(scope: _Scope, *, tried: bool) -> Prepared:
    """Due rows as ``(due at, id, rel_path)``: the first of each kind, in one statement."""
    never = _in_scope(
        select(_T.c.state_changed_at.label("due"), _T.c.id, _T.c.rel_path).where(_NEVER_TRIED),
        scope,
    )
    retry = _in_scope(
        select(_T.c.next_attempt_at.label("due"), _T.c.id, _T.c.rel_path).where(
            _RETRYING, _T.c.next_attempt_at <= _NOW
        ),
        scope,
    )
    if tried:
        never, retry = never.where(_T.c.id.not_in(_TRIED)), retry.where(_T.c.id.not_in(_TRIED))
    # Each part is limited in its own index order; the caller merges the two short lists.
    firsts = (
        never.order_by(_T.c.state_changed_at, _T.c.id).limit(_LIMIT).subquery(),
        retry.order_by(_T.c.next_attempt_at, _T.c.id).limit(_LIMIT).subquery(),
    )
    return Prepared(union_all(*(select(*part.c) for part in firsts)))


@functools.cache
def _first_due_queries(scope: _Scope) -> tuple[Select[Any], Select[Any]]:
    """(never tried, retrying) queries for the earliest due time of each kind."""
    never = _in_scope(select(_T.c.state_changed_at).where(_NEVER_TRIED), scope)
    retry = _in_scope(select(_T.c.next_attempt_at).where(_RETRYING), scope)
    return (
        never.order_by(_T.c.state_changed_at).limit(1),
        retry.order_by(_T.c.next_attempt_at).limit(1),
    )


def claim_due_uploads(
    s: Session,
    *,
    now: datetime,
    limit: int,
    folders: Collection[str] | None = None,
    node: str | None = None,
    sent_name: Callable[[str], str] = str,
) -> list[LocalFileRecord]:
    """Take up to ``limit`` due ``pending`` rows (earliest due first) and mark them ``uploading``.

    Each claim is its own ``UPDATE ... WHERE state = 'pending'`` (and still due): when two
    threads or processes race for a row, exactly one update matches, so no row is ever handed
    out twice, nor before its retry time. The claim
    counts the attempt and records the upload intent; an intent left by an earlier, unsettled
    attempt is kept (it is the moment from which to look for that upload on the server).
    The claim records ``node`` as the row's holder (fleet mode).
    """
    if limit <= 0 or (folders is not None and not folders):
        return []
    s.flush()
    scope, scope_params = _scope(folders)
    claimed: list[LocalFileRecord] = []
    tried: set[int] = set()
    while len(claimed) < limit:
        wanted = limit - len(claimed)
        params: dict[str, Any] = {"b_now": now, "b_limit": wanted, **scope_params}
        if tried:
            params["b_tried"] = list(tried)
        candidates = sorted(
            _due_query(scope, tried=bool(tried)).rows(s, params),
            key=lambda row: (row[0], row[1]),
        )[:wanted]
        if not candidates:
            break
        rows.take_write_turn(s)  # the claims below write
        for _due, local_id, rel_path in candidates:
            tried.add(local_id)
            # The intent records the name as the client sends it (it may percent-encode it):
            # the adoption lookup after a lost answer looks for what the server received.
            name = sent_name(PurePosixPath(rel_path).name)
            record = _claim_one(s, local_id, name, now, node)
            if record is not None:
                claimed.append(record)
    return claimed


def _claim_one(
    s: Session, local_id: int, filename: str, now: datetime, node: str | None
) -> LocalFileRecord | None:
    """Claim one row; its record after the claim, or None when another claimer was first."""
    params = {"b_id": local_id, "b_now": now, "b_filename": filename, "b_node": node}
    rows.forget_cached(s, LocalFile, local_id)
    dialect = s.get_bind().dialect
    if dialect.name == "postgresql":
        row = _CLAIM_SKIP_LOCKED.first(s, params)
        return None if row is None else LocalFileRecord(*row)
    if dialect.update_returning:
        row = _CLAIM_RETURNING.first(s, params)
        return None if row is None else LocalFileRecord(*row)
    if _CLAIM_COUNTED.run(s, params) != 1:
        return None
    row = _ROW_BY_ID.first(s, {"b_id": local_id})
    assert row is not None, "a row just claimed is there"
    return LocalFileRecord(*row)


def inflight_uploads(s: Session) -> list[LocalFileRecord]:
    """Rows in ``uploading``: after a crash, each must be adopted or retried."""
    query = select(LocalFile).where(LocalFile.state == LocalState.UPLOADING)
    return [rows.to_local_record(row) for row in s.scalars(query.order_by(LocalFile.id))]


def reset_inflight(s: Session, *, now: datetime, node: str | None = None) -> int:
    """After a restart: every ``uploading`` row goes back to ``pending``, due now.

    With ``node``, only the rows that node claimed (or that name no node): in a fleet, the
    uploads other nodes have in flight are theirs. The intent stays, so the next attempt first
    looks for the earlier upload on the server. Returns how many rows were reset.
    """
    query = update(LocalFile).where(LocalFile.state == LocalState.UPLOADING)
    if node is not None:
        query = query.where((LocalFile.claimed_by == node) | LocalFile.claimed_by.is_(None))
    result = s.execute(
        query.values(
            state=LocalState.PENDING, next_attempt_at=None, claimed_by=None, updated_at=now
        ).execution_options(synchronize_session="fetch")
    )
    assert isinstance(result, CursorResult)
    return result.rowcount


def next_due_at(s: Session, *, folders: Collection[str] | None = None) -> datetime | None:
    """When the earliest ``pending`` row is (or was) due; None when nothing is pending.

    A row never tried is due since it became pending, so the answer may lie in the past.
    """
    if folders is not None and not folders:
        return None
    s.flush()
    scope, params = _scope(folders)
    firsts = [s.execute(query, params).scalar() for query in _first_due_queries(scope)]
    return min((due for due in firsts if due is not None), default=None)


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
    current: LocalFileRecord | None = None,
) -> list[str]:
    """Record that the row's content now exists remotely as ``file_id`` (uploaded or adopted).

    The row becomes ``uploaded`` pointing at ``file_id``, with intent, retry time and error
    cleared, unless its content moved on meanwhile (its sha256 differs): then it keeps its
    state and only the pointer moves. The version the row pointed at before is superseded when
    no other row still points at it; those ids are returned (the caller deletes them when the
    folder replaces changed files).

    ``current``: the row as this transaction has read it already with
    :func:`~syncd.store.local_files.lock_local`; it is not read again.
    """
    s.flush()
    rows.begin_write(s)
    if current is not None and current.id == local_id:
        folder, rel_path = current.folder, current.rel_path
        row_sha256, row_state, previous = current.sha256, current.state, current.remote_file_id
    else:
        row = s.execute(_UPLOAD_TARGET, {"b_id": local_id}).one_or_none()
        if row is None:
            raise StoreError(f"no local file with id {local_id} in the state store")
        folder, rel_path, row_sha256, row_state, previous = row
    remote = {
        "file_id": file_id,
        "purpose": purpose,
        "filename": filename,
        "bytes": bytes,
        "sha256": sha256,
        "created_at": created_at,
        "uploaded_at": now,
        "local_file_id": local_id,
        "folder": folder,
        "rel_path": rel_path,
    }
    upsert = _record_remote_statement(s.get_bind().dialect.name)
    if upsert is not None:
        upsert.run(s, rows.column_params(remote))
    elif s.execute(_REMOTE_EXISTS, {"b_file_id": file_id}).first() is None:
        s.execute(_INSERT_REMOTE, remote)
    else:
        s.execute(_UNSUPERSEDE, {"b_file_id": file_id})
    # Recorded before (an adoption of a known id), it is current again; the session may hold it.
    rows.forget_cached(s, RemoteFile, file_id)
    changes: dict[str, Any] = {
        "remote_file_id": file_id,
        "intent_started_at": None,
        "intent_filename": None,
        "updated_at": now,
    }
    if row_sha256 == sha256:
        changes.update(rows.state_transition(row_state, LocalState.UPLOADED, now))
        changes.update(next_attempt_at=None, last_error=None)
    rows.update_local(s, local_id, changes)
    audit_log.audit(
        s,
        action,
        now=now,
        folder=folder,
        rel_path=rel_path,
        sha256=sha256,
        file_id=file_id,
        bytes=bytes,
        detail=None if filename == PurePosixPath(rel_path).name else f"as {filename}",
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
    error: str | None,
    next_attempt_at: datetime | None,
    give_up: bool,
    now: datetime,
    keep_intent: bool = False,
    count_attempt: bool = True,
    expect_sha256: str | None = None,
) -> None:
    """An attempt failed: back to ``pending`` until ``next_attempt_at``, or ``failed``.

    ``keep_intent`` keeps the upload intent when the request may have reached the server, so
    the next attempt looks for it before sending again; giving up always forgets it.
    ``count_attempt=False`` gives back the attempt the claim counted: the failure said nothing
    about this file (the API was down, or the store was unavailable).
    ``expect_sha256``: the content the attempt sent. A row that holds other content now (a new
    version was queued, and maybe claimed by another worker) or whose content was recorded as
    uploaded meanwhile is left alone: an outcome for an old version never touches a newer one.
    """
    rows.begin_write(s)
    row = rows.local_row(s, local_id, lock=True)
    if expect_sha256 is not None and (
        row.sha256 != expect_sha256
        or rows.forgets_upload(
            row.state, row.sha256, row.remote_file_id, LocalState.PENDING, expect_sha256
        )
    ):
        return
    if not count_attempt and row.attempts > 0:
        row.attempts -= 1
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
