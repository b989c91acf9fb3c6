"""Running the emulator's batch jobs: QUEUED, then RUNNING with progress, then a final status.

A job's life takes ``job_seconds`` (:attr:`EmulatorOptions.batch_job_seconds`): the first
quarter QUEUED, the rest RUNNING while ``completed_requests`` (and its split into succeeded and
failed) grows with the elapsed time. When the job starts running, every request line of its
input files goes through the stand-in model (:mod:`syncd.emulator.standin_model`) and the
answers are kept in a temporary file; at the end they become the job's output file (answers)
and error file (refused bodies), stored as the real API stores them (``purpose`` batch,
``sample_type`` ``batch_result`` / ``batch_error``, ``source`` mistral), each in a shuffled
order (seeded by the job id), since the real API returns lines in no particular order.

A job may carry a *fate* drawn by the fault injector when it was created: ``job-fail`` ends
FAILED half way with an error, ``job-timeout`` ends TIMEOUT_EXCEEDED half way with the answers
so far in its output file, ``job-stuck`` stays RUNNING half way for ever. A cancelled job ends
CANCELLED at the runner's next step.

Threads: :meth:`BatchRunner.submit` and :meth:`cancel` are called by the request handlers on
the server's event loop thread (they only add or flag a plan, never block on I/O);
:meth:`start` and :meth:`stop` by the thread that starts and stops the server. Everything else
runs in the runner's own daemon thread, the only one that steps a plan. ``_cond`` guards the
plan table and the stop flag only: the runner releases it before it reads input files or
writes to the job book and the file store (each has its own lock), so a request never waits
behind a job's work. The job book's compare-and-set (:meth:`JobBook.advance`) keeps the runner
from overwriting a job that a test moved by hand or a client cancelled meanwhile.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.emulator.jobs import JobBook
from syncd.emulator.params import canonical_id
from syncd.emulator.standin_model import BadRequestBodyError, OcrAnswer, answer
from syncd.emulator.state import FileStore, NewFile

__all__ = ["JOB_FATES", "BatchRunner"]

_log = logging.getLogger(__name__)

#: Fault kinds that decide how a batch job ends (drawn when the job is created).
JOB_FATES = ("job-fail", "job-timeout", "job-stuck")
#: The share of a job's time spent QUEUED.
_QUEUED_SHARE = 0.25
#: Progress counts are updated at most this often (and at least 20 times per job).
_MIN_TICK_SECONDS = 0.05
_FATE_ERRORS = {
    "job-fail": "The batch job failed (injected by the syncd emulator).",
    "job-timeout": "The batch job exceeded its timeout (injected by the syncd emulator).",
}


#: A server stopping while a big job is answered waits for at most this many more lines.
_STOP_CHECK_LINES = 1000


class _StoppingError(Exception):
    """The runner is stopping in the middle of answering a job's requests."""


@dataclass(slots=True)
class _Results:
    """Every request's answer line, in input order, in a temporary file."""

    path: Path
    spans: list[tuple[int, int]]
    ok: list[bool]
    succeeded_before: list[int]  # succeeded_before[n]: answers among the first n

    @property
    def total(self) -> int:
        return len(self.ok)


@dataclass(slots=True)
class _Plan:
    job_id: str
    fate: str | None
    start_at: float  # monotonic: QUEUED -> RUNNING
    done_at: float  # monotonic: RUNNING -> the end
    status: str
    next_at: float = 0.0
    cancel: bool = False
    reported: int = -1
    results: _Results | None = field(default=None)


