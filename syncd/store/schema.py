"""The state store's tables as SQLAlchemy 2 typed ORM models.

Only the store package sees these classes: repository functions turn rows into the frozen
records of :mod:`syncd.store.records`. Every column type here works on SQLite and PostgreSQL
alike; the Alembic migrations in ``migrations/versions`` must produce exactly this schema (a test
compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from syncd import purposes
from syncd.domain import LocalState

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

#: Deterministic constraint names, so a batch migration on SQLite can find and alter them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA256_HEX = 64
FILE_ID_LENGTH = 128
PURPOSE_LENGTH = purposes.PURPOSE_LENGTH
STATE_LENGTH = 16
ACTION_LENGTH = 32
NODE_NAME_LENGTH = 63
JOB_KEY_LENGTH = 64


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zone type and SQLAlchemy drops ``tzinfo`` on the way in, so values are
    normalised to UTC before they are stored and marked UTC again when read. Naive datetimes
    are refused: a naive value is a bug (whose local time would it be?).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} given to the state store; use UTC")
        value = value.astimezone(UTC)
        # SQLite stores the wall-clock text only, which is now UTC by construction.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class FreeText(TypeDecorator[str]):
    """Text quoted from elsewhere (errors, warnings, audit details): any string is stored.

    PostgreSQL's text cannot hold NUL, which a server's error message or a file's content may
    carry; it is stored as the four characters ``\\x00`` (on every backend, so they all keep
    the same text), and the write never fails.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else value.replace("\x00", "\\x00")

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return value


