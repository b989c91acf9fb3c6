"""Uploads: claim due rows from the store, stream each file once, record exactly what happened.

The database is the queue. A dispatcher claims ``pending`` rows whose next attempt is due (the
claim records the upload intent), hands them to a bounded pool, and sleeps until the doorbell
rings or the next retry falls due. Every outcome is written back to the row:

- success: the remote file is recorded and, with ``on_change = "replace"``, the version it
  superseded is deleted; in the same transaction the worker claims the next due row and goes
  on with it (the dispatcher only fills free workers, and paces probes during an outage);
- a retryable failure: a next-attempt time from :func:`syncd.retry.retry_delay`, or ``failed``
  after ``max_attempts``;
- the server rejecting the content (400/413/422): quarantined with the server's message.

Exactly once: an intent that may have reached the server (a crash mid-request, or an answer lost
after the body was sent) is kept on the row. Before sending again, the uploader looks for that
upload on the server (same name and size, created since the intent), checks its bytes hash to the
row's sha256, and adopts it instead of uploading a duplicate.

Giving up: a file is marked ``failed`` after ``max_attempts`` attempts that failed for a reason
that may be its own (401/403/404/409, a malformed answer), or ``TRANSIENT_ATTEMPTS_FACTOR`` times
as many that failed transiently (no answer, 429, 5xx: scattered failures of a healthy API). While
the API is down for everybody, an :class:`~syncd.outage.OutageGate` lets one probe through at a
time and failures do not count at all, so an outage of hours fails no file.

The store is the only record of an outcome: when it cannot be written (locked past its busy
timeout, disk full) the worker waits and writes again, and never leaves a row half-done while
the daemon runs.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import TypeVar

import structlog
from sqlalchemy.orm import Session

from syncd.api import FileInfo, Files, sent_filename
from syncd.domain import LocalState
from syncd.errors import (
    ApiError,
    ApiStatusError,
    ApiTimeoutError,
    ApiTransportError,
    FileVanishedError,
    InvalidRequestError,
    LocalFileError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    StoreError,
    UsageError,
)
from syncd.hashing import stat_file
from syncd.logs import redact_text
from syncd.outage import OutageGate, outage_threshold
from syncd.pipeline import FolderSpec, utc_now
from syncd.retry import (
    DEFAULT_RETRY_POLICY,
    RetryPolicy,
    is_retryable,
    retry_after_of,
    retry_delay,
)
from syncd.store import Store, repo
from syncd.store.records import LocalFileRecord

__all__ = ["TRANSIENT_ATTEMPTS_FACTOR", "UploadEvent", "UploadSettings", "Uploader"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: How far before the recorded intent a server's created_at may lie (clock skew, whole seconds).
ADOPT_SKEW = timedelta(seconds=5)
#: Transient failures (no answer, 429, 5xx) a file may have, in multiples of ``max_attempts``:
#: a healthy API failing 30% of requests must not make files give up.
TRANSIENT_ATTEMPTS_FACTOR = 4
#: Tries of the adoption lookup (a listing and a download, both idempotent) within one attempt.
_LOOKUP_TRIES = 3
#: Waits between tries to write an outcome to a store that refuses writes (locked, disk full).
_STORE_RETRY_FIRST = 0.5
_STORE_RETRY_MAX = 10.0
#: How soon the dispatcher claims again after the store refused a claim.
_DISPATCH_RETRY = 1.0
#: Longest pause between two tries of a store that keeps failing.
_DISPATCH_RETRY_MAX = 30.0


@dataclass(frozen=True, slots=True)
class UploadSettings:
    concurrency: int = 4
    max_attempts: int = 8
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    idle_wait: float = 5.0
    """Longest the dispatcher sleeps when nothing is due (the doorbell usually wakes it first)."""
    node: str | None = None
    """This node's name: its claims carry it, and a restart puts back only its own (fleet)."""
    probe_timeout: float = 0.0
    """The longest one request may wait for an answer (connect + idle timeout): ``syncd sync``
    starts no probe of a silent API that could not end within its patience."""

    @property
    def outage_patience(self) -> float:
        """How long ``syncd sync`` waits through an outage: as long as ``max_attempts`` backoff
        delays take at their longest (about two minutes for the default 8)."""
        policy = self.retry_policy
        return sum(
            min(policy.initial * policy.multiplier**n, policy.maximum)
            for n in range(self.max_attempts)
        )


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


@dataclass(frozen=True, slots=True)
class _Work:
    """A claimed row, its folder, and when it was claimed."""

    record: LocalFileRecord
    folder: FolderSpec
    claimed: datetime
    #: The outage gate's ticket taken before the claim (None for a probe: judged as of now).
    ticket: int | None


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
        deletions_lock: threading.Lock | None = None,
    ) -> None:
        self._store = store
        self._files = files
        self._folders = folders
        self._settings = settings
        self._clock = clock
        self._on_event = on_event
        self._on_changed = on_changed
        # Held from a delete request to its store write (see syncd.reconcile).
        self._deletions_lock = deletions_lock or threading.Lock()
        self.gate = OutageGate(
            threshold=outage_threshold(settings.concurrency), policy=settings.retry_policy
        )
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
            return repo.reset_inflight(s, now=self._clock(), node=self._settings.node)

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
    def settings(self) -> UploadSettings:
        return self._settings

    @property
    def inflight(self) -> int:
        with self._inflight_lock:
            return len(self._inflight)

    def drain(
        self,
        stop: threading.Event | None = None,
        *,
        outage_patience: float | None = None,
        until: threading.Event | None = None,
    ) -> str | None:
        """Upload until nothing is pending or in flight (``syncd sync``), in the calling thread.

        With ``until``, an empty queue does not end the wait before that event is set (a scan
        still queueing files; it rings the doorbell when it is done).

        Returns None when done (or stopped), or why it gave up waiting: the API has been down
        for longer than ``outage_patience`` seconds (the rows stay ``pending``).
        """
        while not (stop and stop.is_set()):
            producing = until is not None and not until.is_set()
            down_for = self.gate.down_for()
            out_of_patience = (
                outage_patience is not None
                and down_for is not None
                and (
                    down_for > outage_patience
                    # A probe of an API that does not answer could only fail after the patience:
                    # give up now instead of waiting a whole timeout in silence.
                    or (
                        self.gate.unanswered
                        and self.inflight == 0
                        and down_for + self._settings.probe_timeout > outage_patience
                    )
                )
            )
            # Not waiting for a probe in flight: against a hung API it may take a whole idle
            # timeout to fail (the process exit still lets it end; its row is put back later).
            if out_of_patience:
                return (
                    f"the API has been unavailable for {down_for or 0:.0f}s "
                    f"(last error: {self.gate.last_error}); pending files stay queued"
                )
            wait = self._dispatch_once()
            if wait is None and self.inflight == 0 and not producing:
                return None  # nothing pending in any configured folder, nothing running
            # A finishing upload rings the doorbell, so this never waits past real work.
            self._doorbell.wait(timeout=self._settings.idle_wait if wait is None else wait)
            self._doorbell.clear()
        return None

    def _run(self) -> None:
        store_failures = 0
        while not self._stopping.is_set():
            try:
                wait = self._dispatch_once()
                store_failures = 0
            except StoreError as exc:
                # Locked, full or unreachable: the rows wait in the store. Try again soon, then
                # less and less often while it lasts (a database restarting for minutes must
                # not cost a warning a second); waking the uploader cuts a wait short.
                wait = min(_DISPATCH_RETRY * 2**store_failures, _DISPATCH_RETRY_MAX)
                store_failures += 1
                if store_failures == 1 or wait < _DISPATCH_RETRY_MAX:
                    log.warning("store_unavailable", error=str(exc), retry_in_s=wait)
            except Exception as exc:  # noqa: BLE001 - the dispatcher must outlive a bad moment
                log.error("dispatch_failed", error=str(exc))
                wait = self._settings.idle_wait
            self._doorbell.wait(timeout=self._settings.idle_wait if wait is None else wait)
            self._doorbell.clear()

    def _dispatch_once(self) -> float | None:
        """Claim as many due rows as there are free workers (and the outage gate allows);
        return how long to sleep, or None when nothing is pending."""
        free = self._settings.concurrency - self.inflight
        if free <= 0:
            # Every worker is busy; a finishing upload rings the doorbell.
            return self._settings.idle_wait
        gate_wait = 0.0
        if not self._stopping.is_set():
            ticket = self.gate.ticket()  # before the grant: see OutageGate.ticket
            allowed, gate_wait, probe = self.gate.allowance(free)
            claimed: list[LocalFileRecord] = []
            now = self._clock()
            folders = self._folders()
            if allowed:
                try:
                    with self._store.session() as s:
                        claimed = repo.claim_due_uploads(
                            s,
                            now=now,
                            limit=allowed,
                            folders=list(folders),
                            node=self._settings.node,
                            sent_name=sent_filename,
                        )
                finally:
                    if probe and not claimed:
                        self.gate.release()  # the probe found nothing due
            for record in claimed:
                folder = folders[record.folder]
                work = _Work(record, folder, now, None if probe else ticket)
                future = self._pool.submit(self._upload_guarded, work, probe)
                with self._inflight_lock:
                    self._inflight.add(future)
                future.add_done_callback(self._finished)
            if claimed and len(claimed) == free:
                return 0.0  # the pool is full; more may be due
        with self._store.session() as s:
            due = repo.next_due_at(s, folders=list(self._folders()))
        if due is None:
            return None
        return max(0.0, (due - self._clock()).total_seconds(), gate_wait)

    def _finished(self, future: Future[None]) -> None:
        with self._inflight_lock:
            self._inflight.discard(future)
        self._doorbell.set()

    # -- one upload -----------------------------------------------------------------------------

    def _upload_guarded(self, first: _Work, probe: bool) -> None:
        # A worker whose upload succeeded claims the next due row in the same transaction and
        # carries on with it: one store write and no trip through the dispatcher per file.
        work: _Work | None = first
        while work is not None:
            current, work = work, None
            self.gate.admit(current.ticket)
            try:
                work = self._upload(current.record, current.folder, current.claimed)
            except StoreError as exc:
                # Nothing was settled: the row goes back to the queue (once the store takes
                # writes).
                self._retry_later(current.record, current.folder, exc)
            except Exception as exc:
                log.exception(
                    "upload_crashed", folder=current.folder.name, path=current.record.rel_path
                )
                self._retry_later(current.record, current.folder, exc)
            finally:
                self.gate.dismiss()
                if probe:
                    self.gate.release()  # no-op when the outcome already told the gate
                    probe = False

    def _upload(
        self, record: LocalFileRecord, folder: FolderSpec, claimed: datetime
    ) -> _Work | None:
        """Upload one claimed row and record the outcome; the next row to upload, if claimed."""
        path = folder.root / record.rel_path
        filename = PurePosixPath(record.rel_path).name
        assert record.sha256 is not None, "only hashed rows are queued"
        log.debug(
            "upload_started", folder=folder.name, path=record.rel_path, attempt=record.attempts
        )
        try:
            if stat_file(path).moved_since(record.stat):
                self._changed(record, folder, "changed since it was hashed")
                return None
        except FileVanishedError:
            self._vanished(record, folder)
            return None
        except LocalFileError as exc:
            self._changed(record, folder, str(exc))
            return None

        intent = record.intent_started_at
        # Whether an earlier attempt may still turn up on the server (until looked for): the
        # claim keeps an earlier intent and records its own time only when there was none.
        earlier_unsettled = intent is not None and intent != claimed
        if intent is not None and earlier_unsettled:
            # Look for the name as it was sent (recorded with the intent; an intent recorded
            # before syncd kept that holds the local name): the client may percent-encode it.
            sent = record.intent_filename
            if sent is None or sent == filename:
                sent = sent_filename(filename)
            try:
                adopted = self._look_for_earlier_upload(record, sent, intent)
            except ApiError as exc:
                self._retry_later(record, folder, exc)
                return None
            if adopted is not None:
                return self._record_success(record, folder, adopted, action="adopt")
            earlier_unsettled = False

        started = self._clock()
        try:
            info = self._files.upload(file=path, purpose=record.purpose, filename=filename)
        except (InvalidRequestError, PayloadTooLargeError, UsageError) as exc:
            self._quarantine(record, folder, exc)
            return None
        except ApiError as exc:
            # A request refused before it was acted on (429, a connection never made) leaves
            # nothing to look for, so the next attempt need not look first.
            keep = earlier_unsettled or _may_have_landed(exc)
            self._retry_later(record, folder, exc, keep_intent=keep)
            return None
        except FileVanishedError:
            self._vanished(record, folder)
            return None
        except LocalFileError as exc:
            # It grew or shrank while it was being sent: judge it again once it settles.
            self._changed(record, folder, str(exc))
            return None

        # The bytes sent are the bytes hashed only if the file did not move meanwhile.
        try:
            after = stat_file(path)
        except LocalFileError:
            after = None
        if (
            after is None
            or after.moved_since(record.stat)
            or (info.bytes is not None and info.bytes != record.size)
        ):
            self._discard(info.id)
            self._changed(record, folder, "changed while it was being uploaded")
            return None
        log.debug(
            "upload_sent",
            path=record.rel_path,
            duration_ms=int((self._clock() - started).total_seconds() * 1000),
        )
        return self._record_success(record, folder, info, action="upload")

    def _look_for_earlier_upload(
        self, record: LocalFileRecord, filename: str, intent: datetime
    ) -> FileInfo | None:
        """:meth:`_find_earlier_upload`, tried again at once on a transient failure.

        Listing and downloading are idempotent, so a dropped connection costs a short wait here
        rather than a whole backoff step of the file; not while the API is down for everybody.
        """
        tries = 0
        while True:
            tries += 1
            try:
                return self._find_earlier_upload(record, filename, intent)
            except ApiError as exc:
                if (
                    tries >= _LOOKUP_TRIES
                    or not is_retryable(exc)
                    or self.gate.is_open
                    or self._stopping.is_set()
                ):
                    raise
                delay = retry_delay(
                    tries, self._settings.retry_policy, retry_after=retry_after_of(exc)
                )
                log.debug("adoption_lookup_retrying", path=record.rel_path, error=str(exc))
                self._stopping.wait(delay)

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
    ) -> _Work | None:
        """Record the upload; in the same transaction, claim the next due row (see
        :meth:`_claim_next`) and return it."""
        self.gate.succeeded()
        now = self._clock()
        sha256 = record.sha256
        assert sha256 is not None

        def write(s: Session) -> tuple[list[str], _Work | None] | LocalFileRecord:
            taken = self._claim_lost(s, record, info.id)
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
            )
            return superseded, self._claim_next(s)

        written = self._persist(write)
        if isinstance(written, LocalFileRecord):
            self._after_lost_claim(written, folder, info.id)
            return None
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

    def _claim_lost(
        self, s: Session, record: LocalFileRecord, file_id: str
    ) -> LocalFileRecord | None:
        """The row as it is now when this node no longer holds its claim (fleet mode: it was
        silent longer than the lease and another node took the row over), else None."""
        node = self._settings.node
        if node is None:
            return None
        current = repo.lock_local(s, record.id)
        if current is None or current.remote_file_id == file_id:
            return None
        claimed_elsewhere = current.state is LocalState.UPLOADING and current.claimed_by not in (
            None,
            node,
        )
        recorded_elsewhere = (
            current.state is LocalState.UPLOADED and current.sha256 == record.sha256
        )
        return current if claimed_elsewhere or recorded_elsewhere else None

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
            self._discard(file_id)
        else:
            # Still in flight there: its adoption lookup may take this very file.
            log.warning(
                "upload_claim_lost",
                folder=folder.name,
                path=current.rel_path,
                file_id=file_id,
                holder=current.claimed_by,
            )

    def _claim_next(self, s: Session) -> _Work | None:
        """The next due row for the calling worker, claimed in its transaction; None while
        stopping or during an outage (then the dispatcher paces the uploads)."""
        ticket = self.gate.ticket()  # before the check: see OutageGate.ticket
        if self._stopping.is_set() or self.gate.is_open:
            return None
        folders = self._folders()
        now = self._clock()
        claimed = repo.claim_due_uploads(
            s,
            now=now,
            limit=1,
            folders=list(folders),
            node=self._settings.node,
            sent_name=sent_filename,
        )
        return _Work(claimed[0], folders[claimed[0].folder], now, ticket) if claimed else None

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
            self._persist(
                lambda s: repo.record_remote_deleted(
                    s, file_id, reason="superseded", now=self._clock()
                )
            )
        log.info(
            "file_deleted", folder=folder.name, path=rel_path, file_id=file_id, reason="superseded"
        )

    def _discard(self, file_id: str) -> None:
        """Delete an upload whose bytes may not match the hash (best effort)."""
        try:
            self._files.delete(file_id)
        except ApiError as exc:
            log.warning("discard_failed", file_id=file_id, error=str(exc))

    def _retry_later(
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
            counted = not self.gate.failed(
                str(exc), retry_after=retry_after, unanswered=isinstance(exc, ApiTimeoutError)
            )
        else:
            counted = True
            if isinstance(exc, ApiError):
                self.gate.succeeded()  # the server answered: it is up
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
            taken = self._claim_lost(s, record, "")
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

        taken = self._persist(write)
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

    def _quarantine(
        self, record: LocalFileRecord, folder: FolderSpec, exc: ApiError | UsageError
    ) -> None:
        if isinstance(exc, ApiError):
            self.gate.succeeded()
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

        self._persist(write)
        log.warning("file_quarantined", folder=folder.name, path=record.rel_path, error=str(exc))
        self._on_event(UploadEvent(folder.name, record.rel_path, "quarantined", 0, error=str(exc)))

    def _changed(self, record: LocalFileRecord, folder: FolderSpec, why: str) -> None:
        self._persist(
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

    def _vanished(self, record: LocalFileRecord, folder: FolderSpec) -> None:
        self._persist(
            lambda s: repo.mark_missing(s, folder.key, [record.rel_path], now=self._clock())
        )
        log.info("file_vanished", folder=folder.name, path=record.rel_path)
        self._on_event(UploadEvent(folder.name, record.rel_path, "vanished", 0))

    def _persist(self, write: Callable[[Session], T]) -> T:
        """Run ``write`` in one store transaction, waiting out a store that refuses it.

        The outcome of an upload exists only in memory until it is written, so a locked or full
        database makes the worker wait and write again rather than drop it. Once the uploader is
        stopping it gives up: the row keeps its intent, and the next start adopts the upload.
        """
        wait = _STORE_RETRY_FIRST
        while True:
            try:
                with self._store.session() as s:
                    return write(s)
            except StoreError as exc:
                if self._stopping.is_set():
                    raise
                log.warning("store_unavailable", error=str(exc), retry_in_s=wait)
                self._stopping.wait(wait)
                wait = min(wait * 2, _STORE_RETRY_MAX)


def _may_have_landed(exc: ApiError) -> bool:
    """Whether a failed upload request may have created the file on the server anyway."""
    if isinstance(exc, ApiTransportError):
        return exc.ambiguous  # the whole body was sent and the answer lost
    if isinstance(exc, ServerError):
        return True  # a gateway may fail after its backend stored the file
    # A 4xx or 429 was refused, not acted on; an unreadable answer may hide a stored file.
    return not isinstance(exc, ApiStatusError)
