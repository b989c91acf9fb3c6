"""The results worker: one thread that brings results home for every results folder.

Each cycle: uploaded files become jobs (:mod:`.discovery`), the spending guard lets jobs start
(:mod:`.starting`), busy folders are listed on their schedule (:mod:`.polling`) and finished
jobs' results are landed (:mod:`.fetching`). Between cycles it sleeps until the next listing
is due, an upload wakes it, or :data:`IDLE_CYCLE` passes.

Threads: :meth:`start` and :meth:`stop` from the lifecycle (main thread); :meth:`wake` from any
thread (the upload workers); the cycles on the ``syncd-results`` thread. ``_wake`` is an Event;
``last_error`` is a plain attribute replaced whole (read by the status surfaces).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import structlog

from syncd.api import Mistral
from syncd.config import ResultsConfig
from syncd.errors import ApiError, StoreError
from syncd.results import landing
from syncd.results.book import JobBook
from syncd.results.discovery import discover
from syncd.results.fetching import Fetcher
from syncd.results.polling import Poller
from syncd.results.specs import ResultsSpec
from syncd.results.starting import Starter
from syncd.results.writing import ResultWriter
from syncd.store import Store
from syncd.store.records import JobRecord

__all__ = ["IDLE_CYCLE", "ResultsWorker"]

log = structlog.get_logger(__name__)

#: Longest sleep between cycles when nothing is due: how soon a copy of content already
#: uploaded (which no upload announces) joins its job, and held jobs are judged again. A cycle
#: with nothing to do reads the store only (one indexed query per step), never the API.
IDLE_CYCLE = 5.0
#: Temporary files a crash left are removed at start once they are this old (seconds).
_STALE_TEMPORARY = 3600.0


class ResultsWorker:
    """See the module docstring."""

    def __init__(
        self,
        store: Store,
        client: Mistral,
        specs: Callable[[], Mapping[str, ResultsSpec]],
        settings: Callable[[], ResultsConfig],
        *,
        node: str,
        lease_seconds: float,
        on_bytes: Callable[[str, int], None] = lambda _folder, _n: None,
        on_answer_lost: Callable[[str], None] = lambda _folder: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._specs = specs
        self._settings = settings
        self.book = JobBook(store, node=node, lease=timedelta(seconds=lease_seconds), clock=clock)
        writer = ResultWriter(self.book, client, on_bytes=on_bytes)
        self._starter = Starter(self.book, client, writer, on_answer_lost=on_answer_lost)
        self.poller = Poller(self.book, client, settings)
        self._fetcher = Fetcher(self.book, writer, ask_again=self._ask_again)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread, even with no results folder yet: a reload may add one."""
        for spec in self._specs().values():
            removed = landing.clean_temporaries(
                spec.results, owner=self.book.node, older_than=_STALE_TEMPORARY
            )
            if removed:
                log.info("results_temporaries_removed", folder=spec.name, files=removed)
        self._thread = threading.Thread(target=self._run, name="syncd-results", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Something was uploaded (or a reload changed folders): look now."""
        self._wake.set()

    # -- cycles -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sleep = self.run_once()
            except Exception as exc:  # a bug here must stop neither uploads nor this loop
                self.last_error = f"results: {type(exc).__name__}: {exc}"
                log.exception("results_cycle_crashed")
                sleep = IDLE_CYCLE
            self._wake.wait(timeout=sleep)
            self._wake.clear()

    def run_once(self) -> float:
        """One cycle over every results folder; seconds until the next one is due."""
        specs = dict(self._specs())
        try:
            discover(self.book, specs)
        except StoreError as exc:
            self._failed("discovery", None, exc)
            return IDLE_CYCLE
        for spec in specs.values():
            if self._stop.is_set():
                break
            for step, action in (
                ("start", self._starter.start_due),
                ("poll", self.poller.poll),
                ("fetch", self._fetcher.fetch_due),
            ):
                try:
                    action(spec)
                except (ApiError, StoreError, OSError) as exc:
                    self._failed(step, spec, exc)
        due = [d for spec in specs.values() if (d := self.poller.due_in(spec)) is not None]
        return min([IDLE_CYCLE, *due])

    def _failed(self, step: str, spec: ResultsSpec | None, exc: Exception) -> None:
        self.last_error = f"{spec.name if spec else 'results'}: {exc}"
        log.warning(
            "results_step_failed",
            step=step,
            folder=spec.name if spec else None,
            error=str(exc),
            error_type=type(exc).__name__,
        )

    def _ask_again(self, job: JobRecord) -> None:
        log.warning(
            "ocr_requested_again",
            path=job.rel_path,
            reason="the results written for this content were edited or removed",
        )
        self.book.update(job.key, state="pending")
