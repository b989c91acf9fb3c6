"""The sync engine: one configuration's folders, pipeline and uploader, wired together.

``syncd sync`` runs one reconcile pass with it; the daemon keeps the same engine running and
feeds it watcher events and scheduled rescans.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from syncd.api import Files
from syncd.config import Config
from syncd.domain import LocalState
from syncd.errors import ApiError, LocalFileError
from syncd.folder_specs import adopt_legacy_keys, folder_spec, folder_specs
from syncd.pipeline import FolderSpec, Pipeline, ScanSummary
from syncd.reconcile import ReconcileReport, reconcile_remote
from syncd.retry import DEFAULT_RETRY_POLICY
from syncd.store import Store, repo
from syncd.upload import Uploader, UploadEvent, UploadSettings

__all__ = ["Engine", "SyncReport", "adopt_legacy_keys", "folder_spec", "folder_specs"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class SyncReport:
    """Where every configured folder stands after a pass; decides ``syncd sync``'s exit code."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    scans: list[ScanSummary] = field(default_factory=list)
    folder_errors: dict[str, str] = field(default_factory=dict)
    api_unavailable: str | None = None
    """Why the pass stopped waiting for uploads: the API was down for too long."""
    remote: ReconcileReport | None = None
    """What the remote reconcile found (files that vanished from the remote)."""
    uploading_elsewhere: int = 0
    """Files of shared folders other nodes are uploading right now: theirs to finish."""

    def total(self, *states: LocalState) -> int:
        return sum(
            by_state.get(state.value, 0) for by_state in self.counts.values() for state in states
        )

    @property
    def not_uploaded(self) -> int:
        """Eligible files that are not on the remote: pending, failed or unstable."""
        return (
            self.total(
                LocalState.PENDING, LocalState.UPLOADING, LocalState.FAILED, LocalState.UNSTABLE
            )
            - self.uploading_elsewhere
        )

    @property
    def quarantined(self) -> int:
        return self.total(LocalState.QUARANTINED)


