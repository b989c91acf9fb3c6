"""Scheduled work: full rescans, the node's heartbeat, retention, and what an outage owes.

A rescan the state store refused is tried again shortly; while the state database is known to
be down, the rescan is owed instead, and runs once it answers again (with the remote listing
too, when a scheduled one could not list it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.config import Config
from syncd.daemon.problems import Problems
from syncd.engine import Engine
from syncd.errors import LocalFileError, StoreError
from syncd.fleet_runtime import FleetRuntime, StateDatabaseMonitor
from syncd.metrics import Metrics
from syncd.reconcile import ReconcileReport
from syncd.retention_job import ScheduledRetention
from syncd.retention_preview import RetentionPreviewer
from syncd.retention_setup import retention_trigger

__all__ = ["ScheduledWork"]

log = structlog.get_logger(__name__)

#: A rescan the state store refused is tried again after this long (capped by rescan_interval).
_RESCAN_RETRY = 2.0


class ScheduledWork:
    """APScheduler's jobs: ``rescan``, ``heartbeat``, ``retention`` and one-off rescans.

    Threads: the scheduler's worker threads run the jobs; the main thread starts, reschedules
    and shuts it down (start, reload, stop); the database monitor calls
    :meth:`database_recovered` on whichever thread saw the database answer; the settler calls
    :meth:`owe_rescan`. Locks: :class:`Problems`'s lock guards the "rescan owes the remote"
    flag; ``last_good_scan`` is replaced key by key (a dict's item assignment is atomic).
    """

    def __init__(
        self,
        engine: Engine,
        problems: Problems,
        config: Callable[[], Config],
        stop: threading.Event,
        *,
        metrics: Metrics,
        database: StateDatabaseMonitor,
        fleet: FleetRuntime,
        retention: ScheduledRetention,
        retention_preview: RetentionPreviewer,
    ) -> None:
        self._engine = engine
        self._problems = problems
        self._config = config
        self._stop = stop
        self._metrics = metrics
        self._database = database
        self._fleet = fleet
        self._retention = retention
        self._retention_preview = retention_preview
        self.scheduler: BackgroundScheduler | None = None
        #: folder key -> when its last full scan finished without an error (the status page).
        self.last_good_scan: dict[str, datetime] = {}
        self.last_good_rescan: datetime | None = None
        #: Whether the rescan once the state database is back (it always runs) must also list
        #: the remote: a scheduled rescan was refused before it could.
        self._rescan_owes_remote = False

    def start(self) -> None:
        config = self._config()
        scheduler = BackgroundScheduler(timezone=UTC)
        # The first run starts now: that is the startup reconcile READY waits for being queued.
        scheduler.add_job(
            self.rescan_all,
            "interval",
            seconds=config.watch.rescan_interval.total_seconds(),
            id="rescan",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
        # The first beat now: `syncd nodes` lists the node as soon as it runs.
        scheduler.add_job(
            self._fleet.beat,  # never raises: a failure is logged and marks the database down
            "interval",
            seconds=config.node.heartbeat.total_seconds(),
            id="heartbeat",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
        # Never overlapping itself: a slow run makes the next one wait, never run twice.
        scheduler.add_job(
            self._run_retention,
            retention_trigger(config.retention),
            id="retention",
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        self.scheduler = scheduler

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)

    def next_retention_at(self) -> datetime | None:
        job = self.scheduler.get_job("retention") if self.scheduler is not None else None
        return getattr(job, "next_run_time", None)

    def reschedule_retention(self, config: Config) -> None:
        if self.scheduler is not None:
            self.scheduler.reschedule_job("retention", trigger=retention_trigger(config.retention))

    def scan_soon(self, keys: list[str]) -> None:
        """Scan these folders (added or changed by a reload) on the scheduler's thread."""
        if self.scheduler is not None:
            self.scheduler.add_job(self._scan_folders, args=[keys], id="reload-scan")

    # -- the state database's outages -----------------------------------------------------------

    def owe_rescan(self, *, with_remote: bool = False) -> bool:
        """While the state database is down, remember to rescan once it is back (True);
        False when it is not known to be down (then the caller retries on its own)."""
        if not self._database.is_down:
            return False
        with self._problems.lock:
            self._rescan_owes_remote = self._rescan_owes_remote or with_remote
        return True

    def database_recovered(self) -> None:
        """The state database answers again: upload what waited, rescan what was missed."""
        self._engine.uploader.wake()
        with self._problems.lock:
            with_remote, self._rescan_owes_remote = self._rescan_owes_remote, False
        if self.scheduler is not None and not self._stop.is_set():
            # Events seen while it was down could not be recorded: a rescan finds their files.
            self.scheduler.add_job(
                self.rescan_all,
                "date",
                run_date=datetime.now(UTC),
                kwargs={"with_remote": with_remote},
                id="rescan-recovery",
                replace_existing=True,
            )

    # -- the jobs (scheduler threads) -----------------------------------------------------------

    def _run_retention(self) -> None:
        # Its deletions must not look like files that vanished to a concurrent reconcile.
        with self._engine.deletions_lock:
            self._retention()
        self._retention_preview.invalidate()  # the page's plan is out of date now

    def rescan_all(self, *, with_remote: bool = True) -> None:
        """The scheduled rescan: failed files get another chance, the remote is reconciled
        (vanished files are queued again), and every folder is scanned."""
        started = time.monotonic()
        remote: ReconcileReport | None = None
        try:
            self._engine.retry_failed()
            if with_remote:
                remote = self._engine.reconcile_remote()
            summaries, errors = self._engine.scan_all(stop=self._stop)
        except StoreError as exc:
            self._postpone(exc, with_remote=with_remote and remote is None)
            return
        for name, error in errors.items():
            self._problems.folder_degraded(name, error)
        finished = datetime.now(UTC)
        keys = {spec.name: key for key, spec in self._engine.folders().items()}
        for summary in summaries:
            if summary.folder not in errors and summary.folder in keys:
                self.last_good_scan[keys[summary.folder]] = finished
        if not errors:
            self.last_good_rescan = finished
            self._metrics.last_good_rescan_timestamp_seconds.set(time.time())
        log.info(
            "rescan_finished",
            folders=len(summaries),
            files=sum(s.files for s in summaries),
            hashed=sum(s.hashed for s in summaries),
            queued=sum(s.queued for s in summaries),
            remote_files=remote.listed if remote else None,
            vanished=len(remote.vanished) if remote else None,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    def _postpone(self, exc: StoreError, *, with_remote: bool) -> None:
        """The store refused the rescan: owe it to the database's recovery, or retry soon."""
        self._problems.last_error = str(exc)
        if self.owe_rescan(with_remote=with_remote):
            log.warning("rescan_postponed", error=str(exc), until="state_database_recovered")
            return
        retry_in = min(_RESCAN_RETRY, self._config().watch.rescan_interval.total_seconds())
        log.warning("rescan_postponed", error=str(exc), retry_in_s=retry_in)
        if self.scheduler is not None and not self._stop.is_set():
            self.scheduler.add_job(
                self.rescan_all,
                "date",
                run_date=datetime.now(UTC) + timedelta(seconds=retry_in),
                # The remote was listed already unless the store failed before that.
                kwargs={"with_remote": with_remote},
                id="rescan-retry",
                replace_existing=True,
            )

    def _scan_folders(self, keys: list[str]) -> None:
        specs = self._engine.folders()
        for key in keys:
            spec = specs.get(key)
            if spec is None:
                continue
            try:
                self._engine.pipeline.scan(spec)
                self.last_good_scan[key] = datetime.now(UTC)
            except LocalFileError as exc:
                self._problems.folder_degraded(spec.name, str(exc))
            except StoreError as exc:
                self._problems.last_error = str(exc)
                if not self.owe_rescan():
                    # A short failure: the next scheduled rescan looks at the folder again.
                    log.warning("rescan_postponed", folder=spec.name, error=str(exc))
