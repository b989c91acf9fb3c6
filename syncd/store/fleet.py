"""Fleet mode in the store: node heartbeats, folder keys of older stores, and taking over the
upload claims of a node that went silent.

Several syncd nodes may share one PostgreSQL store; the database is their only means of
coordination. A node's liveness is its ``nodes`` row's ``last_seen_at``, written by its
heartbeat; a node silent for longer than the lease is taken for dead, and a live node that
syncs the same folder puts its ``uploading`` rows back to ``pending`` with their upload intent
kept, so the next claim first looks for that upload on the server (the adoption lookup): a
takeover never duplicates a file.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.store.records import NodeRecord
from syncd.store.schema import LocalFile, Node

__all__ = [
    "forget_node",
    "heartbeat",
    "list_nodes",
    "take_over_silent_claims",
    "uploading_elsewhere",
]


def heartbeat(
    s: Session,
    name: str,
    *,
    version: str,
    pid: int,
    started_at: datetime,
    now: datetime,
    queue_depth: int,
    folders: Collection[str],
    problems: Collection[str] = (),
) -> None:
    """Record that node ``name`` is alive now (insert its row the first time)."""
    row = s.get(Node, name, with_for_update=True)
    if row is None:
        row = Node(name=name)
        s.add(row)
    row.version = version
    row.pid = pid
    row.started_at = started_at
    row.last_seen_at = now
    row.queue_depth = queue_depth
    row.folders = "\n".join(folders) or None
    row.problems = "\n".join(problems) or None


def list_nodes(s: Session) -> list[NodeRecord]:
    """Every node that ever heartbeated into this store, by name."""
    return [
        NodeRecord(
            name=row.name,
            version=row.version,
            pid=row.pid,
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
            queue_depth=row.queue_depth,
            folders=tuple(row.folders.splitlines()) if row.folders else (),
            problems=tuple(row.problems.splitlines()) if row.problems else (),
        )
        for row in s.scalars(select(Node).order_by(Node.name))
    ]


def forget_node(s: Session, name: str) -> bool:
    """Remove a node's row (``syncd nodes --forget``); True when there was one."""
    result = s.execute(delete(Node).where(Node.name == name))
    assert isinstance(result, CursorResult)
    return result.rowcount > 0


def uploading_elsewhere(s: Session, *, node: str, folders: Collection[str]) -> int:
    """``uploading`` rows of ``folders`` claimed by other nodes (their uploads in flight)."""
    if not folders:
        return 0
    query = select(func.count()).where(
        LocalFile.state == LocalState.UPLOADING,
        LocalFile.folder.in_(list(folders)),
        LocalFile.claimed_by.is_not(None),
        LocalFile.claimed_by != node,
    )
    return s.scalar(query) or 0


def take_over_silent_claims(
    s: Session, *, node: str, folders: Collection[str], now: datetime, lease: timedelta
) -> int:
    """Put back the ``uploading`` rows of ``folders`` whose node has been silent longer than
    ``lease``, keeping their upload intent; returns how many rows were taken over."""
    if not folders:
        return 0
    silent = select(Node.name).where(Node.name != node, Node.last_seen_at < now - lease)
    result = s.execute(
        update(LocalFile)
        .where(
            LocalFile.state == LocalState.UPLOADING,
            LocalFile.folder.in_(list(folders)),
            LocalFile.claimed_by.in_(silent),
        )
        .values(state=LocalState.PENDING, next_attempt_at=None, claimed_by=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount
