"""Typed wire model of ``POST /v1/ocr``'s answer (the spec's ``OCRResponse``), as syncd reads it.

syncd writes each page's Markdown back beside the document and keeps the raw answer as JSON, so
the models keep pages (index, markdown, images, dimensions), the model and the usage, and let
every other field (tables, blocks, hyperlinks, annotations...) through untouched.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["OcrPage", "OcrPageDimensions", "OcrResponse", "OcrUsageInfo"]


class _OcrModel(BaseModel):
    # Unknown fields are kept, never rejected: the API adds fields from release to release.
    model_config = ConfigDict(extra="allow", frozen=True)


class OcrPageDimensions(_OcrModel):
    """The page image's size in pixels, and its resolution."""

    dpi: int
    height: int
    width: int


class OcrPage(_OcrModel):
    """One page: its 0-based ``index`` in the document and its text as Markdown."""

    index: int
    markdown: str
    images: list[dict[str, Any]] = []
    dimensions: OcrPageDimensions | None = None


class OcrUsageInfo(_OcrModel):
    """What the request cost: pages processed and the document's size."""

    pages_processed: int
    doc_size_bytes: int | None = None


class OcrResponse(_OcrModel):
    """The answer to one OCR request."""

    pages: list[OcrPage]
    model: str
    usage_info: OcrUsageInfo
    document_annotation: str | None = None

    @property
    def markdown(self) -> str:
        """Every page's Markdown in page order, separated by a blank line."""
        ordered = sorted(self.pages, key=lambda page: page.index)
        return "\n\n".join(page.markdown for page in ordered)
