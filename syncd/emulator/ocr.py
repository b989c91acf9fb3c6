"""``POST /v1/ocr`` in the emulator, answered by a stand-in that reads documents it holds.

The request is checked as the real (FastAPI) service checks an ``OCRRequest``: unknown fields,
a missing ``model`` or ``document``, or a malformed document are 422s with FastAPI error items;
a ``file`` document naming no live file is a 404. A document can be

* ``{"type": "file", "file_id": ...}``: an uploaded file;
* ``{"type": "document_url", "document_url": ...}`` or ``{"type": "image_url", "image_url": ...}``
  where the URL is one of the emulator's own signed URLs (``GET /v1/files/{id}/url``; the
  signature and expiry are checked, the host is not, since one emulator answers on many names)
  or a ``data:`` URL. The emulator never fetches anything from the network, so any other URL is
  a 422 that says so.

What the stand-in reads (see :mod:`syncd.emulator.pdf_text`): a PDF gives one page per page with
its text layer as the page's Markdown, and its size at 200 dpi; a page without a text layer, and
any other binary document, gets a deterministic Markdown line derived from the bytes' SHA-256
instead of recognised text. PNG and JPEG images are one page with their pixel size; UTF-8 text is
one page of that text. ``images`` is always empty; with ``include_blocks`` each paragraph is one
``text`` block.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.params import InvalidInputError, canonical_id, json_object_body
from syncd.emulator.pdf_text import read_pdf_pages
from syncd.emulator.signing import SIGNED_PATH, UrlSigner
from syncd.emulator.standin_model import BadRequestBodyError
from syncd.emulator.state import FileStore

__all__ = ["OcrApi", "OcrRequestError", "OcrService"]

_DPI = 200
_DEFAULT_MODEL = "mistral-ocr-latest"
_DEFAULT_PIXELS = (1700, 2200)  # a letter page at 200 dpi, what the real API reports for one
#: OCRRequest's fields: additionalProperties is false, so any other is refused.
_REQUEST_FIELDS = frozenset(
    {
        "model",
        "id",
        "document",
        "pages",
        "include_image_base64",
        "image_limit",
        "image_min_size",
        "bbox_annotation_format",
        "document_annotation_format",
        "document_annotation_prompt",
        "table_format",
        "extract_header",
        "extract_footer",
        "include_blocks",
        "confidence_scores_granularity",
    }
)
_BOOLEAN_FIELDS = ("include_image_base64", "extract_header", "extract_footer", "include_blocks")
_DOCUMENT_FIELDS = {
    "file": frozenset({"type", "file_id"}),
    "document_url": frozenset({"type", "document_url", "document_name"}),
    "image_url": frozenset({"type", "image_url"}),
}
_PAGE_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


class OcrRequestError(Exception):
    """The request cannot be answered; ``status`` and ``body`` are the API's answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("detail")))
        self.status = status
        self.body = body

    @classmethod
    def invalid(cls, kind: str, loc: list[str | int], msg: str, value: object) -> OcrRequestError:
        return cls(422, {"detail": [{"type": kind, "loc": loc, "msg": msg, "input": value}]})

    @property
    def message(self) -> str:
        """One line for an error line of a batch job."""
        detail = self.body.get("detail")
        if isinstance(detail, list) and detail:
            item = detail[0]
            where = ".".join(str(part) for part in item.get("loc", []))
            return f"{where}: {item.get('msg')}"
        return str(detail)


@dataclass(frozen=True, slots=True)
class _Document:
    content: bytes
    name: str


