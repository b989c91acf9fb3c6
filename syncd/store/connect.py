"""Make the SQLAlchemy engine for a database URL, safely.

For a SQLite file this module owns everything below the SQL: creating the directory (0700) and
the file (0600) before SQLite touches them, the per-connection pragmas (WAL, busy timeout,
foreign keys, synchronous=NORMAL), keeping the ``-wal``/``-shm`` files as private as the database
and the integrity check at open. A server database (PostgreSQL) gets connections that ride out a
server restart (pinged before use), give up connecting after :data:`CONNECT_TIMEOUT_S` and wait
for a row lock no longer than the busy timeout; its password (from the URL the config built)
is registered with the log redactor. No schema knowledge here (that is
:mod:`syncd.store.migrate`).
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from syncd.errors import StoreError
from syncd.logs import register_secret
from syncd.store import diagnosis

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_BUSY_TIMEOUT_MS",
    "SQLITE_CACHE_KIB",
    "WAL_AUTOCHECKPOINT_PAGES",
    "WAL_SIZE_LIMIT",
    "DatabaseTarget",
    "check_integrity",
    "make_engine",
    "open_engine",
    "parse_target",
    "prepare_sqlite_file",
    "secure_sidecar_files",
]

#: How long a connection waits for another writer's lock before SQLite reports "locked".
DEFAULT_BUSY_TIMEOUT_MS = 5000
#: Pooled connections kept open (SQLAlchemy's default); callers with more threads ask for more.
DEFAULT_POOL_SIZE = 5
#: Seconds a server connection may take to open before it fails (libpq's ``connect_timeout``):
#: an unreachable host fails fast instead of hanging for the kernel's TCP timeout (minutes).
CONNECT_TIMEOUT_S = 5
#: Page cache per SQLite connection, in KiB (see the pragma below).
SQLITE_CACHE_KIB = 512
#: Bytes a SQLite WAL file is cut back to after a checkpoint (``journal_size_limit``). Without
#: it the file keeps its largest size for good: on a small volume syncd's own WAL filled it, and
#: freeing the user's space was not enough (issue 21).
WAL_SIZE_LIMIT = 1 << 20
#: WAL pages after which a commit checkpoints (SQLite's default, 1000 pages, is ~4 MB): the
#: WAL stays around a megabyte on a busy store.
WAL_AUTOCHECKPOINT_PAGES = 256

_SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed database URL: what to connect to and how to name it in messages."""

    url: URL
    path: Path | None
    """The SQLite file, or None for in-memory SQLite and server databases."""
    is_sqlite: bool
    is_read_only: bool
    """SQLite opened with ``mode=ro`` (URI form): syncd must not create anything."""

    @property
    def display(self) -> str:
        """The file path, or the URL with its password masked."""
        if self.path is not None:
            return str(self.path)
        return self.url.render_as_string(hide_password=True)


def parse_target(url: str | URL) -> DatabaseTarget:
    """Parse ``url``; a malformed one is a :class:`StoreError` naming it (password masked)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL: {exc}") from exc
    is_sqlite = parsed.get_backend_name() == "sqlite"
    path: Path | None = None
    is_read_only = False
    database = parsed.database or ""
    if is_sqlite and database and database != ":memory:":
        if parsed.query.get("uri") == "true" and database.startswith("file:"):
            # URI filenames (sqlite:///file:/x/state.db?mode=ro&uri=true) carry their own query.
            database, _, options = database.removeprefix("file:").partition("?")
            is_read_only = "mode=ro" in options.split("&") or parsed.query.get("mode") == "ro"
            if "mode=memory" in options.split("&") or parsed.query.get("mode") == "memory":
                database = ""
        path = Path(database).expanduser().absolute() if database else None
    return DatabaseTarget(url=parsed, path=path, is_sqlite=is_sqlite, is_read_only=is_read_only)


def prepare_sqlite_file(path: Path) -> bool:
    """Create ``path``'s directory (0700) and the empty database file (0600) when missing.

    SQLite would create the file with the process umask (often world-readable); creating it
    ourselves first is the only way to be sure it never exists with looser permissions.
    Returns True when the file was created here. An existing file or directory keeps the
    permissions its owner chose.

    Raises:
        StoreError: the directory or file cannot be created (read-only file system, no space,
            permission denied).
    """
    try:
        _make_private_dirs(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return False
        try:
            os.fchmod(fd, 0o600)  # the umask may have removed bits, never added them; be exact
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(diagnosis.describe_os_error(exc, str(path))) from exc
    return True


def _make_private_dirs(directory: Path) -> None:
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for new_dir in reversed(missing):
        try:
            new_dir.mkdir(mode=0o700)
        except FileExistsError:
            continue  # created concurrently by someone else: theirs to own
        new_dir.chmod(0o700)


def secure_sidecar_files(path: Path) -> None:
    """Give the ``-wal``/``-shm``/``-journal`` files the database file's own permissions.

    They hold the same data as the database; SQLite usually copies the mode itself, this makes
    sure of it (best effort: a sidecar may vanish at any moment when the last connection closes).
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    for suffix in _SIDECAR_SUFFIXES:
        sidecar = path.with_name(path.name + suffix)
        try:
            if stat.S_IMODE(sidecar.stat().st_mode) != mode:
                sidecar.chmod(mode)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(
                f"cannot restrict permissions of {sidecar}: {exc.strerror or exc}"
            ) from exc


