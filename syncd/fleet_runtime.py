"""The daemon's life in the state store: is the database answering, and is this node alive?

:class:`StateDatabaseMonitor` turns the outcomes of the daemon's periodic probes (the heartbeat
and the status tick) into one verdict. The first failure logs ``state_database_unavailable``
(naming the database, password masked), makes ``/healthz`` fail and ``STATUS=`` say so; while it
lasts, the daemon's own retries stand down (the uploader keeps its outcomes and waits); the
first write that lands (the heartbeat: a read proves nothing, a full disk still serves reads)
logs ``state_database_recovered`` and calls ``on_recovered``
(the daemon wakes the uploader and rescans, so files seen meanwhile are not lost).

:class:`FleetRuntime` is the heartbeat job: every ``[node] heartbeat`` it records this node's
version, pid, start time, queue depth, folders and problems in ``nodes``, then takes over the
upload claims that silent nodes hold in this node's folders. A node is silent when its last
heartbeat is older than ``[node] lease`` by the database's clock (one clock for the fleet).

Taking over is careful about outages: a database that was down for everyone leaves every node's
heartbeat old, and a node that is alive, only cut off, may still finish an upload it holds. So a
node takes over only once it has itself heartbeated without a gap for a whole lease: then the
database answered all along, and a node that wrote nothing all that time is gone. The claims go
back to ``pending`` with their upload intent, and the adoption lookup finds an upload the silent
node finished on the server, so nothing is uploaded twice.

Neither ever raises into the scheduler: a failing heartbeat only makes the next one try again.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from syncd import __version__
from syncd.errors import StoreError
from syncd.store import Store, repo

__all__ = [
    "FleetRuntime",
    "NodeSnapshot",
    "StateDatabaseMonitor",
    "beating",
    "database_now",
]

log = structlog.get_logger(__name__)


def database_now(s: Session) -> datetime:
    """The time by the database's clock (PostgreSQL), or this host's (SQLite: one host).

    Heartbeats and lease checks use it, so nodes whose clocks disagree still agree on who is
    silent.
    """
    if s.get_bind().dialect.name == "postgresql":
        value = s.scalar(select(func.now()))
        if isinstance(value, datetime):
            return value.astimezone(UTC)
    return datetime.now(UTC)


class StateDatabaseMonitor:
    """Whether the state database answers, as the daemon's probes find it; thread-safe."""

    def __init__(
        self,
        database: str,
        *,
        on_recovered: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        """The database as it may be shown: a file path, or a URL with the password masked."""
        self._on_recovered = on_recovered
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._up_since = clock()
        self._error = ""

    @property
    def database(self) -> str:
        return self._database

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._down_since is not None

    def down_for(self) -> float | None:
        """Seconds since the database stopped answering, or None while it answers."""
        with self._lock:
            return None if self._down_since is None else self._clock() - self._down_since

    def up_for(self) -> float:
        """Seconds the database has answered since its last failure (or since the start); 0
        while it is down."""
        with self._lock:
            return 0.0 if self._down_since is not None else self._clock() - self._up_since

    def problem(self) -> str | None:
        """Why the daemon is degraded because of the database, or None."""
        with self._lock:
            if self._down_since is None:
                return None
            down_for = self._clock() - self._down_since
            return f"state database {self._database} unavailable for {down_for:.0f}s: {self._error}"

    def failed(self, exc: StoreError) -> None:
        """A probe could not use the database."""
        with self._lock:
            self._error = str(exc)
            starting = self._down_since is None
            if starting:
                self._down_since = self._clock()
        if starting:
            log.warning("state_database_unavailable", database=self._database, error=str(exc))
        else:
            log.debug("state_database_still_unavailable", database=self._database, error=str(exc))

    def succeeded(self) -> None:
        """A probe wrote to the database; the first one after a failure ends the outage.

        Only writes may call it: a read that succeeds says nothing about a full disk.
        """
        with self._lock:
            if self._down_since is None:
                return
            now = self._clock()
            down_for = now - self._down_since
            self._down_since = None
            self._up_since = now
            self._error = ""
        log.info("state_database_recovered", database=self._database, down_s=round(down_for, 1))
        try:
            self._on_recovered()
        except Exception:
            log.exception("state_database_recovery_failed")


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """What a heartbeat says about this node besides being alive."""

    folders: tuple[str, ...]
    """Its folder keys (its own and the shared ones it syncs)."""
    queue_depth: int | None
    """Files waiting in its folders, as the status tick last read it (None: not read yet)."""
    problems: tuple[str, ...] = ()
    """Why it is degraded, one reason each."""


class FleetRuntime:
    """The heartbeat job: call :meth:`beat` every ``heartbeat``; it never raises."""

    def __init__(
        self,
        store: Store,
        *,
        node: str,
        lease: timedelta,
        snapshot: Callable[[], NodeSnapshot],
        monitor: StateDatabaseMonitor,
        on_taken_over: Callable[[int], None] = lambda _count: None,
        started_at: datetime | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._node = node
        self._lease = lease
        self._snapshot = snapshot
        self._monitor = monitor
        self._on_taken_over = on_taken_over
        self._started_at = started_at or datetime.now(UTC)
        self._clock = clock
        self._pid = os.getpid()
        self._last_queue_depth = 0
        # Since when every heartbeat succeeded on time (None: the last one failed).
        self._beating_since: float | None = None
        self._last_beat: float | None = None

    @property
    def node(self) -> str:
        return self._node

    def beat(self) -> int:
        """Record the heartbeat, then take over silent nodes' claims when that is safe.

        Returns how many claims were taken over. A store failure is the monitor's to report.
        """
        try:
            self._write_heartbeat()
        except StoreError as exc:
            self._beating_since = None
            self._monitor.failed(exc)
            return 0
        except Exception:
            self._beating_since = None
            log.exception("heartbeat_failed", node=self._node)
            return 0
        self._monitor.succeeded()
        now = self._clock()
        gap = None if self._last_beat is None else now - self._last_beat
        if self._beating_since is None or (gap is not None and gap > self._lease.total_seconds()):
            # The first beat, or one after a pause longer than a lease (a stopped process):
            # others may have taken this node for dead meanwhile; count afresh.
            self._beating_since = now
        self._last_beat = now
        if not self._may_take_over(now):
            return 0
        try:
            return self._take_over()
        except StoreError as exc:
            self._monitor.failed(exc)
        except Exception:
            log.exception("takeover_failed", node=self._node)
        return 0

    def _may_take_over(self, now: float) -> bool:
        lease = self._lease.total_seconds()
        assert self._beating_since is not None
        return now - self._beating_since >= lease and self._monitor.up_for() >= lease

    def _write_heartbeat(self) -> None:
        snapshot = self._snapshot()
        if snapshot.queue_depth is not None:
            self._last_queue_depth = snapshot.queue_depth
        with self._store.session() as s:
            repo.heartbeat(
                s,
                self._node,
                version=__version__,
                pid=self._pid,
                started_at=self._started_at,
                now=database_now(s),
                queue_depth=self._last_queue_depth,
                folders=snapshot.folders,
                problems=snapshot.problems,
            )

    def _take_over(self) -> int:
        folders = set(self._snapshot().folders)
        if not folders:
            return 0
        with self._store.session() as s:
            now = database_now(s)
            cutoff = now - self._lease
            silent = {
                n.name
                for n in repo.list_nodes(s)
                if n.name != self._node and n.last_seen_at < cutoff
            }
            if not silent:
                return 0
            held = Counter(
                record.claimed_by
                for record in repo.inflight_uploads(s)
                if record.claimed_by in silent and record.folder in folders
            )
            if not held:
                return 0
            count = repo.take_over_silent_claims(
                s, node=self._node, folders=folders, now=now, lease=self._lease
            )
        if count:
            log.warning(
                "claims_taken_over",
                count=count,
                from_nodes=sorted(str(name) for name in held),
                claims_by_node={str(name): n for name, n in sorted(held.items())},
                lease_s=self._lease.total_seconds(),
            )
            self._on_taken_over(count)
        return count


@contextmanager
def beating(runtime: FleetRuntime, *, every: timedelta) -> Iterator[FleetRuntime]:
    """Heartbeat ``every`` so long in a thread while the block runs (``syncd sync``): a pass
    killed mid-upload then has its claims taken over like a daemon's, after the lease."""
    done = threading.Event()

    def beat() -> None:
        while True:
            runtime.beat()
            if done.wait(every.total_seconds()):
                return

    thread = threading.Thread(target=beat, name="syncd-heartbeat", daemon=True)
    thread.start()
    try:
        yield runtime
    finally:
        done.set()
        thread.join(timeout=10)
