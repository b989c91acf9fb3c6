"""The ``files`` resource: upload, list, retrieve, download, delete, signed URL.

Method names and arguments follow the official SDK's ``client.files`` so examples read the same.
Idempotent calls are simply retried. An upload is not idempotent: after a failure that may have
reached the server (an ambiguous transport error or a 5xx after the whole body was sent) the next
attempt first looks for the file on the server (:meth:`Files.find_upload`) and returns it instead
of uploading a second copy.
"""

from __future__ import annotations

import builtins
import functools
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import structlog

from syncd.api.models import DeletedFile, FileInfo, FileList, FileSignedURL, RetrievedFile
from syncd.api.requester import QueryParams, Requester, StreamedResponse
from syncd.api.uploads import (
    CHUNK_BYTES,
    FileInput,
    MultipartBody,
    UploadSource,
    check_upload_allowed,
    open_upload_source,
)
from syncd.errors import ApiTransportError, LocalFileError, ServerError, UsageError

__all__ = ["CLOCK_SKEW_SECONDS", "DEFAULT_SIGNED_URL_HOURS", "Files"]

#: Allowance between our clock and the server's when matching ``created_at`` to an attempt.
CLOCK_SKEW_SECONDS = 2.0
DEFAULT_SIGNED_URL_HOURS = 24
_SIGNED_URL_HOURS = range(1, 169)

_log = structlog.get_logger(__name__)


