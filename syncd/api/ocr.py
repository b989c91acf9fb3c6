"""The ``ocr`` resource: ``client.ocr.process(model=..., file_id=...)``, as in the official SDK.

The document is named one of three ways (the spec's ``FileChunk``, ``DocumentURLChunk`` and
``ImageURLChunk``): the id of an uploaded file, a document URL (a signed URL of an uploaded
file is the documented way to pass one), or an image URL. ``process`` is sent once and never
retried: each request is billed, so a retry whose first answer was lost would pay twice; the
caller decides whether to ask again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncd.api.ocr_models import OcrResponse
from syncd.api.requester import Requester
from syncd.errors import UsageError

__all__ = ["Ocr"]

_OCR_PATH = "/v1/ocr"


class Ocr:
    """OCR (``client.ocr``)."""

    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def __repr__(self) -> str:
        return f"Ocr(server_url={self._requester.server_url!r})"

    def process(
        self,
        model: str,
        *,
        file_id: str | None = None,
        document_url: str | None = None,
        image_url: str | None = None,
        document_name: str | None = None,
        pages: Sequence[int] | str | None = None,
        include_image_base64: bool | None = None,
        include_blocks: bool | None = None,
    ) -> OcrResponse:
        """Recognise the text of one document, named by exactly one of ``file_id``,
        ``document_url`` or ``image_url``; ``pages`` (0-based: ``[0, 2]`` or ``"0,2-4"``)
        limits it to those pages.

        Raises:
            UsageError: not exactly one document given, or an empty one.
            ApiError: the API refused the request (404 for an unknown file id, 422 for a bad
                request) or could not be reached; never retried.
        """
        given = [
            (name, value)
            for name, value in (
                ("file_id", file_id),
                ("document_url", document_url),
                ("image_url", image_url),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise UsageError(
                "name the document with exactly one of file_id, document_url, image_url"
            )
        kind, value = given[0]
        if not value.strip():
            raise UsageError(f"{kind} must not be empty")
        document: dict[str, Any]
        if kind == "file_id":
            document = {"type": "file", "file_id": value}
        elif kind == "document_url":
            document = {"type": "document_url", "document_url": value}
            if document_name is not None:
                document["document_name"] = document_name
        else:
            document = {"type": "image_url", "image_url": value}
        body: dict[str, Any] = {"model": model, "document": document}
        if pages is not None:
            body["pages"] = pages if isinstance(pages, str) else list(pages)
        if include_image_base64 is not None:
            body["include_image_base64"] = include_image_base64
        if include_blocks is not None:
            body["include_blocks"] = include_blocks
        return self._requester.post_json_once(_OCR_PATH, body, OcrResponse, operation="ocr")