class Engine:
    """Store + pipeline + uploader for one configuration's folders."""

    def __init__(
        self,
        config: Config,
        store: Store,
        files: Files,
        *,
        on_upload: Callable[[UploadEvent], None] = lambda _event: None,
        on_hashed: Callable[[int], None] = lambda _bytes: None,
        on_unstable: Callable[[FolderSpec, str], None] = lambda _folder, _path: None,
        on_racy: Callable[[FolderSpec, str], None] = lambda _folder, _path: None,
        on_unsettled: Callable[[FolderSpec, str], None] | None = None,
    ) -> None:
        self.store = store
        self._files = files
        self._folders = folder_specs(config)
        self._folders_lock = threading.Lock()
        #: Held by every deletion from its request to its store write, and by the remote
        #: reconcile, so a file syncd just deleted is never taken for one that vanished.
        self.deletions_lock = threading.Lock()
        self.uploader = Uploader(
            store,
            files,
            self.folders,
            UploadSettings(
                concurrency=config.api.concurrency,
                max_attempts=config.api.max_attempts,
                retry_policy=DEFAULT_RETRY_POLICY,
                node=config.node.name,
                probe_timeout=(config.api.connect_timeout + config.api.timeout).total_seconds(),
            ),
            on_event=on_upload,
            on_changed=on_unstable,
            deletions_lock=self.deletions_lock,
        )
        self.pipeline = Pipeline(
            store,
            on_pending=self.uploader.wake,
            on_hashed=on_hashed,
            on_unstable=on_unstable,
            on_racy=on_racy,
            timestamp_granularity_ns=config.watch.timestamp_granularity_ns,
            # The daemon settles recently changed files before judging them; a one-shot pass
            # (no on_unsettled) judges what it finds.
            settle_ns=(
                int(config.watch.settle.total_seconds() * 1e9) if on_unsettled is not None else 0
            ),
            on_unsettled=on_unsettled or (lambda _folder, _path: None),
        )
        adopt_legacy_keys(store, self._folders)

    def folders(self) -> dict[str, FolderSpec]:
        with self._folders_lock:
            return dict(self._folders)

    def folder_named(self, name: str) -> FolderSpec | None:
        """The configured folder called ``name`` (events and problems name folders)."""
        return next((s for s in self.folders().values() if s.name == name), None)

    def set_folders(self, folders: dict[str, FolderSpec]) -> None:
        with self._folders_lock:
            self._folders = dict(folders)

    def retry_failed(self) -> int:
        """Give files that gave up another chance (a fresh run or rescan, e.g. after fixing
        the key)."""
        with self.store.session() as s:
            count = repo.retry_failed(s, folders=list(self.folders()))
        if count:
            log.info("failed_files_retried", count=count)
            self.uploader.wake()
        return count

    def reconcile_remote(self) -> ReconcileReport:
        """Compare the remote with the store; files that vanished are queued again.

        A failing API is reported in the result (and logged), never raised.

        Raises:
            StoreError: the state store could not be read or written.
        """
        try:
            report = reconcile_remote(self.store, self._files, deletions_lock=self.deletions_lock)
        except ApiError as exc:  # a failure outside the listing (it reports its own)
            log.warning("remote_reconcile_skipped", error=str(exc))
            return ReconcileReport(skipped=str(exc))
        if report.unanswered and report.skipped:
            # The first request of a pass timing out is the outage gate's business too: a
            # hung API is then known one timeout earlier.
            self.uploader.gate.failed(report.skipped, unanswered=True)
        if report.requeued:
            self.uploader.wake()
        return report

    def scan_all(
        self, *, stop: threading.Event | None = None
    ) -> tuple[list[ScanSummary], dict[str, str]]:
        """Scan every folder; a folder that cannot be read is reported and the others go on."""
        summaries: list[ScanSummary] = []
        errors: dict[str, str] = {}
        for spec in self.folders().values():
            if stop is not None and stop.is_set():
                break
            try:
                summaries.append(self.pipeline.scan(spec))
            except LocalFileError as exc:
                errors[spec.name] = str(exc)
                log.error(
                    "folder_unavailable", folder=spec.name, path=str(spec.root), error=str(exc)
                )
        return summaries, errors

    def pending_totals(self) -> tuple[int, int]:
        """Files and bytes waiting for upload in the configured folders."""
        with self.store.session() as s:
            return repo.pending_totals(s, folders=list(self.folders()))

    def report(self) -> SyncReport:
        keys = self.folders()
        node = self.uploader.settings.node
        with self.store.session() as s:
            counts = repo.state_counts(s)
            elsewhere = repo.uploading_elsewhere(s, node=node, folders=list(keys)) if node else 0
        names = {key: spec.name for key, spec in keys.items()}
        return SyncReport(
            counts={names[k]: v for k, v in counts.items() if k in names},
            uploading_elsewhere=elsewhere,
        )

    def sync_once(
        self,
        *,
        stop: threading.Event | None = None,
        after_scan: Callable[[], None] = lambda: None,
    ) -> SyncReport:
        """Reconcile with the remote, scan everything, upload everything pending, wait for it;
        then report. An API outage longer than the retries would take ends the wait."""
        self.uploader.recover()
        self.retry_failed()
        remote = self.reconcile_remote()
        scanned = _Scan(self, stop, after_scan)
        # Uploads start with the first queued file instead of after the whole scan.
        scanned.thread.start()
        unavailable = self.uploader.drain(
            stop, outage_patience=self.uploader.settings.outage_patience, until=scanned.done
        )
        scans, errors = scanned.result()
        report = self.report()
        report.scans = scans
        report.folder_errors = errors
        for scan in scans:
            if scan.skipped_dirs:
                # Files in a directory that could not be listed are unknown: not a clean pass.
                report.folder_errors.setdefault(scan.folder, "; ".join(scan.skipped_dirs))
        report.api_unavailable = unavailable
        report.remote = remote
        return report


class _Scan:
    """``Engine.scan_all`` in a thread, so ``syncd sync`` uploads while it still scans."""

    def __init__(
        self, engine: Engine, stop: threading.Event | None, after: Callable[[], None]
    ) -> None:
        self._engine = engine
        self._stop = stop
        self._after = after
        self.done = threading.Event()
        self._outcome: tuple[list[ScanSummary], dict[str, str]] | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="syncd-scan", daemon=True)

    def _run(self) -> None:
        try:
            self._outcome = self._engine.scan_all(stop=self._stop)
            self._after()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = exc
        finally:
            self.done.set()
            self._engine.uploader.wake()

    def result(self) -> tuple[list[ScanSummary], dict[str, str]]:
        self.thread.join()
        if self._error is not None:
            raise self._error
        assert self._outcome is not None
        return self._outcome
