"""Uploads: claim due rows from the store, stream each file once, record exactly what happened.

The database is the queue. A dispatcher claims ``pending`` rows whose next attempt is due (the
claim records the upload intent), hands them to a bounded pool, and sleeps until the doorbell
rings or the next retry falls due. Every outcome is written back to the row:

- success: the remote file is recorded and, with ``on_change = "replace"``, the version it
  superseded is deleted;
- a retryable failure: a next-attempt time from :func:`syncd.retry.retry_delay`, or ``failed``
  after ``max_attempts``;
- the server rejecting the content (400/413/422): quarantined with the server's message.

Exactly once: an intent that may have reached the server (a crash mid-request, or an answer lost
after the body was sent) is kept on the row. Before sending again, the uploader looks for that
upload on the server (same name and size, created since the intent), checks its bytes hash to the
row's sha256, and adopts it instead of uploading a duplicate.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath

import structlog

from syncd.api import FileInfo, Files
from syncd.domain import LocalState
from syncd.errors import (
    ApiError,
    FileVanishedError,
    InvalidRequestError,
    LocalFileError,
    NotFoundError,
    PayloadTooLargeError,
    UsageError,
)
from syncd.hashing import stat_file
from syncd.pipeline import FolderSpec, utc_now
from syncd.retry import DEFAULT_RETRY_POLICY, RetryPolicy, retry_after_of, retry_delay
from syncd.store import Store, repo
from syncd.store.records import LocalFileRecord

__all__ = ["UploadEvent", "UploadSettings", "Uploader"]

log = structlog.get_logger(__name__)

#: How far before the recorded intent a server's created_at may lie (clock skew, whole seconds).
ADOPT_SKEW = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class UploadSettings:
    concurrency: int = 4
    max_attempts: int = 8
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    idle_wait: float = 5.0
    """Longest the dispatcher sleeps when nothing is due (the doorbell usually wakes it first)."""


@dataclass(frozen=True, slots=True)
class UploadEvent:
    """One finished upload attempt, for progress bars and metrics."""

    folder: str
    rel_path: str
    outcome: str  # uploaded | adopted | retry | failed | quarantined | changed | vanished
    bytes: int
    file_id: str | None = None
    error: str | None = None
    status_code: int | None = None


class Uploader:
    """The dispatcher and its worker pool; see the module docstring."""

    def __init__(
        self,
        store: Store,
        files: Files,
        folders: Callable[[], dict[str, FolderSpec]],
        settings: UploadSettings = UploadSettings(),
        *,
        clock: Callable[[], datetime] = utc_now,
        on_event: Callable[[UploadEvent], None] = lambda _event: None,
        on_changed: Callable[[FolderSpec, str], None] = lambda _folder, _path: None,
    ) -> None:
        self._store = store
        self._files = files
        self._folders = folders
        self._settings = settings
        self._clock = clock
        self._on_event = on_event
        self._on_changed = on_changed
        self._doorbell = threading.Event()
        self._stopping = threading.Event()
        self._inflight: set[Future[None]] = set()
        self._inflight_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="syncd-upload"
        )
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def recover(self) -> int:
        """After a restart: intents left by a crash go back to the queue, marked for adoption."""
        with self._store.session() as s:
            return repo.reset_inflight(s, now=self._clock())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="syncd-dispatch", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Ring the doorbell: new work may be due."""
        self._doorbell.set()

    def stop(self, grace: float) -> bool:
        """Stop claiming work; let in-flight uploads finish within ``grace`` seconds.

        Returns False when some were still running (their rows stay ``uploading`` and are
        adopted or retried on the next start).
        """
        self._stopping.set()
        self._doorbell.set()
        if self._thread is not None:
            self._thread.join(timeout=grace)
        with self._inflight_lock:
            running = list(self._inflight)
        done = all(self._wait(f, grace) for f in running)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return done

    @staticmethod
    def _wait(future: Future[None], timeout: float) -> bool:
        try:
            future.result(timeout=timeout)
        except TimeoutError:
            return False
        except Exception:  # noqa: BLE001 - already logged by the worker
            return True
        return True

    @property
    def inflight(self) -> int:
        with self._inflight_lock:
            return len(self._inflight)

    def drain(self, stop: threading.Event | None = None) -> None:
        """Upload until nothing is pending or in flight (``syncd sync``), in the calling thread."""
        while not (stop and stop.is_set()):
            wait = self._dispatch_once()
            if wait is None and self.inflight == 0:
                return  # nothing pending in any configured folder, nothing running
            # A finishing upload rings the doorbell, so this never waits past real work.
            self._doorbell.wait(timeout=self._settings.idle_wait if wait is None else wait)
            self._doorbell.clear()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = self._dispatch_once()
            except Exception as exc:  # noqa: BLE001 - the dispatcher must outlive a bad moment
                log.error("dispatch_failed", error=str(exc))
                wait = self._settings.idle_wait
            self._doorbell.wait(timeout=self._settings.idle_wait if wait is None else wait)
            self._doorbell.clear()

    def _dispatch_once(self) -> float | None:
        """Claim as many due rows as there are free workers; return how long to sleep."""
        free = self._settings.concurrency - self.inflight
        if free <= 0:
            # Every worker is busy; a finishing upload rings the doorbell.
            return self._settings.idle_wait
        if not self._stopping.is_set():
            now = self._clock()
            folders = self._folders()
            with self._store.session() as s:
                claimed = repo.claim_due_uploads(s, now=now, limit=free, folders=list(folders))
            for record in claimed:
                folder = folders[record.folder]
                future = self._pool.submit(self._upload_guarded, record, folder, now)
                with self._inflight_lock:
                    self._inflight.add(future)
                future.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                return 0.0  # the pool is full; more may be due
        with self._store.session() as s:
            due = repo.next_due_at(s, folders=list(self._folders()))
        if due is None:
            return None
        return max(0.0, (due - self._clock()).total_seconds())

    def _finished(self, future: Future[None]) -> None:
        with self._inflight_lock:
            self._inflight.discard(future)
        self._doorbell.set()

    # -- one upload -----------------------------------------------------------------------------

    def _upload_guarded(
        self, record: LocalFileRecord, folder: FolderSpec, claimed: datetime
    ) -> None:
        try:
            self._upload(record, folder, claimed)
        except Exception as exc:
            log.exception("upload_crashed", folder=folder.name, path=record.rel_path)
            self._retry_later(record, folder, exc)

    def _upload(self, record: LocalFileRecord, folder: FolderSpec, claimed: datetime) -> None:
        path = folder.root / record.rel_path
        filename = PurePosixPath(record.rel_path).name
        assert record.sha256 is not None, "only hashed rows are queued"
        try:
            if stat_file(path) != record.stat:
                self._changed(record, folder, "changed since it was hashed")
                return
        except FileVanishedError:
            self._vanished(record, folder)
            return
        except LocalFileError as exc:
            self._changed(record, folder, str(exc))
            return

        intent = record.intent_started_at
        if intent is not None and intent < claimed:
            try:
                adopted = self._find_earlier_upload(record, filename, intent)
            except ApiError as exc:
                self._retry_later(record, folder, exc)
                return
            if adopted is not None:
                self._record_success(record, folder, adopted, action="adopt")
                return

        started = self._clock()
        try:
            info = self._files.upload(file=path, purpose=record.purpose, filename=filename)
        except (InvalidRequestError, PayloadTooLargeError, UsageError) as exc:
            self._quarantine(record, folder, exc)
            return
        except ApiError as exc:
            self._retry_later(record, folder, exc)
            return
        except FileVanishedError:
            self._vanished(record, folder)
            return
        except LocalFileError as exc:
            # It grew or shrank while it was being sent: judge it again once it settles.
            self._changed(record, folder, str(exc))
            return

        # The bytes sent are the bytes hashed only if the file did not move meanwhile.
        try:
            after = stat_file(path)
        except LocalFileError:
            after = None
        if after != record.stat or (info.bytes is not None and info.bytes != record.size):
            self._discard(info.id)
            self._changed(record, folder, "changed while it was being uploaded")
            return
        log.debug(
            "upload_sent",
            path=record.rel_path,
            duration_ms=int((self._clock() - started).total_seconds() * 1000),
        )
        self._record_success(record, folder, info, action="upload")

    def _find_earlier_upload(
        self, record: LocalFileRecord, filename: str, intent: datetime
    ) -> FileInfo | None:
        """An earlier attempt of this row that reached the server, verified by content."""
        with self._store.session() as s:
            known = repo.remote_ids_with_filename(s, filename)
        candidate = self._files.find_upload(
            filename, record.size, (intent - ADOPT_SKEW).timestamp(), exclude_ids=known
        )
        if candidate is None or not self._content_matches(candidate.id, record.sha256):
            return None
        return candidate

    def _content_matches(self, file_id: str, sha256: str | None) -> bool:
        digest = hashlib.sha256()
        with self._files.download(file_id) as response:
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
        return digest.hexdigest() == sha256

    # -- recording outcomes ---------------------------------------------------------------------

    def _record_success(
        self, record: LocalFileRecord, folder: FolderSpec, info: FileInfo, *, action: str
    ) -> None:
        now = self._clock()
        assert record.sha256 is not None
        with self._store.session() as s:
            superseded = repo.record_upload(
                s,
                record.id,
                file_id=info.id,
                filename=info.filename,
                bytes=record.size,
                sha256=record.sha256,
                purpose=record.purpose,
                created_at=datetime.fromtimestamp(info.created_at, tz=now.tzinfo),
                now=now,
                action=action,
            )
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
        self._on_event(UploadEvent(folder.name, record.rel_path, outcome, record.size, info.id))
        if folder.on_change == "replace":
            for file_id in superseded:
                self._delete_superseded(folder, record.rel_path, file_id)

    def _delete_superseded(self, folder: FolderSpec, rel_path: str, file_id: str) -> None:
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
        with self._store.session() as s:
            repo.record_remote_deleted(s, file_id, reason="superseded", now=self._clock())
        log.info(
            "file_deleted", folder=folder.name, path=rel_path, file_id=file_id, reason="superseded"
        )

    def _discard(self, file_id: str) -> None:
        """Delete an upload whose bytes may not match the hash (best effort)."""
        try:
            self._files.delete(file_id)
        except ApiError as exc:
            log.warning("discard_failed", file_id=file_id, error=str(exc))

    def _retry_later(self, record: LocalFileRecord, folder: FolderSpec, exc: BaseException) -> None:
        now = self._clock()
        # Every API error is worth another try (a 401 may be a key being rotated); a bug in
        # syncd itself is not, and gives up at once so it shows in status instead of looping.
        give_up = record.attempts >= self._settings.max_attempts or not isinstance(exc, ApiError)
        delay = retry_delay(
            record.attempts, self._settings.retry_policy, retry_after=retry_after_of(exc)
        )
        with self._store.session() as s:
            # The intent stays on the row until an outcome is certain: any earlier attempt may
            # have reached the server, so the next one looks before it sends.
            repo.record_failure(
                s,
                record.id,
                error=str(exc),
                next_attempt_at=None if give_up else now + timedelta(seconds=delay),
                give_up=give_up,
                keep_intent=not give_up,
                now=now,
            )
        status_code = getattr(exc, "status_code", None)
        fields = {
            "folder": folder.name,
            "path": record.rel_path,
            "attempt": record.attempts,
            "error": str(exc),
        }
        if give_up:
            log.error("upload_failed", **fields)
        else:
            log.warning("upload_retry_scheduled", retry_in_s=round(delay, 2), **fields)
        outcome = "failed" if give_up else "retry"
        self._on_event(
            UploadEvent(
                folder.name, record.rel_path, outcome, 0, error=str(exc), status_code=status_code
            )
        )

    def _quarantine(
        self, record: LocalFileRecord, folder: FolderSpec, exc: ApiError | UsageError
    ) -> None:
        now = self._clock()
        with self._store.session() as s:
            repo.set_state(s, record.id, LocalState.QUARANTINED, now=now, last_error=str(exc))
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
        log.warning("file_quarantined", folder=folder.name, path=record.rel_path, error=str(exc))
        self._on_event(UploadEvent(folder.name, record.rel_path, "quarantined", 0, error=str(exc)))

    def _changed(self, record: LocalFileRecord, folder: FolderSpec, why: str) -> None:
        with self._store.session() as s:
            repo.set_state(s, record.id, LocalState.UNSTABLE, now=self._clock(), last_error=why)
        log.info("file_changed", folder=folder.name, path=record.rel_path, error=why)
        self._on_event(UploadEvent(folder.name, record.rel_path, "changed", 0, error=why))
        self._on_changed(folder, record.rel_path)

    def _vanished(self, record: LocalFileRecord, folder: FolderSpec) -> None:
        with self._store.session() as s:
            repo.mark_missing(s, folder.key, [record.rel_path], now=self._clock())
        log.info("file_vanished", folder=folder.name, path=record.rel_path)
        self._on_event(UploadEvent(folder.name, record.rel_path, "vanished", 0))
