"""The state store's tables as SQLAlchemy 2 typed ORM models.

The models are mapped onto the Core tables of :mod:`syncd.store.tables` (which hold the columns,
their types and the indexes); the annotations here type the attributes. Only the store package
sees these classes: repository functions turn rows into the frozen records of
:mod:`syncd.store.records`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import DeclarativeBase, Mapped

from syncd.domain import LocalState
from syncd.store import tables
from syncd.store.tables import NAMING_CONVENTION, FreeText, LocalStateType, UTCDateTime

__all__ = [
    "NAMING_CONVENTION",
    "AuditEntry",
    "Base",
    "FreeText",
    "Job",
    "JobResult",
    "LocalFile",
    "LocalStateType",
    "Meta",
    "Node",
    "RemoteFile",
    "ResultFile",
    "UTCDateTime",
]


class Base(DeclarativeBase):
    """Declarative base whose metadata is the target of the Alembic migrations."""

    metadata = tables.METADATA


class LocalFile(Base):
    """One path inside one configured folder, and where its content stands."""

    __table__ = tables.LOCAL_FILES

    id: Mapped[int]
    folder: Mapped[str]
    rel_path: Mapped[str]
    purpose: Mapped[str]
    size: Mapped[int]
    mtime_ns: Mapped[int]
    inode: Mapped[int]
    sha256: Mapped[str | None]
    state: Mapped[LocalState]
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None]
    remote_file_id: Mapped[str | None]
    intent_started_at: Mapped[datetime | None]
    intent_filename: Mapped[str | None]
    first_seen_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    state_changed_at: Mapped[datetime]
    warnings: Mapped[str | None]
    claimed_by: Mapped[str | None]
    ctime_ns: Mapped[int | None]
    racy: Mapped[bool]


class RemoteFile(Base):
    """One file syncd put on (or adopted from) the Files API, alive or deleted."""

    __table__ = tables.REMOTE_FILES

    file_id: Mapped[str]
    purpose: Mapped[str]
    filename: Mapped[str]
    bytes: Mapped[int]
    sha256: Mapped[str]
    created_at: Mapped[datetime]
    uploaded_at: Mapped[datetime]
    local_file_id: Mapped[int | None]
    folder: Mapped[str]
    rel_path: Mapped[str]
    superseded_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    delete_reason: Mapped[str | None]


class AuditEntry(Base):
    """An append-only line of what syncd did to the remote (and why)."""

    __table__ = tables.AUDIT

    id: Mapped[int]
    at: Mapped[datetime]
    action: Mapped[str]
    folder: Mapped[str | None]
    rel_path: Mapped[str | None]
    sha256: Mapped[str | None]
    file_id: Mapped[str | None]
    bytes: Mapped[int | None]
    detail: Mapped[str | None]


class Node(Base):
    """One syncd sharing this store (fleet mode): who it is and when it was last seen alive."""

    __table__ = tables.NODES

    name: Mapped[str]
    version: Mapped[str]
    pid: Mapped[int]
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    queue_depth: Mapped[int]
    folders: Mapped[str | None]
    problems: Mapped[str | None]


class Meta(Base):
    """Small key/value facts about the store itself (e.g. a clean-shutdown marker)."""

    __table__ = tables.META

    key: Mapped[str]
    value: Mapped[str]


class Job(Base):
    """One batch job or OCR request for one uploaded content of one folder (see ``tables``)."""

    __table__ = tables.JOBS

    key: Mapped[str]
    folder: Mapped[str]
    kind: Mapped[str]
    mode: Mapped[str]
    sha256: Mapped[str]
    input_file_id: Mapped[str]
    rel_path: Mapped[str]
    state: Mapped[str]
    model: Mapped[str | None]
    remote_job_id: Mapped[str | None]
    remote_status: Mapped[str | None]
    total_requests: Mapped[int | None]
    completed_requests: Mapped[int | None]
    succeeded_requests: Mapped[int | None]
    failed_requests: Mapped[int | None]
    output_file_id: Mapped[str | None]
    error_file_id: Mapped[str | None]
    reason: Mapped[str | None]
    requests_sent: Mapped[int]
    answers_lost: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    intent_at: Mapped[datetime | None]
    remote_created_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None]
    claimed_until: Mapped[datetime | None]
    result_bytes: Mapped[int]


class JobResult(Base):
    """One input path whose content a job answers: waiting for it, or its results written."""

    __table__ = tables.JOB_RESULTS

    id: Mapped[int]
    folder: Mapped[str]
    rel_path: Mapped[str]
    sha256: Mapped[str]
    job_key: Mapped[str]
    state: Mapped[str]
    created_at: Mapped[datetime]
    written_at: Mapped[datetime | None]
    beside: Mapped[bool]


class ResultFile(Base):
    """What syncd last wrote at one path of a results folder: an edited file differs from it."""

    __table__ = tables.RESULT_FILES

    folder: Mapped[str]
    path: Mapped[str]
    sha256: Mapped[str]
    size: Mapped[int]
    job_key: Mapped[str]
    input_rel_path: Mapped[str]
    written_at: Mapped[datetime]
