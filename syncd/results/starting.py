"""Starting work that costs money: batch job creates (``submit`` folders) and OCR requests,
under the folder's spending guard, each exactly once.

A create is preceded by its intent in the state store (``creating``, ``intent_at``) and tags
the job with the job's key in its ``metadata``. A job found ``creating`` (the answer was lost,
or the daemon was killed before it recorded the answer) is looked for through the listing's
metadata filter before anything is created again. An OCR request is answered in its reply: a
request found ``creating`` lost its answer, which is counted (``answers_lost``) and logged
before the document is sent again.

Threads: the results worker's thread. No lock of its own; claims (fleet mode) in the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from syncd.api import Mistral
from syncd.api.job_models import BATCH_FINISHED_STATUSES, BatchJob
from syncd.errors import ApiError, ApiStatusError, ApiTransportError, UsageError
from syncd.results.book import JobBook
from syncd.results.specs import ResultsSpec
from syncd.results.writing import ResultWriter
from syncd.retry import is_retryable
from syncd.store import jobs as job_rows
from syncd.store.records import JobRecord

__all__ = ["JOB_KEY_METADATA", "Starter", "remote_fields"]

log = structlog.get_logger(__name__)

JOB_KEY_METADATA = "syncd_key"
FOLDER_METADATA = "syncd_folder"
_WINDOW = timedelta(hours=1)
#: A create whose answer was lost is looked for this far before its intent (clock skew).
_LOOKBACK = timedelta(minutes=10)
#: A job left ``creating`` is created again only once its intent is this old: a server whose
#: listing lags behind its creates gets this long to show it.
_RECREATE_AFTER = timedelta(seconds=5)
#: After a create or OCR request that failed without an answer, the job waits this long before
#: its next try, doubling up to :data:`_RETRY_MAX` (seconds).
_RETRY_FIRST = 2.0
_RETRY_MAX = 300.0


def _may_have_landed(exc: Exception) -> bool:
    """Whether the server may have acted on a request that failed with ``exc``: only when the
    request went out whole and no answer came back (an error status is an answer: the create
    or request did not happen)."""
    return isinstance(exc, ApiTransportError) and exc.ambiguous


def _worth_retrying(exc: Exception) -> bool:
    return isinstance(exc, ApiError) and (is_retryable(exc) or not isinstance(exc, ApiStatusError))


def remote_fields(remote: BatchJob) -> dict[str, Any]:
    """The job row's columns as the API describes the job."""
    finished = remote.status in BATCH_FINISHED_STATUSES
    errors = "; ".join(
        f"{error.message} (x{error.count})" if error.count > 1 else error.message
        for error in remote.errors
    )
    values: dict[str, Any] = {
        "remote_job_id": remote.id,
        "remote_status": str(remote.status),
        "total_requests": remote.total_requests,
        "completed_requests": remote.completed_requests,
        "succeeded_requests": remote.succeeded_requests,
        "failed_requests": remote.failed_requests,
        "output_file_id": remote.output_file,
        "error_file_id": remote.error_file,
        "state": "downloading" if finished else "running",
    }
    if remote.created_at is not None:
        values["remote_created_at"] = datetime.fromtimestamp(remote.created_at, UTC)
    if finished and remote.status != "SUCCESS":
        values["reason"] = f"{remote.status}: {errors}" if errors else str(remote.status)
    return values


