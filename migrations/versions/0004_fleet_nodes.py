"""Fleet mode: which node holds an upload claim, and a table of the nodes and their heartbeats.

Several syncd nodes may share one PostgreSQL store. A claim now records its node
(``local_files.claimed_by``), so a node that restarts puts back only its own uploads in flight,
and a live node can take over the claims of one that stopped heartbeating. ``nodes`` holds one
row per node: its version, when it started, when it was last seen, its queue depth and folders.

Folder keys themselves need no migration here: rows of stores written before fleet mode are
keyed by the folder's path and are re-keyed to ``<node>:<path>`` by the first node that opens
the store with that folder configured (``repo.adopt_legacy_folder_keys``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``local_files.claimed_by`` and the ``nodes`` table."""
    with op.batch_alter_table("local_files") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=63), nullable=True))
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queue_depth", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("folders", sa.Text(), nullable=True),
        sa.Column("problems", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_nodes")),
    )


def downgrade() -> None:
    """Drop the ``nodes`` table and ``local_files.claimed_by``."""
    op.drop_table("nodes")
    with op.batch_alter_table("local_files") as batch:
        batch.drop_column("claimed_by")