def make_engine(
    target: DatabaseTarget,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> Engine:
    """An engine for ``target``; for SQLite every new connection gets syncd's pragmas.

    The engine is safe to share between threads; each unit of work takes its own connection
    (Session) from the pool. ``pool_size`` should cover the threads that hold one at once (the
    upload workers, the scan, the dispatcher): a connection beyond it is opened, given its
    pragmas and closed again for every transaction.
    """
    # A server connection can die while pooled (a server restart kills them all), so it is
    # pinged before use and replaced when dead; a SQLite file connection cannot, and the ping
    # would cost a round trip on every one of the handful of sessions each synced file opens.
    kwargs: dict[str, Any] = {"pool_pre_ping": not target.is_sqlite}
    if target.is_sqlite:
        # The driver's own timeout is the busy timeout too; keep both equal.
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
    elif target.url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = postgres_connect_args(target.url, busy_timeout_ms, os.environ)
    if target.url.password:
        register_secret(target.url.password)
        register_secret(urllib.parse.quote(target.url.password, safe=""))
    if target.is_sqlite and target.path is None:
        # An in-memory database lives in one connection: every thread must share it (the
        # default pool would give each thread its own, empty, unmigrated database).
        # Good for tests and demos; concurrent sessions share its transaction.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    else:
        kwargs["pool_size"] = pool_size
    engine = create_engine(target.url, **kwargs)
    if target.is_sqlite:
        _install_sqlite_pragmas(engine, busy_timeout_ms)
    return engine


def postgres_connect_args(
    url: URL, busy_timeout_ms: int, environ: Mapping[str, str]
) -> dict[str, str | int]:
    """libpq parameters syncd adds to a PostgreSQL URL: ``connect_timeout`` and a
    ``lock_timeout`` of ``busy_timeout_ms`` (a row lock never waits forever; SQLite's
    equivalent is the busy timeout).

    Whatever the URL or libpq's environment (``PGCONNECT_TIMEOUT``, ``PGOPTIONS``) already sets
    is kept: options the URL gives without a lock timeout get it appended, and an empty
    ``options=`` in the URL (for a pooler that refuses startup options) sends none.
    """
    added: dict[str, str | int] = {}
    query = url.query
    if "connect_timeout" not in query and not environ.get("PGCONNECT_TIMEOUT"):
        added["connect_timeout"] = CONNECT_TIMEOUT_S
    options = query.get("options", environ.get("PGOPTIONS"))
    if isinstance(options, tuple):  # given twice in the URL: libpq would take the last one
        options = options[-1]
    if options is None or (options and "lock_timeout" not in options):
        lock_timeout = f"-c lock_timeout={int(busy_timeout_ms)}"
        added["options"] = f"{options} {lock_timeout}" if options else lock_timeout
    return added


def _install_sqlite_pragmas(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock that another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            # Durable at every checkpoint and safe from corruption in WAL mode; much faster.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            # Each pooled connection keeps its own page cache (SQLite's default is 2 MiB): with
            # 100,000 rows that was ~2 MB of daemon RSS per connection. The OS page cache holds
            # the file anyway, and syncd's queries are index lookups and one scan per rescan.
            cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        finally:
            cursor.close()


def check_integrity(engine: Engine, target: DatabaseTarget) -> None:
    """Run SQLite's ``quick_check``; anything but "ok" is a corrupt database.

    Raises:
        StoreError: the file is corrupt, not a database, locked or unreadable.
    """
    if not target.is_sqlite:
        return
    with engine.connect() as connection:
        problems = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA quick_check")]
    if problems != ["ok"]:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise StoreError(
            f"state database {target.display} is corrupt (quick_check: {shown}); "
            f"{diagnosis.CORRUPT_HINT}"
        )


def open_engine(
    url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, pool_size: int = DEFAULT_POOL_SIZE
) -> tuple[Engine, DatabaseTarget]:
    """Prepare the file, make the engine and check integrity: everything before the schema.

    Raises:
        StoreError: see :func:`prepare_sqlite_file` and :func:`check_integrity`.
    """
    target = parse_target(url)
    if target.path is not None and not target.is_read_only:
        prepare_sqlite_file(target.path)
    engine = make_engine(target, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size)
    try:
        with diagnosis.translated(target.display, busy_timeout_ms=busy_timeout_ms):
            check_integrity(engine, target)
    except BaseException:
        engine.dispose()
        raise
    return engine, target
