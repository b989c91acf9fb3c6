"""What the status surfaces read about jobs, in SQLAlchemy Core (``syncd status`` never
imports the ORM; the status page's session runs the same statements)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, TypeAlias

from sqlalchemy import func, select

from syncd.store import tables
from syncd.store.records import JobRecord

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    #: What runs a statement: a Core connection or an ORM session.
    Executor: TypeAlias = Connection | Session

__all__ = ["JOB_STATES", "TERMINAL_STATES", "job_counts", "recent_jobs", "written_paths"]

#: held: over the spending guard; pending: to submit, request, or wait for; creating: the
#: create (or OCR request) may be in flight; running: the remote job is not finished;
#: downloading: finished, results being written; done; failed.
JOB_STATES = ("held", "pending", "creating", "running", "downloading", "done", "failed")
TERMINAL_STATES = ("done", "failed")

_J = tables.JOBS
_R = tables.RESULT_FILES
_JOB_COLUMNS = [_J.c[name] for name in JobRecord.__dataclass_fields__]


def job_counts(s: Executor, folders: Collection[str] | None = None) -> dict[tuple[str, str], int]:
    """(folder, state) -> number of jobs."""
    query = select(_J.c.folder, _J.c.state, func.count()).group_by(_J.c.folder, _J.c.state)
    if folders is not None:
        query = query.where(_J.c.folder.in_(list(folders)))
    return {(folder, state): count for folder, state, count in s.execute(query)}


def recent_jobs(
    s: Executor, *, folders: Collection[str] | None = None, limit: int = 50
) -> list[JobRecord]:
    """Jobs for the status surfaces: those in flight or held first, then the newest others."""
    query = select(*_JOB_COLUMNS)
    if folders is not None:
        query = query.where(_J.c.folder.in_(list(folders)))
    query = query.order_by(_J.c.state.in_(TERMINAL_STATES).asc(), _J.c.updated_at.desc(), _J.c.key)
    return [JobRecord(*row) for row in s.execute(query.limit(limit))]


def written_paths(s: Executor, keys: Collection[str]) -> dict[str, list[str]]:
    """job key -> the result paths syncd wrote for it (relative to the results folder)."""
    if not keys:
        return {}
    found: dict[str, list[str]] = {}
    query = select(_R.c.job_key, _R.c.path).where(_R.c.job_key.in_(list(keys)))
    for key, path in s.execute(query.order_by(_R.c.path)):
        found.setdefault(key, []).append(path)
    return found
