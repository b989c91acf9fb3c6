"""Finished jobs' results come home: downloaded, landed, recorded; copies join them.

A job the listing saw finish is ``downloading``: its output and error files are written for
every input path it answers, then it is ``done`` (``SUCCESS``) or ``failed`` (``FAILED``,
``TIMEOUT_EXCEEDED``, ``CANCELLED``, with the API's reason and whatever files it left). A path
that joins a finished job later (a copy of the same content) gets the same results.

Threads: the results worker's thread. No lock of its own; claims (fleet mode) in the store.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from syncd.results.book import JobBook
from syncd.results.specs import ResultsSpec
from syncd.results.writing import ResultWriter
from syncd.store import jobs as job_rows
from syncd.store.records import JobRecord

__all__ = ["Fetcher"]

log = structlog.get_logger(__name__)


class Fetcher:
    """Writes results of finished jobs for one folder at a time."""

    def __init__(
        self, book: JobBook, writer: ResultWriter, *, ask_again: Callable[[JobRecord], None]
    ) -> None:
        self._book = book
        self._writer = writer
        #: An OCR job whose written results are gone or edited, for a copy: send it again.
        self._ask_again = ask_again

    def fetch_due(self, spec: ResultsSpec) -> int:
        """Land what finished jobs owe; how many input paths got results."""
        landed = 0
        for job in self._book.jobs([spec.key], ("downloading",)):
            if job.kind == "batch":
                landed += self._download(job, spec)
        landed += self._copies(spec)
        return landed

    def _download(self, job: JobRecord, spec: ResultsSpec) -> int:
        with self._book.claimed(job.key, ("downloading",)) as claimed:
            if claimed is None:
                return 0
            with self._book.session() as s:
                waiting = job_rows.results_of(s, job.key, state="waiting")
            written = self._writer.write_batch(claimed, spec, waiting)
            succeeded = claimed.remote_status == "SUCCESS"
            if not succeeded:
                # Whatever the job left (its error file, a partial output) is written, but
                # these inputs did not get their answers.
                with self._book.session() as s:
                    job_rows.mark_results(
                        s, [r.id for r in waiting], state="failed", now=self._book.clock()
                    )
            self._book.update(
                job.key,
                state="done" if succeeded else "failed",
                finished_at=self._book.clock(),
                result_bytes=claimed.result_bytes + written.bytes,
                audit=None if succeeded else "job_failed",
                job=claimed,
                detail=claimed.reason,
            )
            if not succeeded:
                log.error(
                    "job_failed",
                    folder=spec.name,
                    path=claimed.rel_path,
                    job=claimed.remote_job_id,
                    reason=claimed.reason,
                    error_file=claimed.error_file_id,
                )
            return written.paths

    def _copies(self, spec: ResultsSpec) -> int:
        """Paths that joined a finished job after it finished."""
        with self._book.session() as s:
            finished = job_rows.jobs_with_waiting_results(s, [spec.key], ("done", "failed"))
        landed = 0
        for job in finished:
            with self._book.claimed(job.key, ("done", "failed")) as claimed:
                if claimed is None:
                    continue
                with self._book.session() as s:
                    waiting = job_rows.results_of(s, job.key, state="waiting")
                if not waiting:
                    continue
                if claimed.kind == "batch" and (claimed.output_file_id or claimed.error_file_id):
                    landed += self._writer.write_batch(claimed, spec, waiting).paths
                elif claimed.kind == "ocr" and claimed.state == "done":
                    copied = self._writer.copy_ocr(claimed, spec, waiting)
                    if copied is None:
                        self._ask_again(claimed)
                    else:
                        landed += copied.paths
                else:
                    with self._book.session() as s:
                        job_rows.mark_results(
                            s, [r.id for r in waiting], state="failed", now=self._book.clock()
                        )
        return landed