class LocalStateType(TypeDecorator[LocalState]):
    """:class:`~syncd.domain.LocalState` stored as its plain string value.

    A string column (not a native enum) keeps adding a state a code change, not a migration.
    """

    impl = String(STATE_LENGTH)
    cache_ok = True

    def process_bind_param(self, value: LocalState | str | None, dialect: Dialect) -> str | None:
        return None if value is None else LocalState(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> LocalState | None:
        return None if value is None else LocalState(value)


class Base(DeclarativeBase):
    """Declarative base whose metadata is the target of the Alembic migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class LocalFile(Base):
    """One path inside one configured folder, and where its content stands."""

    __tablename__ = "local_files"
    __table_args__ = (
        UniqueConstraint("folder", "rel_path"),
        # The upload queue reads due rows in this index's order (see upload_queue): never-tried
        # rows by state_changed_at, retries by next_attempt_at, without sorting the queue.
        Index(
            "ix_local_files_state_next_attempt_at", "state", "next_attempt_at", "state_changed_at"
        ),
        Index("ix_local_files_sha256", "sha256"),
        # The status page counts, ages and lists each folder's rows by state from this index.
        Index(
            "ix_local_files_folder_state_state_changed_at", "folder", "state", "state_changed_at"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    folder: Mapped[str] = mapped_column(Text)
    """The folder's configured absolute path: the folder's identity."""
    rel_path: Mapped[str] = mapped_column(Text)
    """Root-relative POSIX path."""
    purpose: Mapped[str] = mapped_column(String(PURPOSE_LENGTH))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX))
    state: Mapped[LocalState] = mapped_column(LocalStateType())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(FreeText())
    remote_file_id: Mapped[str | None] = mapped_column(String(FILE_ID_LENGTH))
    """The remote file holding this row's last uploaded content (kept to supersede it later)."""
    intent_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the first not-yet-settled upload attempt was claimed (adopt before re-sending)."""
    intent_filename: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    warnings: Mapped[str | None] = mapped_column(FreeText())
    """Validation warnings of the current content, one per line: accepted, but worth a look."""
    claimed_by: Mapped[str | None] = mapped_column(String(NODE_NAME_LENGTH))
    """The node whose upload claim this is (``uploading`` rows); None: no node recorded."""
    ctime_ns: Mapped[int | None] = mapped_column(BigInteger)
    """The fingerprint's ctime (a write always moves it); None: recorded before 0006."""
    racy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Hashed too soon after its last change to trust the fingerprint: hash it again."""


class RemoteFile(Base):
    """One file syncd put on (or adopted from) the Files API, alive or deleted."""

    __tablename__ = "remote_files"
    __table_args__ = (Index("ix_remote_files_sha256_purpose", "sha256", "purpose"),)

    file_id: Mapped[str] = mapped_column(String(FILE_ID_LENGTH), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(PURPOSE_LENGTH))
    filename: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """The server's ``created_at``."""
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    local_file_id: Mapped[int | None] = mapped_column(
        ForeignKey("local_files.id", ondelete="SET NULL"), index=True
    )
    folder: Mapped[str] = mapped_column(Text)
    rel_path: Mapped[str] = mapped_column(Text)
    """The path at upload time (a later rename does not change it)."""
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delete_reason: Mapped[str | None] = mapped_column(FreeText())


class AuditEntry(Base):
    """An append-only line of what syncd did to the remote (and why)."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(ACTION_LENGTH))
    folder: Mapped[str | None] = mapped_column(Text)
    rel_path: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX))
    file_id: Mapped[str | None] = mapped_column(String(FILE_ID_LENGTH))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str | None] = mapped_column(FreeText())


class Node(Base):
    """One syncd sharing this store (fleet mode): who it is and when it was last seen alive."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(NODE_NAME_LENGTH), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """The database's clock at the node's last heartbeat (one clock for the whole fleet)."""
    queue_depth: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    folders: Mapped[str | None] = mapped_column(Text)
    """The node's folder keys, one per line."""
    problems: Mapped[str | None] = mapped_column(FreeText())
    """Why the node is degraded, one reason per line (None: healthy)."""


class Meta(Base):
    """Small key/value facts about the store itself (e.g. a clean-shutdown marker)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Job(Base):
    """One batch job or OCR request for one uploaded content of one folder (issue: results).

    ``key`` is derived from (folder, kind, sha256): one job per content and folder, whatever
    the paths holding it. A submitted batch job carries it in its ``metadata``, so a create
    whose answer was lost is found again through the listing's metadata filter.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_folder_state", "folder", "state"),
        Index("ix_jobs_remote_job_id", "remote_job_id"),
    )

    key: Mapped[str] = mapped_column(String(JOB_KEY_LENGTH), primary_key=True)
    folder: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(STATE_LENGTH))
    """``batch`` or ``ocr``."""
    mode: Mapped[str] = mapped_column(String(STATE_LENGTH))
    """``submit`` (syncd creates the batch job), ``wait`` (someone else does) or ``ocr``."""
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    input_file_id: Mapped[str] = mapped_column(String(FILE_ID_LENGTH))
    rel_path: Mapped[str] = mapped_column(Text)
    """The first path that held this content (others are in ``job_results``)."""
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    """held | pending | creating | running | downloading | done | failed."""
    model: Mapped[str | None] = mapped_column(Text)
    remote_job_id: Mapped[str | None] = mapped_column(String(FILE_ID_LENGTH))
    remote_status: Mapped[str | None] = mapped_column(String(ACTION_LENGTH))
    total_requests: Mapped[int | None] = mapped_column(Integer)
    completed_requests: Mapped[int | None] = mapped_column(Integer)
    succeeded_requests: Mapped[int | None] = mapped_column(Integer)
    failed_requests: Mapped[int | None] = mapped_column(Integer)
    output_file_id: Mapped[str | None] = mapped_column(String(FILE_ID_LENGTH))
    error_file_id: Mapped[str | None] = mapped_column(String(FILE_ID_LENGTH))
    reason: Mapped[str | None] = mapped_column(FreeText())
    """Why it is held, or why it failed (the API's errors)."""
    requests_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Creates (batch) or OCR requests sent for it: more than one means an answer was lost."""
    answers_lost: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    intent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the create (or OCR request) was first about to be sent: the spending guard's clock."""
    remote_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(NODE_NAME_LENGTH))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class JobResult(Base):
    """One input path whose content a job answers: waiting for it, or its results written."""

    __tablename__ = "job_results"
    __table_args__ = (
        UniqueConstraint("folder", "rel_path", "sha256"),
        Index("ix_job_results_job_key", "job_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    folder: Mapped[str] = mapped_column(Text)
    rel_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    job_key: Mapped[str] = mapped_column(ForeignKey("jobs.key", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    """waiting | written | failed."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    written_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    beside: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A result landed beside a file a person edited, under another name."""


class ResultFile(Base):
    """What syncd last wrote at one path of a results folder: an edited file differs from it."""

    __tablename__ = "result_files"
    __table_args__ = (Index("ix_result_files_job_key", "job_key"),)

    folder: Mapped[str] = mapped_column(Text, primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    """Relative to the folder's results folder."""
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    size: Mapped[int] = mapped_column(BigInteger)
    job_key: Mapped[str] = mapped_column(String(JOB_KEY_LENGTH))
    input_rel_path: Mapped[str] = mapped_column(Text)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime())
