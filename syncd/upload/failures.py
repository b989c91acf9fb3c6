"""What happens after an upload attempt that did not succeed: every outcome written to its row.

- a retryable failure: a next-attempt time from :func:`syncd.retry.retry_delay`, or ``failed``
  after ``max_attempts`` (``TRANSIENT_ATTEMPTS_FACTOR`` times as many for transient failures;
  none counted while the API is down for everybody, see :class:`~syncd.outage.OutageGate`);
- the server rejecting the content (400/413/422): quarantined with the server's message;
- the file changed or vanished under the upload: judged again, or marked missing.

Each is written through :class:`~syncd.upload.rows.RowWriter`, which waits out a store that
refuses writes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.errors import (
    ApiError,
    ApiStatusError,
    ApiTimeoutError,
    ApiTransportError,
    ServerError,
    StoreError,
    UsageError,
)
from syncd.logs import redact_text
from syncd.outage import OutageGate
from syncd.pipeline import FolderSpec
from syncd.retry import is_retryable, retry_after_of, retry_delay
from syncd.store import repo
from syncd.store.records import LocalFileRecord
from syncd.upload.rows import RowWriter
from syncd.upload.work import TRANSIENT_ATTEMPTS_FACTOR, UploadEvent, UploadSettings

log = structlog.get_logger(__name__)


__all__ = ["Failures", "may_have_landed"]


class Failures:
    """Records attempts that did not succeed; see the module docstring.

    Threads: the upload workers (and the dispatcher's worker wrapper for crashes). Locks: none
    of its own; the outage gate has its own.
    """

    def __init__(
        self,
        rows: RowWriter,
        gate: OutageGate,
        settings: UploadSettings,
        *,
        clock: Callable[[], datetime],
        on_event: Callable[[UploadEvent], None],
        on_changed: Callable[[FolderSpec, str], None],
    ) -> None:
        self._rows = rows
        self._gate = gate
        self._settings = settings
        self._clock = clock
        self._on_event = on_event
        self._on_changed = on_changed

    def retry_later(
        self,
        record: LocalFileRecord,
        folder: FolderSpec,
        exc: BaseException,
        *,
        keep_intent: bool = True,
    ) -> None:
        transient = isinstance(exc, ApiError) and is_retryable(exc)
        retry_after = retry_after_of(exc)
        if isinstance(exc, StoreError):
            counted = False  # the store's trouble, not the file's
        elif transient:
            # Failures while the API is down for everybody say nothing about this file.
            counted = not self._gate.failed(
                str(exc), retry_after=retry_after, unanswered=isinstance(exc, ApiTimeoutError)
            )
        else:
            counted = True
            if isinstance(exc, ApiError):
                self._gate.succeeded()  # the server answered: it is up
        limit = self._settings.max_attempts * (TRANSIENT_ATTEMPTS_FACTOR if transient else 1)
        # Every API error is worth another try (a 401 may be a key being rotated); a bug in
        # syncd itself is not, and gives up at once so it shows in status instead of looping.
        is_bug = not isinstance(exc, ApiError | StoreError)
        give_up = is_bug or (counted and record.attempts >= limit)
        attempts = record.attempts if counted else max(record.attempts - 1, 1)
        delay = retry_delay(attempts, self._settings.retry_policy, retry_after=retry_after)
        now = self._clock()
        next_attempt_at = None if give_up else now + timedelta(seconds=delay)
        # The intent stays on the row until an outcome is certain: any earlier attempt may
        # have reached the server, so the next one looks before it sends.

        def write(s: Session) -> LocalFileRecord | None:
            # A late failure of a claim another node took over is not this node's to record:
            # the row may be uploaded by now, and putting it back to pending re-uploads it.
            taken = self._rows.claim_lost(s, record, "")
            if taken is not None:
                return taken
            repo.record_failure(
                s,
                record.id,
                # Server and library messages go to the database: never with a secret inside.
                error=redact_text(str(exc)),
                next_attempt_at=next_attempt_at,
                give_up=give_up,
                keep_intent=keep_intent and not give_up,
                count_attempt=counted,
                expect_sha256=record.sha256,
                now=now,
            )
            return None

        taken = self._rows.persist(write)
        if taken is not None:
            log.warning(
                "upload_claim_lost",
                folder=folder.name,
                path=record.rel_path,
                holder=taken.claimed_by,
                state=taken.state.value,
                error=str(exc),
            )
            return
        status_code = getattr(exc, "status_code", None)
        fields = {
            "folder": folder.name,
            "path": record.rel_path,
            "attempt": record.attempts,
            "counted": counted,
            "status_code": status_code,
            "error": str(exc),
        }
        if give_up:
            log.error("upload_failed", **fields)
        elif isinstance(exc, StoreError):
            log.warning("store_unavailable", retry_in_s=round(delay, 2), **fields)
        else:
            assert next_attempt_at is not None
            log.warning(
                "upload_retry_scheduled",
                retry_in_s=round(delay, 3),
                next_attempt_at=next_attempt_at.isoformat(),
                **fields,
            )
        outcome = "failed" if give_up else "retry"
        self._on_event(
            UploadEvent(
                folder.name, record.rel_path, outcome, 0, error=str(exc), status_code=status_code
            )
        )

    def put_back(self, record: LocalFileRecord, folder: FolderSpec, claimed: datetime) -> None:
        """A row claimed at ``claimed`` that will not be sent after all (see the dispatcher's
        reserve): ``pending`` again, due at once, its attempt given back and its error kept. An
        intent from an earlier attempt stays (that upload may still turn up); its own goes."""
        earlier = record.intent_started_at is not None and record.intent_started_at != claimed

        def write(s: Session) -> LocalFileRecord | None:
            taken = self._rows.claim_lost(s, record, "")
            if taken is None:
                repo.record_failure(
                    s,
                    record.id,
                    error=record.last_error,
                    next_attempt_at=None,
                    give_up=False,
                    keep_intent=earlier,
                    count_attempt=False,
                    expect_sha256=record.sha256,
                    now=self._clock(),
                )
            return taken

        if self._rows.persist(write) is None:
            log.debug("upload_put_back", folder=folder.name, path=record.rel_path)

    def quarantine(
        self, record: LocalFileRecord, folder: FolderSpec, exc: ApiError | UsageError
    ) -> None:
        if isinstance(exc, ApiError):
            self._gate.succeeded()
        now = self._clock()

        def write(s: Session) -> None:
            repo.set_state(
                s,
                record.id,
                LocalState.QUARANTINED,
                now=now,
                last_error=redact_text(str(exc)),
                expect_sha256=record.sha256,
            )
            repo.audit(
                s,
                "quarantine",
                now=now,
                folder=folder.key,
                rel_path=record.rel_path,
                sha256=record.sha256,
                bytes=record.size,
                detail=f"rejected by the server: {exc}",
            )

        self._rows.persist(write)
        log.warning("file_quarantined", folder=folder.name, path=record.rel_path, error=str(exc))
        self._on_event(UploadEvent(folder.name, record.rel_path, "quarantined", 0, error=str(exc)))

    def changed(self, record: LocalFileRecord, folder: FolderSpec, why: str) -> None:
        self._rows.persist(
            lambda s: repo.set_state(
                s,
                record.id,
                LocalState.UNSTABLE,
                now=self._clock(),
                last_error=why,
                expect_sha256=record.sha256,
            )
        )
        log.info("file_changed", folder=folder.name, path=record.rel_path, error=why)
        self._on_event(UploadEvent(folder.name, record.rel_path, "changed", 0, error=why))
        self._on_changed(folder, record.rel_path)

    def vanished(self, record: LocalFileRecord, folder: FolderSpec) -> None:
        self._rows.persist(
            lambda s: repo.mark_missing(s, folder.key, [record.rel_path], now=self._clock())
        )
        log.info("file_vanished", folder=folder.name, path=record.rel_path)
        self._on_event(UploadEvent(folder.name, record.rel_path, "vanished", 0))


def may_have_landed(exc: ApiError) -> bool:
    """Whether a failed upload request may have created the file on the server anyway."""
    if isinstance(exc, ApiTransportError):
        return exc.ambiguous  # the whole body was sent and the answer lost
    if isinstance(exc, ServerError):
        return True  # a gateway may fail after its backend stored the file
    # A 4xx or 429 was refused, not acted on; an unreadable answer may hide a stored file.
    return not isinstance(exc, ApiStatusError)
