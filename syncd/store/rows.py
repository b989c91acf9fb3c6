"""ORM rows to frozen records, and the rules every writer of ``local_files`` shares.

Private to the store package: the repository modules build on it, callers never see a row.
The hot paths (the scan, the upload queue) use SQLAlchemy Core on the tables themselves, which
costs a fraction of an ORM round trip per statement; the column lists here select exactly the
fields of a record, in its order, so a result row becomes a record in one call.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import BindParameter, Table, bindparam, text, update
from sqlalchemy.orm import Mapper, Session, class_mapper

from syncd.domain import LocalState
from syncd.errors import StoreError
from syncd.store import tables
from syncd.store.prepared import Prepared
from syncd.store.records import AuditRecord, LocalFileRecord, RemoteFileRecord
from syncd.store.schema import AuditEntry, LocalFile, RemoteFile

__all__ = [
    "AUDIT_TABLE",
    "LOCAL_COLUMNS",
    "LOCAL_TABLE",
    "REMOTE_COLUMNS",
    "REMOTE_TABLE",
    "TURNS",
    "UNSYNCED_STATES",
    "WriteTurns",
    "begin_write",
    "chunked",
    "column_binds",
    "column_params",
    "dialect_insert",
    "end_of_transaction",
    "forget_cached",
    "forgets_upload",
    "local_row",
    "move_state",
    "state_transition",
    "take_write_turn",
    "to_audit_record",
    "to_local_record",
    "to_remote_record",
    "update_local",
]

#: States in which a file's current content is not (yet) on the remote.
UNSYNCED_STATES = (LocalState.PENDING, LocalState.UPLOADING, LocalState.UNSTABLE)

#: One retry cycle: moving between these keeps ``state_changed_at``.
_RETRY_CYCLE = frozenset({LocalState.PENDING, LocalState.UPLOADING})

#: States in which an upload intent may still matter (the request may have reached the server).
_INTENT_STATES = frozenset({LocalState.PENDING, LocalState.UPLOADING})

#: States a row whose content is on the remote must never be put back into for that content:
#: the uploader would send it again and, recording the copy, delete the announced id.
_SENDING_STATES = frozenset({LocalState.PENDING, LocalState.UPLOADING, LocalState.FAILED})

#: A write that touches nothing: SQLite starts a write transaction for it (see begin_write).
_WRITE_LOCK = Prepared(text("UPDATE local_files SET id = id WHERE 0"))

#: Bound parameters per ``IN (...)``: far below every backend's limit.
_CHUNK = 500

_LOCAL_FIELDS = tuple(f.name for f in fields(LocalFileRecord))
_REMOTE_FIELDS = tuple(f.name for f in fields(RemoteFileRecord))
_AUDIT_FIELDS = tuple(f.name for f in fields(AuditRecord))

LOCAL_TABLE = tables.LOCAL_FILES
REMOTE_TABLE = tables.REMOTE_FILES
AUDIT_TABLE = tables.AUDIT
LOCAL_COLUMNS = tables.LOCAL_COLUMNS
REMOTE_COLUMNS = tables.REMOTE_COLUMNS

T = TypeVar("T")


def to_local_record(row: LocalFile) -> LocalFileRecord:
    return LocalFileRecord(**{name: getattr(row, name) for name in _LOCAL_FIELDS})


def to_remote_record(row: RemoteFile) -> RemoteFileRecord:
    return RemoteFileRecord(**{name: getattr(row, name) for name in _REMOTE_FIELDS})


def to_audit_record(row: AuditEntry) -> AuditRecord:
    return AuditRecord(**{name: getattr(row, name) for name in _AUDIT_FIELDS})


def local_row(s: Session, local_id: int, *, lock: bool = False) -> LocalFile:
    """The row with ``local_id``; rows are never deleted, so a missing one is a caller's bug.

    ``lock``: read it ``FOR UPDATE`` (PostgreSQL; on SQLite see :func:`begin_write`), for a
    caller that decides on what it reads before it writes.

    Raises:
        StoreError: no such row.
    """
    row = s.get(LocalFile, local_id, with_for_update=True if lock else None)
    if row is None:
        raise StoreError(f"no local file with id {local_id} in the state store")
    return row


def state_transition(old: LocalState | None, new: LocalState, now: datetime) -> dict[str, Any]:
    """The column values that put a row in state ``old`` into ``new`` at ``now``.

    ``state_changed_at`` moves unless the state stays the same or the move is within one retry
    cycle; leaving the states where an upload intent matters forgets the intent.
    """
    values: dict[str, Any] = {"state": new, "updated_at": now}
    if old != new and not {old, new} <= _RETRY_CYCLE:
        values["state_changed_at"] = now
    if new not in _INTENT_STATES:
        # The attempt's outcome is settled (uploaded, rejected, gone): nothing left to adopt.
        values["intent_started_at"] = None
        values["intent_filename"] = None
    return values


def forgets_upload(
    stored_state: LocalState,
    stored_sha256: str | None,
    stored_remote_id: str | None,
    new_state: LocalState,
    new_sha256: str | None,
) -> bool:
    """Whether moving a row to ``new_state`` for content ``new_sha256`` would forget that
    this content is recorded on the remote: the state machine refuses that move.

    Only a content change, the remote copy vanishing or retention deleting it (which say so
    themselves) may take an ``uploaded`` row back to a sending state.
    """
    return (
        stored_state is LocalState.UPLOADED
        and stored_remote_id is not None
        and stored_sha256 == new_sha256
        and new_state in _SENDING_STATES
    )


def begin_write(s: Session) -> None:
    """Make the rest of ``s``'s transaction read the newest rows and keep them until it commits.

    A read-modify-write must not decide on a row another thread changes before it writes.
    PostgreSQL's ``FOR UPDATE`` takes care of that; SQLite (pysqlite) runs a transaction's
    reads before its first write outside any transaction, so a record committed in between
    was overwritten with what was read before it (issue 21: a rescan wrote ``uploading`` back
    over the upload just recorded). A statement that writes nothing takes SQLite's write lock
    first; later readers still read, other writers wait (busy timeout) as they would anyway.
    """
    transaction = s.get_transaction()
    if transaction is not None and s.info.get(_WRITING) is transaction:
        return  # this transaction took the write lock already
    if s.get_bind().dialect.name == "sqlite":
        take_write_turn(s)
        _WRITE_LOCK.run(s, {})
        s.info[_WRITING] = s.get_transaction()


class WriteTurns:
    """One SQLite file's writers in this process, taking turns on a lock of their own.

    SQLite lets one connection write at a time; the others poll in its busy handler, sleeping
    1 ms, then 2, 5, ... up to 100 ms between tries, so with eight upload workers and a scan a
    writer often slept well past the moment the lock came free (a third of the workers' time
    in the issue 25 profile). Writers of one process queue on this lock instead and start the
    moment the previous transaction ends; other processes still meet SQLite's busy timeout.

    A session that took its turn holds it until the session's transaction ends
    (:meth:`~syncd.store.db.Store.session` gives it back). A turn not had within the busy
    timeout is not waited for longer: the write goes on and meets SQLite's own lock, which
    reports "locked" as it always did.
    """

    __slots__ = ("_lock", "_timeout")

    def __init__(self, timeout_s: float) -> None:
        self._lock = threading.Lock()
        self._timeout = timeout_s

    def take(self) -> bool:
        return self._lock.acquire(timeout=self._timeout)

    def give_back(self) -> None:
        self._lock.release()


#: ``Session.info`` keys: the store's :class:`WriteTurns`, and whether this session holds a
#: turn / has begun its write transaction.
TURNS = "syncd.write_turns"
TURN_HELD = "syncd.write_turn_held"
_WRITING = "syncd.writing"


def take_write_turn(s: Session) -> None:
    """Wait for this process's turn to write to the store (see :class:`WriteTurns`); kept until
    the session's transaction ends. A no-op for a session that has it, or no turns to take."""
    turns = s.info.get(TURNS)
    if turns is not None and not s.info.get(TURN_HELD):
        s.info[TURN_HELD] = turns.take()


