"""Frozen records the repository hands out: plain values, safe to pass between threads.

ORM rows never leave the store (they are bound to a Session and expire with it); callers get
these instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.domain import FileStat, LocalState

__all__ = [
    "AuditRecord",
    "JobRecord",
    "JobResultRecord",
    "LocalFileRecord",
    "NodeRecord",
    "RemoteFileRecord",
]


@dataclass(frozen=True, slots=True)
class LocalFileRecord:
    """One row of ``local_files``: a path in a folder and where its content stands."""

    id: int
    folder: str
    rel_path: str
    purpose: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    state: LocalState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    remote_file_id: str | None
    intent_started_at: datetime | None
    intent_filename: str | None
    first_seen_at: datetime
    updated_at: datetime
    state_changed_at: datetime
    warnings: str | None = None
    """Validation warnings of the current content, one per line (never blocking)."""
    claimed_by: str | None = None
    """The node holding this row's upload claim (``uploading``), when one is recorded."""
    ctime_ns: int | None = None
    """The ctime of the fingerprint; None for rows recorded before syncd kept it."""
    racy: bool = False
    """Hashed within the timestamp granularity of its last change: hash it on the next look."""

    @property
    def stat(self) -> FileStat:
        """The fingerprint recorded when the file was last looked at."""
        return FileStat(self.size, self.mtime_ns, self.inode, self.ctime_ns or 0)


@dataclass(frozen=True, slots=True)
class RemoteFileRecord:
    """One row of ``remote_files``: a file syncd uploaded or adopted, alive or deleted."""

    file_id: str
    purpose: str
    filename: str
    bytes: int
    sha256: str
    created_at: datetime
    uploaded_at: datetime
    local_file_id: int | None
    folder: str
    rel_path: str
    superseded_at: datetime | None
    deleted_at: datetime | None
    delete_reason: str | None

    @property
    def is_live(self) -> bool:
        """Still on the remote, as far as syncd knows."""
        return self.deleted_at is None


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One row of ``nodes``: a syncd sharing the store, as of its last heartbeat."""

    name: str
    version: str
    pid: int
    started_at: datetime
    last_seen_at: datetime
    queue_depth: int
    folders: tuple[str, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit trail."""

    id: int
    at: datetime
    action: str
    folder: str | None
    rel_path: str | None
    sha256: str | None
    file_id: str | None
    bytes: int | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of ``jobs``: a batch job or OCR request for one uploaded content of a folder."""

    key: str
    folder: str
    kind: str
    mode: str
    sha256: str
    input_file_id: str
    rel_path: str
    state: str
    model: str | None
    remote_job_id: str | None
    remote_status: str | None
    total_requests: int | None
    completed_requests: int | None
    succeeded_requests: int | None
    failed_requests: int | None
    output_file_id: str | None
    error_file_id: str | None
    reason: str | None
    requests_sent: int
    answers_lost: int
    created_at: datetime
    updated_at: datetime
    intent_at: datetime | None
    remote_created_at: datetime | None
    finished_at: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None
    result_bytes: int

    @property
    def started_at(self) -> datetime | None:
        """When the job began: the server's creation time, else syncd's first intent."""
        return self.remote_created_at or self.intent_at

    def is_overdue(self, now: datetime, after: timedelta) -> bool:
        """Still unfinished ``after`` past its start (reported, and still followed)."""
        started = self.started_at
        return self.state == "running" and started is not None and now - started > after


@dataclass(frozen=True, slots=True)
class JobResultRecord:
    """One row of ``job_results``: an input path a job answers, waiting or written."""

    id: int
    folder: str
    rel_path: str
    sha256: str
    job_key: str
    state: str
    created_at: datetime
    written_at: datetime | None
    beside: bool
