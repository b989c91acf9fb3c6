"""A new SQLite state file gets the newest schema from one recorded script, not by replaying
every migration.

Replaying the migrations on a new file cost a third of a second of CPU (importing Alembic, Mako
and Pygments, then seven revisions, several of them batch table rebuilds): a quarter of a first
``syncd sync``'s start-up, paid again by every test that opens a new store. What those
migrations leave behind is recorded in ``schema_head.sql``: the ``sqlite_master`` statements
of a freshly migrated file, headed by the revision they belong to.
``tests/test_store_migrations.py`` replays the migrations and compares, so the script cannot
drift from them; ``make schema`` (:func:`syncd.store.migrate.record_fresh_schema`) records it
again after a new migration.

Used only for a SQLite file with no table at all (anything else, and every PostgreSQL database,
goes through Alembic), inside the migration's own ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, text

__all__ = ["SCRIPT", "apply", "dump", "is_empty", "recorded", "revision_of"]

#: The recorded schema, beside this module (a wheel carries it as package data).
SCRIPT = Path(__file__).with_name("schema_head.sql")
_HEADER = "-- syncd state schema at revision "
#: Statements end with this line ending; no statement of syncd's schema contains it.
_END = ";\n"
#: What SQLite recorded: tables, then indexes (and anything else), each by name. Not in
#: creation order: batch migrations rebuild tables with their indexes in an order that varies
#: from run to run, and SQLite does not need a referenced table to exist yet. Its own tables and
#: the indexes it makes for UNIQUE/PRIMARY KEY constraints (no ``sql``) come back by themselves.
_MASTER = text(
    "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
    "ORDER BY type != 'table', name"
)
_ANY_TABLE = text("SELECT 1 FROM sqlite_master LIMIT 1")


def dump(connection: Connection, revision: str) -> str:
    """The schema of the SQLite database on ``connection`` as a script for :func:`apply`."""
    statements = [row[0] for row in connection.execute(_MASTER)]
    return _HEADER + revision + "\n" + "".join(statement + _END for statement in statements)


def recorded() -> str:
    """The recorded script's text."""
    return SCRIPT.read_text(encoding="utf-8")


def revision_of(script: str) -> str | None:
    """The revision a script records (None when it has no header)."""
    first, _, _ = script.partition("\n")
    return first[len(_HEADER) :].strip() if first.startswith(_HEADER) else None


def is_empty(connection: Connection) -> bool:
    """True when the SQLite database holds no schema object at all."""
    return connection.execute(_ANY_TABLE).first() is None


def apply(connection: Connection, script: str, revision: str) -> None:
    """Create the recorded schema on an empty SQLite database and record it at ``revision``.

    Runs in the caller's transaction (SQLite's DDL is transactional): a failure leaves nothing.
    """
    _, _, body = script.partition("\n")
    for statement in body.split(_END):
        if statement.strip():
            connection.exec_driver_sql(statement)
    connection.execute(
        text("INSERT INTO alembic_version (version_num) VALUES (:revision)"),
        {"revision": revision},
    )