class OcrService:
    """Checks OCR requests, finds their document and builds the stand-in's answer.

    Stateless apart from the store it reads: safe to call from any thread, and called both by
    the route (in a worker thread) and by the batch runner's thread for ``/v1/ocr`` jobs.
    """

    def __init__(self, store: FileStore, signer: UrlSigner, clock: Callable[[], float]) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock

    def answer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The OCRResponse for the request ``body``.

        Raises:
            OcrRequestError: a 422 for a bad body, a 404 for an unknown file.
        """
        unknown = sorted(set(body) - _REQUEST_FIELDS)
        if unknown:
            raise OcrRequestError.invalid(
                "extra_forbidden", ["body", unknown[0]], "Extra inputs are not permitted", None
            )
        if "model" not in body:
            raise OcrRequestError.invalid("missing", ["body", "model"], "Field required", None)
        model = body["model"]
        if model is not None and not isinstance(model, str):
            raise OcrRequestError.invalid(
                "string_type", ["body", "model"], "Input should be a valid string", model
            )
        for field in _BOOLEAN_FIELDS:
            value = body.get(field)
            if value is not None and not isinstance(value, bool):
                raise OcrRequestError.invalid(
                    "bool_type", ["body", field], "Input should be a valid boolean", value
                )
        document = self._document(body.get("document"))
        pages = _ocr_pages(document)
        wanted = _page_selection(body.get("pages"), len(pages))
        selected = [page for page in pages if wanted is None or page["index"] in wanted]
        if body.get("include_blocks"):
            for page in selected:
                page["blocks"] = _blocks(page)
        return {
            "pages": selected,
            "model": model or _DEFAULT_MODEL,
            "document_annotation": None,
            "usage_info": {
                "pages_processed": len(selected),
                "doc_size_bytes": len(document.content),
            },
        }

    def answer_in_batch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`answer` for one line of a ``/v1/ocr`` batch job: a refusal is an error line.

        Raises:
            BadRequestBodyError: the request cannot be answered (its status and message).
        """
        try:
            return self.answer(body)
        except OcrRequestError as exc:
            raise BadRequestBodyError(exc.message, exc.status) from None

    def _document(self, document: object) -> _Document:
        if document is None:
            raise OcrRequestError.invalid("missing", ["body", "document"], "Field required", None)
        if not isinstance(document, dict):
            raise OcrRequestError.invalid(
                "model_attributes_type",
                ["body", "document"],
                "Input should be a valid dictionary or object to extract fields from",
                document,
            )
        kind = document.get("type") or next(
            (k for k in ("file_id", "document_url", "image_url") if k in document), "file"
        )
        kind = "file" if kind == "file_id" else kind
        allowed = _DOCUMENT_FIELDS.get(kind) if isinstance(kind, str) else None
        if allowed is None:
            raise OcrRequestError.invalid(
                "literal_error",
                ["body", "document", "type"],
                "Input should be 'file', 'document_url' or 'image_url'",
                kind,
            )
        loc: list[str | int] = ["body", "document", kind]
        extra = sorted(set(document) - allowed)
        if extra:
            raise OcrRequestError.invalid(
                "extra_forbidden", [*loc, extra[0]], "Extra inputs are not permitted", None
            )
        if kind == "file":
            return self._uploaded(document.get("file_id"), [*loc, "file_id"])
        url = document.get(kind)
        if kind == "image_url" and isinstance(url, dict):
            url = url.get("url")
            loc = [*loc, "url"]
        else:
            loc = [*loc, kind]
        if not isinstance(url, str):
            raise OcrRequestError.invalid("missing", loc, "Field required", url)
        return self._from_url(url, loc)

    def _uploaded(self, raw_id: object, loc: list[str | int]) -> _Document:
        if not isinstance(raw_id, str):
            raise OcrRequestError.invalid("missing", loc, "Field required", raw_id)
        file_id = canonical_id(raw_id)
        if file_id is None:
            raise OcrRequestError.invalid(
                "uuid_parsing", loc, "Input should be a valid UUID", raw_id
            )
        return self._read(file_id, raw_id)

    def _read(self, file_id: str, raw_id: str) -> _Document:
        opened = self._store.open_content(file_id)
        if opened is None:
            raise OcrRequestError(404, {"detail": f"File {raw_id} not found."})
        stored, handle = opened
        with handle:
            return _Document(handle.read(), stored.filename)

    def _from_url(self, url: str, loc: list[str | int]) -> _Document:
        if url.startswith("data:"):
            return _Document(_data_url_bytes(url, loc), "document")
        parts = urlsplit(url)
        prefix = SIGNED_PATH + "/"
        if parts.scheme in ("http", "https") and parts.path.startswith(prefix):
            raw_id = parts.path[len(prefix) :]
            query = parse_qs(parts.query)
            file_id = canonical_id(raw_id)
            try:
                expires_at = int(query.get("exp", ["0"])[0])
            except ValueError:
                expires_at = 0
            signature = query.get("sig", [""])[0]
            if file_id is not None and self._signer.is_valid(
                file_id, expires_at, signature, self._clock()
            ):
                return self._read(file_id, raw_id)
            raise OcrRequestError.invalid(
                "url_fetch", loc, "the signed URL is invalid or has expired", url
            )
        raise OcrRequestError.invalid(
            "url_fetch",
            loc,
            "the emulator reads only its own signed URLs and data: URLs; it fetches nothing",
            url,
        )


