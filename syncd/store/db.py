"""The opened state store: an engine, a session factory, and nothing else.

:func:`open_store` is the front door: private file, pragmas, integrity check, migrations (or a
check that they ran). Sessions come from :meth:`Store.session`, one per unit of work and never
shared between threads; :meth:`Store.connection` is the same transaction in SQLAlchemy Core for
a caller that never needs the ORM (``syncd status``: this module imports ``sqlalchemy.orm`` on
the first session only). Every database failure inside either becomes a
:class:`~syncd.errors.StoreError` that names the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd.errors import StoreError
from syncd.store import connect, diagnosis
from syncd.store import migrate as migrations

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from syncd.store.rows import WriteTurns

__all__ = ["Store", "open_store"]

#: Seconds between two attempts to make room in a full SQLite volume (see Store._make_room).
_MAKE_ROOM_EVERY = 1.0


class Store:
    """An open state database. Thread-safe; hand each thread its own :meth:`session`.

    Any thread calls :meth:`session`; ``_room_lock`` guards when room was last made, and the
    making of the SQLite write turns on the first session.
    """

    def __init__(
        self,
        engine: Engine,
        target: connect.DatabaseTarget,
        *,
        busy_timeout_ms: int = connect.DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        self.engine = engine
        #: The SQLite file, or None for a server database.
        self.path: Path | None = target.path
        #: The database URL with any password masked: safe to log and show.
        self.url: str = target.url.render_as_string(hide_password=True)
        self.busy_timeout_ms = busy_timeout_ms
        self._where = target.display
        #: Made on the first session (importing the ORM then): see :meth:`session`.
        self._sessions: sessionmaker[Session] | None = None
        #: Writers of a SQLite file take turns on a lock of this process (see
        #: :class:`~syncd.store.rows.WriteTurns`, made with the first session); a server
        #: database locks rows instead.
        self._takes_turns = target.is_sqlite and target.path is not None
        self._turns: WriteTurns | None = None
        self._room_lock = threading.Lock()
        self._room_tried_at = -_MAKE_ROOM_EVERY

    def __repr__(self) -> str:
        return f"Store(url={self.url!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises.

        Raises:
            StoreError: the database failed (locked past the busy timeout, read-only, full,
                corrupt); the transaction was rolled back.
        """
        from syncd.store import rows  # the ORM's stack: only for sessions

        sessions = self._sessions
        if sessions is None:
            from sqlalchemy.orm import sessionmaker

            # Two threads may both make these on the first call: the first one's turns win,
            # and either factory is as good.
            if self._takes_turns:
                with self._room_lock:
                    if self._turns is None:
                        self._turns = rows.WriteTurns(self.busy_timeout_ms / 1000)
            sessions = self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        with self._translated():
            session = sessions()
            if self._turns is not None:
                session.info[rows.TURNS] = self._turns
            try:
                with session.begin():
                    yield session
            finally:
                rows.end_of_transaction(session)
                session.close()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """One transaction in SQLAlchemy Core, without the ORM: as :meth:`session` otherwise
        (committed when the block ends, rolled back when it raises).

        Raises:
            StoreError: as for :meth:`session`.
        """
        with self._translated(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Database failures inside the block as :class:`StoreError`; a full disk makes room."""
        try:
            with diagnosis.translated(self._where, busy_timeout_ms=self.busy_timeout_ms):
                yield
        except StoreError as exc:
            if self.path is not None and diagnosis.is_disk_full(exc):
                self._make_room()
            raise

    def _make_room(self) -> None:
        """A write failed for want of room: try to checkpoint and cut the WAL to nothing, so
        the space the WAL held (and any the user freed) is there for the next write.

        Best effort, at most once per :data:`_MAKE_ROOM_EVERY` seconds whichever thread fails
        (guarded by ``_room_lock``): the checkpoint needs room itself and fails while none is
        free; an open read elsewhere may keep it from finishing (the next failure retries).
        """
        now = time.monotonic()
        with self._room_lock:
            if now - self._room_tried_at < _MAKE_ROOM_EVERY:
                return
            self._room_tried_at = now
        with contextlib.suppress(SQLAlchemyError, sqlite3.Error), self.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def dispose(self) -> None:
        """Close every pooled connection (the store is unusable afterwards)."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()


def open_store(
    url: str,
    *,
    migrate: bool = True,
    busy_timeout_ms: int = connect.DEFAULT_BUSY_TIMEOUT_MS,
    threads: int = connect.DEFAULT_POOL_SIZE,
) -> Store:
    """Open the state database at ``url``, creating a SQLite file (0600, directory 0700).

    With ``migrate`` the schema is brought to the newest revision; without it the schema must
    already be there (``syncd migrate``), so a read-only caller never changes the file.
    ``threads`` is how many threads may hold a session at once (the connection pool's size).

    Raises:
        StoreError: the database is corrupt, not a database, locked, read-only, on a full disk,
            at an unknown (newer) revision, or (without ``migrate``) not migrated yet.
    """
    engine, target = connect.open_engine(url, busy_timeout_ms=busy_timeout_ms, pool_size=threads)
    try:
        if migrate:
            migrations.upgrade(engine, busy_timeout_ms=busy_timeout_ms)
        else:
            _require_head(engine, target, busy_timeout_ms)
        if target.path is not None:
            connect.secure_sidecar_files(target.path)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, target, busy_timeout_ms=busy_timeout_ms)


def _require_head(engine: Engine, target: connect.DatabaseTarget, busy_timeout_ms: int) -> None:
    current = migrations.current_revision(engine, busy_timeout_ms=busy_timeout_ms)
    head = migrations.HEAD_REVISION
    if current != head:
        raise StoreError(
            f"state database {target.display} is at schema revision "
            f"{current or '(none: never migrated)'}, but this syncd needs {head}; "
            "run `syncd migrate` (or use a syncd that matches the database)"
        )
