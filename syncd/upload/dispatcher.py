"""Uploads: claim due rows from the store and hand them to a bounded pool of workers.

The database is the queue. The dispatcher claims ``pending`` rows whose next attempt is due (the
claim records the upload intent), hands them to the pool, and sleeps until the doorbell rings
or the next retry falls due. A worker runs one file's upload
(:class:`~syncd.upload.transaction.FileUpload`), whose outcome is written back to the row
(:mod:`~syncd.upload.success`, :mod:`~syncd.upload.failures`); a success's transaction claims
the worker's next due rows, and the worker goes on with them (the dispatcher only fills free
workers, and paces probes during an outage: one at a time through the
:class:`~syncd.outage.OutageGate`, so an outage of hours fails no file).

A worker keeps one claimed row in reserve: while a success is being written (on the recorder's
thread, see :mod:`~syncd.upload.recorder`) it already sends the next file,
whose intent an earlier transaction committed; at 50 ms a request, writing an outcome before
each send had cost a tenth of every round. A reserve the worker will not send after all (the
uploader is stopping, or the API went down meanwhile) is put back, due at once, its attempt
given back.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from syncd.api import Files, sent_filename
from syncd.errors import StoreError
from syncd.outage import OutageGate, outage_threshold
from syncd.pipeline import FolderSpec, utc_now
from syncd.store import Store, repo
from syncd.store.records import LocalFileRecord
from syncd.upload.failures import Failures
from syncd.upload.rows import RowWriter
from syncd.upload.success import Successes
from syncd.upload.transaction import FileUpload
from syncd.upload.work import Uploaded, UploadEvent, UploadSettings, Work

__all__ = ["Uploader"]

log = structlog.get_logger(__name__)

#: How soon the dispatcher claims again after the store refused a claim.
_DISPATCH_RETRY = 1.0
#: Longest pause between two tries of a store that keeps failing.
_DISPATCH_RETRY_MAX = 30.0
#: Claimed rows a worker holds besides the one it is sending (see the module docstring).
_RESERVE = 1


class Uploader:
    """The dispatcher and its worker pool; see the module docstring.

    Threads: ``start`` runs the dispatcher on ``syncd-dispatch`` (``drain`` runs it on the
    caller's thread instead, for ``syncd sync``); uploads run on the pool's ``syncd-upload-N``
    workers, successes are written on the ``syncd-record`` thread (see
    :mod:`~syncd.upload.recorder`); ``wake``, ``stop``, ``inflight`` and ``gate`` may be used
    from any thread.
    Locks: ``_inflight_lock`` guards the set of running uploads; the gate has its own.
    """

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
        rows = RowWriter(store, settings, self._stopping)
        self._failures = Failures(
            rows, self.gate, settings, clock=clock, on_event=on_event, on_changed=on_changed
        )
        self._successes = successes = Successes(
            rows,
            files,
            self.gate,
            clock=clock,
            on_event=on_event,
            deletions_lock=deletions_lock or threading.Lock(),
            claim_next=self._claim_next,
        )
        self._one = FileUpload(
            store,
            files,
            self.gate,
            settings,
            self._stopping,
            successes,
            self._failures,
            clock=clock,
        )

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
        self._successes.close()
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
                work = Work(record, folder, now, None if probe else ticket)
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

    # -- one upload ---------------------------------------------------------------------------

    def _upload_guarded(self, first: Work, probe: bool) -> None:
        """Upload ``first``, then the rows each success claims, until none is claimed.

        A success is written while the next row (the reserve) is sent: see the module
        docstring. The worker ends only once its last success is written.
        """
        reserve: deque[Work] = deque([first])
        recording: tuple[Uploaded, Future[list[Work]]] | None = None
        while reserve or recording is not None:
            if not reserve:
                assert recording is not None
                reserve.extend(self._recorded(*recording))
                recording = None
                continue
            current = reserve.popleft()
            if not probe and (self._stopping.is_set() or self.gate.is_open):
                self._put_back(current)
                continue
            uploaded = self._upload_one(current, probe)
            probe = False
            if uploaded is None:
                continue
            if recording is not None:
                # Written while this upload was sent: its rows join the reserve.
                reserve.extend(self._recorded(*recording))
            recording = (
                uploaded,
                self._successes.submit(uploaded, claim=max(0, _RESERVE + 1 - len(reserve))),
            )

    def _upload_one(self, work: Work, probe: bool) -> Uploaded | None:
        """Upload one claimed row: the success to record, or None when the attempt was
        recorded as something else (a failure is written before this returns)."""
        self.gate.admit(work.ticket)
        try:
            uploaded = self._one.run(work)
            if uploaded is not None:
                # Before dismiss: the gate judges the answer as of the request's admission.
                self.gate.succeeded()
            return uploaded
        except StoreError as exc:
            # Nothing was settled: the row goes back to the queue (once the store takes writes).
            self._failures.retry_later(work.record, work.folder, exc)
        except Exception as exc:
            log.exception("upload_crashed", folder=work.folder.name, path=work.record.rel_path)
            self._failures.retry_later(work.record, work.folder, exc)
        finally:
            self.gate.dismiss()
            if probe:
                self.gate.release()  # no-op when the outcome already told the gate
        return None

    def _recorded(self, uploaded: Uploaded, writing: Future[list[Work]]) -> list[Work]:
        """Wait for a success's write; the rows it claimed. A write that failed puts the row
        back in the queue (its intent kept: the next attempt adopts the upload)."""
        try:
            return writing.result()
        except StoreError as exc:
            self._failures.retry_later(uploaded.work.record, uploaded.work.folder, exc)
        except Exception as exc:
            work = uploaded.work
            log.exception(
                "upload_record_crashed", folder=work.folder.name, path=work.record.rel_path
            )
            self._failures.retry_later(work.record, work.folder, exc)
        return []

    def _put_back(self, work: Work) -> None:
        try:
            self._failures.put_back(work.record, work.folder, work.claimed)
        except StoreError as exc:
            # Left claimed: the next start puts it back (and looks for it on the server first).
            log.warning("store_unavailable", error=str(exc), path=work.record.rel_path)

    def _claim_next(self, s: Session, limit: int) -> list[Work]:
        """Up to ``limit`` due rows for the calling worker, claimed in its transaction; none
        while stopping or during an outage (then the dispatcher paces the uploads)."""
        ticket = self.gate.ticket()  # before the check: see OutageGate.ticket
        if limit <= 0 or self._stopping.is_set() or self.gate.is_open:
            return []
        folders = self._folders()
        now = self._clock()
        claimed = repo.claim_due_uploads(
            s,
            now=now,
            limit=limit,
            folders=list(folders),
            node=self._settings.node,
            sent_name=sent_filename,
        )
        return [Work(record, folders[record.folder], now, ticket) for record in claimed]
