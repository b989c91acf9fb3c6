"""A successful upload: recorded with its remote file id, and what follows from it.

The transaction that records it claims the worker's next due rows too (no trip through the
dispatcher per file). With ``on_change = "replace"`` the version it superseded is deleted; an
upload that landed after another node took the row over (fleet mode) is discarded.

The worker does not wait for it: :meth:`Successes.submit` hands it to the
:class:`~syncd.upload.recorder.Recorder` while the worker sends the row it holds in reserve
(claimed, its intent committed, with an earlier success). Until the write is committed the
upload is what a crash mid-request leaves: a row ``uploading`` with its intent, adopted on the
next start. Its log line and event follow the commit, so no file id is announced before it is
recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from syncd.api import Files
from syncd.domain import LocalState
from syncd.errors import (
    ApiError,
    NotFoundError,
)
from syncd.outage import OutageGate
from syncd.pipeline import FolderSpec
from syncd.store import repo
from syncd.store.records import LocalFileRecord
from syncd.upload.recorder import Recorder
from syncd.upload.rows import RowWriter
from syncd.upload.work import Uploaded, UploadEvent, Work

log = structlog.get_logger(__name__)


__all__ = ["Successes"]


class Successes:
    """Records successful uploads; see the module docstring.

    Threads: :meth:`submit` is called by the upload workers; the writes and what follows them
    run on the recorder's ``syncd-record`` thread. Locks: ``deletions_lock``, from a superseded
    version's delete request to its store write (the remote reconcile takes it too, see
    :mod:`syncd.reconcile`); the recorder has its own.
    """

    def __init__(
        self,
        rows: RowWriter,
        files: Files,
        gate: OutageGate,
        *,
        clock: Callable[[], datetime],
        on_event: Callable[[UploadEvent], None],
        deletions_lock: threading.Lock,
        claim_next: Callable[[Session, int], list[Work]],
    ) -> None:
        self._rows = rows
        self._files = files
        self._gate = gate
        self._clock = clock
        self._on_event = on_event
        self._deletions_lock = deletions_lock
        #: The dispatcher's claim of the next due rows, made in the success's transaction.
        self._claim_next = claim_next
        self._recorder = Recorder(rows)

    def submit(self, uploaded: Uploaded, *, claim: int) -> Future[list[Work]]:
        """Record the upload on the recorder's thread; in the same transaction, claim up to
        ``claim`` due rows (see the dispatcher's ``claim_next``): the future holds them."""
        return self._recorder.submit(
            self._write(uploaded, claim), lambda written: self._announce(uploaded, written)
        )

    def close(self) -> None:
        """No more uploads will be submitted (those submitted are still written)."""
        self._recorder.close()

    def _write(
        self, uploaded: Uploaded, claim: int
    ) -> Callable[[Session], tuple[list[str], list[Work]] | LocalFileRecord]:
        """The success's store write: the superseded versions' ids and the rows claimed, or
        the row as another node left it (fleet mode: the claim was lost)."""
        record, info, action = uploaded.work.record, uploaded.info, uploaded.action
        now = self._clock()
        sha256 = record.sha256
        assert sha256 is not None

        def write(s: Session) -> tuple[list[str], list[Work]] | LocalFileRecord:
            current, taken = self._rows.read_claim(s, record, info.id)
            if taken is not None:
                return taken
            superseded = repo.record_upload(
                s,
                record.id,
                file_id=info.id,
                filename=info.filename,
                bytes=record.size,
                sha256=sha256,
                purpose=record.purpose,
                created_at=datetime.fromtimestamp(info.created_at, tz=now.tzinfo),
                now=now,
                action=action,
                current=current,
            )
            return superseded, self._claim_next(s, claim)

        return write

    def _announce(
        self, uploaded: Uploaded, written: tuple[list[str], list[Work]] | LocalFileRecord
    ) -> list[Work]:
        """What follows a committed success: its log line, its event, the versions it
        supersedes deleted; the rows claimed with it."""
        record, folder, info = uploaded.work.record, uploaded.work.folder, uploaded.info
        if isinstance(written, LocalFileRecord):
            self._after_lost_claim(written, folder, info.id)
            return []
        superseded, following = written
        outcome = "adopted" if uploaded.action == "adopt" else "uploaded"
        log.info(
            f"file_{outcome}",
            folder=folder.name,
            path=record.rel_path,
            file_id=info.id,
            sha256=record.sha256,
            bytes=record.size,
            attempt=record.attempts,
        )
        try:
            self._on_event(UploadEvent(folder.name, record.rel_path, outcome, record.size, info.id))
            if folder.on_change == "replace":
                for file_id in superseded:
                    self._delete_superseded(folder, record.rel_path, file_id)
        except Exception:
            # Not the upload's failure: treating it as one would queue a recorded file again,
            # and the row claimed with the record would be left in "uploading" until a restart.
            log.exception("after_upload_failed", folder=folder.name, path=record.rel_path)
        return following

    def _after_lost_claim(self, current: LocalFileRecord, folder: FolderSpec, file_id: str) -> None:
        """This node's upload finished after another node took the row over."""
        if current.state is LocalState.UPLOADED:
            # The other node recorded the same content as another file: ours is a duplicate.
            log.warning(
                "upload_discarded_after_takeover",
                folder=folder.name,
                path=current.rel_path,
                file_id=file_id,
                kept=current.remote_file_id,
            )
            self.discard(file_id)
        else:
            # Still in flight there: its adoption lookup may take this very file.
            log.warning(
                "upload_claim_lost",
                folder=folder.name,
                path=current.rel_path,
                file_id=file_id,
                holder=current.claimed_by,
            )

    def _delete_superseded(self, folder: FolderSpec, rel_path: str, file_id: str) -> None:
        # From the request to the store write: the remote reconcile must not see the file gone
        # before it is recorded as deleted (it would call it vanished).
        with self._deletions_lock:
            try:
                self._files.delete(file_id)
            except NotFoundError:
                pass  # already gone: that is what we wanted
            except ApiError as exc:
                # Not fatal: retention deletes superseded versions at their age.
                log.warning(
                    "superseded_delete_failed", folder=folder.name, file_id=file_id, error=str(exc)
                )
                return
            self._rows.persist(
                lambda s: repo.record_remote_deleted(
                    s, file_id, reason="superseded", now=self._clock()
                )
            )
        log.info(
            "file_deleted", folder=folder.name, path=rel_path, file_id=file_id, reason="superseded"
        )

    def discard(self, file_id: str) -> None:
        """Delete an upload whose bytes may not match the hash (best effort)."""
        try:
            self._files.delete(file_id)
        except ApiError as exc:
            log.warning("discard_failed", file_id=file_id, error=str(exc))
