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
    "LocalFile",
    "LocalStateType",
    "Meta",
    "Node",
    "RemoteFile",
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