def _data_url_bytes(url: str, loc: list[str | int]) -> bytes:
    header, sep, payload = url[len("data:") :].partition(",")
    if not sep:
        raise OcrRequestError.invalid("url_parsing", loc, "malformed data: URL", url[:64])
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise OcrRequestError.invalid(
                "url_parsing", loc, "invalid base64 in the data: URL", url[:64]
            ) from None
    return unquote_to_bytes(payload)


def _page_selection(raw: object, count: int) -> set[int] | None:
    """The 0-based indices asked for (``[0, 2]`` or ``"0,2-4"``), or None for every page."""
    if raw is None:
        return None
    loc: list[str | int] = ["body", "pages"]
    if isinstance(raw, list):
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in raw):
            raise OcrRequestError.invalid("int_type", loc, "Input should be page numbers", raw)
        return set(raw)
    if not isinstance(raw, str):
        raise OcrRequestError.invalid("string_type", loc, "Input should be a string", raw)
    wanted: set[int] = set()
    for part in raw.split(","):
        match = _PAGE_RANGE.match(part)
        if match is None:
            raise OcrRequestError.invalid(
                "value_error", loc, "Value error, pages must look like '0,2-4'", raw
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        wanted.update(range(first, min(last, count - 1) + 1))
    return wanted


def _ocr_pages(document: _Document) -> list[dict[str, Any]]:
    data = document.content
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(b"%PDF"):
        pdf_pages = read_pdf_pages(data)
        if pdf_pages:
            return [
                _page(
                    index,
                    page.text or _no_text(document.name, index, digest),
                    (round(page.width * _DPI / 72), round(page.height * _DPI / 72)),
                )
                for index, page in enumerate(pdf_pages)
            ]
        return [_page(0, _no_text(document.name, 0, digest), _DEFAULT_PIXELS)]
    size = _image_size(data)
    if size is not None:
        return [_page(0, _no_text(document.name, 0, digest), size)]
    text = _plain_text(data)
    if text is not None:
        return [_page(0, text, _DEFAULT_PIXELS)]
    return [_page(0, _no_text(document.name, 0, digest), _DEFAULT_PIXELS)]


def _page(index: int, markdown: str, size: tuple[int, int]) -> dict[str, Any]:
    width, height = size
    return {
        "index": index,
        "markdown": markdown,
        "images": [],
        "dimensions": {"dpi": _DPI, "height": height, "width": width},
    }


def _no_text(name: str, index: int, digest: str) -> str:
    # What the stand-in "recognises" where there is no text to read: stable for the same bytes,
    # different for different ones, and plainly not real OCR.
    return (
        f"# {name}, page {index + 1}\n\n"
        f"Stand-in OCR text {digest[:16]}-{index}: this page has no text layer the emulator"
        " can read."
    )


def _plain_text(data: bytes) -> str | None:
    if b"\x00" in data[:4096]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or baseline/progressive JPEG, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        offset = 2
        while offset + 9 < len(data):
            if data[offset] != 0xFF:
                return None
            marker = data[offset + 1]
            (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
                return int(width), int(height)
            offset += 2 + length
    return None


def _blocks(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One ``text`` block per paragraph, stacked down the page in equal bands."""
    paragraphs = [p.strip() for p in str(page["markdown"]).split("\n\n") if p.strip()]
    width = int(page["dimensions"]["width"])
    height = int(page["dimensions"]["height"])
    band = height // max(1, len(paragraphs))
    return [
        {
            "type": "text",
            "content": paragraph,
            "top_left_x": 0,
            "top_left_y": i * band,
            "bottom_right_x": width,
            "bottom_right_y": (i + 1) * band,
        }
        for i, paragraph in enumerate(paragraphs)
    ]


class OcrApi:
    """The ``POST /v1/ocr`` route over one :class:`OcrService`."""

    def __init__(self, service: OcrService) -> None:
        self._service = service

    def routes(self) -> list[Route]:
        return [Route("/v1/ocr", self.process, methods=["POST"])]

    async def process(self, request: Request) -> Response:
        try:
            body = await json_object_body(request)
        except InvalidInputError as exc:
            return JSONResponse({"detail": [exc.item]}, status_code=422)
        try:
            answer = await anyio.to_thread.run_sync(self._service.answer, body)
        except OcrRequestError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        return JSONResponse(answer)