def end_of_transaction(s: Session) -> None:
    """The session's transaction ended (committed or rolled back): give back its turn."""
    s.info.pop(_WRITING, None)
    if s.info.pop(TURN_HELD, False):
        turns = s.info.get(TURNS)
        assert turns is not None
        turns.give_back()


@functools.cache
def dialect_insert(dialect: str, table: str) -> Any:
    """The dialect's own INSERT into ``table`` (one that takes ``ON CONFLICT``), or None for a
    dialect without one.

    Built on first use: PostgreSQL's dialect package takes a third of a second to import, which
    a SQLite store (and ``syncd status``) never needs.
    """
    target = tables.METADATA.tables[table]
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(target)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(target)
    return None


def move_state(row: LocalFile, state: LocalState, now: datetime) -> None:
    """Put ``row`` in ``state`` at ``now``, keeping the bookkeeping columns consistent."""
    for name, value in state_transition(row.state, state, now).items():
        setattr(row, name, value)


def column_binds(table: Table, columns: Iterable[str]) -> dict[str, BindParameter[Any]]:
    """The values of a prebuilt INSERT or UPDATE setting ``columns``: each column's parameter,
    named ``v_<column>`` (a parameter may not share its column's name) and typed as the column;
    :func:`column_params` names the values to run it with."""
    return {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in columns}


def column_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (column -> value) as the parameters of :func:`column_binds`."""
    return {f"v_{name}": value for name, value in values.items()}


@functools.cache
def _local_update(columns: frozenset[str]) -> Prepared:
    return Prepared(
        update(LOCAL_TABLE)
        .where(LOCAL_TABLE.c.id == bindparam("b_id"))
        .values(column_binds(LOCAL_TABLE, columns))
    )


def update_local(s: Session, local_id: int, changes: dict[str, Any]) -> None:
    """Set ``changes`` (column -> value) on the ``local_files`` row ``local_id``, in Core.

    Statements are cached per set of columns: building an UPDATE costs more than running it.
    The session's ORM copy of the row, if any, is expired.
    """
    params = column_params(changes)
    params["b_id"] = local_id
    _local_update(frozenset(changes)).run(s, params)
    forget_cached(s, LocalFile, local_id)


def forget_cached(s: Session, model: type[LocalFile] | type[RemoteFile], ident: object) -> None:
    """Expire the session's ORM copy of a row a Core statement just changed, if it holds one."""
    if not s.identity_map:
        return  # the hot paths load no ORM rows: nothing to look up
    mapper: Mapper[Any] = class_mapper(model)
    cached = s.identity_map.get(mapper.identity_key_from_primary_key((ident,)))
    if cached is not None:
        s.expire(cached)


def chunked(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in slices small enough for one ``IN (...)`` clause."""
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
