"""Alembic environment for syncd's state store (run by :mod:`syncd.store.migrate`).

The runner passes its own connection in ``config.attributes["connection"]``, so migrations use
syncd's engine, pragmas and transaction. Without one (the ``alembic`` command line with a
``sqlalchemy.url``), an engine is made the same way syncd makes it. Batch mode is on: SQLite
can only alter most things by recreating the table.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from syncd.store import connect
from syncd.store.schema import Base

__all__ = ["run_migrations_offline", "run_migrations_online"]

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``) instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the runner's connection, or a fresh engine for ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection passed and no sqlalchemy.url configured")
    engine, _target = connect.open_engine(url)
    try:
        with engine.connect() as fresh:
            _configure_and_run(fresh)
            fresh.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
