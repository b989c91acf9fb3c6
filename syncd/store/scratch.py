"""A throw-away copy of a state store, for what must judge files as a sync would but change
nothing: ``syncd sync --dry-run`` runs the real pipeline on the copy, so its verdicts are the
ones a sync would record, and the store itself is only read.

The copy is a SQLite file in a private temporary directory (0700), deleted when the block ends.
The source is opened without migrating it (a SQLite file read-only, ``mode=ro``: not even a
checkpoint of its WAL), and a missing SQLite file is not created.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, insert, select

from syncd.store import connect, tables
from syncd.store.db import Store, open_store

__all__ = ["ScratchCopy", "copy_rows", "scratch_copy"]

#: Rows read and written at a time.
_BATCH_ROWS = 1000


@dataclass(frozen=True, slots=True)
class ScratchCopy:
    """The copy to work on, and where the store it copies is (absent: nothing copied)."""

    store: Store
    source: str
    """The source's file path, or its URL with the password masked."""
    source_exists: bool
    """False: no SQLite file at the source yet; the copy starts empty (none was created)."""


@contextmanager
def scratch_copy(url: str) -> Iterator[ScratchCopy]:
    """A new store holding every row of the store at ``url``; the source is never written.

    Raises:
        StoreError: the source cannot be read (corrupt, unreachable, or at another schema
            revision: it is not migrated here) or the copy cannot be made.
    """
    target = connect.parse_target(url)
    exists = target.path is None or target.path.exists()
    with tempfile.TemporaryDirectory(prefix="syncd-scratch-") as directory:
        copy = open_store(f"sqlite:///{Path(directory) / 'state.db'}", threads=1)
        try:
            if exists:
                with open_store(_read_only_url(target), migrate=False, threads=1) as source:
                    copy_rows(source, copy)
            yield ScratchCopy(copy, target.display, exists)
        finally:
            copy.dispose()


def copy_rows(source: Store, target: Store) -> None:
    """Every row of every table of ``source`` into the (empty) ``target``, parents first, all
    read as of one moment (a running daemon's writes in between would leave a remote file
    without its local row)."""
    with source.connection() as reading, target.connection() as writing:
        _one_snapshot(reading)
        for table in tables.METADATA.sorted_tables:
            result = reading.execute(select(table).execution_options(yield_per=_BATCH_ROWS))
            while batch := result.fetchmany(_BATCH_ROWS):
                writing.execute(insert(table), [row._asdict() for row in batch])


def _one_snapshot(reading: Connection) -> None:
    """Make the rest of ``reading``'s transaction see the database as of its first read."""
    if reading.dialect.name == "sqlite":
        # pysqlite starts no transaction for a read: each SELECT would see the newest rows.
        reading.exec_driver_sql("BEGIN")
    elif reading.dialect.name == "postgresql":
        reading.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _read_only_url(target: connect.DatabaseTarget) -> str:
    """``target``'s URL, opening a SQLite file read-only (a server database: as it is)."""
    if target.path is None or target.is_read_only:
        return target.url.render_as_string(hide_password=False)
    return f"sqlite:///file:{target.path}?mode=ro&uri=true"
