"""Turn database and file-system failures into one :class:`~syncd.errors.StoreError` each.

The one place that reads driver exceptions: every message names the database (path, or URL with
the password masked), says what is wrong in words, and what to do about it. Nothing here retries:
SQLite already waits ``busy_timeout`` for a lock before it gives up.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from syncd.errors import StoreError

__all__ = ["CORRUPT_HINT", "describe_db_error", "describe_os_error", "translated"]

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


def describe_db_error(exc: BaseException, where: str, *, busy_timeout_ms: int) -> str:
    """A sentence for a driver (or SQLAlchemy-wrapped driver) exception about ``where``."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    detail = str(orig).strip() or type(orig).__name__
    code = _sqlite_primary_code(orig)
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