class Files:
    """Operations on the Files API (``client.files``)."""

    def __init__(self, requester: Requester, *, clock: Callable[[], float] = time.time) -> None:
        self._requester = requester
        self._clock = clock

    def __repr__(self) -> str:
        return f"Files(server_url={self._requester.server_url!r})"

    # -- upload ---------------------------------------------------------------------------------

    def upload(
        self,
        file: FileInput,
        purpose: str | None = None,
        filename: str | None = None,
        *,
        visibility: str | None = "workspace",
        expiry: int | None = None,
        content_type: str | None = None,
    ) -> FileInfo:
        """Upload one file, streamed from its source, and return the server's description.

        ``file`` is a path (str or PathLike), a binary file object, bytes, or
        ``{"file_name", "content", "content_type"?}``. ``filename`` overrides the name the server
        stores. ``purpose=None`` sends no purpose part (the server then treats it as fine-tune).
        ``visibility`` is always sent unless None, as the official SDK does.

        Raises ``UsageError`` before any request for a file over 512 MB or a fine-tune file not
        named ``*.jsonl``, ``LocalFileError`` when the local file cannot be read, and the mapped
        ``ApiError`` when the server refuses or retries run out.
        """
        source = open_upload_source(file, filename=filename, content_type=content_type)
        try:
            return self._upload(source, purpose, visibility=visibility, expiry=expiry)
        finally:
            source.close()

    def _upload(
        self,
        source: UploadSource,
        purpose: str | None,
        *,
        visibility: str | None,
        expiry: int | None,
    ) -> FileInfo:
        check_upload_allowed(source, purpose)
        fields: list[tuple[str, str]] = []
        if expiry is not None:
            fields.append(("expiry", str(int(expiry))))
        if visibility is not None:
            fields.append(("visibility", visibility))
        if purpose is not None:
            fields.append(("purpose", str(purpose)))
        first_started = self._clock()
        may_have_landed = False

        def attempt() -> FileInfo:
            nonlocal may_have_landed
            if may_have_landed:
                found = self._find_upload(
                    source.filename,
                    source.size,
                    first_started - CLOCK_SKEW_SECONDS,
                    (),
                    purpose=purpose,
                    retry=False,
                )
                if found is not None:
                    _log.debug("upload_adopted", file_id=found.id, filename=source.filename)
                    return found
            body = MultipartBody(fields, source)
            request = self._requester.build("POST", "/v1/files", content=body, headers=body.headers)
            try:
                return self._requester.send_json(
                    request, FileInfo, operation="upload", body_sent=lambda: body.fully_sent
                )
            except ApiTransportError as exc:
                if exc.ambiguous:
                    may_have_landed = True
                raise
            except ServerError:
                # A gateway may fail after its backend stored the file: look before re-sending.
                if body.fully_sent:
                    may_have_landed = True
                raise

        # Only the unusual is logged here (retries, adoption); callers log their own outcomes.
        return self._requester.retrying(attempt, operation="upload")

    def find_upload(
        self,
        filename: str,
        size: int,
        created_after: float,
        exclude_ids: Collection[str] = (),
        *,
        purpose: str | None = None,
        page_size: int = 100,
    ) -> FileInfo | None:
        """The file an earlier, unanswered upload may have created, or None.

        Matches the exact ``filename`` and ``size``, ``created_at >= created_after`` (Unix
        seconds; subtract a clock-skew allowance yourself), not in ``exclude_ids``, and
        ``purpose`` when given. Pages through every match of ``search=filename``; when several
        match, the earliest created wins.
        """
        return self._find_upload(
            filename,
            size,
            created_after,
            exclude_ids,
            purpose=purpose,
            page_size=page_size,
            retry=True,
        )

    def _find_upload(
        self,
        filename: str,
        size: int,
        created_after: float,
        exclude_ids: Collection[str],
        *,
        purpose: str | None,
        retry: bool,
        page_size: int = 100,
    ) -> FileInfo | None:
        best: FileInfo | None = None
        pages = self._iter_pages(purpose=purpose, page_size=page_size, search=filename, retry=retry)
        for info in pages:
            if (
                info.filename == filename
                and (info.bytes is None or info.bytes == size)
                and info.created_at >= created_after
                and info.id not in exclude_ids
                and (best is None or (info.created_at, info.id) < (best.created_at, best.id))
            ):
                best = info
        return best

    # -- listing --------------------------------------------------------------------------------

    def list(
        self,
        page: int = 0,
        page_size: int = 100,
        sample_type: str | Sequence[str] | None = None,
        source: str | Sequence[str] | None = None,
        search: str | None = None,
        purpose: str | None = None,
        mimetypes: str | Sequence[str] | None = None,
        include_total: bool = True,
    ) -> FileList:
        """One page of files (``page`` counts from 0). List filters repeat their query key."""
        params = _list_params(
            page, page_size, sample_type, source, search, purpose, mimetypes, include_total
        )
        return self._requester.retrying(lambda: self._list_once(params), operation="list")

    def iter_all(
        self, purpose: str | None = None, page_size: int = 100, search: str | None = None
    ) -> Iterator[FileInfo]:
        """Every file matching the filters, page after page (each page retried on its own)."""
        return self._iter_pages(purpose=purpose, page_size=page_size, search=search, retry=True)

    def _list_once(self, params: QueryParams) -> FileList:
        request = self._requester.build("GET", "/v1/files", params=params)
        return self._requester.send_json(request, FileList, operation="list")

    def _iter_pages(
        self, *, purpose: str | None, page_size: int, search: str | None, retry: bool
    ) -> Iterator[FileInfo]:
        if page_size < 1:
            raise UsageError(f"page_size must be at least 1, got {page_size}")
        seen: set[str] = set()
        page = 0
        while True:
            params = _list_params(page, page_size, None, None, search, purpose, None, True)
            if retry:
                listing = self._requester.retrying(
                    functools.partial(self._list_once, params), operation="list"
                )
            else:
                listing = self._list_once(params)
            fresh = [info for info in listing.data if info.id not in seen]
            seen.update(info.id for info in fresh)
            yield from fresh
            # Stop on a short page, on a page with nothing new (a server ignoring ``page``
            # would otherwise loop forever), or once the announced total is reached.
            if len(listing.data) < page_size or not fresh:
                return
            if listing.total is not None and len(seen) >= listing.total:
                return
            page += 1

    # -- single files ---------------------------------------------------------------------------

    def retrieve(self, file_id: str) -> RetrievedFile:
        """One file's description, with its ``deleted`` flag."""
        path = _file_path(file_id)
        return self._requester.retrying(
            lambda: self._requester.send_json(
                self._requester.build("GET", path), RetrievedFile, operation="retrieve"
            ),
            operation="retrieve",
        )

    def delete(self, file_id: str) -> DeletedFile:
        """Delete one file on the server."""
        path = _file_path(file_id)
        return self._requester.retrying(
            lambda: self._requester.send_json(
                self._requester.build("DELETE", path), DeletedFile, operation="delete"
            ),
            operation="delete",
        )

    def download(self, file_id: str) -> StreamedResponse:
        """The file's content as a streamed ``httpx.Response``: use it in ``with`` (or close it).

        Read it with ``response.iter_bytes()``; transport failures while reading raise
        ``ApiTransportError`` like every other call.
        """
        path = _file_path(file_id) + "/content"
        return self._requester.retrying(
            lambda: self._requester.open_stream(
                self._requester.build("GET", path, accept="application/octet-stream")
            ),
            operation="download",
        )

    def download_to(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream the file's content to ``path`` atomically (a temporary file, then a rename).

        On any failure ``path`` is left as it was. Returns ``path``.
        """
        target = Path(path)
        if target.is_dir():
            raise UsageError(f"{target}: is a directory; give the file path to write")
        url_path = _file_path(file_id) + "/content"

        def attempt() -> Path:
            request = self._requester.build("GET", url_path, accept="application/octet-stream")
            with self._requester.open_stream(request) as response:
                _write_atomically(target, response.iter_bytes(CHUNK_BYTES))
            return target

        return self._requester.retrying(attempt, operation="download")

    def get_signed_url(self, file_id: str, expiry: int = DEFAULT_SIGNED_URL_HOURS) -> FileSignedURL:
        """A URL that fetches the content without the API key, valid ``expiry`` hours (1-168)."""
        _check_signed_url_hours(expiry)
        path = _file_path(file_id) + "/url"

        def attempt() -> FileSignedURL:
            requested_at = self._clock()
            request = self._requester.build("GET", path, params=[("expiry", expiry)])
            signed = self._requester.send_json(request, FileSignedURL, operation="get_signed_url")
            if signed.expires_at is None:
                signed = signed.model_copy(update={"expires_at": int(requested_at + expiry * 3600)})
            return signed

        return self._requester.retrying(attempt, operation="get_signed_url")


def _check_signed_url_hours(expiry: object) -> None:
    # Checked here, before any request: the server's answer to 0 or 169 is not documented.
    if isinstance(expiry, bool) or not isinstance(expiry, int) or expiry not in _SIGNED_URL_HOURS:
        raise UsageError(f"signed URL expiry must be 1 to 168 hours, got {expiry!r}")


def _file_path(file_id: object) -> str:
    if not isinstance(file_id, str) or not file_id.strip():
        raise UsageError(f"file_id must be a non-empty string, got {file_id!r}")
    if "/" in file_id:
        # Servers decode %2F before routing: "<id>/content" would reach another endpoint.
        raise UsageError(f"file_id must not contain '/', got {file_id!r}")
    return f"/v1/files/{quote(file_id, safe='')}"


def _list_params(
    page: int,
    page_size: int,
    sample_type: str | Sequence[str] | None,
    source: str | Sequence[str] | None,
    search: str | None,
    purpose: str | None,
    mimetypes: str | Sequence[str] | None,
    include_total: bool,
) -> builtins.list[tuple[str, str | int]]:
    """Query parameters in the SDK's order; array filters repeat their key, as the SDK sends."""
    params: builtins.list[tuple[str, str | int]] = [
        ("page", page),
        ("page_size", page_size),
        ("include_total", "true" if include_total else "false"),
    ]
    params += [("sample_type", value) for value in _as_list(sample_type)]
    params += [("source", value) for value in _as_list(source)]
    if search is not None:
        params.append(("search", search))
    if purpose is not None:
        params.append(("purpose", str(purpose)))
    params += [("mimetypes", value) for value in _as_list(mimetypes)]
    return params


def _as_list(values: str | Sequence[str] | None) -> builtins.list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    return [str(value) for value in values]


def _write_atomically(target: Path, chunks: Iterator[bytes]) -> None:
    """Write ``chunks`` to a temporary file beside ``target``, fsync it, then rename it over."""
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed, not deleted, on success)
            dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
        )
    except OSError as exc:
        raise LocalFileError(f"{target}: cannot write: {exc.strerror}", path=str(target)) from exc
    tmp = Path(handle.name)
    try:
        with handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LocalFileError(f"{target}: cannot write: {exc.strerror}", path=str(target)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
