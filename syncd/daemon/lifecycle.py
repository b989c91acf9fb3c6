"""``syncd run``: the composition root and lifecycle of the long-running service.

Start order: (logging and config are done by the CLI) store and migrations, the API client or
the embedded emulator, the engine (uploader + pipeline), the status listener, watching, the
scheduled work, then READY=1 once the first reconcile is queued. Shutdown runs the other way
round, starting with STOPPING=1; in-flight uploads get a bounded grace time and everything
else stays pending in the store.

The main thread only ticks: it handles signal flags (SIGHUP reloads), pings the systemd
watchdog, rescans degraded folders and refreshes STATUS=. Work happens in the parts' threads:

- :mod:`~syncd.daemon.watching`: events, debounce, settle, degraded folders;
- :mod:`~syncd.daemon.scheduled`: rescans, heartbeat, retention, what an outage owes;
- :mod:`~syncd.daemon.reload`: SIGHUP;
- :mod:`~syncd.daemon.read_model`: STATUS=, ``/healthz``, the page, gauges, heartbeat;
- :mod:`~syncd.daemon.problems`: the last error and degraded folders they share.

A state store that fails while running (locked by another process past the busy timeout, a
full disk, a PostgreSQL server restarting or down for minutes) stops no thread: the heartbeat
and the status tick probe it, and while it does not answer the daemon reports degraded (see
:mod:`syncd.fleet_runtime`), the uploader waits to write its outcomes, and rescans and settled
paths wait for it instead of retrying on their own; once it answers again, the daemon rescans.
Only a store that cannot be opened at start ends the daemon (exit 1, naming the file and cause).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog

from syncd.config import Config, describe_server
from syncd.connection import connect
from syncd.daemon.problems import Problems
from syncd.daemon.read_model import LiveReadModel
from syncd.daemon.reload import Reloader
from syncd.daemon.scheduled import ScheduledWork
from syncd.daemon.watching import FolderWatching
from syncd.engine import Engine
from syncd.fleet_runtime import FleetRuntime, StateDatabaseMonitor
from syncd.memory import QuietTrim, limit_malloc_arenas
from syncd.metrics import Metrics
from syncd.notify import SystemdNotifier, watchdog_interval
from syncd.results.specs import results_specs
from syncd.results.worker import ResultsWorker
from syncd.retention_job import ScheduledRetention
from syncd.retention_preview import RetentionPreviewer
from syncd.retention_setup import retention_settings
from syncd.store import Store, instance_lock, open_store
from syncd.upload import UploadEvent

__all__ = ["DEFAULT_GRACE", "Daemon"]

log = structlog.get_logger(__name__)

#: How long in-flight uploads may take to finish after SIGTERM (systemd's TimeoutStopSec is 90s).
DEFAULT_GRACE = 30.0
_TICK = 0.5
#: STATUS= and the gauges query the store; every few seconds is plenty for people and Prometheus.
_STATUS_EVERY = 5.0


class Daemon:
    """One running service; :meth:`run` blocks until a stop signal and returns the exit code.

    Threads: :meth:`run` on the main thread (signal handlers need it; elsewhere they are not
    installed); :meth:`request_stop` from any thread. Holds the current config, which only the
    main thread replaces (a reload); the parts read it through :meth:`config`.
    """

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
        self._problems = Problems()
        self._should_exit = threading.Event()
        self._should_reload = threading.Event()
        self._signals_seen = 0
        self._started_at = datetime.now(UTC)

    def config(self) -> Config:
        return self._config

    def _set_config(self, config: Config) -> None:
        self._config = config

    def request_stop(self) -> None:
        self._should_exit.set()

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        limit_malloc_arenas()  # before the daemon's threads start: see syncd.memory
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
            connection = stack.enter_context(connect(self._config, self._environ))
            api_server = describe_server(
                connection.server_url, embedded=connection.is_local_emulator
            )
            # The parts need each other both ways (the engine reports to the read model and
            # to watching, which need the engine): callbacks reach parts built after them
            # through these closures, which run only once everything is built.
            database = StateDatabaseMonitor(
                str(store.path) if store.path else store.url,
                on_recovered=lambda: scheduled.database_recovered(),
            )

            def uploaded(event: UploadEvent) -> None:
                read_model.upload_finished(event)
                results.wake()  # an upload of a results folder may start a job

            engine = Engine(
                self._config,
                store,
                connection.client.files,
                on_upload=lambda event: uploaded(event),
                on_unstable=lambda spec, rel_path: watching.retouch(spec, rel_path),
                on_racy=lambda spec, rel_path: watching.retouch(spec, rel_path),
                # Rescans hand files changed within `settle` to the watcher's settle rule.
                on_unsettled=lambda spec, rel_path: watching.retouch(spec, rel_path),
            )
            retention = ScheduledRetention(
                # Reads the config at every run, so SIGHUP's new ages apply from the next run.
                store,
                connection.client,
                lambda: retention_settings(self._config),
            )
            preview = RetentionPreviewer(
                store, connection.client, lambda: retention_settings(self._config)
            )
            watching = FolderWatching(
                engine,
                self._problems,
                self.config,
                self._should_exit,
                owe_rescan=lambda: scheduled.owe_rescan(),
            )
            fleet = FleetRuntime(
                store,
                node=self._config.node.name,
                lease=self._config.node.lease,
                snapshot=lambda: read_model.node_snapshot(),
                monitor=database,
                on_taken_over=lambda _count: engine.uploader.wake(),
                started_at=self._started_at,
            )
            scheduled = ScheduledWork(
                engine,
                self._problems,
                self.config,
                self._should_exit,
                metrics=self._metrics,
                database=database,
                fleet=fleet,
                retention=retention,
                retention_preview=preview,
            )
            results = ResultsWorker(
                store,
                connection.client,
                lambda: results_specs(self._config),
                lambda: self._config.results,
                node=self._config.node.name,
                lease_seconds=self._config.node.lease.total_seconds(),
                on_bytes=lambda folder, n: self._metrics.result_bytes_total.labels(
                    folder=folder
                ).inc(n),
                on_answer_lost=lambda folder: self._metrics.ocr_answers_lost_total.labels(
                    folder=folder
                ).inc(),
            )
            read_model = LiveReadModel(
                engine,
                self._problems,
                watching,
                scheduled,
                config=self.config,
                metrics=self._metrics,
                notifier=self._notifier,
                database=database,
                fleet=fleet,
                liveness=connection.client.liveness,
                retention_preview=preview,
                started_at=self._started_at,
                api_server=api_server,
                results=results,
            )
            reloader = Reloader(
                self._config_path,
                engine,
                self._problems,
                watching,
                scheduled,
                preview,
                self._notifier,
                config=self.config,
                set_config=self._set_config,
                status_line=read_model.status_line,
            )

            recovered = engine.uploader.recover()
            engine.retry_failed()
            engine.uploader.start()
            stack.callback(self._stop_uploader, engine)
            self._start_status_listener(stack, store, read_model)
            watching.start()
            stack.callback(watching.stop)
            scheduled.start()
            stack.callback(scheduled.stop)
            results.start()
            stack.callback(results.stop)

            log.info(
                "daemon_started",
                folders=len(engine.folders()),
                server_url=connection.server_url,
                recovered_intents=recovered,
                node=self._config.node.name,
            )
            read_model.refresh_status(notify=False)
            self._notifier.ready(read_model.status_line())
            self._main_loop(read_model, watching, reloader, engine)
            self._notifier.stopping()
            log.info("daemon_stopping")
        log.info("daemon_stopped")
        return 0

    def _main_loop(
        self,
        read_model: LiveReadModel,
        watching: FolderWatching,
        reloader: Reloader,
        engine: Engine,
    ) -> None:
        last_ping = last_status = 0.0
        trim = QuietTrim()
        while not self._should_exit.wait(timeout=_TICK):
            trim.tick(quiet=engine.uploader.inflight == 0)
            if self._should_reload.is_set():
                self._should_reload.clear()
                reloader.reload()
            watching.rescan_degraded()
            read_model.count_overflows()
            now = time.monotonic()
            if self._watchdog_every is not None and now - last_ping >= self._watchdog_every:
                self._notifier.watchdog()
                last_ping = now
            if now - last_status >= _STATUS_EVERY:
                read_model.refresh_status()
                last_status = now

    def _start_status_listener(
        self, stack: ExitStack, store: Store, read_model: LiveReadModel
    ) -> None:
        """The status listener: the page, /api, /metrics and /healthz on ``[metrics] listen``."""
        address = self._config.metrics.address
        if address is None:
            return
        # Imported here: the page's stack is several MB of RSS a daemon without a listener
        # would carry for nothing (see syncd.web).
        from syncd.web import StatusServer, create_status_app

        host, port = address
        token_file = self._config.metrics.token_file
        app = create_status_app(
            store=store,
            source=read_model,
            registry=self._metrics.registry,
            health=read_model.health,
            token=None if token_file is None else token_file.value.get_secret_value(),
            listen_host=host,
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

    def _stop_uploader(self, engine: Engine) -> None:
        if not engine.uploader.stop(grace=self._grace):
            log.warning("uploads_interrupted", error="grace time over; they resume on next start")

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