class Starter:
    """Creates batch jobs and sends OCR requests for one folder at a time."""

    def __init__(
        self,
        book: JobBook,
        client: Mistral,
        writer: ResultWriter,
        *,
        on_answer_lost: Callable[[str], None],
    ) -> None:
        self._book = book
        self._client = client
        self._writer = writer
        self._on_answer_lost = on_answer_lost
        #: job key -> (monotonic time of its next try, current delay): jobs whose last try
        #: failed without an answer. Bounded by the failing jobs; gone once one succeeds.
        self._retry_at: dict[str, tuple[float, float]] = {}

    def start_due(self, spec: ResultsSpec) -> int:
        """Start what the folder's guard allows; how many jobs (or requests) were sent."""
        if spec.mode == "wait":
            return 0
        jobs = self._book.jobs([spec.key], ("held", "pending", "creating"))
        if not jobs:
            return 0
        now = self._book.clock()
        with self._book.session() as s:
            used = job_rows.count_intents_since(s, spec.key, now - _WINDOW)
        sent = 0
        for job in jobs:
            retry = self._retry_at.get(job.key)
            if retry is not None and time.monotonic() < retry[0]:
                continue
            if job.state != "creating":
                if used >= spec.max_per_hour:
                    self._hold(job, spec)
                    continue
                used += 1
            if spec.mode == "ocr":
                sent += self._ocr(job, spec)
            else:
                sent += self._submit(job, spec)
        return sent

    def _hold(self, job: JobRecord, spec: ResultsSpec) -> None:
        reason = (
            f"spending guard: {spec.max_per_hour} new jobs in the last hour from this folder "
            "(max_jobs_per_hour); it starts when the hour allows more"
        )
        if job.state == "held" and job.reason == reason:
            return
        self._book.update(job.key, state="held", reason=reason, audit="job_held", job=job)
        log.warning("job_held", folder=spec.name, path=job.rel_path, reason=reason)

    # -- batch ------------------------------------------------------------------------------

    def _submit(self, job: JobRecord, spec: ResultsSpec) -> int:
        with self._book.claimed(job.key, ("held", "pending", "creating")) as claimed:
            if claimed is None:
                return 0
            if claimed.state == "creating":
                found = self._find_created(claimed)
                if found is not None:
                    self._book.update(
                        job.key,
                        audit="job_adopted",
                        job=claimed,
                        detail=f"job {found.id} found again by its metadata key (answer lost)",
                        **remote_fields(found),
                    )
                    log.warning("job_found_again", folder=spec.name, job=found.id, key=job.key)
                    return 0
                assert claimed.intent_at is not None
                if self._book.clock() - claimed.intent_at < _RECREATE_AFTER:
                    return 0
            assert spec.endpoint is not None
            self._record_intent(claimed)
            try:
                created = self._client.batch.jobs.create(
                    input_files=[claimed.input_file_id],
                    endpoint=spec.endpoint,
                    model=spec.model,
                    metadata={
                        JOB_KEY_METADATA: job.key,
                        FOLDER_METADATA: spec.tag,
                        "syncd_path": claimed.rel_path[-512:],
                    },
                )
            except (ApiError, UsageError) as exc:
                self._create_failed(claimed, spec, exc)
                return 1
            self._retry_at.pop(job.key, None)
            self._book.update(
                job.key,
                audit="job_created",
                job=claimed,
                file_id=claimed.input_file_id,
                detail=f"job {created.id}",
                **{"reason": None, **remote_fields(created)},
            )
            log.info(
                "job_created", folder=spec.name, path=claimed.rel_path, job=created.id, key=job.key
            )
            return 1

    def _record_intent(self, job: JobRecord, *, answers_lost: int | None = None) -> None:
        """Before a create (or OCR request) is sent: ``creating``, committed. The first
        intent's time stays (the guard's clock, and where a lookup starts)."""
        self._book.update(
            job.key,
            state="creating",
            intent_at=job.intent_at or self._book.clock(),
            requests_sent=job.requests_sent + 1,
            answers_lost=job.answers_lost if answers_lost is None else answers_lost,
            reason=None,
        )

    def _find_created(self, job: JobRecord) -> BatchJob | None:
        since = (job.intent_at or job.created_at) - _LOOKBACK
        for remote in self._client.batch.jobs.iter_all(
            metadata={JOB_KEY_METADATA: job.key}, created_after=since
        ):
            # Checked here too: a server that ignored the filter lists every job.
            if (remote.metadata or {}).get(JOB_KEY_METADATA) == job.key:
                return remote
        return None

    def _create_failed(self, job: JobRecord, spec: ResultsSpec, exc: Exception) -> None:
        if isinstance(exc, ApiError) and (is_retryable(exc) or not isinstance(exc, ApiStatusError)):
            # Perhaps created, perhaps not: it stays ``creating`` and is looked for first.
            self._book.update(job.key, reason=f"create unanswered: {exc}")
            log.warning(
                "job_create_unanswered", folder=spec.name, path=job.rel_path, error=str(exc)
            )
            return
        self._fail(job, spec, f"refused: {exc}")

    def _fail(self, job: JobRecord, spec: ResultsSpec, reason: str) -> None:
        now = self._book.clock()
        with self._book.session() as s:
            waiting = [r.id for r in job_rows.results_of(s, job.key, state="waiting")]
            job_rows.mark_results(s, waiting, state="failed", now=now)
        self._book.update(
            job.key,
            state="failed",
            reason=reason,
            finished_at=now,
            audit="job_failed",
            job=job,
            detail=reason,
        )
        log.error("job_failed", folder=spec.name, path=job.rel_path, reason=reason)

    # -- OCR --------------------------------------------------------------------------------

    def _ocr(self, job: JobRecord, spec: ResultsSpec) -> int:
        with self._book.claimed(job.key, ("held", "pending", "creating")) as claimed:
            if claimed is None:
                return 0
            lost = claimed.answers_lost
            if claimed.state == "creating":
                lost += 1
                self._on_answer_lost(spec.name)
                log.warning(
                    "ocr_answer_lost",
                    folder=spec.name,
                    path=claimed.rel_path,
                    requests_sent=claimed.requests_sent,
                    detail="the request may have been processed; it is sent again",
                )
            self._record_intent(claimed, answers_lost=lost)
            assert spec.model is not None
            try:
                answer = self._client.ocr.process(spec.model, file_id=claimed.input_file_id)
            except (ApiError, UsageError) as exc:
                if isinstance(exc, ApiError) and (
                    is_retryable(exc) or not isinstance(exc, ApiStatusError)
                ):
                    self._book.update(job.key, reason=f"OCR unanswered: {exc}")
                    log.warning(
                        "ocr_unanswered", folder=spec.name, path=claimed.rel_path, error=str(exc)
                    )
                else:
                    self._fail(claimed, spec, f"refused: {exc}")
                return 1
            # Still ``creating`` until the results are written: a crash before that loses this
            # answer, and the next start counts it and asks again.
            with self._book.session() as s:
                waiting = job_rows.results_of(s, job.key, state="waiting")
            written = self._writer.write_ocr(claimed, spec, waiting, answer)
            self._book.update(
                job.key,
                state="done",
                finished_at=self._book.clock(),
                result_bytes=claimed.result_bytes + written.bytes,
                # Progress in pages, for the status surfaces: all of them read.
                total_requests=len(answer.pages),
                completed_requests=len(answer.pages),
                audit="ocr_processed",
                job=claimed,
                file_id=claimed.input_file_id,
                nbytes=written.bytes,
                detail=f"{len(answer.pages)} pages",
            )
            return 1
