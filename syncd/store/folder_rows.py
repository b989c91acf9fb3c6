"""A folder's rows in SQLAlchemy Core, without the ORM: the listing and the counts that
``syncd status`` shows and the daemon's status tick reads, and the re-keying every command runs
first.

Each function takes either a :meth:`~syncd.store.Store.connection` (Core: ``syncd status``
never imports ``sqlalchemy.orm``, half of SQLAlchemy's import time again) or a
:meth:`~syncd.store.Store.session`; both run the same statements.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, TypeAlias

from sqlalchemy import Column, CursorResult, func, or_, select, update

from syncd.domain import LocalState
from syncd.store import tables
from syncd.store.records import LocalFileRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    #: What runs a statement: a Core connection or an ORM session.
    Executor: TypeAlias = Connection | Session

__all__ = ["adopt_legacy_folder_keys", "list_local", "state_counts"]

_T = tables.LOCAL_FILES


def list_local(
    s: Executor,
    *,
    folder: str | None = None,
    states: Collection[LocalState] | None = None,
    or_warned: bool = False,
    limit: int | None = None,
) -> list[LocalFileRecord]:
    """Rows ordered by folder and path, optionally of one folder and some states (and, with
    ``or_warned``, rows in other states that have validation warnings)."""
    query = select(*tables.LOCAL_COLUMNS).order_by(_T.c.folder, _T.c.rel_path)
    if folder is not None:
        query = query.where(_T.c.folder == folder)
    if states is not None:
        in_states = _T.c.state.in_(list(states))
        query = query.where(or_(in_states, _T.c.warnings.is_not(None)) if or_warned else in_states)
    if limit is not None:
        query = query.limit(limit)
    return [LocalFileRecord(*row) for row in s.execute(query)]


def state_counts(s: Executor) -> dict[str, dict[str, int]]:
    """folder -> state value -> number of rows (states with no rows are left out)."""
    counts: dict[str, dict[str, int]] = {}
    query = select(_T.c.folder, _T.c.state, func.count()).group_by(_T.c.folder, _T.c.state)
    for folder, state, count in s.execute(query):
        counts.setdefault(folder, {})[LocalState(state).value] = count
    return counts


def adopt_legacy_folder_keys(s: Executor, keys: Mapping[str, str]) -> int:
    """Re-key rows written before fleet mode: ``keys`` maps a folder's old key (its path) to its
    key now (``<node>:<path>`` or ``shared:<id>``). The first node to open an older store with
    the folder configured takes its rows. Returns how many local rows moved.

    Every command runs this; once a store is re-keyed it costs one indexed update per folder:
    ``remote_files`` and ``audit`` (no index on their folder) are only touched for a folder
    whose local rows moved (syncd never deletes a local row, so an older folder has some).
    """
    moved = 0
    for old, new in keys.items():
        if old == new:
            continue
        local = _rekey(s, _T.c.folder, old, new)
        if local:
            _rekey(s, tables.REMOTE_FILES.c.folder, old, new)
            _rekey(s, tables.AUDIT.c.folder, old, new)
            moved += local
    return moved


def _rekey(s: Executor, column: Column[str], old: str, new: str) -> int:
    result = s.execute(update(column.table).where(column == old).values({column: new}))
    assert isinstance(result, CursorResult)
    return result.rowcount
