"""Keep each file's ctime in its fingerprint, and flag fingerprints too new to trust.

A file rewritten in place with its old size and its mtime set back (``rsync --inplace -t``,
``touch -d``, a backup restore) kept its (size, mtime_ns, inode): syncd did not hash it again
and the remote kept the old bytes. The ctime moves on every write and cannot be set back, so it
joins the fingerprint. ``racy`` is Git's racy-timestamp rule: a file hashed within the
filesystem's timestamp granularity of its last change may change again without its stamps
moving, so it is hashed again on the next look.

Existing rows get no ctime (NULL: unknown); a rescan fills it in without hashing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``local_files.ctime_ns`` (nullable) and ``local_files.racy`` (false)."""
    with op.batch_alter_table("local_files") as batch:
        batch.add_column(sa.Column("ctime_ns", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("racy", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop both columns."""
    with op.batch_alter_table("local_files") as batch:
        batch.drop_column("racy")
        batch.drop_column("ctime_ns")
