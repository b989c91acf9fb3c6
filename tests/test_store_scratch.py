"""A scratch copy of a state store (what `sync --dry-run` judges against): every row of every
table, on SQLite and PostgreSQL, and the source never written."""

from __future__ import annotations

from sqlalchemy import select

from syncd.domain import FileStat, LocalState
from syncd.store import Store, repo, tables
from syncd.store.scratch import scratch_copy
from tests.test_store_repo import SHA_B, put, upload


def _rows(store: Store) -> dict[str, list[tuple[object, ...]]]:
    with store.connection() as c:
        return {
            table.name: sorted((tuple(row) for row in c.execute(select(table))), key=repr)
            for table in tables.METADATA.sorted_tables
        }


def test_the_copy_holds_every_row_and_the_source_is_only_read(
    engine_store: Store, db_url: str
) -> None:
    uploaded = put(engine_store, "a.jsonl", warnings="a NUL \x00 quoted")
    upload(engine_store, uploaded.id, "file-a")
    put(engine_store, "b.jsonl", sha256=SHA_B, state=LocalState.QUARANTINED, last_error="bad")
    with engine_store.session() as s:
        repo.set_meta(s, "judged:x", "fine-tune|strict|")
    before = _rows(engine_store)
    assert all(before[name] for name in ("local_files", "remote_files", "audit", "meta"))

    with scratch_copy(db_url) as scratch:
        assert scratch.source_exists
        assert _rows(scratch.store) == before
        # The copy takes writes of its own (its ids continue after the copied ones).
        put(scratch.store, "c.jsonl", sha256=None, stat=FileStat(1, 2, 3))

    assert _rows(engine_store) == before
