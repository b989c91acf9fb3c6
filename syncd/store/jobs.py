"""Jobs whose results come home: which uploaded content each job answers, where it stands,
and what syncd wrote in the results folders.

Every function takes a Session (one transaction) and returns frozen records. A job is keyed by
(folder, kind, content): two paths with the same bytes share one job, a changed file gets a new
one, and the old job's rows stay (the lineage). Claims (fleet mode) are a compare-and-set on
``claimed_by``/``claimed_until``: exactly one node's update matches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, exists, func, or_, select, update
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.store.job_reads import JOB_STATES, TERMINAL_STATES
from syncd.store.records import JobRecord, JobResultRecord
from syncd.store.schema import Job, JobResult, LocalFile, ResultFile

__all__ = [
    "JOB_STATES",
    "TERMINAL_STATES",
    "JobLineage",
    "UploadedInput",
    "WrittenFile",
    "add_job_result",
    "claim_job",
    "count_intents_since",
    "ensure_job",
    "forget_result_file",
    "get_job",
    "job_key",
    "job_lineage",
    "jobs_with_state",
    "jobs_with_waiting_results",
    "mark_results",
    "new_uploaded_inputs",
    "record_result_file",
    "release_job",
    "result_file",
    "results_of",
    "update_job",
    "written_files",
]


_JOB_FIELDS = tuple(JobRecord.__dataclass_fields__)
_RESULT_FIELDS = tuple(JobResultRecord.__dataclass_fields__)


def job_key(folder: str, kind: str, sha256: str) -> str:
    """The job's identity: one per folder, kind and content (32 hex digits, fits metadata)."""
    return hashlib.sha256(f"{folder}\n{kind}\n{sha256}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class UploadedInput:
    """An uploaded file of a results folder that no job answers yet."""

    folder: str
    rel_path: str
    sha256: str
    file_id: str
    uploaded_at: datetime


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """What syncd last wrote at one path of a results folder."""

    folder: str
    path: str
    sha256: str
    size: int
    job_key: str
    input_rel_path: str
    written_at: datetime


def _job(row: Job) -> JobRecord:
    return JobRecord(**{name: getattr(row, name) for name in _JOB_FIELDS})


def _result(row: JobResult) -> JobResultRecord:
    return JobResultRecord(**{name: getattr(row, name) for name in _RESULT_FIELDS})


def new_uploaded_inputs(
    s: Session, folders: Collection[str], *, limit: int = 500
) -> list[UploadedInput]:
    """Uploaded files of ``folders`` whose (path, content) no job answers yet, oldest first."""
    if not folders:
        return []
    answered = exists().where(
        JobResult.folder == LocalFile.folder,
        JobResult.rel_path == LocalFile.rel_path,
        JobResult.sha256 == LocalFile.sha256,
    )
    query = (
        select(
            LocalFile.folder,
            LocalFile.rel_path,
            LocalFile.sha256,
            LocalFile.remote_file_id,
            LocalFile.state_changed_at,
        )
        .where(
            LocalFile.folder.in_(list(folders)),
            LocalFile.state == LocalState.UPLOADED,
            LocalFile.remote_file_id.is_not(None),
            LocalFile.sha256.is_not(None),
            ~answered,
        )
        .order_by(LocalFile.state_changed_at, LocalFile.id)
        .limit(limit)
    )
    return [
        UploadedInput(folder, rel_path, sha256 or "", file_id or "", at)
        for folder, rel_path, sha256, file_id, at in s.execute(query)
    ]


def get_job(s: Session, key: str) -> JobRecord | None:
    row = s.get(Job, key, populate_existing=True)
    return None if row is None else _job(row)


def ensure_job(
    s: Session,
    *,
    key: str,
    folder: str,
    kind: str,
    mode: str,
    sha256: str,
    input_file_id: str,
    rel_path: str,
    model: str | None,
    now: datetime,
) -> tuple[JobRecord, bool]:
    """The job for this content, created ``pending`` when there is none; (job, created)."""
    existing = s.get(Job, key, populate_existing=True)
    if existing is not None:
        return _job(existing), False
    row = Job(
        key=key,
        folder=folder,
        kind=kind,
        mode=mode,
        sha256=sha256,
        input_file_id=input_file_id,
        rel_path=rel_path,
        state="pending",
        model=model,
        requests_sent=0,
        answers_lost=0,
        created_at=now,
        updated_at=now,
        result_bytes=0,
    )
    s.add(row)
    s.flush()
    return _job(row), True


def add_job_result(
    s: Session, *, folder: str, rel_path: str, sha256: str, job_key: str, now: datetime
) -> None:
    """Record that ``job_key`` answers this path's content (waiting until it is written)."""
    s.add(
        JobResult(
            folder=folder,
            rel_path=rel_path,
            sha256=sha256,
            job_key=job_key,
            state="waiting",
            created_at=now,
            beside=False,
        )
    )
    s.flush()


def update_job(s: Session, key: str, *, now: datetime, **values: Any) -> None:
    s.execute(
        update(Job)
        .where(Job.key == key)
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )


def claim_job(
    s: Session,
    key: str,
    *,
    node: str,
    now: datetime,
    lease: timedelta,
    states: Collection[str],
) -> JobRecord | None:
    """Take the job for ``lease`` if it is in one of ``states`` and no live claim holds it
    (another node's, or a claim of this node's that outlived its lease); None otherwise."""
    result = s.execute(
        update(Job)
        .where(
            Job.key == key,
            Job.state.in_(list(states)),
            or_(
                Job.claimed_by.is_(None),
                Job.claimed_by == node,
                Job.claimed_until < now,
            ),
        )
        .values(claimed_by=node, claimed_until=now + lease, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        return None
    return get_job(s, key)


def release_job(s: Session, key: str, *, node: str) -> None:
    s.execute(
        update(Job)
        .where(Job.key == key, Job.claimed_by == node)
        .values(claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


def jobs_with_state(
    s: Session, folders: Collection[str], states: Collection[str]
) -> list[JobRecord]:
    """Jobs of ``folders`` in any of ``states``, oldest first."""
    if not folders:
        return []
    query = (
        select(Job)
        .where(Job.folder.in_(list(folders)), Job.state.in_(list(states)))
        .order_by(Job.created_at, Job.key)
    )
    return [_job(row) for row in s.scalars(query)]


def jobs_with_waiting_results(
    s: Session, folders: Collection[str], states: Collection[str]
) -> list[JobRecord]:
    """Jobs in ``states`` that some input path still waits on (a copy joined them late)."""
    if not folders:
        return []
    waiting = exists().where(JobResult.job_key == Job.key, JobResult.state == "waiting")
    query = select(Job).where(Job.folder.in_(list(folders)), Job.state.in_(list(states)), waiting)
    return [_job(row) for row in s.scalars(query.order_by(Job.created_at, Job.key))]


def count_intents_since(s: Session, folder: str, since: datetime) -> int:
    """Jobs (or OCR documents) of ``folder`` first sent at or after ``since``."""
    query = select(func.count()).where(Job.folder == folder, Job.intent_at >= since)
    return s.scalar(query) or 0


def results_of(s: Session, key: str, *, state: str | None = None) -> list[JobResultRecord]:
    query = select(JobResult).where(JobResult.job_key == key)
    if state is not None:
        query = query.where(JobResult.state == state)
    return [_result(row) for row in s.scalars(query.order_by(JobResult.id))]


def mark_results(
    s: Session, ids: Collection[int], *, state: str, now: datetime, beside: bool = False
) -> None:
    if not ids:
        return
    s.execute(
        update(JobResult)
        .where(JobResult.id.in_(list(ids)))
        .values(state=state, written_at=now, beside=beside)
        .execution_options(synchronize_session=False)
    )


def _written(row: ResultFile) -> WrittenFile:
    return WrittenFile(
        row.folder, row.path, row.sha256, row.size, row.job_key, row.input_rel_path, row.written_at
    )


def result_file(s: Session, folder: str, path: str) -> WrittenFile | None:
    row = s.get(ResultFile, (folder, path), populate_existing=True)
    return None if row is None else _written(row)


def record_result_file(s: Session, written: WrittenFile) -> None:
    """Remember what syncd wrote at ``written.path`` (replacing what it wrote there before)."""
    row = s.get(ResultFile, (written.folder, written.path))
    if row is None:
        s.add(
            ResultFile(
                folder=written.folder,
                path=written.path,
                sha256=written.sha256,
                size=written.size,
                job_key=written.job_key,
                input_rel_path=written.input_rel_path,
                written_at=written.written_at,
            )
        )
    else:
        row.sha256 = written.sha256
        row.size = written.size
        row.job_key = written.job_key
        row.input_rel_path = written.input_rel_path
        row.written_at = written.written_at
    s.flush()


def forget_result_file(s: Session, folder: str, path: str) -> None:
    row = s.get(ResultFile, (folder, path))
    if row is not None:
        s.delete(row)
        s.flush()


def written_files(s: Session, job_key: str) -> list[WrittenFile]:
    query = select(ResultFile).where(ResultFile.job_key == job_key).order_by(ResultFile.path)
    return [
        WrittenFile(r.folder, r.path, r.sha256, r.size, r.job_key, r.input_rel_path, r.written_at)
        for r in s.scalars(query)
    ]


@dataclass(frozen=True, slots=True)
class JobLineage:
    """Where one job's results came from and went: for ``syncd manifest``."""

    job_id: str | None
    output_file_id: str | None
    results: dict[str, list[str]]
    """input path -> result paths written for it (relative to the results folder)."""


def job_lineage(s: Session) -> dict[str, JobLineage]:
    """job key -> its lineage (one entry per job; far fewer than the uploads)."""
    found: dict[str, JobLineage] = {}
    for key, job_id, output in s.execute(select(Job.key, Job.remote_job_id, Job.output_file_id)):
        found[key] = JobLineage(job_id, output, {})
    query = select(ResultFile.job_key, ResultFile.input_rel_path, ResultFile.path)
    for key, input_path, path in s.execute(query.order_by(ResultFile.path)):
        if key in found:
            found[key].results.setdefault(input_path, []).append(path)
    return found
