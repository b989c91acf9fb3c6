"""The daemon's live read model: what STATUS=, ``/healthz``, the status page, the gauges and
the node's heartbeat say, from the parts' state and one periodic read of the store.

It is also the status page's :class:`~syncd.web.StatusSource` (``folders``, ``live``,
``retention_preview``) and the uploader's event sink for metrics (:meth:`upload_finished`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from syncd.api.liveness import Liveness
from syncd.config import Config
from syncd.daemon.problems import Problems
from syncd.daemon.scheduled import ScheduledWork
from syncd.daemon.watching import FolderWatching
from syncd.engine import Engine
from syncd.errors import StoreError
from syncd.fleet_runtime import FleetRuntime, NodeSnapshot, StateDatabaseMonitor
from syncd.metrics import Metrics
from syncd.notify import SystemdNotifier
from syncd.pipeline import FolderSpec
from syncd.results.specs import results_specs
from syncd.results.worker import ResultsWorker
from syncd.retention_preview import RetentionPreview, RetentionPreviewer
from syncd.store import job_reads, repo
from syncd.upload import UploadEvent
from syncd.web import LiveStatus

__all__ = ["LiveReadModel"]


class LiveReadModel:
    """Reads the daemon's state for people and monitors; see the module docstring.

    Threads: the main thread ticks :meth:`refresh_status` and :meth:`count_overflows`; the
    status page's threads call :meth:`live`, :meth:`health`, :meth:`folders` and
    :meth:`retention_preview`; the heartbeat (a scheduler thread) calls :meth:`node_snapshot`;
    upload workers call :meth:`upload_finished`. Locks: none of its own: ``_queue_depth`` and
    the overflow count are single references written by the main thread only; what it reads
    of the other parts is guarded by their locks.
    """

    def __init__(
        self,
        engine: Engine,
        problems: Problems,
        watching: FolderWatching,
        scheduled: ScheduledWork,
        *,
        config: Callable[[], Config],
        metrics: Metrics,
        notifier: SystemdNotifier,
        database: StateDatabaseMonitor,
        fleet: FleetRuntime,
        liveness: Liveness,
        retention_preview: RetentionPreviewer,
        started_at: datetime,
        api_server: str,
        results: ResultsWorker,
    ) -> None:
        self._engine = engine
        self._results = results
        self._problems = problems
        self._watching = watching
        self._scheduled = scheduled
        self._config = config
        self._metrics = metrics
        self._notifier = notifier
        self._database = database
        self._fleet = fleet
        self._liveness = liveness
        self._retention_preview = retention_preview
        self._started_at = started_at
        #: Where uploads go, in words for the status page.
        self._api_server = api_server
        #: This node's queue depth as the status tick last read it (None: not read yet).
        self._queue_depth: int | None = None
        self._overflows_counted = 0

    # -- the main thread's ticks ----------------------------------------------------------------

    def refresh_status(self, *, notify: bool = True) -> None:
        """The status tick: gauges and STATUS= from one read of the store, which doubles as a
        probe of the state database (a failure is the monitor's to report; nothing is lost)."""
        try:
            self._queue_depth = self._update_gauges()
        except StoreError as exc:
            self._database.failed(exc)
        else:
            if self._database.is_down:
                # A read proves nothing (a full disk or a writer's lock still serve reads):
                # only a write ends an outage, so probe with the heartbeat's (issue 21).
                self._fleet.beat()
        self._metrics.degraded.set(0 if self.health()[0] else 1)
        if notify:
            self._notifier.status(self.status_line())

    def count_overflows(self) -> None:
        seen = self._watching.overflows
        if seen > self._overflows_counted:
            self._metrics.watcher_overflows_total.inc(seen - self._overflows_counted)
            self._overflows_counted = seen

    def status_line(self) -> str:
        """STATUS=: never reads the store (the last tick's queue depth; ``?`` before one)."""
        uploader = self._engine.uploader
        queued = "?" if self._queue_depth is None else str(self._queue_depth)
        parts = [f"queue={queued}", f"uploading={uploader.inflight}"]
        database_down = self._database.down_for()
        if database_down is not None:
            parts.append(f"state_database_unavailable_for={database_down:.0f}s")
        down_for = uploader.gate.down_for()
        if down_for is not None:
            parts.append(f"api_unavailable_for={down_for:.0f}s")
        waiting = self._liveness.longest_wait()
        if waiting is not None:
            # No spaces in a value: STATUS= is read as key=value words.
            parts.append(f"api_no_answer_for={waiting.seconds:.0f}s")
            parts.append(f"api_waiting_on={waiting.what.replace(' ', ':', 1)}")
        degraded = self._problems.degraded()
        if degraded:
            parts.append(f"degraded={','.join(name for name, _ in degraded)}")
        last_error = self._database.problem() or self._problems.last_error
        if last_error:
            parts.append(f"last_error={last_error[:200]}")
        return " ".join(parts)

    def _update_gauges(self) -> int:
        """Refresh the store-derived gauges; return this node's queue depth they read."""
        names = {key: spec.name for key, spec in self._engine.folders().items()}
        with self._engine.store.session() as s:
            counts = repo.state_counts(s)
            oldest = repo.oldest_unsynced_by_folder(s, names)
        queued = 0
        for key, by_state in counts.items():
            if key in names:
                for state, n in by_state.items():
                    self._metrics.files.labels(folder=names[key], state=state).set(n)
                queued += by_state.get("pending", 0) + by_state.get("uploading", 0)
        # This node's folders only: in a fleet, the store also holds other nodes' queues.
        self._metrics.queue_depth.set(queued)
        self._update_job_gauges(names)
        since = min(oldest.values(), default=None)
        age = (datetime.now(UTC) - since).total_seconds() if since else 0.0
        self._metrics.oldest_unsynced_age_seconds.set(max(age, 0.0))
        return queued

    def _update_job_gauges(self, names: Mapping[str, str]) -> None:
        """``syncd_jobs{folder, state}`` for the folders whose results come home."""
        specs = results_specs(self._config())
        if not specs:
            return
        with self._engine.store.session() as s:
            counts = job_reads.job_counts(s, list(specs))
        for key, spec in specs.items():
            by_state = {state: n for (folder, state), n in counts.items() if folder == key}
            self._metrics.set_job_counts(spec.name, by_state, job_reads.JOB_STATES)

    def _results_error(self) -> str | None:
        return self._results.last_error

    # -- the heartbeat --------------------------------------------------------------------------

    def node_snapshot(self) -> NodeSnapshot:
        """What this node's heartbeat records besides the time: folders, queue, problems."""
        problems: list[str] = []
        gate = self._engine.uploader.gate
        down_for = gate.down_for()
        if down_for is not None:
            problems.append(f"API unavailable for {down_for:.0f}s: {gate.last_error}"[:500])
        problems.extend(f"{n}: {reason}"[:500] for n, reason in self._problems.degraded())
        return NodeSnapshot(
            folders=tuple(self._engine.folders()),
            queue_depth=self._queue_depth,
            problems=tuple(problems),
        )

    # -- what the status page asks (syncd.web.StatusSource) -------------------------------------

    def folders(self) -> Mapping[str, FolderSpec]:
        """folder key -> the folder as configured now."""
        return self._engine.folders()

    def live(self) -> LiveStatus:
        """The daemon's own state for the status page, read without touching the store."""
        healthy, reason = self.health()
        gate = self._engine.uploader.gate
        down_for = gate.down_for()
        config = self._config()
        return LiveStatus(
            node=config.node.name,
            started_at=self._started_at,
            healthy=healthy,
            health_reason=reason,
            queue_depth=self._queue_depth,
            uploading=self._engine.uploader.inflight,
            api_down_for=down_for,
            api_error=gate.last_error if down_for is not None else None,
            last_good_scan=dict(self._scheduled.last_good_scan),
            next_retention_at=self._scheduled.next_retention_at(),
            lease=config.node.lease,
            api_server=self._api_server,
            overdue_after=config.results.overdue_after,
            results_error=self._results_error(),
        )

    def retention_preview(self, *, wait: bool) -> RetentionPreview | None:
        """What the next retention run would delete (a dry run, at most a minute old)."""
        return self._retention_preview.current(wait=wait)

    def health(self) -> tuple[bool, str]:
        """``/healthz``: ok, or degraded with every reason."""
        reasons: list[str] = []
        problem = self._database.problem()
        if problem is not None:
            reasons.append(problem)
        reasons.extend(f"{n}: {reason}" for n, reason in self._problems.degraded())
        reasons.extend(self._api_problems())
        if reasons:
            return False, f"degraded: {'; '.join(reasons)}"
        return True, "ok"

    def _api_problems(self) -> list[str]:
        """The Files API not answering, or down, in words for /healthz."""
        problems: list[str] = []
        waiting = self._liveness.longest_wait()
        if waiting is not None:
            problems.append(
                f"no answer from the Files API for {waiting.seconds:.0f} s ({waiting.what})"
            )
        gate = self._engine.uploader.gate
        down_for = gate.down_for()
        if down_for is not None:
            problems.append(f"the Files API is unavailable for {down_for:.0f} s: {gate.last_error}")
        return problems

    # -- upload events (upload workers) ---------------------------------------------------------

    def upload_finished(self, event: UploadEvent) -> None:
        spec = self._engine.folder_named(event.folder)
        purpose = spec.purpose if spec else ""
        self._metrics.uploads_total.labels(
            folder=event.folder, purpose=purpose, outcome=event.outcome
        ).inc()
        if event.outcome in ("uploaded", "adopted"):
            self._metrics.upload_bytes_total.inc(event.bytes)
        elif event.outcome in ("retry", "failed"):
            self._problems.last_error = f"{event.folder}/{event.rel_path}: {event.error}"
            self._metrics.upload_failures_total.labels(
                folder=event.folder, reason_class=str(event.status_code or "transport")
            ).inc()
            if event.outcome == "retry":
                self._metrics.api_retries_total.labels(
                    status=str(event.status_code or "transport")
                ).inc()
            if event.status_code == 429:
                self._metrics.rate_limited_total.inc()
