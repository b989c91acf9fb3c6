"""Run the Alembic migrations programmatically: no ``alembic.ini``, our engine, our pragmas.

The migration scripts live in the repository's top-level ``migrations/`` folder; an installed
wheel carries them as ``syncd/_migrations``. This is the one place that finds them.

On SQLite the whole upgrade runs in one ``BEGIN IMMEDIATE`` transaction with foreign keys off
(batch migrations recreate tables, and dropping a referenced table would otherwise fire its
``ON DELETE`` actions), then checks the foreign keys before it commits. On PostgreSQL (whose DDL
is transactional too) the transaction first takes an advisory lock. Two processes starting at
once (or several hosts sharing one server database) therefore migrate one after the other,
never half each.

Alembic (and the Mako and Pygments it pulls in) is imported only when a schema must change: a
database already at :data:`HEAD_REVISION` is recognised with one plain query, which takes a
third of a second off every ``syncd`` command, and a new SQLite file gets the newest schema from
the script :mod:`syncd.store.fresh_schema` recorded (as much again off a first start).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

import syncd
from syncd.errors import StoreError
from syncd.store import connect, diagnosis, fresh_schema

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD_REVISION",
    "MigrationResult",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrations_dir",
    "new_revision",
    "record_fresh_schema",
    "upgrade",
]


#: The newest revision in ``migrations/versions``: bump it with every new migration (a test
#: checks it against the scripts). A database at this revision needs no Alembic at all.
HEAD_REVISION = "0007"
#: Alembic's bookkeeping table (``env.py`` keeps the default name).
_VERSION_TABLE = "alembic_version"
_READ_VERSION = text("SELECT version_num FROM alembic_version")
#: PostgreSQL: the transaction-scoped advisory lock that serialises migrations (a key of
#: syncd's own: "syncd" in ASCII). Released by the commit or rollback.
_PG_MIGRATION_LOCK = text("SELECT pg_advisory_xact_lock(495958516580)")


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """Where the schema was before an upgrade and where it is now."""

    database: str
    """The database file, or its URL with the password masked."""
    before: str | None
    """None for a database that had never been migrated."""
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def migrations_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/``: the wheel's copy, else the checkout's.

    Raises:
        StoreError: neither exists (a broken installation).
    """
    package = Path(syncd.__file__).parent
    candidates = (package / "_migrations", package.parent / "migrations")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    looked = " and ".join(str(c) for c in candidates)
    raise StoreError(f"database migrations not found (looked in {looked}); reinstall syncd")


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Config:
    """An Alembic config pointing at our migrations; ``env.py`` uses ``connection`` if given."""
    from alembic.config import Config

    config = Config()
    # Config values go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision among the migration scripts (read by Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migrations found in {migrations_dir()}; reinstall syncd")
    return head


@contextmanager
def _engine_for(
    engine_or_url: Engine | str, busy_timeout_ms: int
) -> Iterator[tuple[Engine, connect.DatabaseTarget]]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url, connect.parse_target(engine_or_url.url)
        return
    engine, target = connect.open_engine(engine_or_url, busy_timeout_ms=busy_timeout_ms)
    try:
        yield engine, target
    finally:
        engine.dispose()


def current_revision(
    engine_or_url: Engine | str, *, busy_timeout_ms: int = connect.DEFAULT_BUSY_TIMEOUT_MS
) -> str | None:
    """The database's schema revision; None when it was never migrated."""
    with (
        _engine_for(engine_or_url, busy_timeout_ms) as (engine, target),
        diagnosis.translated(target.display, busy_timeout_ms=busy_timeout_ms),
        engine.connect() as connection,
    ):
        return read_revision(connection, target.display)


def read_revision(connection: Connection, where: str) -> str | None:
    """The revision recorded in the database ``where`` names, with one query and no Alembic;
    None when it was never migrated."""
    if not inspect(connection).has_table(_VERSION_TABLE):
        return None
    revisions = connection.execute(_READ_VERSION).scalars()
    found = list(revisions)
    if len(found) > 1:
        raise StoreError(
            f"state database {where} records several schema revisions at once ({found}): "
            "syncd's migrations are linear, so it was not written by syncd"
        )
    return found[0] if found else None


def upgrade(
    engine_or_url: Engine | str,
    *,
    busy_timeout_ms: int = connect.DEFAULT_BUSY_TIMEOUT_MS,
    replay: bool = False,
) -> MigrationResult:
    """Bring the schema to the newest revision (a no-op when it is there already).

    A URL is opened the way :func:`syncd.store.open_store` opens it (private file, pragmas,
    integrity check) and closed afterwards; an engine is used as it is. A new, empty SQLite
    file gets the recorded newest schema in one script (:mod:`syncd.store.fresh_schema`) unless
    ``replay`` asks for every migration to run, as they do on any other database.

    Raises:
        StoreError: the database is unusable, or its revision is unknown to this syncd (written
            by a newer version), or a migration failed (nothing of it is kept on SQLite).
    """
    with _engine_for(engine_or_url, busy_timeout_ms) as (engine, target):
        with diagnosis.translated(target.display, busy_timeout_ms=busy_timeout_ms):
            result = _upgrade(engine, target, replay=replay)
        if target.path is not None:
            connect.secure_sidecar_files(target.path)
        return result


