"""The emulator's ASGI application: the six Files endpoints, the job endpoints of
:mod:`syncd.emulator.jobs` (run by :mod:`syncd.emulator.batch_runner`), ``/v1/ocr``
(:mod:`syncd.emulator.ocr`), and its own control endpoints.

Routes turn HTTP into calls on :class:`~syncd.emulator.state.FileStore` and back into the wire
shapes of the reference (file objects, ``{data, object, total}``, FastAPI-style 422 bodies).
Auth, latency and faults are the :class:`~syncd.emulator.gateway.Gateway`'s job, not this one's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from syncd.emulator.batch_runner import BatchRunner
from syncd.emulator.blobs import BlobResponse
from syncd.emulator.faults import FaultInjector, fault_settings_with
from syncd.emulator.gateway import Gateway
from syncd.emulator.jobs import JOBS_FILE_NAME, JobBook, JobsApi
from syncd.emulator.ocr import OcrApi, OcrService
from syncd.emulator.options import EmulatorOptions
from syncd.emulator.params import (
    InvalidInputError,
    bool_param,
    canonical_id,
    enum_param,
    int_param,
    not_found,
    unprocessable,
)
from syncd.emulator.signing import SIGNED_PATH, UrlSigner
from syncd.emulator.state import FileStore, ListQuery, NewFile, StoredFile
from syncd.emulator.stats import EmulatorStats
from syncd.emulator.uploads import (
    INLINE_BYTES,
    MalformedUploadError,
    UploadTooLargeError,
    receive_upload,
)
from syncd.emulator.validation import (
    ContentRejectedError,
    check_mimetype,
    guess_mimetype,
    inspect_content,
)

__all__ = ["SIGNED_PATH", "JobParts", "create_app", "make_job_parts"]

_DEFAULT_PURPOSE = "fine-tune"  # what the real API falls back to when no purpose is sent
_VISIBILITIES = ("workspace", "user")
_SIGNED_URL_DEFAULT_HOURS = 24
_SIGNED_URL_MAX_HOURS = 168
# Bodies read and thrown away before an early error answer (see Gateway._send_fault_status).
_DRAIN_SLACK = 16 * 1024 * 1024


class _FilesApi:
    """Route handlers, bound to one store and one set of options."""

    def __init__(
        self,
        store: FileStore,
        options: EmulatorOptions,
        faults: FaultInjector,
        stats: EmulatorStats,
        signer: UrlSigner,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._options = options
        self._faults = faults
        self._stats = stats
        self._signer = signer
        self._clock = clock

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self.upload, methods=["POST"]),
            Route("/v1/files", self.list_files, methods=["GET"]),
            Route("/v1/files/{file_id}", self.retrieve, methods=["GET"]),
            Route("/v1/files/{file_id}", self.delete, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", self.download, methods=["GET"]),
            Route("/v1/files/{file_id}/url", self.signed_url, methods=["GET"]),
            Route(SIGNED_PATH + "/{file_id}", self.signed_download, methods=["GET"]),
            Route("/_emulator/stats", self.show_stats, methods=["GET"]),
            Route("/_emulator/faults", self.show_faults, methods=["GET"]),
            Route("/_emulator/faults", self.change_faults, methods=["POST"]),
        ]

    async def upload(self, request: Request) -> Response:
        dest = self._store.new_upload_path()
        response: Response | None = None
        try:
            response = await self._upload_to(request, dest)
            return response
        finally:
            # Committed uploads were moved away; anything still here is a failed attempt.
            # (A success skips the check: one thread hop less per upload.)
            if response is None or response.status_code != 200:
                await anyio.to_thread.run_sync(lambda: dest.unlink(missing_ok=True))

    async def _upload_to(self, request: Request, dest: Path) -> Response:
        try:
            received = await receive_upload(
                request.stream(),
                request.headers.get("content-type"),
                dest,
                self._options.max_upload_bytes,
                declared_bytes=_content_length(request),
            )
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        except UploadTooLargeError as exc:
            self._stats.count_rejected_upload()
            return JSONResponse(
                {
                    "detail": "Request Entity Too Large: files are limited to"
                    f" {exc.limit} bytes; split the file."
                },
                status_code=413,
                # The body may have been abandoned part-way; its rest must not be read as
                # the next request, so this connection ends with the answer.
                headers={"connection": "close"},
            )
        except MalformedUploadError as exc:
            self._stats.count_rejected_upload()
            return unprocessable(
                {"type": exc.kind, "loc": ["body", exc.field], "msg": exc.message, "input": None}
            )
        try:
            form = _read_form(received.fields, self._options.purposes)
        except _InvalidFormError as exc:
            self._stats.count_rejected_upload()
            return unprocessable(*exc.items)
        purpose, visibility, expiry = form.purpose, form.visibility, form.expiry
        mimetype = guess_mimetype(received.filename, received.declared_type)

        def inspect_and_commit() -> tuple[StoredFile, bool]:
            # One worker-thread hop for both: each hop costs about as much CPU as a small
            # upload's content check itself.
            check_mimetype(purpose, mimetype)
            report = inspect_content(received.path, received.filename, purpose)
            new = NewFile(
                filename=received.filename,
                purpose=purpose,
                bytes=received.size,
                sha256=received.sha256,
                sample_type=report.sample_type,
                num_lines=report.num_lines,
                mimetype=mimetype,
                visibility=visibility,
                expiry_hours=expiry,
            )
            return self._store.commit(received.path, new, dedupe=self._options.dedupe)

        try:
            if received.size <= INLINE_BYTES:
                stored, deduped = inspect_and_commit()  # see INLINE_BYTES
            else:
                stored, deduped = await anyio.to_thread.run_sync(inspect_and_commit)
        except ContentRejectedError as exc:
            self._stats.count_rejected_upload()
            return JSONResponse(exc.body, status_code=422)
        self._stats.count_upload(received.size, deduped=deduped)
        return JSONResponse(stored.to_wire())

    async def list_files(self, request: Request) -> Response:
        params = request.query_params
        errors: list[dict[str, Any]] = []
        # Like FastAPI, every bad parameter is reported at once, in the spec's order.
        page = _checked(errors, int_param, params.get("page"), ["query", "page"], 0, 0, 2**31)
        page_size = _checked(
            errors, int_param, params.get("page_size"), ["query", "page_size"], 100, 1, 2**31
        )
        include_total = _checked(
            errors, bool_param, params.get("include_total"), ["query", "include_total"], True
        )
        # Checked even when empty: FastAPI drops only empty *form* values.
        raw_purpose = params.get("purpose")
        purpose = (
            None
            if raw_purpose is None
            else _checked(
                errors, enum_param, raw_purpose, ["query", "purpose"], self._options.purposes
            )
        )
        if errors or page is None or page_size is None or include_total is None:
            return unprocessable(*errors)
        query = ListQuery(
            page=page,
            page_size=page_size,
            include_total=include_total,
            sample_types=params.getlist("sample_type"),
            sources=params.getlist("source"),
            mimetypes=params.getlist("mimetypes"),
            search=params.get("search") or None,
            purpose=purpose,
        )
        files, total = await anyio.to_thread.run_sync(self._store.list, query)
        return JSONResponse(
            {"data": [f.to_wire() for f in files], "object": "list", "total": total}
        )

    async def retrieve(self, request: Request) -> Response:
        file_id = canonical_id(request.path_params["file_id"])
        stored = None if file_id is None else self._store.get(file_id)
        if stored is None:
            return not_found(request.path_params["file_id"])
        return JSONResponse({**stored.to_wire(), "deleted": False})

    async def delete(self, request: Request) -> Response:
        file_id = canonical_id(request.path_params["file_id"])
        if file_id is None or not await anyio.to_thread.run_sync(self._store.delete, file_id):
            return not_found(request.path_params["file_id"])
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def download(self, request: Request) -> Response:
        file_id = canonical_id(request.path_params["file_id"])
        return await self._content_response(request.path_params["file_id"], file_id)

    async def _content_response(self, raw_id: str, file_id: str | None) -> Response:
        opened = None
        if file_id is not None:
            opened = await anyio.to_thread.run_sync(self._store.open_content, file_id)
        if opened is None:
            return not_found(raw_id)
        stored, handle = opened
        return BlobResponse(handle, stored.bytes, stored.filename)

    async def signed_url(self, request: Request) -> Response:
        raw_id = request.path_params["file_id"]
        try:
            hours = int_param(
                request.query_params.get("expiry"),
                ["query", "expiry"],
                _SIGNED_URL_DEFAULT_HOURS,
                1,
                _SIGNED_URL_MAX_HOURS,
            )
        except InvalidInputError as exc:
            return unprocessable(exc.item)
        file_id = canonical_id(raw_id)
        if file_id is None or self._store.get(file_id) is None:
            return not_found(raw_id)
        expires_at = int(self._clock()) + hours * 3600
        signature = self._signer.sign(file_id, expires_at)
        base = str(request.base_url).rstrip("/")
        url = f"{base}{SIGNED_PATH}/{file_id}?exp={expires_at}&sig={signature}"
        return JSONResponse({"url": url, "expires_at": expires_at})

    async def signed_download(self, request: Request) -> Response:
        raw_id = request.path_params["file_id"]
        file_id = canonical_id(raw_id)
        try:
            expires_at = int(request.query_params.get("exp", ""))
        except ValueError:
            expires_at = 0
        signature = request.query_params.get("sig", "")
        if file_id is None or not self._signer.is_valid(
            file_id, expires_at, signature, self._clock()
        ):
            return JSONResponse({"detail": "Signature invalid or expired."}, status_code=403)
        return await self._content_response(raw_id, file_id)

    async def show_stats(self, request: Request) -> Response:
        return JSONResponse(self._stats.snapshot(self._store.count()))

    async def show_faults(self, request: Request) -> Response:
        return JSONResponse(dataclasses.asdict(self._faults.settings))

    async def change_faults(self, request: Request) -> Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise TypeError("expected a JSON object")
            settings = fault_settings_with(self._faults.settings, changes)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"detail": f"invalid fault settings: {exc}"}, status_code=422)
        self._faults.configure(settings)
        return JSONResponse(dataclasses.asdict(settings))


_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class _UploadForm:
    purpose: str
    visibility: str
    expiry: int | None


class _InvalidFormError(Exception):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__(items)
        self.items = items


def _content_length(request: Request) -> int | None:
    """The body's declared length, or None when it is absent or not a plain number."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _read_form(fields: dict[str, str], purposes: tuple[str, ...]) -> _UploadForm:
    """The upload's text fields, checked as FastAPI checks a form.

    An empty value counts as absent, and an absent purpose means fine-tune (what the real API
    falls back to). Other purposes outside ``purposes`` are refused: the API's enum is closed.

    Raises:
        _InvalidFormError: every bad field at once, in the spec's field order.
    """
    errors: list[dict[str, Any]] = []
    raw_expiry = fields.get("expiry", "").strip()
    expiry = (
        _checked(errors, int_param, raw_expiry, ["body", "expiry"], 0, 1, 24 * 365 * 100)
        if raw_expiry
        else None
    )
    raw_visibility = fields.get("visibility", "").strip() or "workspace"
    visibility = _checked(errors, enum_param, raw_visibility, ["body", "visibility"], _VISIBILITIES)
    raw_purpose = fields.get("purpose") or _DEFAULT_PURPOSE
    purpose = _checked(errors, enum_param, raw_purpose, ["body", "purpose"], purposes)
    if errors or purpose is None or visibility is None:
        raise _InvalidFormError(errors)
    return _UploadForm(purpose, visibility, expiry)


