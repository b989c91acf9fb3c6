"""Turn database and file-system failures into one :class:`~syncd.errors.StoreError` each.

The one place that reads driver exceptions: every message names the database (path, or URL with
the password masked), says what is wrong in words, and what to do about it. Nothing here retries:
SQLite already waits ``busy_timeout`` for a lock before it gives up, PostgreSQL ``lock_timeout``.
A server that cannot be reached (or drops the connection) is named by host and port.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import OperationalError as DriverOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from syncd.errors import StoreError
from syncd.logs import redact_text

__all__ = [
    "CORRUPT_HINT",
    "describe_db_error",
    "describe_os_error",
    "is_disk_full",
    "translated",
]

#: PostgreSQL's SQLSTATE for a lock not granted within ``lock_timeout``.
_PG_LOCK_NOT_AVAILABLE = "55P03"
#: PostgreSQL's default port, used when neither the URL nor PGPORT names one.
_PG_DEFAULT_PORT = 5432

#: What to do about a corrupt database (never recreated silently: it is the only record).
CORRUPT_HINT = (
    "restore it from a backup, or move it aside to start with an empty state "
    "(syncd then hashes every file again and may upload files the remote already has)"
)


def _sqlite_primary_code(exc: BaseException) -> str | None:
    """``"BUSY"`` for SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, ...; None for non-SQLite errors."""
    name = getattr(exc, "sqlite_errorname", None)
    if not isinstance(name, str) or not name.startswith("SQLITE_"):
        return None
    return name.removeprefix("SQLITE_").split("_", 1)[0]


def is_disk_full(exc: BaseException) -> bool:
    """Whether a :class:`StoreError` (or driver error) says SQLite could not write for want of
    room (``SQLITE_FULL``, or an I/O error on a volume that filled up)."""
    cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ else exc
    orig = cause.orig if isinstance(cause, DBAPIError) and cause.orig is not None else cause
    return _sqlite_primary_code(orig) in ("FULL", "IOERR")


def describe_db_error(exc: BaseException, where: str, *, busy_timeout_ms: int) -> str:
    """A sentence for a driver (or SQLAlchemy-wrapped driver) exception about ``where``."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    # One line (libpq's messages span several), and never a registered secret.
    detail = redact_text(" ".join(str(orig).split())) or type(orig).__name__
    code = _sqlite_primary_code(orig)
    if code is None and _is_server_url(where):
        server = _describe_server_error(exc, orig, detail, where, busy_timeout_ms)
        if server is not None:
            return server
    if code in ("BUSY", "LOCKED"):
        return (
            f"state database {where} is locked by another process or connection "
            f"(waited {busy_timeout_ms} ms); is another syncd running on it?"
        )
    if code in ("READONLY", "CANTOPEN") and _on_read_only_file_system(where):
        return (
            f"state database {where} is on a read-only file system ({detail}); syncd must be "
            "able to write the file and its directory"
        )
    if code == "READONLY":
        return (
            f"state database {where} is read-only ({detail}); syncd must be able to write "
            "the file and its directory"
        )
    if code == "FULL":
        return f"state database {where} cannot grow: the disk is full ({detail})"
    if code == "NOTADB":
        return (
            f"{where} is not a SQLite database (or it is encrypted); move it aside or point "
            "the [state] url setting at another file"
        )
    if code == "CORRUPT":
        return f"state database {where} is corrupt ({detail}); {CORRUPT_HINT}"
    if code == "CANTOPEN":
        return f"cannot open state database {where} ({detail}); check the path and permissions"
    if code == "IOERR":
        return f"I/O error on state database {where} ({detail}); is the disk full or failing?"
    if code in ("PERM", "AUTH"):
        return f"access to state database {where} denied ({detail})"
    return f"state database {where} failed: {detail}"


def _describe_server_error(
    exc: BaseException, orig: BaseException, detail: str, where: str, busy_timeout_ms: int
) -> str | None:
    """A sentence for a server database's connection or lock failure; None for the rest."""
    if getattr(orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
        return (
            f"state database {where}: a row stayed locked by another connection for longer than "
            f"{busy_timeout_ms} ms (lock_timeout); is another syncd (or a stuck session) "
            "holding it?"
        )
    if not isinstance(exc, DriverOperationalError):
        return None
    address = _server_address(where)
    if exc.statement is None:  # raised while connecting, before any SQL
        if "password" in detail or "authentication" in detail:
            return (
                f"cannot log in to state database {where} ({detail}); check the user in "
                "[state] url and the password in [state] password_file (or PGPASSFILE, "
                "~/.pgpass, PGPASSWORD)"
            )
        return (
            f"cannot connect to state database {where} ({detail}); is PostgreSQL running "
            f"and reachable at {address}?"
        )
    if exc.connection_invalidated:
        return (
            f"lost the connection to state database {where} ({detail}); is PostgreSQL "
            f"running and reachable at {address}?"
        )
    return None


def _is_server_url(where: str) -> bool:
    """Whether ``where`` is a server database's URL (not a file path, not SQLite)."""
    return "://" in where and not where.startswith("sqlite")


def _server_address(where: str) -> str:
    """``host:port`` of the server the URL ``where`` names, as libpq would pick them."""
    try:
        url = make_url(where)
    except ArgumentError:
        return "the host and port in [state] url"
    host = url.host or _last(url.query.get("host")) or os.environ.get("PGHOST")
    port = url.port or _last(url.query.get("port")) or os.environ.get("PGPORT")
    port = port or _PG_DEFAULT_PORT
    if not host:  # libpq's default: the unix socket in its compiled-in directory
        return f"the local unix socket (port {port})"
    if host.startswith("/"):
        return f"the unix socket {host}/.s.PGSQL.{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _last(value: str | tuple[str, ...] | None) -> str | None:
    return value[-1] if isinstance(value, tuple) else value


def _on_read_only_file_system(where: str) -> bool:
    """Whether ``where`` is a file path whose file system is mounted read-only.

    SQLite reports such a file as "unable to open" (it cannot create the WAL's ``-shm``), which
    would send the operator looking at permissions instead of at the mount.
    """
    if not where.startswith("/"):
        return False  # a server database's URL
    directory = Path(where).parent
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def describe_os_error(exc: OSError, where: str) -> str:
    """A sentence for a file-system failure while preparing the database file."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EROFS:
        return f"cannot create state database {where}: the file system is read-only"
    if exc.errno == errno.ENOSPC:
        return f"cannot create state database {where}: the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot create state database {where}: permission denied ({exc.filename})"
    return f"cannot create state database {where}: {reason}"


@contextmanager
def translated(where: str, *, busy_timeout_ms: int) -> Iterator[None]:
    """Re-raise driver errors from the block as :class:`StoreError` (chained).

    Other exceptions pass untouched: an ORM misuse is a bug and should look like one.
    """
    try:
        yield
    except (DBAPIError, sqlite3.Error) as exc:
        raise StoreError(describe_db_error(exc, where, busy_timeout_ms=busy_timeout_ms)) from exc
    except PoolTimeoutError as exc:
        # Every pooled connection stayed checked out: too many threads for the pool size.
        raise StoreError(f"no free connection to state database {where}: {exc}") from exc
