"""``syncd run``: the composition root and lifecycle of the long-running service.

Start order: (logging and config are done by the CLI) store and migrations, the API client or
the embedded emulator, the engine (uploader + pipeline), watchers, the scheduler, then READY=1
once the first reconcile is queued. Shutdown runs the other way round, starting with STOPPING=1;
in-flight uploads get a bounded grace time and everything else stays pending in the store.

The main thread only ticks: it handles signal flags, pings the systemd watchdog and refreshes
STATUS=. Work happens in the watcher, settler, dispatcher, upload and scheduler threads.

A state store that fails while running (locked by another process past the busy timeout, a
full disk, a PostgreSQL server restarting or down for minutes) stops no thread: the heartbeat
and the status tick probe it, and while it does not answer the daemon reports degraded (see
:mod:`syncd.fleet_runtime`), the uploader waits to write its outcomes, and rescans and settled
paths wait for it instead of retrying on their own; once it answers again, the daemon rescans.
A failure too short for the probes to notice is retried shortly, as before. Only a store that
cannot be opened at start ends the daemon (exit 1, the message names the file and the cause).

Every ``[node] heartbeat`` the node records itself in the store and takes over the upload
claims of silent nodes in its folders (fleet mode; :class:`~syncd.fleet_runtime.FleetRuntime`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.api.liveness import Liveness
from syncd.config import Config, load_config
from syncd.connection import connect
from syncd.engine import Engine, folder_specs
from syncd.errors import ConfigError, LocalFileError, StoreError
from syncd.fleet_runtime import (
    FleetRuntime,
    NodeSnapshot,
    StateDatabaseMonitor,
)
from syncd.metrics import Metrics
from syncd.notify import SystemdNotifier, watchdog_interval
from syncd.paths import to_key
from syncd.pipeline import FolderSpec
from syncd.reconcile import ReconcileReport
from syncd.retention_job import ScheduledRetention
from syncd.retention_preview import RetentionPreview, RetentionPreviewer
from syncd.retention_setup import retention_settings, retention_trigger
from syncd.store import instance_lock, open_store, repo
from syncd.uploader import UploadEvent
from syncd.watcher import Debouncer, Watcher
from syncd.web import LiveStatus, StatusServer, create_status_app

__all__ = ["DEFAULT_GRACE", "Daemon"]

log = structlog.get_logger(__name__)

#: How long in-flight uploads may take to finish after SIGTERM (systemd's TimeoutStopSec is 90s).
DEFAULT_GRACE = 30.0
_TICK = 0.5
#: STATUS= and the gauges query the store; every few seconds is plenty for people and Prometheus.
_STATUS_EVERY = 5.0
#: Degraded folders (no working watch) are rescanned from this interval up to rescan_interval.
_DEGRADED_FIRST_RESCAN = 2.0
#: A rescan the state store refused is tried again after this long (capped by rescan_interval).
_RESCAN_RETRY = 2.0


@dataclass(slots=True)
class _DegradedFolder:
    reason: str
    interval: float
    next_scan: float
    rewatch: bool
    """The root was missing, deleted, moved or its watcher died: watch it again once it is back.

    Not for inotify limits or overflows: re-adding would fail (or overflow) again at once.
    """


class Daemon:
    """One running service; :meth:`run` blocks until a stop signal and returns the exit code."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path,
        environ: Mapping[str, str] | None = None,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self._config = config
        self._config_path = config_path
        self._environ = dict(os.environ if environ is None else environ)
        self._grace = grace
        self._notifier = SystemdNotifier(self._environ.get("NOTIFY_SOCKET", ""))
        self._watchdog_every = watchdog_interval(self._environ)
        self._metrics = Metrics(node=config.node.name)
        self._should_exit = threading.Event()
        self._should_reload = threading.Event()
        self._signals_seen = 0
        self._last_error: str | None = None
        self._degraded: dict[str, _DegradedFolder] = {}
        self._degraded_lock = threading.Lock()
        self._debouncer: Debouncer[tuple[str, str]] = Debouncer(
            config.watch.settle.total_seconds(),
            config.watch.settle_max.total_seconds(),
            time.monotonic,
        )
        self._debounce_lock = threading.Condition()
        self._liveness: Liveness | None = None
        #: Debounced paths an event said were written to: hashed at settle whatever their stat
        #: says (guarded by _debounce_lock; at most one entry per path waiting to settle).
        self._written: set[tuple[str, str]] = set()
        self._last_good_rescan: datetime | None = None
        #: folder key -> when its last full scan finished without an error (the status page).
        self._last_good_scan: dict[str, datetime] = {}
        self._overflows_counted = 0
        self._started_at = datetime.now(UTC)
        #: This node's queue depth as the status tick last read it (None: not read yet).
        self._queue_depth: int | None = None
        #: Whether the rescan once the state database is back (it always runs) must also list
        #: the remote: a scheduled rescan was refused before it could.
        self._rescan_owes_remote = False
        # Set in run():
        self._engine: Engine | None = None
        self._watcher: Watcher | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._retention: ScheduledRetention | None = None
        self._retention_preview: RetentionPreviewer | None = None
        self._database: StateDatabaseMonitor | None = None
        self._fleet: FleetRuntime | None = None

    # -- public ---------------------------------------------------------------------------------

    def run(self) -> int:
        with ExitStack() as stack:
            stack.enter_context(self._signal_handlers())
            store = open_store(self._config.state.database_url, threads=self._config.store_threads)
            stack.callback(store.dispose)
            # Before anything reads claims or recovers intents: a second daemon on this store as
            # this node would take the first one's live claims for a crashed node's.
            stack.callback(
                instance_lock.acquire(
                    self._config.state.database_url, self._config.node.name, command="run"
                ).release
            )
            self._database = StateDatabaseMonitor(
                str(store.path) if store.path else store.url,
                on_recovered=self._database_recovered,
            )
            connection = stack.enter_context(connect(self._config, self._environ))
            self._liveness = connection.client.liveness
            engine = Engine(
                self._config,
                store,
                connection.client.files,
                on_upload=self._upload_finished,
                on_unstable=self._retouch,
                on_racy=self._retouch,
                # Rescans hand files changed within `settle` to the watcher's settle rule.
                on_unsettled=self._retouch,
            )
            self._engine = engine
            # Reads self._config at every run, so SIGHUP's new ages apply from the next run.
            self._retention = ScheduledRetention(
                store, connection.client, lambda: retention_settings(self._config)
            )
            self._retention_preview = RetentionPreviewer(
                store, connection.client, lambda: retention_settings(self._config)
            )
            self._fleet = FleetRuntime(
                store,
                node=self._config.node.name,
                lease=self._config.node.lease,
                snapshot=self._node_snapshot,
                monitor=self._database,
                on_taken_over=lambda _count: engine.uploader.wake(),
                started_at=self._started_at,
            )
            recovered = engine.uploader.recover()
            engine.retry_failed()
            engine.uploader.start()
            stack.callback(self._stop_uploader)

            self._start_metrics(stack)
            settler = threading.Thread(target=self._settle_loop, name="syncd-settle", daemon=True)
            settler.start()
            self._watcher = Watcher(
                on_change=self._path_changed,
                on_degraded=self._folder_degraded,
                use_polling=self._config.watch.use_polling,
                on_written=self._path_written,
            )
            stack.callback(self._watcher.stop)
            for spec in engine.folders().values():
                self._watch(spec)
            self._scheduler = self._start_scheduler()
            stack.callback(
                lambda: self._scheduler.shutdown(wait=False) if self._scheduler else None
            )

            log.info(
                "daemon_started",
                folders=len(engine.folders()),
                server_url=connection.server_url,
                recovered_intents=recovered,
                node=self._config.node.name,
            )
            self._refresh_status(notify=False)
            self._notifier.ready(self._status_line())
            self._main_loop()
            self._notifier.stopping()
            log.info("daemon_stopping")
        log.info("daemon_stopped")
        return 0

    def request_stop(self) -> None:
        self._should_exit.set()

    # -- main loop ------------------------------------------------------------------------------

    def _main_loop(self) -> None:
        last_ping = last_status = 0.0
        while not self._should_exit.wait(timeout=_TICK):
            if self._should_reload.is_set():
                self._should_reload.clear()
                self._reload()
            self._rescan_degraded()
            self._count_overflows()
            now = time.monotonic()
            if self._watchdog_every is not None and now - last_ping >= self._watchdog_every:
                self._notifier.watchdog()
                last_ping = now
            if now - last_status >= _STATUS_EVERY:
                self._refresh_status()
                last_status = now

    def _refresh_status(self, *, notify: bool = True) -> None:
        """The status tick: gauges and STATUS= from one read of the store, which doubles as a
        probe of the state database (a failure is the monitor's to report; nothing is lost)."""
        assert self._database is not None
        try:
            self._queue_depth = self._update_gauges()
        except StoreError as exc:
            self._database.failed(exc)
        else:
            if self._database.is_down and self._fleet is not None:
                # A read proves nothing (a full disk or a writer's lock still serve reads):
                # only a write ends an outage, so probe with the heartbeat's (issue 21).
                self._fleet.beat()
        self._metrics.degraded.set(0 if self._health()[0] else 1)
        if notify:
            self._notifier.status(self._status_line())

    def _count_overflows(self) -> None:
        if self._watcher is None:
            return
        seen = self._watcher.overflows
        if seen > self._overflows_counted:
            self._metrics.watcher_overflows_total.inc(seen - self._overflows_counted)
            self._overflows_counted = seen

    def _status_line(self) -> str:
        """STATUS=: never reads the store (the last tick's queue depth; ``?`` before one)."""
        engine = self._engine
        if engine is None:
            return "starting"
        queued = "?" if self._queue_depth is None else str(self._queue_depth)
        parts = [f"queue={queued}", f"uploading={engine.uploader.inflight}"]
        database_down = self._database.down_for() if self._database else None
        if database_down is not None:
            parts.append(f"state_database_unavailable_for={database_down:.0f}s")
        down_for = engine.uploader.gate.down_for()
        if down_for is not None:
            parts.append(f"api_unavailable_for={down_for:.0f}s")
        waiting = self._liveness.longest_wait() if self._liveness else None
        if waiting is not None:
            # No spaces in a value: STATUS= is read as key=value words.
            parts.append(f"api_no_answer_for={waiting.seconds:.0f}s")
            parts.append(f"api_waiting_on={waiting.what.replace(' ', ':', 1)}")
        if self._degraded:
            parts.append(f"degraded={','.join(sorted(self._degraded))}")
        problem = self._database.problem() if self._database else None
        last_error = problem or self._last_error
        if last_error:
            parts.append(f"last_error={last_error[:200]}")
        return " ".join(parts)

    def _update_gauges(self) -> int | None:
        """Refresh the store-derived gauges; return this node's queue depth they read."""
        engine = self._engine
        if engine is None:
            return None
        names = {key: spec.name for key, spec in engine.folders().items()}
        with engine.store.session() as s:
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
        since = min(oldest.values(), default=None)
        age = (datetime.now(UTC) - since).total_seconds() if since else 0.0
        self._metrics.oldest_unsynced_age_seconds.set(max(age, 0.0))
        return queued

    def _node_snapshot(self) -> NodeSnapshot:
        """What this node's heartbeat records besides the time: folders, queue, problems."""
        assert self._engine is not None
        problems: list[str] = []
        down_for = self._engine.uploader.gate.down_for()
        if down_for is not None:
            error = self._engine.uploader.gate.last_error
            problems.append(f"API unavailable for {down_for:.0f}s: {error}"[:500])
        with self._degraded_lock:
            problems.extend(f"{n}: {d.reason}"[:500] for n, d in sorted(self._degraded.items()))
        return NodeSnapshot(
            folders=tuple(self._engine.folders()),
            queue_depth=self._queue_depth,
            problems=tuple(problems),
        )

    # -- signals --------------------------------------------------------------------------------

    @contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        """Install SIGTERM/SIGINT/SIGHUP handlers (main thread only) and restore them after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._should_reload.set()
            return
        self._signals_seen += 1
        if self._signals_seen > 1:
            # A second stop signal: the operator does not want to wait for the grace time.
            os._exit(128 + signum)
        self._should_exit.set()

    # -- watching and settling ------------------------------------------------------------------

    def _watch(self, spec: FolderSpec) -> None:
        assert self._watcher is not None
        if not spec.root.is_dir():
            self._folder_degraded(spec.name, f"watched folder {spec.root} does not exist")
            return
        self._watcher.add_folder(spec.name, spec.root)

    def _spec_by_name(self, name: str) -> FolderSpec | None:
        assert self._engine is not None
        return next((s for s in self._engine.folders().values() if s.name == name), None)

    def _path_changed(self, folder_name: str, path: str) -> None:
        key = self._debounce_key(folder_name, path)
        if key is None:
            return
        with self._debounce_lock:
            self._debouncer.touch(key)
            self._debounce_lock.notify()

    def _path_written(self, folder_name: str, path: str) -> None:
        """The bytes of this file were written: a rewrite in place that keeps the size and
        puts the mtime back (or lands in the same tick of a coarse clock) leaves a stat that
        looks unchanged, so the look at settle time reads the file whatever its stat says."""
        key = self._debounce_key(folder_name, path)
        if key is not None:
            with self._debounce_lock:
                self._written.add(key)

    def _debounce_key(self, folder_name: str, path: str) -> tuple[str, str] | None:
        spec = self._spec_by_name(folder_name)
        if spec is None:
            return None
        try:
            rel_path = to_key(spec.root, Path(path))
        except ValueError:
            return None
        if rel_path in ("", "."):
            return None
        return spec.key, rel_path

    def _retouch(self, spec: FolderSpec, rel_path: str) -> None:
        """A file that was still changing: look again once it has been quiet for a while."""
        with self._debounce_lock:
            self._debouncer.touch((spec.key, rel_path))
            self._debounce_lock.notify()

    def _settle_loop(self) -> None:
        while not self._should_exit.is_set():
            with self._debounce_lock:
                due = self._debouncer.due()
                if not due:
                    deadline = self._debouncer.next_deadline()
                    timeout = _TICK if deadline is None else max(0.0, deadline - time.monotonic())
                    self._debounce_lock.wait(timeout=min(timeout, _TICK))
                    continue
                written = [key in self._written for key in due]
                self._written.difference_update(due)
            for (folder_key, rel_path), rehash in zip(due, written, strict=True):
                self._refresh(folder_key, rel_path, rehash=rehash)

    def _refresh(self, folder_key: str, rel_path: str, *, rehash: bool = False) -> None:
        assert self._engine is not None
        spec = self._engine.folders().get(folder_key)
        if spec is None:
            return
        try:
            self._engine.pipeline.refresh(spec, rel_path, rehash=rehash)
        except LocalFileError as exc:
            self._folder_degraded(spec.name, str(exc))
        except StoreError as exc:
            self._last_error = str(exc)
            if self._owe_rescan_while_database_down(with_remote=False):
                # The database is down: the rescan once it is back looks at this path.
                log.debug("store_unavailable", folder=spec.name, path=rel_path, error=str(exc))
                return
            # Not judged yet: look at the path again once it has settled anew.
            log.warning("store_unavailable", folder=spec.name, path=rel_path, error=str(exc))
            if rehash:
                with self._debounce_lock:
                    self._written.add((folder_key, rel_path))
            self._retouch(spec, rel_path)
        except Exception as exc:
            self._last_error = f"{spec.name}/{rel_path}: {exc}"
            log.exception("refresh_failed", folder=spec.name, path=rel_path)

    def _folder_degraded(self, folder_name: str, reason: str) -> None:
        with self._degraded_lock:
            if folder_name not in self._degraded:
                log.warning("folder_degraded", folder=folder_name, error=reason)
            self._degraded[folder_name] = _DegradedFolder(
                reason,
                _DEGRADED_FIRST_RESCAN,
                time.monotonic() + _DEGRADED_FIRST_RESCAN,
                rewatch="does not exist" in reason or "watched again" in reason,
            )
        self._last_error = f"{folder_name}: {reason}"

    def _rescan_degraded(self) -> None:
        """Backed-off rescans for folders whose watch does not work: never a recrawl storm."""
        assert self._engine is not None
        now = time.monotonic()
        ceiling = self._config.watch.rescan_interval.total_seconds()
        with self._degraded_lock:
            due = [(name, d) for name, d in self._degraded.items() if d.next_scan <= now]
        for name, state in due:
            spec = self._spec_by_name(name)
            if spec is None:
                with self._degraded_lock:
                    self._degraded.pop(name, None)
                continue
            try:
                summary = self._engine.pipeline.scan(spec)
            except (LocalFileError, StoreError) as exc:
                log.warning("degraded_rescan_failed", folder=name, error=str(exc))
                changed = False
            else:
                changed = bool(summary.queued or summary.renamed or summary.missing)
                if state.rewatch and self._rewatch(spec):
                    continue
            state.interval = _DEGRADED_FIRST_RESCAN if changed else min(state.interval * 2, ceiling)
            state.next_scan = time.monotonic() + state.interval

    def _rewatch(self, spec: FolderSpec) -> bool:
        """Watch a folder whose root came back; True when it is healthy again."""
        assert self._watcher is not None
        with self._degraded_lock:
            self._degraded.pop(spec.name, None)
        self._watcher.remove_folder(spec.name)
        # A failure calls _folder_degraded again, so the folder stays on backed-off rescans.
        if not self._watcher.add_folder(spec.name, spec.root):
            return False
        self._watcher.clear_degraded(spec.name)
        log.info("folder_recovered", folder=spec.name, path=str(spec.root))
        return True

    # -- scheduled jobs -------------------------------------------------------------------------

    def _start_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(timezone=UTC)
        interval = self._config.watch.rescan_interval.total_seconds()
        # The first run starts now: that is the startup reconcile READY waits for being queued.
        scheduler.add_job(
            self._rescan_all,
            "interval",
            seconds=interval,
            id="rescan",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
        # The first beat now: `syncd nodes` lists the node as soon as it runs.
        scheduler.add_job(
            self._heartbeat,
            "interval",
            seconds=self._config.node.heartbeat.total_seconds(),
            id="heartbeat",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
        if self._retention is not None:
            # Never overlapping itself: a slow run makes the next one wait, never run twice.
            scheduler.add_job(
                self._run_retention,
                retention_trigger(self._config.retention),
                id="retention",
                max_instances=1,
                coalesce=True,
            )
        scheduler.start()
        return scheduler

    def _heartbeat(self) -> None:
        assert self._fleet is not None
        self._fleet.beat()  # never raises: a failure is logged and marks the database down

    def _owe_rescan_while_database_down(self, *, with_remote: bool) -> bool:
        """While the state database is down, remember to rescan once it is back (True);
        False when it is not known to be down (then the caller retries on its own)."""
        if self._database is None or not self._database.is_down:
            return False
        with self._degraded_lock:
            self._rescan_owes_remote = self._rescan_owes_remote or with_remote
        return True

    def _database_recovered(self) -> None:
        """The state database answers again: upload what waited, rescan what was missed."""
        assert self._engine is not None
        self._engine.uploader.wake()
        with self._degraded_lock:
            with_remote, self._rescan_owes_remote = self._rescan_owes_remote, False
        if self._scheduler is not None and not self._should_exit.is_set():
            # Events seen while it was down could not be recorded: a rescan finds their files.
            self._scheduler.add_job(
                self._rescan_all,
                "date",
                run_date=datetime.now(UTC),
                kwargs={"with_remote": with_remote},
                id="rescan-recovery",
                replace_existing=True,
            )

    def _run_retention(self) -> None:
        assert self._retention is not None and self._engine is not None
        # Its deletions must not look like files that vanished to a concurrent reconcile.
        with self._engine.deletions_lock:
            self._retention()
        if self._retention_preview is not None:
            self._retention_preview.invalidate()  # the page's plan is out of date now

    def _rescan_all(self, *, with_remote: bool = True) -> None:
        """The scheduled rescan: failed files get another chance, the remote is reconciled
        (vanished files are queued again), and every folder is scanned."""
        assert self._engine is not None
        started = time.monotonic()
        remote: ReconcileReport | None = None
        try:
            self._engine.retry_failed()
            if with_remote:
                remote = self._engine.reconcile_remote()
            summaries, errors = self._engine.scan_all(stop=self._should_exit)
        except StoreError as exc:
            self._last_error = str(exc)
            if self._owe_rescan_while_database_down(with_remote=with_remote and remote is None):
                log.warning("rescan_postponed", error=str(exc), until="state_database_recovered")
                return
            retry_in = min(_RESCAN_RETRY, self._config.watch.rescan_interval.total_seconds())
            log.warning("rescan_postponed", error=str(exc), retry_in_s=retry_in)
            if self._scheduler is not None and not self._should_exit.is_set():
                self._scheduler.add_job(
                    self._rescan_all,
                    "date",
                    run_date=datetime.now(UTC) + timedelta(seconds=retry_in),
                    # The remote was listed already unless the store failed before that.
                    kwargs={"with_remote": with_remote and remote is None},
                    id="rescan-retry",
                    replace_existing=True,
                )
            return
        for name, error in errors.items():
            self._folder_degraded(name, error)
        finished = datetime.now(UTC)
        keys = {spec.name: key for key, spec in self._engine.folders().items()}
        for summary in summaries:
            if summary.folder not in errors and summary.folder in keys:
                self._last_good_scan[keys[summary.folder]] = finished
        if not errors:
            self._last_good_rescan = finished
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

    # -- reload ---------------------------------------------------------------------------------

    def _reload(self) -> None:
        """SIGHUP: apply folder changes without a restart; a bad config keeps the old one."""
        assert self._engine is not None and self._watcher is not None
        self._notifier.reloading()
        try:
            new = load_config(self._config_path)
        except ConfigError as exc:
            log.error("reload_rejected", error=str(exc))
            self._last_error = f"reload rejected: {exc}"
            self._notifier.ready(self._status_line())
            return
        if new.node != self._config.node:
            # The node's name is in its folders' keys and its claims: a restart changes it.
            log.warning("reload_partial", error="[node] changes need a restart")
            new = new.model_copy(update={"node": self._config.node})
        old_specs = self._engine.folders()
        new_specs = folder_specs(new)
        self._engine.set_folders(new_specs)
        removed = [spec for key, spec in old_specs.items() if new_specs.get(key) != spec]
        added = [spec for key, spec in new_specs.items() if old_specs.get(key) != spec]
        for spec in removed:
            self._watcher.remove_folder(spec.name)
            with self._degraded_lock:
                self._degraded.pop(spec.name, None)
        for spec in added:
            self._watch(spec)
        if added and self._scheduler is not None:
            # Only changed folders are scanned; unchanged files are not rehashed (fingerprints).
            self._scheduler.add_job(
                self._scan_folders, args=[[s.key for s in added]], id="reload-scan"
            )
        if new.api != self._config.api or new.state != self._config.state:
            log.warning("reload_partial", error="[api] and [state] changes need a restart")
        if self._scheduler is not None and new.retention != self._config.retention:
            self._scheduler.reschedule_job("retention", trigger=retention_trigger(new.retention))
        self._config = new
        if self._retention_preview is not None:
            self._retention_preview.invalidate()
        log.info(
            "config_reloaded",
            added=[s.name for s in added if s.key not in old_specs],
            changed=[s.name for s in added if s.key in old_specs],
            removed=[s.name for s in removed if s.key not in new_specs],
        )
        self._notifier.ready(self._status_line())

    def _scan_folders(self, keys: list[str]) -> None:
        assert self._engine is not None
        specs = self._engine.folders()
        for key in keys:
            spec = specs.get(key)
            if spec is None:
                continue
            try:
                self._engine.pipeline.scan(spec)
                self._last_good_scan[key] = datetime.now(UTC)
            except LocalFileError as exc:
                self._folder_degraded(spec.name, str(exc))
            except StoreError as exc:
                self._last_error = str(exc)
                if not self._owe_rescan_while_database_down(with_remote=False):
                    # A short failure: the next scheduled rescan looks at the folder again.
                    log.warning("rescan_postponed", folder=spec.name, error=str(exc))

    # -- metrics and uploads --------------------------------------------------------------------

    def _start_metrics(self, stack: ExitStack) -> None:
        """The status listener: the page, /api, /metrics and /healthz on ``[metrics] listen``."""
        address = self._config.metrics.address
        if address is None:
            return
        assert self._engine is not None
        host, port = address
        token_file = self._config.metrics.token_file
        app = create_status_app(
            store=self._engine.store,
            source=self,
            registry=self._metrics.registry,
            health=self._health,
            token=None if token_file is None else token_file.value.get_secret_value(),
        )
        server = StatusServer(app, host, port)
        server.start()
        stack.callback(server.stop)
        shown = f"[{host}]" if ":" in host else host
        log.info(
            "metrics_listening",
            listen=f"{shown}:{server.port}",
            status_page=f"http://{shown}:{server.port}/",
            token_required=token_file is not None,
        )

    # -- what the status page asks (syncd.web.StatusSource) ---------------------------------------

    def folders(self) -> Mapping[str, FolderSpec]:
        """folder key -> the folder as configured now."""
        return {} if self._engine is None else self._engine.folders()

    def live(self) -> LiveStatus:
        """The daemon's own state for the status page, read without touching the store."""
        engine = self._engine
        healthy, reason = self._health()
        gate = engine.uploader.gate if engine is not None else None
        down_for = gate.down_for() if gate is not None else None
        job = self._scheduler.get_job("retention") if self._scheduler is not None else None
        return LiveStatus(
            node=self._config.node.name,
            started_at=self._started_at,
            healthy=healthy,
            health_reason=reason,
            queue_depth=self._queue_depth,
            uploading=engine.uploader.inflight if engine is not None else 0,
            api_down_for=down_for,
            api_error=gate.last_error if gate is not None and down_for is not None else None,
            last_good_scan=dict(self._last_good_scan),
            next_retention_at=getattr(job, "next_run_time", None),
            lease=self._config.node.lease,
        )

    def retention_preview(self, *, wait: bool) -> RetentionPreview | None:
        """What the next retention run would delete (a dry run, at most a minute old)."""
        assert self._retention_preview is not None
        return self._retention_preview.current(wait=wait)

    def _health(self) -> tuple[bool, str]:
        reasons: list[str] = []
        problem = self._database.problem() if self._database else None
        if problem is not None:
            reasons.append(problem)
        with self._degraded_lock:
            reasons.extend(f"{n}: {d.reason}" for n, d in sorted(self._degraded.items()))
        reasons.extend(self._api_problems())
        if reasons:
            return False, f"degraded: {'; '.join(reasons)}"
        return True, "ok"

    def _api_problems(self) -> list[str]:
        """The Files API not answering, or down, in words for /healthz."""
        problems: list[str] = []
        waiting = self._liveness.longest_wait() if self._liveness else None
        if waiting is not None:
            problems.append(
                f"no answer from the Files API for {waiting.seconds:.0f} s ({waiting.what})"
            )
        engine = self._engine
        down_for = engine.uploader.gate.down_for() if engine else None
        if down_for is not None:
            error = engine.uploader.gate.last_error if engine else ""
            problems.append(f"the Files API is unavailable for {down_for:.0f} s: {error}")
        return problems

    def _upload_finished(self, event: UploadEvent) -> None:
        spec = self._spec_by_name(event.folder)
        purpose = spec.purpose if spec else ""
        self._metrics.uploads_total.labels(
            folder=event.folder, purpose=purpose, outcome=event.outcome
        ).inc()
        if event.outcome in ("uploaded", "adopted"):
            self._metrics.upload_bytes_total.inc(event.bytes)
        elif event.outcome in ("retry", "failed"):
            self._last_error = f"{event.folder}/{event.rel_path}: {event.error}"
            self._metrics.upload_failures_total.labels(
                folder=event.folder, reason_class=str(event.status_code or "transport")
            ).inc()
            if event.outcome == "retry":
                self._metrics.api_retries_total.labels(
                    status=str(event.status_code or "transport")
                ).inc()
            if event.status_code == 429:
                self._metrics.rate_limited_total.inc()

    def _stop_uploader(self) -> None:
        assert self._engine is not None
        if not self._engine.uploader.stop(grace=self._grace):
            log.warning("uploads_interrupted", error="grace time over; they resume on next start")
