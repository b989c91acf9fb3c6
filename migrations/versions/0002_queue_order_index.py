"""Let the upload queue read due rows in index order: add state_changed_at to the queue index.

A claim takes the earliest due pending rows. Never-tried rows are due since state_changed_at,
so with the index on (state, next_attempt_at) alone SQLite sorted every pending row for each
claim: with 100,000 files queued, seconds of CPU per hundred uploads. With state_changed_at as
the index's third column both kinds of due rows come out of the index already in order.

The index keeps its name (it still leads with state, next_attempt_at).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_local_files_state_next_attempt_at"


def upgrade() -> None:
    """Recreate the queue index with state_changed_at as its third column."""
    op.drop_index(_INDEX, table_name="local_files")
    op.create_index(_INDEX, "local_files", ["state", "next_attempt_at", "state_changed_at"])


def downgrade() -> None:
    """Back to the two-column index of 0001."""
    op.drop_index(_INDEX, table_name="local_files")
    op.create_index(_INDEX, "local_files", ["state", "next_attempt_at"])