class BatchRunner:
    """Drives batch jobs through their lives in one daemon thread (see the module doc)."""

    def __init__(
        self,
        book: JobBook,
        store: FileStore,
        ocr: OcrAnswer,
        *,
        job_seconds: float | None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._book = book
        self._store = store
        self._ocr = ocr
        self._job_seconds = job_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._tick = max(_MIN_TICK_SECONDS, (job_seconds or 0.0) / 20)
        self._cond = threading.Condition()
        self._plans: dict[str, _Plan] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def runs_jobs(self) -> bool:
        """False when jobs stay where they are until a test moves them."""
        return self._job_seconds is not None

    def start(self) -> None:
        """Adopt the unfinished jobs of the book (a restart) and start the thread."""
        for job, notes in self._book.unfinished_batch_jobs():
            if job["status"] == "CANCELLATION_REQUESTED":
                self.cancel(job["id"])
            elif self.runs_jobs:
                self._add_plan(job["id"], notes.get("fate"), job["status"])
        self._thread = threading.Thread(target=self._run, name="syncd-emulator-batch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a job half way stays as it is; a restart runs it again)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        for plan in self._plans.values():
            if plan.results is not None:
                plan.results.path.unlink(missing_ok=True)

    def submit(self, job_id: str, fate: str | None) -> None:
        """Run the new QUEUED job ``job_id`` (nothing when jobs are not run)."""
        if self.runs_jobs:
            self._add_plan(job_id, fate, "QUEUED")

    def cancel(self, job_id: str) -> None:
        """Finish the cancellation of ``job_id`` (already CANCELLATION_REQUESTED in the book)."""
        with self._cond:
            plan = self._plans.get(job_id)
            if plan is None:
                now = self._monotonic()
                plan = _Plan(job_id, None, now, now, "CANCELLATION_REQUESTED")
                self._plans[job_id] = plan
            plan.cancel = True
            plan.next_at = 0.0
            self._cond.notify_all()

    def _add_plan(self, job_id: str, fate: str | None, status: str) -> None:
        now = self._monotonic()
        seconds = self._job_seconds or 0.0
        # A job adopted while RUNNING (after a restart) starts its run again, without a queue.
        start_at = now + seconds * _QUEUED_SHARE if status == "QUEUED" else now
        plan = _Plan(job_id, fate, start_at, now + seconds, status, next_at=start_at)
        with self._cond:
            self._plans[job_id] = plan
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = self._monotonic()
                    due = [plan for plan in self._plans.values() if plan.next_at <= now]
                    if due:
                        break
                    waits = [plan.next_at - now for plan in self._plans.values()]
                    self._cond.wait(min(waits) if waits else None)
            for plan in due:
                try:
                    done = self._step(plan, self._monotonic())
                except _StoppingError:
                    return  # the job stays where it was; a restart runs it again
                except Exception:  # noqa: BLE001 (a stand-in bug must not stop every other job)
                    _log.exception("emulator_batch_job_crashed job=%s", plan.job_id)
                    self._book.advance(
                        plan.job_id,
                        plan.status,
                        {
                            "status": "FAILED",
                            "errors": [{"message": "emulator error", "count": 1}],
                            "completed_at": int(self._clock()),
                        },
                    )
                    done = True
                if done:
                    self._drop(plan)

    def _drop(self, plan: _Plan) -> None:
        with self._cond:
            if self._plans.get(plan.job_id) is plan:
                del self._plans[plan.job_id]
        if plan.results is not None:
            plan.results.path.unlink(missing_ok=True)

    def _end_cancellation(self, plan: _Plan) -> bool:
        """CANCELLATION_REQUESTED -> CANCELLED (nothing if the job is elsewhere); True."""
        self._book.advance(
            plan.job_id,
            "CANCELLATION_REQUESTED",
            {"status": "CANCELLED", "completed_at": int(self._clock())},
        )
        return True

    def _moved(
        self, plan: _Plan, expect: str, changes: Mapping[str, Any], *, persist: bool = True
    ) -> bool:
        """Apply ``changes`` if the job is still ``expect``; True when it was moved under the
        runner instead. A cancellation that moved it is ended here: its :meth:`cancel` may
        have flagged this very plan just before the runner drops it."""
        if self._book.advance(plan.job_id, expect, changes, persist=persist):
            return False
        self._end_cancellation(plan)
        return True

    def _step(self, plan: _Plan, now: float) -> bool:
        """Move ``plan`` on to ``now``; True once the runner is done with it."""
        if plan.cancel:
            return self._end_cancellation(plan)
        if plan.status == "QUEUED":
            if now < plan.start_at:
                plan.next_at = plan.start_at
                return False
            job = self._book.get("batch", plan.job_id)
            if job is None:
                return True
            plan.results = self._answer_all(job)
            changes = {
                "status": "RUNNING",
                "started_at": int(self._clock()),
                "total_requests": plan.results.total,
            }
            if self._moved(plan, "QUEUED", changes):
                return True
            plan.status = "RUNNING"
        if plan.results is None:  # adopted while RUNNING
            job = self._book.get("batch", plan.job_id)
            if job is None:
                return True
            plan.results = self._answer_all(job)
        results = plan.results
        span = plan.done_at - plan.start_at
        share = 1.0 if span <= 0 else min(1.0, (now - plan.start_at) / span)
        # A fate stops a job half way (for a stuck job, for ever).
        limit = results.total if plan.fate is None else results.total // 2
        completed = min(limit, math.floor(results.total * share))
        if now >= plan.done_at:
            return self._finish(plan, results, limit)
        if completed != plan.reported:
            if self._moved(plan, "RUNNING", _counts(results, completed), persist=False):
                return True
            plan.reported = completed
        plan.next_at = min(plan.done_at, now + self._tick)
        return False

    def _finish(self, plan: _Plan, results: _Results, completed: int) -> bool:
        changes: dict[str, Any] = _counts(results, completed)
        if plan.fate == "job-stuck":
            self._moved(plan, "RUNNING", changes)
            return True
        if plan.fate != "job-fail":
            output, errors = self._store_results(plan.job_id, results, completed)
            changes["output_file"] = output
            changes["error_file"] = errors
        if plan.fate is None:
            changes["status"] = "SUCCESS"
        else:
            changes["status"] = "FAILED" if plan.fate == "job-fail" else "TIMEOUT_EXCEEDED"
            changes["errors"] = [{"message": _FATE_ERRORS[plan.fate], "count": 1}]
        changes["completed_at"] = int(self._clock())
        self._moved(plan, "RUNNING", changes)
        return True

    def _answer_all(self, job: Mapping[str, Any]) -> _Results:
        """Run every request line of the job's input files through the stand-in."""
        path = self._store.new_upload_path()
        spans: list[tuple[int, int]] = []
        ok: list[bool] = []
        created = int(self._clock())
        job_id = str(job["id"])
        with path.open("wb") as out:
            inline = self._book.notes(job_id).get("requests") or []
            records = itertools.chain(inline, self._requests(job["input_files"]))
            for line_no, record in enumerate(records, start=1):
                if line_no % _STOP_CHECK_LINES == 0 and self._stopping:
                    # Read without the lock: a stale False only costs another batch of lines.
                    out.close()
                    path.unlink(missing_ok=True)
                    raise _StoppingError
                custom_id = record.get("custom_id") if isinstance(record, dict) else None
                try:
                    if isinstance(record, BadRequestBodyError):
                        raise record
                    body = answer(
                        str(job["endpoint"]),
                        job.get("model"),
                        record.get("body") if isinstance(record, dict) else None,
                        created=created,
                        ocr=self._ocr,
                    )
                    response: dict[str, Any] = {"status_code": 200, "body": body}
                    error = None
                except BadRequestBodyError as exc:
                    response = {"status_code": exc.status, "body": {"detail": exc.message}}
                    error = {"message": exc.message, "code": str(exc.status)}
                request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{job_id}/{line_no}")
                line = {
                    "id": f"batch-{job_id[:8]}-{line_no}-{request_id}",
                    "custom_id": custom_id,
                    "response": response,
                    "error": error,
                }
                start = out.tell()
                out.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
                spans.append((start, out.tell()))
                ok.append(error is None)
        return _Results(path, spans, ok, [0, *itertools.accumulate(int(o) for o in ok)])

    def _requests(self, input_files: list[str]) -> Iterator[object]:
        """Each request line's record (or a BadRequestBodyError for an unreadable line)."""
        for raw_id in input_files:
            file_id = canonical_id(raw_id)
            opened = None if file_id is None else self._store.open_content(file_id)
            if opened is None:
                yield BadRequestBodyError(f"input file {raw_id} not found", 404)
                continue
            _, handle = opened
            with handle:
                for raw in handle:
                    if not raw.strip():
                        continue
                    try:
                        yield json.loads(raw)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        yield BadRequestBodyError("line is not valid JSON", 400)

    def _store_results(
        self, job_id: str, results: _Results, completed: int
    ) -> tuple[str | None, str | None]:
        """Store the first ``completed`` answers as output and error files; their ids."""
        # Not for security: the same job always gets the same order.
        rng = random.Random(job_id)  # noqa: S311
        ids: list[str | None] = []
        for wanted, sample_type, suffix in (
            (True, "batch_result", "output"),
            (False, "batch_error", "error"),
        ):
            indices = [n for n in range(completed) if results.ok[n] is wanted]
            if not indices:
                ids.append(None)
                continue
            rng.shuffle(indices)
            path = self._store.new_upload_path()
            size = 0
            with results.path.open("rb") as source, path.open("wb") as out:
                for n in indices:
                    start, end = results.spans[n]
                    source.seek(start)
                    size += out.write(source.read(end - start))
            stored = self._store.add_generated(
                path,
                NewFile(
                    filename=f"{job_id}_{suffix}.jsonl",
                    purpose="batch",
                    bytes=size,
                    sha256=_sha256_of(path),
                    sample_type=sample_type,
                    num_lines=len(indices),
                    mimetype="application/jsonl",
                    visibility="workspace",
                    expiry_hours=None,
                    source="mistral",
                ),
            )
            ids.append(stored.id)
        return ids[0], ids[1]


def _counts(results: _Results, completed: int) -> dict[str, Any]:
    succeeded = results.succeeded_before[completed]
    return {
        "total_requests": results.total,
        "completed_requests": completed,
        "succeeded_requests": succeeded,
        "failed_requests": completed - succeeded,
    }


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
