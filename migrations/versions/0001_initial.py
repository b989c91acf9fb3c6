"""Initial state store: local files, remote files, audit trail, meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # syncd.store.schema.UTCDateTime stores through this type; migrations keep plain SQL types
    # so they never change when application code does.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the four tables of the first schema."""
    op.create_table(
        "local_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("rel_path", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("remote_file_id", sa.String(length=128), nullable=True),
        sa.Column("intent_started_at", _utc(), nullable=True),
        sa.Column("intent_filename", sa.Text(), nullable=True),
        sa.Column("first_seen_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("state_changed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_files")),
        sa.UniqueConstraint("folder", "rel_path", name=op.f("uq_local_files_folder_rel_path")),
    )
    op.create_index("ix_local_files_sha256", "local_files", ["sha256"])
    op.create_index(
        "ix_local_files_state_next_attempt_at", "local_files", ["state", "next_attempt_at"]
    )

    op.create_table(
        "remote_files",
        sa.Column("file_id", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("uploaded_at", _utc(), nullable=False),
        sa.Column("local_file_id", sa.Integer(), nullable=True),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("rel_path", sa.Text(), nullable=False),
        sa.Column("superseded_at", _utc(), nullable=True),
        sa.Column("deleted_at", _utc(), nullable=True),
        sa.Column("delete_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["local_file_id"],
            ["local_files.id"],
            name=op.f("fk_remote_files_local_file_id_local_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_remote_files")),
    )
    op.create_index(op.f("ix_remote_files_local_file_id"), "remote_files", ["local_file_id"])
    op.create_index("ix_remote_files_sha256_purpose", "remote_files", ["sha256", "purpose"])

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("folder", sa.Text(), nullable=True),
        sa.Column("rel_path", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("file_id", sa.String(length=128), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_at"), "audit", ["at"])

    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )


def downgrade() -> None:
    """Drop everything (the state is lost; only for tests and development)."""
    op.drop_table("meta")
    op.drop_index(op.f("ix_audit_at"), table_name="audit")
    op.drop_table("audit")
    op.drop_index("ix_remote_files_sha256_purpose", table_name="remote_files")
    op.drop_index(op.f("ix_remote_files_local_file_id"), table_name="remote_files")
    op.drop_table("remote_files")
    op.drop_index("ix_local_files_state_next_attempt_at", table_name="local_files")
    op.drop_index("ix_local_files_sha256", table_name="local_files")
    op.drop_table("local_files")