def _checked(
    errors: list[dict[str, Any]], read: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T | None:
    """``read(*args)``; None instead when it fails, with its FastAPI error item added to
    ``errors``."""
    try:
        return read(*args, **kwargs)
    except InvalidInputError as exc:
        errors.append(exc.item)
        return None


async def _json_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


@dataclasses.dataclass(frozen=True, slots=True)
class JobParts:
    """The job side of one emulator: the job book, the OCR stand-in and the batch runner."""

    book: JobBook
    ocr: OcrService
    runner: BatchRunner


def make_job_parts(
    store: FileStore, options: EmulatorOptions, signer: UrlSigner, clock: Callable[[], float]
) -> JobParts:
    """The job parts over ``store``; the caller starts and stops ``runner``."""
    book = JobBook(store.data_dir / JOBS_FILE_NAME, clock)
    ocr = OcrService(store, signer, clock)
    runner = BatchRunner(
        book, store, ocr.answer_in_batch, job_seconds=options.batch_job_seconds, clock=clock
    )
    return JobParts(book, ocr, runner)


def create_app(
    store: FileStore,
    options: EmulatorOptions,
    *,
    faults: FaultInjector,
    stats: EmulatorStats,
    signer: UrlSigner,
    clock: Callable[[], float] = time.time,
    jobs: JobParts | None = None,
) -> ASGIApp:
    """The complete emulator app (gateway + routes) over ``store``.

    Without ``jobs`` the app makes its own and starts their batch runner, which then runs for
    the life of the process (a daemon thread); :class:`EmulatorServer` passes its own and
    stops the runner with the server.
    """
    if jobs is None:
        jobs = make_job_parts(store, options, signer, clock)
        jobs.runner.start()
    api = _FilesApi(store, options, faults, stats, signer, clock)
    jobs_api = JobsApi(jobs.book, store, jobs.runner, stats)
    routes_app = Starlette(
        routes=[*api.routes(), *jobs_api.routes(), *OcrApi(jobs.ocr).routes()],
        exception_handlers={HTTPException: _json_http_error},
    )
    return Gateway(
        routes_app,
        api_key=options.api_key,
        faults=faults,
        stats=stats,
        max_drain_bytes=options.max_upload_bytes + _DRAIN_SLACK,
    )
