"""Fine-tuning and batch jobs in the emulator: create, list, get and cancel them.

Enough of ``/v1/fine_tuning/jobs`` and ``/v1/batch/jobs`` for syncd's retention to ask which
files queued or running jobs still read, for results to come home, and for the official SDK.
Fine-tuning jobs never run: each stays ``QUEUED`` until ``POST /_emulator/jobs/{id}/status``
moves it. Batch jobs are run by :mod:`syncd.emulator.batch_runner` (told of each create and
cancel through :class:`JobRunner`) unless the emulator runs without one
(``batch_job_seconds=None``) or a test moved the job by hand with that same control endpoint,
which is how tests play a job's life. Jobs live in memory and in ``<data_dir>/jobs.json``
(rewritten atomically on each change), so a restarted emulator keeps them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio.to_thread
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.faults import JOB_FATE_EXTENSION
from syncd.emulator.params import (
    InvalidInputError,
    bool_param,
    canonical_id,
    enum_param,
    int_param,
    json_object_body,
    unprocessable,
)
from syncd.emulator.state import FileStore
from syncd.emulator.stats import EmulatorStats
from syncd.validation.batch import BATCH_ENDPOINTS

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
#: BatchJobIn's limits: metadata keys and values, and inline requests.
_METADATA_KEY_MAX = 32
_METADATA_VALUE_MAX = 512
_MAX_INLINE_REQUESTS = 10_000
_ORDERS = ("created", "-created")
#: The query parameters GET /v1/batch/jobs defines; any other one is a metadata key.
_BATCH_LIST_PARAMS = frozenset(
    {
        "page",
        "page_size",
        "model",
        "agent_id",
        "metadata",
        "created_after",
        "created_by_me",
        "status",
        "order_by",
    }
)


class JobBook:
    """Every job the emulator knows, newest last; thread-safe, persisted to one JSON file.

    Beside each job's wire object the book keeps the emulator's own notes on it (never sent):
    the fault drawn for a batch job (``fate``) and whether a test moved it by hand (``manual``),
    so a restarted emulator runs the same jobs the same way.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[JobKind, dict[str, Any]]] = {}
        self._notes: dict[str, dict[str, Any]] = {}
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            for item in saved.get("jobs", []):
                self._jobs[item["job"]["id"]] = (item["kind"], item["job"])
                self._notes[item["job"]["id"]] = item.get("notes", {})

    def add(
        self, kind: JobKind, job: Mapping[str, Any], notes: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Store a new job (the caller built its wire object); returns it with id and times."""
        now = int(self._clock())
        stored = {**job, "id": str(uuid.uuid4()), "created_at": now}
        if kind == "fine_tuning":
            stored["modified_at"] = now
        with self._lock:
            self._jobs[stored["id"]] = (kind, stored)
            self._notes[stored["id"]] = dict(notes or {})
            self._save()
        return dict(stored)

    def get(self, kind: JobKind, job_id: str) -> dict[str, Any] | None:
        """The job ``job_id`` of this kind, or None."""
        with self._lock:
            found = self._jobs.get(job_id)
        return dict(found[1]) if found is not None and found[0] == kind else None

    def notes(self, job_id: str) -> dict[str, Any]:
        """The emulator's notes on ``job_id`` (empty for an unknown job)."""
        with self._lock:
            return dict(self._notes.get(job_id, {}))

    def page(
        self,
        kind: JobKind,
        *,
        page: int,
        page_size: int,
        statuses: frozenset[str] = frozenset(),
        model: str | None = None,
        created_after: int | None = None,
        metadata: Mapping[str, str] | None = None,
        newest_first: bool = True,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of this kind's jobs, newest first, and how many match in all.

        ``metadata`` keeps the jobs whose metadata has every one of those keys with that value
        (a non-string value compares by its JSON text: ``1`` matches ``"1"``).
        """
        with self._lock:
            jobs = [dict(job) for k, job in self._jobs.values() if k == kind]
        matching = [
            job
            for job in (reversed(jobs) if newest_first else jobs)
            if (not statuses or job["status"] in statuses)
            and (model is None or job.get("model") == model)
            and (created_after is None or job["created_at"] >= created_after)
            and (not metadata or _metadata_matches(job.get("metadata"), metadata))
        ]
        start = page * page_size
        return matching[start : start + page_size], len(matching)

    def set_status(self, job_id: str, status: str) -> dict[str, Any] | None:
        """Move a job of either kind to ``status`` by hand; None when there is no such job.

        A batch job moved by hand is no longer run by the batch runner: the test plays its life.

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
            self._notes.setdefault(job_id, {})["manual"] = True
            self._save()
            return dict(job)

    def advance(
        self, job_id: str, expect: str, changes: Mapping[str, Any], *, persist: bool = True
    ) -> bool:
        """Apply ``changes`` to a batch job still in status ``expect`` and not moved by hand.

        The runner's compare-and-set: False (nothing changed) when a test or a cancellation
        moved the job meanwhile, so the runner never overwrites them. ``persist=False`` keeps
        the change in memory only (progress counts: a restarted job runs again from the start
        anyway, and rewriting jobs.json on every tick of every job would be most of the work).
        """
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None or found[1]["status"] != expect:
                return False
            if self._notes.get(job_id, {}).get("manual"):
                return False
            found[1].update(changes)
            if persist:
                self._save()
            return True

    def request_cancel(self, job_id: str) -> dict[str, Any] | None:
        """Ask a queued or running batch job to stop; a finished job is returned unchanged."""
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None or found[0] != "batch":
                return None
            job = found[1]
            if job["status"] in ("QUEUED", "RUNNING"):
                job["status"] = "CANCELLATION_REQUESTED"
                self._save()
            return dict(job)

    def unfinished_batch_jobs(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(job, notes) of every batch job the runner should drive, oldest first."""
        with self._lock:
            return [
                (dict(job), dict(self._notes.get(job_id, {})))
                for job_id, (kind, job) in self._jobs.items()
                if kind == "batch"
                and job["status"] not in _BATCH_FINISHED
                and not self._notes.get(job_id, {}).get("manual")
            ]

    def _save(self) -> None:
        # Called with the lock held. A temporary file and a rename: a crash never leaves half.
        document = {
            "jobs": [
                {"kind": kind, "job": job, "notes": self._notes.get(job_id, {})}
                for job_id, (kind, job) in self._jobs.items()
            ]
        }
        tmp = self._path.with_name(f".{self._path.name}.tmp")
        tmp.write_text(json.dumps(document), encoding="utf-8")
        tmp.replace(self._path)


def _metadata_matches(metadata: object, wanted: Mapping[str, str]) -> bool:
    if not isinstance(metadata, dict):
        return False
    for key, value in wanted.items():
        if key not in metadata:
            return False
        have = metadata[key]
        if (have if isinstance(have, str) else json.dumps(have)) != value:
            return False
    return True


class JobRunner(Protocol):
    """What the job endpoints tell whoever runs batch jobs (:mod:`syncd.emulator.batch_runner`)."""

    def submit(self, job_id: str, fate: str | None) -> None: ...

    def cancel(self, job_id: str) -> None: ...


class JobsApi:
    """Route handlers for the job endpoints, over one :class:`JobBook` and the file store.

    ``runner`` is told of each new batch job (with the fate the gateway drew for the request,
    if any) and of each cancellation.
    """

    def __init__(
        self, book: JobBook, files: FileStore, runner: JobRunner, stats: EmulatorStats
    ) -> None:
        self._book = book
        self._files = files
        self._runner = runner
        self._stats = stats

    def routes(self) -> list[Route]:
        return [
            Route("/v1/fine_tuning/jobs", self.create_fine_tuning, methods=["POST"]),
            Route("/v1/fine_tuning/jobs", self.list_fine_tuning, methods=["GET"]),
            Route("/v1/fine_tuning/jobs/{job_id}", self.get_fine_tuning, methods=["GET"]),
            Route("/v1/batch/jobs", self.create_batch, methods=["POST"]),
            Route("/v1/batch/jobs", self.list_batch, methods=["GET"]),
            Route("/v1/batch/jobs/{job_id}", self.get_batch, methods=["GET"]),
            Route("/v1/batch/jobs/{job_id}/cancel", self.cancel_batch, methods=["POST"]),
            Route("/_emulator/jobs/{job_id}/status", self.change_status, methods=["POST"]),
        ]

    # -- fine-tuning ----------------------------------------------------------------------------

    async def create_fine_tuning(self, request: Request) -> Response:
        try:
            body = await json_object_body(request)
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
            body = await json_object_body(request)
            endpoint = _required_str(body, "endpoint")
            if endpoint not in BATCH_ENDPOINTS:
                raise InvalidInputError(
                    "enum",
                    ["body", "endpoint"],
                    f"Input should be {', '.join(repr(e) for e in BATCH_ENDPOINTS)}",
                    endpoint,
                )
            inline = _inline_requests(body.get("requests"))
            inputs = _file_ids(body.get("input_files"), "input_files", required=inline is None)
            metadata = _metadata(body.get("metadata"))
            for key in ("model", "agent_id"):
                if body.get(key) is not None and not isinstance(body[key], str):
                    raise InvalidInputError(
                        "string_type", ["body", key], "Input should be a valid string", body[key]
                    )
            timeout = body.get("timeout_hours", 24)
            if not isinstance(timeout, int) or isinstance(timeout, bool):
                raise InvalidInputError(
                    "int_type",
                    ["body", "timeout_hours"],
                    "Input should be a valid integer",
                    timeout,
                )
            self._check_files_exist(inputs)
        except InvalidInputError as exc:
            return unprocessable(exc.item)
        job = {
            "object": "batch",
            "input_files": inputs,
            "endpoint": endpoint,
            "model": body.get("model"),
            "agent_id": body.get("agent_id"),
            "metadata": metadata,
            "errors": [],
            "status": "QUEUED",
            "total_requests": sum(self._line_count(file_id) for file_id in inputs)
            + len(inline or ()),
            "completed_requests": 0,
            "succeeded_requests": 0,
            "failed_requests": 0,
            "output_file": None,
            "error_file": None,
            "outputs": None,
            "started_at": None,
            "completed_at": None,
        }
        fate = request.scope.get("extensions", {}).get(JOB_FATE_EXTENSION)
        if fate is not None:
            self._stats.count_fault(fate)
        notes: dict[str, Any] = {"fate": fate} if fate is not None else {}
        if inline is not None:
            # Inline requests are the job's own: kept in its notes, run before any input file.
            notes["requests"] = inline
        created = await anyio.to_thread.run_sync(self._book.add, "batch", job, notes)
        self._runner.submit(created["id"], fate)
        return JSONResponse(created)

    async def cancel_batch(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = await anyio.to_thread.run_sync(self._book.request_cancel, job_id)
        if job is None:
            return _job_not_found(job_id)
        if job["status"] == "CANCELLATION_REQUESTED":
            self._runner.cancel(job_id)
        return JSONResponse(job)

    async def list_batch(self, request: Request) -> Response:
        return await self._list(request, "batch")

    async def get_batch(self, request: Request) -> Response:
        job = self._book.get("batch", request.path_params["job_id"])
        if job is None:
            return _job_not_found(request.path_params["job_id"])
        try:
            inline = bool_param(request.query_params.get("inline"), ["query", "inline"], False)
        except InvalidInputError as exc:
            return unprocessable(exc.item)
        if inline and job.get("output_file"):
            # ?inline=true: the results in the answer itself (``outputs``), one object a line.
            job["outputs"] = await anyio.to_thread.run_sync(self._read_lines, job["output_file"])
        return JSONResponse(job)

    def _read_lines(self, file_id: str) -> list[Any] | None:
        opened = self._files.open_content(file_id)
        if opened is None:
            return None
        _, handle = opened
        with handle:
            return [json.loads(line) for line in handle if line.strip()]

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
            newest_first = (
                enum_param(params["order_by"], ["query", "order_by"], _ORDERS) == "-created"
                if kind == "batch" and "order_by" in params
                else True
            )
            metadata = _metadata_filter(params) if kind == "batch" else None
        except InvalidInputError as exc:
            return unprocessable(exc.item)
        jobs, total = self._book.page(
            kind,
            page=page,
            page_size=page_size,
            statuses=frozenset(params.getlist("status")),
            model=params.get("model") or None,
            created_after=created_after,
            metadata=metadata,
            newest_first=newest_first,
        )
        return JSONResponse({"data": jobs, "object": "list", "total": total})

    async def change_status(self, request: Request) -> Response:
        """Test control: ``{"status": "RUNNING"}`` moves a job of either kind."""
        try:
            body = await json_object_body(request)
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


def _required_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInputError("missing", ["body", key], "Field required", value)
    return value


def _inline_requests(value: object) -> list[dict[str, Any]] | None:
    """BatchJobIn ``requests``: up to 10,000 ``{"custom_id"?, "body": {...}}``, or None."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInputError(
            "list_type", ["body", "requests"], "Input should be a valid list", value
        )
    if len(value) > _MAX_INLINE_REQUESTS:
        raise InvalidInputError(
            "too_long",
            ["body", "requests"],
            f"List should have at most {_MAX_INLINE_REQUESTS} items after validation",
            None,
        )
    for index, item in enumerate(value):
        loc = ["body", "requests", str(index)]
        if not isinstance(item, dict):
            raise InvalidInputError("model_type", loc, "Input should be an object", item)
        if not isinstance(item.get("body"), dict):
            raise InvalidInputError("missing", [*loc, "body"], "Field required", item.get("body"))
        custom_id = item.get("custom_id")
        if custom_id is not None and not isinstance(custom_id, str):
            raise InvalidInputError(
                "string_type", [*loc, "custom_id"], "Input should be a valid string", custom_id
            )
    return [{"custom_id": item.get("custom_id"), "body": item["body"]} for item in value]


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


def _metadata(value: object) -> dict[str, str] | None:
    """A job's ``metadata`` as BatchJobIn allows it: keys of 1-32 and values of 1-512 chars."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInputError(
            "dict_type", ["body", "metadata"], "Input should be a valid dictionary", value
        )
    for key, item in value.items():
        if not 1 <= len(key) <= _METADATA_KEY_MAX:
            raise InvalidInputError(
                "string_too_long" if key else "string_too_short",
                ["body", "metadata", key],
                f"Keys should have 1 to {_METADATA_KEY_MAX} characters",
                key,
            )
        if not isinstance(item, str):
            raise InvalidInputError(
                "string_type", ["body", "metadata", key], "Input should be a valid string", item
            )
        if not 1 <= len(item) <= _METADATA_VALUE_MAX:
            raise InvalidInputError(
                "string_too_long" if item else "string_too_short",
                ["body", "metadata", key],
                f"Values should have 1 to {_METADATA_VALUE_MAX} characters",
                item,
            )
    return dict(value)


def _metadata_filter(params: QueryParams) -> dict[str, str]:
    """The metadata filter of a batch job listing.

    The spec declares ``metadata`` an object query parameter with OpenAPI's default style
    (form, exploded), so each metadata key travels as a query parameter of its own:
    ``?syncd_key=abc&team=eu``, which is what the official SDK sends for
    ``metadata={"syncd_key": "abc", "team": "eu"}``. Every parameter the listing does not
    itself define is therefore a metadata filter. A ``metadata`` parameter holding a JSON
    object (``?metadata={"syncd_key":"abc"}``) is read too, for clients that send it so.
    """
    wanted = {key: value for key, value in params.items() if key not in _BATCH_LIST_PARAMS}
    raw = params.get("metadata")
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidInputError(
                "dict_type", ["query", "metadata"], "Input should be a valid dictionary", raw
            )
        wanted.update(
            {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}
        )
    return wanted


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
