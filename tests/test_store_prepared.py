"""Prepared statements (syncd.store.prepared) against SQLAlchemy's own execution, per engine.

They run the per-file statements on the session's DBAPI connection, so they must agree with
SQLAlchemy exactly: the same values stored and read back (aware datetimes, enums, booleans,
NULL), the same errors, the same transaction, and the same cursor events.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from syncd.domain import LocalState
from syncd.errors import StoreError
from syncd.store import Store, open_store, rows
from syncd.store.prepared import Prepared
from syncd.store.tables import LOCAL_FILES

_T = LOCAL_FILES
_COLUMNS = (
    "folder",
    "rel_path",
    "purpose",
    "size",
    "mtime_ns",
    "inode",
    "sha256",
    "state",
    "attempts",
    "racy",
    "first_seen_at",
    "updated_at",
    "state_changed_at",
)
_INSERT = insert(_T).values(rows.column_binds(_T, _COLUMNS))
_READ = select(_T.c.state, _T.c.racy, _T.c.next_attempt_at, _T.c.first_seen_at).where(
    _T.c.rel_path == bindparam("b_path")
)
_T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def prepared_store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.dispose()


def _row(path: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "folder": "/data",
        "rel_path": path,
        "purpose": "fine-tune",
        "size": 1,
        "mtime_ns": 1,
        "inode": 1,
        "sha256": "a" * 64,
        "state": LocalState.PENDING,
        "attempts": 0,
        "racy": False,
        # Not UTC, and on a whole second: both must round-trip as SQLAlchemy stores them.
        "first_seen_at": _T0.astimezone(timezone(timedelta(hours=5))),
        "updated_at": _T0,
        "state_changed_at": _T0 + timedelta(microseconds=7),
    }
    values.update(changes)
    return rows.column_params(values)


def test_values_round_trip_as_through_sqlalchemy(prepared_store: Store) -> None:
    """A row written prepared reads back through SQLAlchemy as one written by SQLAlchemy,
    and the other way round."""
    with prepared_store.session() as s:
        Prepared(_INSERT).run(s, _row("prepared.jsonl", racy=True, state=LocalState.UPLOADED))
        s.execute(_INSERT, _row("plain.jsonl", racy=True, state=LocalState.UPLOADED))
    with prepared_store.session() as s:
        through_sqlalchemy = [
            tuple(s.execute(_READ, {"b_path": p}).one()) for p in ("prepared.jsonl", "plain.jsonl")
        ]
        prepared = [
            Prepared(_READ).first(s, {"b_path": p}) for p in ("prepared.jsonl", "plain.jsonl")
        ]
    expected = (LocalState.UPLOADED, True, None, _T0)
    assert through_sqlalchemy == prepared == [expected, expected]
    assert prepared[0] is not None and prepared[0][3].tzinfo is not None


def test_changed_rows_errors_and_the_transaction_are_sqlalchemys(prepared_store: Store) -> None:
    """A prepared UPDATE counts the rows it changed and is rolled back with its session; a
    duplicate key is SQLAlchemy's IntegrityError (a StoreError at the session's edge); a value
    its type refuses is a StatementError, as through SQLAlchemy."""
    move = Prepared(
        update(_T).where(_T.c.rel_path == bindparam("b_path")).values(state=LocalState.FAILED)
    )
    with prepared_store.session() as s:
        Prepared(_INSERT).run(s, _row("a.jsonl"))
    with pytest.raises(RuntimeError), prepared_store.session() as s:
        assert move.run(s, {"b_path": "a.jsonl"}) == 1
        assert move.run(s, {"b_path": "none.jsonl"}) == 0
        raise RuntimeError("roll it back")
    with pytest.raises(StoreError) as refused, prepared_store.session() as s:
        Prepared(_INSERT).run(s, _row("a.jsonl"))
    with pytest.raises(StatementError, match="naive datetime"), prepared_store.session() as s:
        Prepared(_INSERT).run(s, _row("b.jsonl", updated_at=datetime(2026, 1, 1)))  # noqa: DTZ001
    with prepared_store.session() as s:
        state = Prepared(_READ).first(s, {"b_path": "a.jsonl"})
    assert isinstance(refused.value.__cause__, IntegrityError)
    assert state is not None and state[0] is LocalState.PENDING


def test_cursor_events_fire_and_an_expanding_in_falls_back(prepared_store: Store) -> None:
    """Listeners on SQLAlchemy's cursor events see prepared statements too; a statement whose
    SQL depends on its values (an expanding IN) runs through SQLAlchemy instead."""
    seen: list[str] = []

    def listen(*args: Any) -> None:
        seen.append(str(args[2]).split()[0].upper())

    some = Prepared(
        select(_T.c.rel_path).where(_T.c.rel_path.in_(bindparam("b_paths", expanding=True)))
    )
    event.listen(prepared_store.engine, "before_cursor_execute", listen)
    try:
        with prepared_store.session() as s:
            Prepared(_INSERT).run(s, _row("a.jsonl"))
            Prepared(_INSERT).run(s, _row("b.jsonl"))
            found = some.rows(s, {"b_paths": ["a.jsonl", "b.jsonl", "c.jsonl"]})
    finally:
        event.remove(prepared_store.engine, "before_cursor_execute", listen)
    assert sorted(found) == [("a.jsonl",), ("b.jsonl",)]
    assert seen.count("INSERT") == 2
    assert "SELECT" in seen
