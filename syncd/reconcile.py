"""The remote reconcile: notice remote files that vanished, and queue their content again.

Once per rescan (``syncd run``) or pass (``syncd sync``) the remote is listed and compared with
the remote files the store records as live. A recorded file the remote no longer has was lost
without syncd deleting it (a wiped workspace, a manual delete, a server that lost its data); it
is recorded as gone (``vanished_from_remote``, audited) and the local files it held go back to
``pending``, so they are uploaded again. Nothing is ever deleted here.

Guards, because wrongly calling a file gone means uploading a duplicate:

- a listing that fails, or that is shorter than the ``total`` the server announced, changes
  nothing;
- only files recorded before the listing started are compared (an upload recorded meanwhile
  may be missing from the pages already read);
- each file missing from the listing is confirmed one by one (``GET /v1/files/{id}`` answering
  404): offset pages can skip a file when others are deleted during the listing. A few files
  that turn out to be there after all stop the reconcile (the listing is not to be trusted);
- confirming and recording run under ``deletions_lock``, the lock syncd's own deletions hold
  from their request to their store write, so a file retention just deleted is never taken for
  a vanished one (and uploaded again).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from syncd.api import Files
from syncd.errors import ApiError, ApiTimeoutError, NotFoundError
from syncd.store import Store, repo

__all__ = ["LIST_PAGE_SIZE", "ReconcileReport", "reconcile_remote"]

log = structlog.get_logger(__name__)

#: Files per listing page. The API's default is 100 and its maximum is not documented, so a
#: server that returns fewer than asked is paged again at the default size.
LIST_PAGE_SIZE = 1000
_DEFAULT_PAGE_SIZE = 100
#: Files missing from the listing but still there (the listing is wrong), or checks failing in a
#: row (the API is down), before the reconcile stops for now.
_MAX_SURPRISES = 3
#: An empty listing while the store holds at least this many live files is worth a warning.
_EMPTY_LISTING_WARNING = 10


@dataclass(slots=True)
class ReconcileReport:
    """What one reconcile saw and did."""

    listed: int | None = None
    """Files the remote listed (anyone's); None when it was not listed (nothing recorded)."""
    recorded: int = 0
    """Live remote files the store recorded before the listing started."""
    vanished: list[str] = field(default_factory=list)
    """Recorded files confirmed gone, and now recorded as such."""
    requeued: int = 0
    """Local files queued for upload again."""
    skipped: str | None = None
    """Why the reconcile stopped early or changed nothing (the listing failed, ...)."""
    unanswered: bool = False
    """The listing timed out waiting for an answer: the API may have stopped answering."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def reconcile_remote(
    store: Store,
    files: Files,
    *,
    deletions_lock: threading.Lock | None = None,
    clock: Callable[[], datetime] = _utc_now,
    page_size: int = LIST_PAGE_SIZE,
) -> ReconcileReport:
    """List the remote, record vanished files, queue their local files again (module docstring).

    API failures end it early (``report.skipped`` says why); nothing recorded so far is undone.

    Raises:
        StoreError: the state store could not be read or written.
    """
    report = ReconcileReport()
    started = clock()
    with store.session() as s:
        if not repo.any_live_remote(s, uploaded_before=started):
            # Nothing recorded could have vanished: a first pass (or a store whose files were
            # all deleted) needs no listing, and its uploads start one round trip sooner.
            return report
    salt = os.urandom(16)  # a fresh key each time: see _id_key
    try:
        listed = _list_ids(files, page_size, salt)
    except ApiError as exc:
        report.skipped = f"listing the remote failed: {exc}"
        report.unanswered = isinstance(exc, ApiTimeoutError)
        log.warning("remote_reconcile_skipped", error=report.skipped)
        return report
    if listed is None:
        report.skipped = "the remote's listing was shorter than the total it announced"
        log.warning("remote_reconcile_skipped", error=report.skipped)
        return report
    report.listed = len(listed)
    candidates: list[str] = []
    with store.session() as s:
        for file_id in repo.live_remote_ids(s, uploaded_before=started):
            report.recorded += 1
            if _id_key(file_id, salt) not in listed:
                candidates.append(file_id)
    candidates.sort()
    # Only the candidates are needed from here: confirming them may take a request each.
    del listed
    if not candidates:
        return report
    if report.listed == 0 and report.recorded >= _EMPTY_LISTING_WARNING:
        log.warning(
            "remote_listing_empty",
            recorded=report.recorded,
            error="the remote lists no files at all; checking each recorded one",
        )
    with deletions_lock or nullcontext():
        _confirm_and_record(store, files, candidates, report, clock)
    if report.vanished:
        log.warning(
            "remote_files_vanished",
            count=len(report.vanished),
            requeued=report.requeued,
            file_ids=report.vanished[:20],
        )
    return report


def _id_key(file_id: str, salt: bytes) -> int:
    """What the listing keeps of a file id: 8 bytes of a keyed BLAKE2b digest, not the string.

    Kept across all pages, the listed ids were interleaved with each page's parsed JSON: with
    100,000 files they pinned ~14 MB of allocator arenas for good after the reconcile (idle
    RSS), against ~7 MB with these keys. A collision can only make a file that is gone look
    listed (it is then noticed by the next reconcile, which draws a new key; about one chance
    in 10^9 per reconcile at 100,000 files), never make a listed file look gone.
    """
    digest = hashlib.blake2b(file_id.encode(), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "little")


def _list_ids(files: Files, page_size: int, salt: bytes) -> set[int] | None:
    """The :func:`_id_key` of every file id the remote lists, or None when the listing came
    out incomplete."""
    seen: set[int] = set()
    total: int | None = None
    page = 0
    while True:
        listing = files.list(page=page, page_size=page_size)
        fresh = {_id_key(info.id, salt) for info in listing.data} - seen
        seen |= fresh
        total = listing.total if listing.total is not None else total
        if len(listing.data) < page_size or not fresh:
            break
        if total is not None and len(seen) >= total:
            break
        page += 1
    if total is not None and len(seen) < total:
        if page_size != _DEFAULT_PAGE_SIZE:
            # A server may cap the page size silently; the default size is always honoured.
            return _list_ids(files, _DEFAULT_PAGE_SIZE, salt)
        return None
    return seen


def _confirm_and_record(
    store: Store,
    files: Files,
    candidates: list[str],
    report: ReconcileReport,
    clock: Callable[[], datetime],
) -> None:
    present = failed_in_a_row = 0
    for file_id in candidates:
        try:
            gone = files.retrieve(file_id).deleted
        except NotFoundError:
            gone = True
        except ApiError as exc:
            # Unknown for now: left as it is, the next rescan asks again.
            failed_in_a_row += 1
            log.warning("remote_check_failed", file_id=file_id, error=str(exc))
            if failed_in_a_row >= _MAX_SURPRISES:
                report.skipped = f"checking files missing from the listing failed: {exc}"
                log.warning("remote_reconcile_skipped", error=report.skipped)
                return
            continue
        failed_in_a_row = 0
        if not gone:
            present += 1
            log.warning("remote_listing_missed_file", file_id=file_id)
            if present >= _MAX_SURPRISES:
                report.skipped = (
                    f"{present} files missing from the listing are still on the remote; "
                    "the listing is not to be trusted"
                )
                log.warning("remote_reconcile_skipped", error=report.skipped)
                return
            continue
        with store.session() as s:
            report.requeued += repo.record_vanished(s, file_id, now=clock())
        report.vanished.append(file_id)
