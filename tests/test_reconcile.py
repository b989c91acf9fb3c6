"""The remote reconcile's listing: what it keeps in memory while it pages through the remote."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from sqlalchemy import text

from syncd.api import Files
from syncd.errors import NotFoundError
from syncd.reconcile import reconcile_remote
from syncd.store import open_store

_RECORDED_AT = "2026-01-01 00:00:00.000000"


class _Remote:
    """Lists ``ids`` page by page, and answers 404 for any single file; notes, while it serves
    the third page, how many references the caller still holds to the first page's ids."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._alone = sys.getrefcount(ids[0])  # this list's reference (and the call's)
        self.held_from_first_page: int | None = None

    def list(self, *, page: int, page_size: int) -> SimpleNamespace:
        if page == 2:
            self.held_from_first_page = sys.getrefcount(self.ids[0]) - self._alone
        chunk = self.ids[page * page_size : (page + 1) * page_size]
        return SimpleNamespace(data=[SimpleNamespace(id=i) for i in chunk], total=len(self.ids))

    def retrieve(self, file_id: str) -> SimpleNamespace:
        raise NotFoundError(f"no file {file_id}", status_code=404)


def test_the_listing_keeps_no_listed_id_and_still_finds_a_vanished_file(tmp_path: Path) -> None:
    """Ids kept across pages (100,000 strings, interleaved with each page's parsed JSON) pinned
    ~14 MB of the daemon's idle RSS after a restart's reconcile: the listing keeps none of
    them, and a recorded file missing from it is still confirmed and recorded as vanished."""
    listed = [f"file-{n:05d}" for n in range(2500)]
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.connection() as c:
            c.execute(
                text(
                    "INSERT INTO remote_files (file_id, purpose, filename, bytes, sha256, "
                    "created_at, uploaded_at, folder, rel_path) VALUES "
                    "(:id, 'fine-tune', :id, 1, :sha, :at, :at, '/data', :id)"
                ),
                [
                    {"id": file_id, "sha": "a" * 64, "at": _RECORDED_AT}
                    for file_id in [*listed, "file-gone"]
                ],
            )
        remote = _Remote(listed)
        report = reconcile_remote(
            store,
            cast(Files, remote),
            clock=lambda: datetime(2026, 1, 2, tzinfo=UTC),
            page_size=1000,
        )
    finally:
        store.dispose()
    assert remote.held_from_first_page == 0
    assert (report.listed, report.recorded, report.vanished) == (2500, 2501, ["file-gone"])


class _CountingRemote(_Remote):
    """A :class:`_Remote` that counts its listing requests."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(ids)
        self.listings = 0

    def list(self, *, page: int, page_size: int) -> SimpleNamespace:
        self.listings += 1
        return super().list(page=page, page_size=page_size)


def test_nothing_recorded_live_means_no_listing_and_one_recorded_file_lists(
    tmp_path: Path,
) -> None:
    """A first pass has no recorded file that could have vanished: it sends no listing (its
    uploads start a round trip sooner); deleted files do not count; one live file does."""
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    insert = text(
        "INSERT INTO remote_files (file_id, purpose, filename, bytes, sha256, created_at, "
        "uploaded_at, folder, rel_path, deleted_at) VALUES "
        "(:id, 'fine-tune', :id, 1, :sha, :at, :at, '/data', :id, :deleted)"
    )

    def reconcile() -> tuple[int, int | None]:
        remote = _CountingRemote(["file-a"])
        report = reconcile_remote(
            store, cast(Files, remote), clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)
        )
        return remote.listings, report.listed

    try:
        empty = reconcile()
        with store.connection() as c:
            c.execute(
                insert,
                {"id": "file-old", "sha": "b" * 64, "at": _RECORDED_AT, "deleted": _RECORDED_AT},
            )
        only_deleted = reconcile()
        with store.connection() as c:
            c.execute(
                insert, {"id": "file-a", "sha": "a" * 64, "at": _RECORDED_AT, "deleted": None}
            )
        one_live = reconcile()
    finally:
        store.dispose()
    assert (empty, only_deleted, one_live) == ((0, None), (0, None), (1, 1))
