"""Streaming reads of every remote file syncd ever recorded: the lineage manifest and verify.

Rows come out in batches through one open cursor, so 100k uploads never sit in memory at once;
iterate inside the Session that produced the iterator.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.store import rows
from syncd.store.records import RemoteFileRecord
from syncd.store.schema import RemoteFile

__all__ = ["DEFAULT_BATCH_ROWS", "iter_remote_files"]

#: Rows fetched from the cursor at a time.
DEFAULT_BATCH_ROWS = 1000


def iter_remote_files(
    s: Session, *, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[RemoteFileRecord]:
    """Every recorded remote file, deleted ones included, in upload order (then id)."""
    query = (
        select(RemoteFile)
        .order_by(RemoteFile.uploaded_at, RemoteFile.file_id)
        .execution_options(yield_per=batch_rows)
    )
    # The Session's identity map holds unchanged rows weakly, so each batch is freed once
    # converted; nothing here keeps a reference to a row.
    for row in s.scalars(query):
        yield rows.to_remote_record(row)
