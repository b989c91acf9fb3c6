"""Following batch jobs: one job listing per folder per poll interval, none when idle.

A folder with jobs in flight (or, in ``wait`` mode, uploads waiting for someone's job) is
listed every ``poll_interval``; each listing that changes nothing doubles the interval up to
``poll_interval_max``, and any change brings it back. ``submit`` folders list only their own
jobs (the metadata filter on the folder's tag); ``wait`` folders list the jobs created since
their oldest waiting upload and take the first job that reads each uploaded file.

Threads: the results worker's thread. The per-folder schedule is in memory (one entry per
folder); everything about jobs is in the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import structlog

from syncd.api import Mistral
from syncd.api.job_models import BatchJob
from syncd.config import ResultsConfig
from syncd.results.book import JobBook
from syncd.results.specs import ResultsSpec
from syncd.results.starting import FOLDER_METADATA, remote_fields
from syncd.store.records import JobRecord

__all__ = ["Poller"]

log = structlog.get_logger(__name__)

#: Jobs are listed from this long before the oldest one syncd follows (clock skew).
_LOOKBACK = timedelta(minutes=10)
_FIELDS = (
    "remote_status",
    "total_requests",
    "completed_requests",
    "succeeded_requests",
    "failed_requests",
    "state",
)


class Poller:
    """Lists each busy folder's jobs on its schedule and records what moved."""

    def __init__(
        self,
        book: JobBook,
        client: Mistral,
        settings: Callable[[], ResultsConfig],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._client = client
        self._settings = settings
        self._monotonic = monotonic
        #: folder key -> (next listing at, current interval in seconds)
        self._schedule: dict[str, tuple[float, float]] = {}
        self._overdue_reported: set[str] = set()

    def due_in(self, spec: ResultsSpec) -> float | None:
        """Seconds until the folder's next listing; None when it has nothing to follow."""
        entry = self._schedule.get(spec.key)
        return None if entry is None else max(0.0, entry[0] - self._monotonic())

    def poll(self, spec: ResultsSpec) -> bool:
        """List the folder's jobs when due; whether anything moved."""
        if spec.kind != "batch":
            return False
        states = ("running", "pending") if spec.mode == "wait" else ("running",)
        followed = self._book.jobs([spec.key], states)
        settings = self._settings()
        base = settings.poll_interval.total_seconds()
        if not followed:
            self._schedule.pop(spec.key, None)
            return False
        now = self._monotonic()
        next_at, interval = self._schedule.get(spec.key, (now, base))
        if now < next_at:
            return False
        changed = self._list(spec, followed)
        interval = (
            base if changed else min(interval * 2, settings.poll_interval_max.total_seconds())
        )
        self._schedule[spec.key] = (self._monotonic() + interval, interval)
        # As the listing left them: the status in the report is the one just seen.
        self._report_overdue(
            spec, self._book.jobs([spec.key], ("running",)), settings.overdue_after
        )
        return changed

    def _list(self, spec: ResultsSpec, followed: list[JobRecord]) -> bool:
        since = min(job.intent_at or job.created_at for job in followed) - _LOOKBACK
        metadata = {FOLDER_METADATA: spec.tag} if spec.mode == "submit" else None
        remote_jobs = list(self._client.batch.jobs.iter_all(metadata=metadata, created_after=since))
        by_remote_id = {job.remote_job_id: job for job in followed if job.remote_job_id}
        changed = False
        for remote in remote_jobs:
            job = by_remote_id.get(remote.id)
            if job is not None:
                changed |= self._update(spec, job, remote)
        if spec.mode == "wait":
            changed |= self._adopt(
                spec, [job for job in followed if job.state == "pending"], remote_jobs
            )
        return changed

    def _update(self, spec: ResultsSpec, job: JobRecord, remote: BatchJob) -> bool:
        values = remote_fields(remote)
        if all(getattr(job, name) == values.get(name) for name in _FIELDS):
            return False
        self._book.update(job.key, **values)
        if values["state"] == "downloading":
            log.info(
                "job_finished",
                folder=spec.name,
                path=job.rel_path,
                job=remote.id,
                status=str(remote.status),
                succeeded=remote.succeeded_requests,
                failed=remote.failed_requests,
            )
        return True

    def _adopt(
        self, spec: ResultsSpec, waiting: list[JobRecord], remote_jobs: list[BatchJob]
    ) -> bool:
        """Someone created a job on files syncd uploaded: follow the first one for each."""
        if not waiting:
            return False
        by_file = {job.input_file_id: job for job in waiting}
        adopted = False
        for remote in sorted(remote_jobs, key=lambda item: (item.created_at or 0, item.id)):
            for file_id in remote.input_files:
                job = by_file.pop(file_id, None)
                if job is None:
                    continue
                self._book.update(
                    job.key,
                    audit="job_adopted",
                    job=job,
                    file_id=file_id,
                    detail=f"job {remote.id} reads this upload",
                    **remote_fields(remote),
                )
                log.info("job_adopted", folder=spec.name, path=job.rel_path, job=remote.id)
                adopted = True
        return adopted

    def _report_overdue(
        self, spec: ResultsSpec, followed: list[JobRecord], overdue_after: timedelta
    ) -> None:
        now = self._book.clock()
        for job in followed:
            if job.key not in self._overdue_reported and job.is_overdue(now, overdue_after):
                self._overdue_reported.add(job.key)
                assert job.started_at is not None
                log.warning(
                    "job_overdue",
                    folder=spec.name,
                    path=job.rel_path,
                    job=job.remote_job_id,
                    status=job.remote_status,
                    running_for_s=int((now - job.started_at).total_seconds()),
                )