def _upgrade(engine: Engine, target: connect.DatabaseTarget, *, replay: bool) -> MigrationResult:
    # Already current (every start but the first after an update): no write lock taken, so a
    # read-only copy opens, and a running daemon is not held up.
    with engine.connect() as connection:
        if read_revision(connection, target.display) == HEAD_REVISION:
            return MigrationResult(
                database=target.display, before=HEAD_REVISION, after=HEAD_REVISION
            )
    head = HEAD_REVISION
    with engine.connect() as connection:
        if target.is_sqlite:
            # PRAGMA foreign_keys is a no-op inside a transaction: switch it off before BEGIN.
            connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.execute(_PG_MIGRATION_LOCK)
        try:
            # Read again under the lock: another process may have migrated meanwhile.
            before = read_revision(connection, target.display)
            script = _fresh_script(connection, target, before) if not replay else None
            if script is not None:
                fresh_schema.apply(connection, script, HEAD_REVISION)
            elif before != HEAD_REVISION:  # not migrated by another process meanwhile
                head = _migrate(connection, target, before)
            if target.is_sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(
                        f"migrating state database {target.display} broke {len(broken)} "
                        f"foreign key(s), first: {tuple(broken[0])}; nothing was changed"
                    )
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            if target.is_sqlite:
                _restore_foreign_keys(connection)
    return MigrationResult(database=target.display, before=before, after=head)


def _fresh_script(
    connection: Connection, target: connect.DatabaseTarget, before: str | None
) -> str | None:
    """The recorded newest schema, when it applies: a SQLite file with nothing in it yet and a
    script recorded at this syncd's head (a developer who adds a migration records it again;
    until then, new files are migrated the long way)."""
    if before is not None or not target.is_sqlite or not fresh_schema.is_empty(connection):
        return None
    script = fresh_schema.recorded()
    return script if fresh_schema.revision_of(script) == HEAD_REVISION else None


def _migrate(connection: Connection, target: connect.DatabaseTarget, before: str | None) -> str:
    """Run the migrations from ``before`` to the scripts' head with Alembic; the head."""
    from alembic import command
    from alembic.util import CommandError

    head = head_revision()
    _check_known(before, head, target)
    if before != head:
        try:
            command.upgrade(alembic_config(connection), "head")
        except CommandError as exc:
            raise StoreError(
                f"migrating state database {target.display} to {head} failed: {exc}"
            ) from exc
    return head


def _restore_foreign_keys(connection: Connection) -> None:
    try:
        connection.exec_driver_sql("PRAGMA foreign_keys = ON")
        connection.commit()
    except DBAPIError:
        # Never hand the pool a connection without foreign keys: drop it, a new one gets them.
        connection.invalidate()


def _check_known(revision: str | None, head: str, target: connect.DatabaseTarget) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if revision is None:
        return
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise StoreError(
            f"state database {target.display} has schema revision {revision!r}, which this "
            f"syncd does not know (its newest is {head!r}): it was written by a newer syncd; "
            "upgrade syncd, or restore a backup made before the newer version ran"
        )


def record_fresh_schema() -> str:
    """Migrate a scratch SQLite file with Alembic and record its schema as the script new files
    are created with (:data:`syncd.store.fresh_schema.SCRIPT`); the revision recorded. For
    developers, after adding a migration: ``make schema``."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        engine, _target = connect.open_engine(f"sqlite:///{scratch}/head.db")
        try:
            after = upgrade(engine, replay=True).after
            with engine.connect() as connection:
                script = fresh_schema.dump(connection, after)
        finally:
            engine.dispose()
    fresh_schema.SCRIPT.write_text(script, encoding="utf-8")
    return after


def new_revision(message: str, *, url: str) -> Path:
    """For developers: autogenerate the next migration from the models, against ``url``.

    The database at ``url`` (a scratch SQLite file) is first brought to the current head, so the
    new script holds only the difference. Returns the new script's path.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    upgrade(url)
    script = ScriptDirectory.from_config(alembic_config())
    number = len(list(script.walk_revisions())) + 1
    engine, _target = connect.open_engine(url)
    try:
        with engine.connect() as connection:
            created = command.revision(
                alembic_config(connection),
                message=message,
                autogenerate=True,
                rev_id=f"{number:04d}",
            )
    finally:
        engine.dispose()
    if created is None or isinstance(created, list):
        raise StoreError(f"alembic created no single revision for {message!r}")
    return Path(created.path)
