"""A successful upload: recorded with its remote file id, and what follows from it.

The transaction that records it claims the worker's next due rows too (no trip through the
dispatcher per file). With ``on_change = "replace"`` the version it superseded is deleted; an
upload that landed after another node took the row over (fleet mode) is discarded.

The worker does not wait for it: :meth:`Successes.submit` writes it on a recorder thread while
the worker sends the row it holds in reserve (claimed, its intent committed, by an earlier
success). Until the write is committed the upload is what a crash mid-request leaves: a row
``uploading`` with its intent, adopted on the next start. Its log line and event follow the
commit, so no file id is announced before it is recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
from syncd.upload.rows import RowWriter
from syncd.upload.work import Uploaded, UploadEvent, Work

log = structlog.get_logger(__name__)


__all__ = ["Successes"]


class Successes:
    """Records successful uploads; see the module docstring.

    Threads: :meth:`submit` is called by the upload workers; the writes run on the recorder
    pool's ``syncd-record-N`` threads (as many as workers: each worker has at most one write
    pending, so none ever queues behind another). Locks: ``deletions_lock``, from a superseded
    version's delete request to its store write (the remote reconcile takes it too, see
    :mod:`syncd.reconcile`); writes are grouped by the row writer's group commit.
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
        recorders: int,
    ) -> None:
        self._rows = rows
        self._files = files
        self._gate = gate
        self._clock = clock
        self._on_event = on_event
        self._deletions_lock = deletions_lock
        #: The dispatcher's claim of the next due rows, made in the success's transaction.
        self._claim_next = claim_next
        self._recorders = ThreadPoolExecutor(
            max_workers=recorders, thread_name_prefix="syncd-record"
        )

    def submit(self, uploaded: Uploaded, *, claim: int) -> Future[list[Work]]:
        """:meth:`record_success` on a recorder thread; the future holds the rows it claimed."""
        return self._recorders.submit(self.record_success, uploaded, claim=claim)

    def shutdown(self) -> None:
        """No more writes will be submitted (those submitted still run)."""
        self._recorders.shutdown(wait=False)

    def record_success(self, uploaded: Uploaded, *, claim: int) -> list[Work]:
        """Record the upload; in the same transaction, claim up to ``claim`` due rows (see the
        dispatcher's ``claim_next``) and return them."""
        record, folder, info, action = (
            uploaded.work.record,
            uploaded.work.folder,
            uploaded.info,
            uploaded.action,
        )
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

        written = self._rows.persist(write)
        if isinstance(written, LocalFileRecord):
            self._after_lost_claim(written, folder, info.id)
            return []
        superseded, following = written
        outcome = "adopted" if action == "adopt" else "uploaded"
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
