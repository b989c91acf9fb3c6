"""One syncd per node and state store: an exclusive lock held for the process's life.

Two processes working as the same node on one store take each other's live upload claims for
a crashed node's and record the same uploads twice (issue 21). So ``syncd run`` and
``syncd sync`` take this lock after opening the store and hold it until they exit:

* SQLite: ``flock`` on ``<database>.lock`` beside the file (one lock per store: every node
  name on one SQLite file shares it, fleet mode needs PostgreSQL anyway). The holder writes its
  pid, host and node into the file so a refused process can name it. The kernel drops the lock
  when the holder dies, even by SIGKILL: a stale file never blocks a start.
* PostgreSQL: a session advisory lock keyed by the node name, held by a connection of its own
  (never pooled, never shared) that names its holder in ``application_name``; a second host
  configured with the same ``[node] name`` is refused too. The server drops it when that
  connection ends (the process died, or the server restarted: see the README's limits).

Threads: :func:`acquire` and :meth:`InstanceLock.release` are called by the main thread only;
nothing else touches the lock. In-memory SQLite needs no lock (nothing else can open it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from syncd.errors import StoreBusyError, StoreError
from syncd.store.connect import DatabaseTarget, parse_target, postgres_connect_args

__all__ = ["InstanceLock", "acquire", "lock_path"]

#: First half of the two-key advisory lock: "syncd node" (the second half hashes the name).
_ADVISORY_CLASS = 0x5D0C
#: A PostgreSQL ``application_name`` is cut at 63 bytes; the holder line fits.
_APP_NAME_MAX = 63


@dataclass(slots=True)
class InstanceLock:
    """The held lock; :meth:`release` gives it up (idempotent)."""

    _fd: int | None = None
    _connection: Connection | None = None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._connection is not None:
            connection, self._connection = self._connection, None
            # Ending the session drops its advisory lock; a server already gone took it along.
            with contextlib.suppress(SQLAlchemyError):
                connection.close()
            connection.engine.dispose()


def lock_path(database: Path) -> Path:
    """The lock file beside a SQLite database."""
    return database.with_name(database.name + ".lock")


def acquire(url: str, node: str, *, command: str) -> InstanceLock:
    """Take the store's lock for ``node`` or raise naming who holds it.

    ``command`` ("run" or "sync") goes into the holder's description.

    Raises:
        StoreBusyError: another live process holds it (the message names the store, the node
            and the holder's pid and host).
        StoreError: the lock could not be taken at all (lock file not creatable, server down).
    """
    target = parse_target(url)
    if target.is_sqlite:
        if target.path is None:
            return InstanceLock()
        return _flock(target, node, command)
    return _advisory(target, node, command)


def _holder_line(node: str, command: str) -> dict[str, str | int]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "node": node, "command": command}


def _flock(target: DatabaseTarget, node: str, command: str) -> InstanceLock:
    assert target.path is not None
    path = lock_path(target.path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise StoreBusyError(
            f"state database {target.display} is in use by {holder} (node {node!r}); "
            "one syncd per store: stop it first, or let it do the work"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot lock {path}: {exc.strerror or exc}") from exc
    try:
        payload = json.dumps(_holder_line(node, command)).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, payload, 0)
    except OSError:
        pass  # a full disk: the lock holds all the same, only the refusal names no holder
    return InstanceLock(_fd=fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another syncd process"
    command = info.get("command", "run")
    return f"syncd {command} (pid {info['pid']} on host {info.get('host', '?')})"


def _advisory_key(node: str) -> int:
    # Stable across processes and hosts (unlike hash()); 31 bits keep it a positive int4.
    return int.from_bytes(hashlib.sha256(node.encode()).digest()[:4], "big") & 0x7FFFFFFF


def _advisory(target: DatabaseTarget, node: str, command: str) -> InstanceLock:
    info = _holder_line(node, command)
    app_name = f"syncd {command} pid {info['pid']} on {info['host']}"[:_APP_NAME_MAX]
    connect_args: dict[str, str | int] = {
        **postgres_connect_args(target.url, 5000, os.environ),
        "application_name": app_name,
    }
    # Its own engine without a pool: this one connection lives as long as the process.
    engine = create_engine(target.url, poolclass=NullPool, connect_args=connect_args)
    key = _advisory_key(node)
    try:
        connection = engine.connect()
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:cls, :key)"), {"cls": _ADVISORY_CLASS, "key": key}
        ).scalar_one()
        # Autocommit-like: the advisory lock is the session's, not the transaction's.
        connection.commit()
        if got:
            return InstanceLock(_connection=connection)
        holder = connection.execute(
            text(
                "SELECT a.application_name, host(a.client_addr) FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted"
                " AND l.classid = :cls AND l.objid = :key AND l.objsubid = 2"
            ),
            {"cls": _ADVISORY_CLASS, "key": key},
        ).first()
        connection.close()
    except SQLAlchemyError as exc:
        engine.dispose()
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise StoreError(f"cannot take the node lock in {target.display}: {first_line}") from exc
    engine.dispose()
    if holder is None:
        who = "another syncd process"
    else:
        who = str(holder[0] or "another syncd process")
        if holder[1]:
            who += f" (connected from {holder[1]})"
    raise StoreBusyError(
        f"state database {target.display} is in use by {who} as node {node!r}; "
        "one syncd per node and store: stop it first, give this one another [node] name, "
        "or let it do the work"
    )
