"""Results come home: batch jobs and OCR requests per uploaded content, and what was written.

``jobs`` holds one row per (folder, kind, content): its state, the remote job, its progress and
outcome; ``job_results`` one row per input path a job answers; ``result_files`` what syncd
last wrote at each path of a results folder (a file a person edited no longer matches it, and
is never overwritten).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create ``jobs``, ``job_results`` and ``result_files``."""
    op.create_table(
        "jobs",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("input_file_id", sa.String(length=128), nullable=False),
        sa.Column("rel_path", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("remote_job_id", sa.String(length=128), nullable=True),
        sa.Column("remote_status", sa.String(length=32), nullable=True),
        sa.Column("total_requests", sa.Integer(), nullable=True),
        sa.Column("completed_requests", sa.Integer(), nullable=True),
        sa.Column("succeeded_requests", sa.Integer(), nullable=True),
        sa.Column("failed_requests", sa.Integer(), nullable=True),
        sa.Column("output_file_id", sa.String(length=128), nullable=True),
        sa.Column("error_file_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requests_sent", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("answers_lost", sa.Integer(), nullable=False, server_default="0"),
        _when("created_at"),
        _when("updated_at"),
        _when("intent_at", nullable=True),
        _when("remote_created_at", nullable=True),
        _when("finished_at", nullable=True),
        sa.Column("claimed_by", sa.String(length=63), nullable=True),
        _when("claimed_until", nullable=True),
        sa.Column("result_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_folder_state", "jobs", ["folder", "state"])
    op.create_index("ix_jobs_remote_job_id", "jobs", ["remote_job_id"])
    op.create_table(
        "job_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("rel_path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("job_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        _when("created_at"),
        _when("written_at", nullable=True),
        sa.Column("beside", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(
            ["job_key"],
            ["jobs.key"],
            name=op.f("fk_job_results_job_key_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_results")),
        sa.UniqueConstraint(
            "folder", "rel_path", "sha256", name=op.f("uq_job_results_folder_rel_path_sha256")
        ),
    )
    op.create_index("ix_job_results_job_key", "job_results", ["job_key"])
    op.create_table(
        "result_files",
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("job_key", sa.String(length=64), nullable=False),
        sa.Column("input_rel_path", sa.Text(), nullable=False),
        _when("written_at"),
        sa.PrimaryKeyConstraint("folder", "path", name=op.f("pk_result_files")),
    )
    op.create_index("ix_result_files_job_key", "result_files", ["job_key"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("result_files")
    op.drop_table("job_results")
    op.drop_table("jobs")
