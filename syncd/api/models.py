"""Typed wire models of the Files API responses, and the enums of its documented values.

Field names are the wire names (``bytes``, not ``size_bytes``). Every model accepts extra fields and
every enum-like field is typed ``str``: the API adds values over time (``audio``,
``agentic_safety``) and an unknown value must not break a listing. The StrEnums below only name the
values known today, for callers that want constants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = [
    "DeletedFile",
    "FileInfo",
    "FileList",
    "FilePurpose",
    "FileSignedURL",
    "FileVisibility",
    "RetrievedFile",
    "SampleType",
    "Source",
]


class FilePurpose(StrEnum):
    """Known upload purposes (open set: the server may accept others)."""

    FINE_TUNE = "fine-tune"
    BATCH = "batch"
    OCR = "ocr"
    AUDIO = "audio"
    AGENTIC_SAFETY = "agentic_safety"


class SampleType(StrEnum):
    """Known content kinds the server detects on upload."""

    PRETRAIN = "pretrain"
    INSTRUCT = "instruct"
    BATCH_REQUEST = "batch_request"
    BATCH_RESULT = "batch_result"
    BATCH_ERROR = "batch_error"


class Source(StrEnum):
    """Known origins of a file."""

    UPLOAD = "upload"
    REPOSITORY = "repository"
    MISTRAL = "mistral"


class FileVisibility(StrEnum):
    """Who may see an uploaded file."""

    WORKSPACE = "workspace"
    USER = "user"


class _WireModel(BaseModel):
    # Unknown fields are kept (and dumped again), never rejected: the API grows.
    model_config = ConfigDict(extra="allow", frozen=True)


class FileInfo(_WireModel):
    """One file as the upload and list endpoints describe it."""

    id: str
    object: str
    bytes: int | None
    """Size in bytes. The schema says integer; recorded examples show null, so null is tolerated."""
    created_at: int
    """Unix seconds."""
    filename: str
    purpose: str
    sample_type: str
    source: str
    num_lines: int | None = None
    mimetype: str | None = None
    signature: str | None = None
    expires_at: int | None = None
    """Unix seconds, when the server set an expiry."""
    visibility: str | None = None
    status: str | None = None
    """Not in Mistral's schema; kept for servers that follow OpenAI's file object."""
    status_details: str | None = None

    @property
    def size_bytes(self) -> int | None:
        """The official SDK's name for the wire field ``bytes``."""
        return self.bytes

    @property
    def created(self) -> datetime:
        """``created_at`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.created_at, tz=UTC)


class RetrievedFile(FileInfo):
    """One file as the retrieve endpoint describes it: with its ``deleted`` flag."""

    deleted: bool


class FileList(_WireModel):
    """One page of a listing. There is no cursor: paginate with ``page`` and ``page_size``."""

    data: list[FileInfo]
    object: str
    total: int | None = None


class DeletedFile(_WireModel):
    """The answer to a delete."""

    id: str
    object: str
    deleted: bool


class FileSignedURL(_WireModel):
    """A URL that downloads the file without the API key, valid until ``expires_at``."""

    url: str
    expires_at: int | None = None
    """Unix seconds. The server sends only ``url``; the client fills this from the request time
    plus the requested expiry, so it errs early rather than late."""
