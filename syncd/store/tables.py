"""The state store's tables in SQLAlchemy Core: what a read needs without the ORM.

The ORM models of :mod:`syncd.store.schema` are mapped onto these very tables, so Core
statements (the hot paths, and what ``syncd status`` reads: importing ``sqlalchemy.orm`` costs
half of SQLAlchemy's own import again) and ORM ones see one schema. Every column type here works
on SQLite and PostgreSQL alike; the Alembic migrations in ``migrations/versions`` must produce
exactly this schema (a test compares them).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)

from syncd import purposes
from syncd.domain import LocalState
from syncd.store.records import AuditRecord, LocalFileRecord, RemoteFileRecord

__all__ = [
    "AUDIT",
    "AUDIT_COLUMNS",
    "JOBS",
    "JOB_RESULTS",
    "LOCAL_COLUMNS",
    "LOCAL_FILES",
    "META",
    "METADATA",
    "NAMING_CONVENTION",
    "NODES",
    "REMOTE_COLUMNS",
    "REMOTE_FILES",
    "RESULT_FILES",
    "FreeText",
    "LocalStateType",
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


#: The metadata every table belongs to: the target of the Alembic migrations.
METADATA = MetaData(naming_convention=NAMING_CONVENTION)

#: One path inside one configured folder, and where its content stands.
LOCAL_FILES = Table(
    "local_files",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The folder's identity (see syncd.folder_spec.FolderSpec.key).
    Column("folder", Text, nullable=False),
    # Root-relative POSIX path.
    Column("rel_path", Text, nullable=False),
    Column("purpose", String(PURPOSE_LENGTH), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("sha256", String(SHA256_HEX)),
    Column("state", LocalStateType(), nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime()),
    Column("last_error", FreeText()),
    # The remote file holding this row's last uploaded content (kept to supersede it later).
    Column("remote_file_id", String(FILE_ID_LENGTH)),
    # When the first not-yet-settled upload attempt was claimed (adopt before re-sending).
    Column("intent_started_at", UTCDateTime()),
    Column("intent_filename", Text),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("state_changed_at", UTCDateTime(), nullable=False),
    # Validation warnings of the current content, one per line: accepted, but worth a look.
    Column("warnings", FreeText()),
    # The node whose upload claim this is (``uploading`` rows); None: no node recorded.
    Column("claimed_by", String(NODE_NAME_LENGTH)),
    # The fingerprint's ctime (a write always moves it); None: recorded before 0006.
    Column("ctime_ns", BigInteger),
    # Hashed too soon after its last change to trust the fingerprint: hash it again.
    Column("racy", Boolean, nullable=False, default=False, server_default=false()),
    UniqueConstraint("folder", "rel_path"),
    # The upload queue reads due rows in this index's order (see upload_queue): never-tried
    # rows by state_changed_at, retries by next_attempt_at, without sorting the queue.
    Index("ix_local_files_state_next_attempt_at", "state", "next_attempt_at", "state_changed_at"),
    Index("ix_local_files_sha256", "sha256"),
    # The status page counts, ages and lists each folder's rows by state from this index.
    Index("ix_local_files_folder_state_state_changed_at", "folder", "state", "state_changed_at"),
)

#: One file syncd put on (or adopted from) the Files API, alive or deleted.
REMOTE_FILES = Table(
    "remote_files",
    METADATA,
    Column("file_id", String(FILE_ID_LENGTH), primary_key=True),
    Column("purpose", String(PURPOSE_LENGTH), nullable=False),
    Column("filename", Text, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("sha256", String(SHA256_HEX), nullable=False),
    # The server's ``created_at``.
    Column("created_at", UTCDateTime(), nullable=False),
    Column("uploaded_at", UTCDateTime(), nullable=False),
    Column("local_file_id", ForeignKey("local_files.id", ondelete="SET NULL"), index=True),
    Column("folder", Text, nullable=False),
    # The path at upload time (a later rename does not change it).
    Column("rel_path", Text, nullable=False),
    Column("superseded_at", UTCDateTime()),
    Column("deleted_at", UTCDateTime()),
    Column("delete_reason", FreeText()),
    Index("ix_remote_files_sha256_purpose", "sha256", "purpose"),
)

#: An append-only line of what syncd did to the remote (and why).
AUDIT = Table(
    "audit",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("action", String(ACTION_LENGTH), nullable=False),
    Column("folder", Text),
    Column("rel_path", Text),
    Column("sha256", String(SHA256_HEX)),
    Column("file_id", String(FILE_ID_LENGTH)),
    Column("bytes", BigInteger),
    Column("detail", FreeText()),
)

#: One syncd sharing this store (fleet mode): who it is and when it was last seen alive.
NODES = Table(
    "nodes",
    METADATA,
    Column("name", String(NODE_NAME_LENGTH), primary_key=True),
    Column("version", String(32), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    # The database's clock at the node's last heartbeat (one clock for the whole fleet).
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("queue_depth", Integer, nullable=False, default=0, server_default="0"),
    # The node's folder keys, one per line.
    Column("folders", Text),
    # Why the node is degraded, one reason per line (None: healthy).
    Column("problems", FreeText()),
)

#: Small key/value facts about the store itself (e.g. a clean-shutdown marker).
META = Table(
    "meta",
    METADATA,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: One batch job or OCR request for one uploaded content of one folder (issue: results).
#: ``key`` is derived from (folder, kind, sha256): one job per content and folder, whatever
#: the paths holding it. A submitted batch job carries it in its ``metadata``, so a create
#: whose answer was lost is found again through the listing's metadata filter.
JOBS = Table(
    "jobs",
    METADATA,
    Column("key", String(JOB_KEY_LENGTH), primary_key=True),
    Column("folder", Text, nullable=False),
    # ``batch`` or ``ocr``.
    Column("kind", String(STATE_LENGTH), nullable=False),
    # ``submit`` (syncd creates the batch job), ``wait`` (someone else does) or ``ocr``.
    Column("mode", String(STATE_LENGTH), nullable=False),
    Column("sha256", String(SHA256_HEX), nullable=False),
    Column("input_file_id", String(FILE_ID_LENGTH), nullable=False),
    # The first path that held this content (others are in ``job_results``).
    Column("rel_path", Text, nullable=False),
    # held | pending | creating | running | downloading | done | failed.
    Column("state", String(STATE_LENGTH), nullable=False),
    Column("model", Text),
    Column("remote_job_id", String(FILE_ID_LENGTH)),
    Column("remote_status", String(ACTION_LENGTH)),
    Column("total_requests", Integer),
    Column("completed_requests", Integer),
    Column("succeeded_requests", Integer),
    Column("failed_requests", Integer),
    Column("output_file_id", String(FILE_ID_LENGTH)),
    Column("error_file_id", String(FILE_ID_LENGTH)),
    # Why it is held, or why it failed (the API's errors).
    Column("reason", FreeText()),
    # Creates (batch) or OCR requests sent for it: more than one means an answer was lost.
    Column("requests_sent", Integer, nullable=False, default=0, server_default="0"),
    Column("answers_lost", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # When the create (or OCR request) was first about to be sent: the spending guard's clock.
    Column("intent_at", UTCDateTime()),
    Column("remote_created_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("claimed_by", String(NODE_NAME_LENGTH)),
    Column("claimed_until", UTCDateTime()),
    Column("result_bytes", BigInteger, nullable=False, default=0, server_default="0"),
    Index("ix_jobs_folder_state", "folder", "state"),
    Index("ix_jobs_remote_job_id", "remote_job_id"),
)

#: One input path whose content a job answers: waiting for it, or its results written.
JOB_RESULTS = Table(
    "job_results",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("folder", Text, nullable=False),
    Column("rel_path", Text, nullable=False),
    Column("sha256", String(SHA256_HEX), nullable=False),
    Column("job_key", ForeignKey("jobs.key", ondelete="CASCADE"), nullable=False),
    # waiting | written | failed.
    Column("state", String(STATE_LENGTH), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("written_at", UTCDateTime()),
    # A result landed beside a file a person edited, under another name.
    Column("beside", Boolean, nullable=False, default=False, server_default=false()),
    UniqueConstraint("folder", "rel_path", "sha256"),
    Index("ix_job_results_job_key", "job_key"),
)

#: What syncd last wrote at one path of a results folder: an edited file differs from it.
RESULT_FILES = Table(
    "result_files",
    METADATA,
    Column("folder", Text, primary_key=True),
    # Relative to the folder's results folder.
    Column("path", Text, primary_key=True),
    Column("sha256", String(SHA256_HEX), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("job_key", String(JOB_KEY_LENGTH), nullable=False),
    Column("input_rel_path", Text, nullable=False),
    Column("written_at", UTCDateTime(), nullable=False),
    Index("ix_result_files_job_key", "job_key"),
)

#: ``local_files`` columns in :class:`LocalFileRecord` field order: ``LocalFileRecord(*row)``.
LOCAL_COLUMNS: tuple[Column[Any], ...] = tuple(
    LOCAL_FILES.c[f.name] for f in fields(LocalFileRecord)
)
#: ``remote_files`` columns in :class:`RemoteFileRecord` field order.
REMOTE_COLUMNS: tuple[Column[Any], ...] = tuple(
    REMOTE_FILES.c[f.name] for f in fields(RemoteFileRecord)
)
#: ``audit`` columns in :class:`AuditRecord` field order.
AUDIT_COLUMNS: tuple[Column[Any], ...] = tuple(AUDIT.c[f.name] for f in fields(AuditRecord))
