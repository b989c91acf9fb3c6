"""Fine-tuning and batch jobs in the emulator: create, list and get them, with their statuses.

Enough of ``/v1/fine_tuning/jobs`` and ``/v1/batch/jobs`` for syncd's retention to ask which
files queued or running jobs still read, and for the official SDK to list them. Jobs never run:
each keeps the status it was created with (``QUEUED``) until ``POST /_emulator/jobs/{id}/status``
moves it, which is how tests play a job's life. Jobs live in memory and in
``<data_dir>/jobs.json`` (rewritten atomically on each change), so a restarted emulator keeps them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.params import (
    InvalidInputError,
    bool_param,
    canonical_id,
    int_param,
    unprocessable,
)
from syncd.emulator.state import FileStore

__all__ = [
    "BATCH_STATUSES",
    "FINE_TUNING_STATUSES",
    "JOBS_FILE_NAME",
    "JobBook",
    "JobsApi",
]

JobKind = Literal["fine_tuning", "batch"]

JOBS_FILE_NAME = "jobs.json"
FINE_TUNING_STATUSES = (
    "QUEUED",
    "STARTED",
    "VALIDATING",
    "VALIDATED",
    "RUNNING",
    "FAILED_VALIDATION",
    "FAILED",
    "SUCCESS",
    "CANCELLED",
    "CANCELLATION_REQUESTED",
)
BATCH_STATUSES = (
    "QUEUED",
    "RUNNING",
    "SUCCESS",
    "FAILED",
    "TIMEOUT_EXCEEDED",
    "CANCELLATION_REQUESTED",
    "CANCELLED",
)
_STATUSES: dict[JobKind, tuple[str, ...]] = {
    "fine_tuning": FINE_TUNING_STATUSES,
    "batch": BATCH_STATUSES,
}
_BATCH_FINISHED = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})
_MAX_PAGE_SIZE = 1000


class JobBook:
    """Every job the emulator knows, newest last; thread-safe, persisted to one JSON file."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[JobKind, dict[str, Any]]] = {}
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            for item in saved.get("jobs", []):
                self._jobs[item["job"]["id"]] = (item["kind"], item["job"])

    def add(self, kind: JobKind, job: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new job (the caller built its wire object); returns it with id and times."""
        now = int(self._clock())
        stored = {**job, "id": str(uuid.uuid4()), "created_at": now}
        if kind == "fine_tuning":
            stored["modified_at"] = now
        with self._lock:
            self._jobs[stored["id"]] = (kind, stored)
            self._save()
        return dict(stored)

    def get(self, kind: JobKind, job_id: str) -> dict[str, Any] | None:
        """The job ``job_id`` of this kind, or None."""
        with self._lock:
            found = self._jobs.get(job_id)
        return dict(found[1]) if found is not None and found[0] == kind else None

    def page(
        self,
        kind: JobKind,
        *,
        page: int,
        page_size: int,
        statuses: frozenset[str] = frozenset(),
        model: str | None = None,
        created_after: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of this kind's jobs, newest first, and how many match in all."""
        with self._lock:
            jobs = [job for k, job in self._jobs.values() if k == kind]
        matching = [
            job
            for job in reversed(jobs)
            if (not statuses or job["status"] in statuses)
            and (model is None or job.get("model") == model)
            and (created_after is None or job["created_at"] >= created_after)
        ]
        start = page * page_size
        return [dict(job) for job in matching[start : start + page_size]], len(matching)

    def set_status(self, job_id: str, status: str) -> dict[str, Any] | None:
        """Move a job of either kind to ``status``; None when there is no such job.

        Raises:
            ValueError: ``status`` is not one of that kind's statuses.
        """
        now = int(self._clock())
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None:
                return None
            kind, job = found
            if status not in _STATUSES[kind]:
                raise ValueError(f"unknown {kind} job status {status!r}")
            job["status"] = status
            if kind == "fine_tuning":
                job["modified_at"] = now
            elif status == "RUNNING":
                job["started_at"] = job.get("started_at") or now
            elif status in _BATCH_FINISHED:
                job["completed_at"] = now
            self._save()
            return dict(job)

    def _save(self) -> None:
        # Called with the lock held. A temporary file and a rename: a crash never leaves half.
        document = {"jobs": [{"kind": kind, "job": job} for kind, job in self._jobs.values()]}
        tmp = self._path.with_name(f".{self._path.name}.tmp")
        tmp.write_text(json.dumps(document), encoding="utf-8")
        tmp.replace(self._path)


class JobsApi:
    """Route handlers for the job endpoints, over one :class:`JobBook` and the file store."""

    def __init__(self, book: JobBook, files: FileStore) -> None:
        self._book = book
        self._files = files

    def routes(self) -> list[Route]:
        return [
            Route("/v1/fine_tuning/jobs", self.create_fine_tuning, methods=["POST"]),
            Route("/v1/fine_tuning/jobs", self.list_fine_tuning, methods=["GET"]),
            Route("/v1/fine_tuning/jobs/{job_id}", self.get_fine_tuning, methods=["GET"]),
            Route("/v1/batch/jobs", self.create_batch, methods=["POST"]),
            Route("/v1/batch/jobs", self.list_batch, methods=["GET"]),
            Route("/v1/batch/jobs/{job_id}", self.get_batch, methods=["GET"]),
            Route("/_emulator/jobs/{job_id}/status", self.change_status, methods=["POST"]),
        ]

    # -- fine-tuning ----------------------------------------------------------------------------

    async def create_fine_tuning(self, request: Request) -> Response:
        try:
            body = await _json_object(request)
            model = _required_str(body, "model")
            training = _file_ids(body.get("training_files"), "training_files", required=True)
            validation = _file_ids(body.get("validation_files"), "validation_files")
            self._check_files_exist([*training, *validation])
        except InvalidInputError as exc:
            return unprocessable(exc.item)
        job = {
            "object": "job",
            "job_type": "completion",
            "auto_start": bool(body.get("auto_start", False)),
            "model": model,
            "status": "QUEUED",
            "training_files": training,
            "validation_files": validation,
            "hyperparameters": body.get("hyperparameters") or {},
            "suffix": body.get("suffix"),
            "fine_tuned_model": None,
            "integrations": [],
            "trained_tokens": None,
            "metadata": None,
            "repositories": [],
        }
        created = await anyio.to_thread.run_sync(self._book.add, "fine_tuning", job)
        return JSONResponse(created)

    async def list_fine_tuning(self, request: Request) -> Response:
        return await self._list(request, "fine_tuning")

    async def get_fine_tuning(self, request: Request) -> Response:
        job = self._book.get("fine_tuning", request.path_params["job_id"])
        if job is None:
            return _job_not_found(request.path_params["job_id"])
        # The detailed job object adds its history; the emulator's jobs have none.
        return JSONResponse({**job, "events": [], "checkpoints": []})

    # -- batch ----------------------------------------------------------------------------------

    async def create_batch(self, request: Request) -> Response:
        try:
            body = await _json_object(request)
            endpoint = _required_str(body, "endpoint")
            inputs = _file_ids(body.get("input_files"), "input_files", required=True)
            self._check_files_exist(inputs)
        except InvalidInputError as exc:
            return unprocessable(exc.item)
        job = {
            "object": "batch",
            "input_files": inputs,
            "endpoint": endpoint,
            "model": body.get("model"),
            "agent_id": body.get("agent_id"),
            "metadata": body.get("metadata"),
            "errors": [],
            "status": "QUEUED",
            "total_requests": sum(self._line_count(file_id) for file_id in inputs),
            "completed_requests": 0,
            "succeeded_requests": 0,
            "failed_requests": 0,
            "output_file": None,
            "error_file": None,
            "outputs": None,
            "started_at": None,
            "completed_at": None,
        }
        created = await anyio.to_thread.run_sync(self._book.add, "batch", job)
        return JSONResponse(created)

    async def list_batch(self, request: Request) -> Response:
        return await self._list(request, "batch")

    async def get_batch(self, request: Request) -> Response:
        job = self._book.get("batch", request.path_params["job_id"])
        if job is None:
            return _job_not_found(request.path_params["job_id"])
        return JSONResponse(job)

    # -- shared ---------------------------------------------------------------------------------

    async def _list(self, request: Request, kind: JobKind) -> Response:
        params = request.query_params
        try:
            page = int_param(params.get("page"), ["query", "page"], 0, 0, 2**31)
            page_size = int_param(
                params.get("page_size"), ["query", "page_size"], 100, 1, _MAX_PAGE_SIZE
            )
            bool_param(params.get("created_by_me"), ["query", "created_by_me"], False)
            created_after = _timestamp_param(params.get("created_after"))
        except InvalidInputError as exc:
            return unprocessable(exc.item)
        jobs, total = self._book.page(
            kind,
            page=page,
            page_size=page_size,
            statuses=frozenset(params.getlist("status")),
            model=params.get("model") or None,
            created_after=created_after,
        )
        return JSONResponse({"data": jobs, "object": "list", "total": total})

    async def change_status(self, request: Request) -> Response:
        """Test control: ``{"status": "RUNNING"}`` moves a job of either kind."""
        try:
            body = await _json_object(request)
            status = _required_str(body, "status")
            job = await anyio.to_thread.run_sync(
                self._book.set_status, request.path_params["job_id"], status
            )
        except InvalidInputError as exc:
            return unprocessable(exc.item)
        except ValueError as exc:
            return unprocessable(
                {"type": "enum", "loc": ["body", "status"], "msg": str(exc), "input": status}
            )
        if job is None:
            return _job_not_found(request.path_params["job_id"])
        return JSONResponse(job)

    def _check_files_exist(self, file_ids: list[str]) -> None:
        for file_id in file_ids:
            canonical = canonical_id(file_id)
            if canonical is None or self._files.get(canonical) is None:
                raise InvalidInputError(
                    "file_not_found", ["body", "files"], f"File {file_id} not found.", file_id
                )

    def _line_count(self, file_id: str) -> int:
        canonical = canonical_id(file_id)
        stored = None if canonical is None else self._files.get(canonical)
        return (stored.num_lines or 0) if stored is not None else 0


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInputError("json_invalid", ["body"], "JSON decode error", None) from None
    if not isinstance(body, dict):
        raise InvalidInputError("model_type", ["body"], "Input should be an object", body)
    return body


def _required_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInputError("missing", ["body", key], "Field required", value)
    return value


def _file_ids(value: object, key: str, *, required: bool = False) -> list[str]:
    """Ids from ``["id"]`` or ``[{"file_id": "id", "weight": 1}]`` (fine-tuning sends those)."""
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise InvalidInputError("missing", ["body", key], "Field required", value)
    ids: list[str] = []
    for item in value:
        file_id = item.get("file_id") if isinstance(item, dict) else item
        if not isinstance(file_id, str):
            raise InvalidInputError("string_type", ["body", key], "Expected a file id", item)
        ids.append(file_id)
    return ids


def _timestamp_param(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInputError(
            "datetime_parsing", ["query", "created_after"], "Input should be a datetime", raw
        ) from None
    # A time without a zone is read as UTC, never as the emulator host's local time.
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _job_not_found(job_id: str) -> JSONResponse:
    return JSONResponse({"detail": f"Job {job_id} not found."}, status_code=404)
