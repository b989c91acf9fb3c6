"""Prometheus metrics for one daemon: their names, labels and the registry they live in.

Every daemon gets a private ``CollectorRegistry`` (nothing global, so tests and embedded daemons
never collide). Setting the values is the daemon's job; serving them (``/metrics`` beside the
status page) is :mod:`syncd.web`'s.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    ProcessCollector,
    generate_latest,
)

from syncd import __version__
from syncd.domain import LocalState

__all__ = ["Metrics"]


class Metrics:
    """Every metric syncd exports, registered in a registry of its own.

    The attributes are plain prometheus_client metrics: ``metrics.uploads_total.labels(
    folder="train", purpose="fine-tune", outcome="uploaded").inc()``.
    """

    def __init__(self, *, node: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self._file_states: dict[str, set[str]] = {}
        r = self.registry
        self.files = Gauge(
            "syncd_files",
            "Files known to the state store, by state",
            ["folder", "state"],
            registry=r,
        )
        self.uploads_total = Counter(
            "syncd_uploads_total",
            "Finished upload attempts",
            ["folder", "purpose", "outcome"],
            registry=r,
        )
        self.upload_bytes_total = Counter(
            "syncd_upload_bytes_total", "Bytes of file content uploaded", registry=r
        )
        self.upload_failures_total = Counter(
            "syncd_upload_failures_total",
            "Failed upload attempts, by error class",
            ["folder", "reason_class"],
            registry=r,
        )
        self.api_retries_total = Counter(
            "syncd_api_retries_total",
            "API calls retried, by HTTP status (or transport)",
            ["status"],
            registry=r,
        )
        self.rate_limited_total = Counter(
            "syncd_rate_limited_total", "HTTP 429 answers from the Files API", registry=r
        )
        self.queue_depth = Gauge("syncd_queue_depth", "Files waiting to be uploaded", registry=r)
        self.oldest_unsynced_age_seconds = Gauge(
            "syncd_oldest_unsynced_age_seconds",
            "Age of the oldest file seen but not uploaded yet",
            registry=r,
        )
        self.watcher_overflows_total = Counter(
            "syncd_watcher_overflows_total",
            "Times the kernel dropped filesystem events (inotify queue overflow)",
            registry=r,
        )
        self.last_good_rescan_timestamp_seconds = Gauge(
            "syncd_last_good_rescan_timestamp_seconds",
            "Unix time of the last full rescan that completed without errors",
            registry=r,
        )
        self.degraded = Gauge(
            "syncd_degraded",
            "1 while changes may be missed (watch limit, overflow...)",
            registry=r,
        )
        self.deletes_total = Counter(
            "syncd_deletes_total",
            "Remote files deleted, by reason",
            ["folder", "reason"],
            registry=r,
        )
        self.jobs = Gauge(
            "syncd_jobs",
            "Batch jobs and OCR documents whose results come home, by state",
            ["folder", "state"],
            registry=r,
        )
        self.result_bytes_total = Counter(
            "syncd_result_bytes_downloaded_total",
            "Bytes of results written into results folders",
            ["folder"],
            registry=r,
        )
        self.ocr_answers_lost_total = Counter(
            "syncd_ocr_answers_lost_total",
            "OCR requests sent again because their answer was lost (each one is billed)",
            ["folder"],
            registry=r,
        )
        self.build_info = Info("syncd_build", "syncd build information", registry=r)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        # The node's name as an info metric (syncd_node_info{node="gpu-3"} 1), not as a label
        # on every series: each daemon is its own scrape target, so its series are told apart
        # by the target's labels already; a constant label on all of them would only repeat
        # it, and a dashboard that wants names joins on the target:
        # `syncd_queue_depth * on(instance) group_left(node) syncd_node_info`.
        self.node_info = Info("syncd_node", "This syncd's node name (fleet mode)", registry=r)
        if node is not None:
            self.node_info.info({"node": node})
        # Memory, CPU and open files of the daemon itself (state growth on huge trees).
        ProcessCollector(registry=r)

    def set_file_counts(self, folder: str, counts: Mapping[str, int]) -> None:
        """Set ``files{folder, state}`` from store counts; states absent from ``counts`` are 0."""
        states = self._file_states.setdefault(folder, set())
        states.update(state.value for state in LocalState)
        states.update(counts)
        for state in states:
            self.files.labels(folder=folder, state=state).set(counts.get(state, 0))

    def set_job_counts(
        self, folder: str, counts: Mapping[str, int], states: tuple[str, ...]
    ) -> None:
        """Set ``jobs{folder, state}``; every state is exported, 0 when absent."""
        for state in states:
            self.jobs.labels(folder=folder, state=state).set(counts.get(state, 0))

    def forget_folder(self, folder: str) -> None:
        """Drop a removed folder's ``files`` series so it is no longer exported."""
        for state in self._file_states.pop(folder, set()):
            self.files.remove(folder, state)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (what ``GET /metrics`` returns)."""
        return generate_latest(self.registry)
