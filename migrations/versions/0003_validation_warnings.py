"""Keep each file's validation warnings beside its state.

A warning says where a file's content differs from what Mistral's docs describe although
Mistral's code accepts it (a called function missing from ``tools``, arguments that are not JSON
text, ...). It never blocks an upload, but ``syncd status`` shows it until the content changes,
so it needs a column of its own: ``last_error`` says why a file is in its state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``local_files.warnings`` column (existing rows: none)."""
    with op.batch_alter_table("local_files") as batch:
        batch.add_column(sa.Column("warnings", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the warnings column."""
    with op.batch_alter_table("local_files") as batch:
        batch.drop_column("warnings")
