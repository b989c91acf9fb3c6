"""Server-side content checks of an upload, and what they learn (sample type, line count).

Fine-tune files must be ``.jsonl`` in UTF-8 with one training sample per line; batch files need
an object ``body`` on every line. Each record is judged by the same rules syncd applies
before an upload (:mod:`syncd.validation`): one rule set, which follows Mistral's own code, so
the emulator refuses what the real server refuses and syncd quarantines exactly that. Files are
read line by line from disk, never whole. Failures carry the JSON body the API answers with
(422).
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from syncd.validation.batch import BatchCheck
from syncd.validation.finetune import check_finetune_record

__all__ = [
    "FORMATS_URL",
    "MAX_LINE_BYTES",
    "OCR_MIMETYPES",
    "ContentRejectedError",
    "ContentReport",
    "check_mimetype",
    "guess_mimetype",
    "inspect_content",
]

FORMATS_URL = "https://docs.mistral.ai/capabilities/finetuning"
#: A single sample longer than this is reported as an error instead of being held in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024
#: How many problems one 422 lists; the description still counts all of them.
MAX_REPORTED_ERRORS = 100

_UTF8_BOM = b"\xef\xbb\xbf"
_DECODE_DETAIL = "Failed to decode data, please encode your file using UTF-8."
# Purposes whose content is not checked still get a sample type; "ocr_input" is what the real
# API reports for OCR documents, the rest fall back to the generic raw type.
_UNCHECKED_SAMPLE_TYPES = {"ocr": "ocr_input"}
_FALLBACK_SAMPLE_TYPE = "pretrain"

#: The mimetypes the real API takes for ``purpose=ocr``, as its 422 lists them (patterns, matched
#: against the whole type; mistralai/client-python#217). Anything else is refused.
OCR_MIMETYPES: tuple[str, ...] = (
    "application/pdf",
    "image/.*",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/epub+zip",
    "application/docbook+xml",
    "application/rtf",
    "application/vnd.oasis.opendocument.text",
    "application/x-biblatex",
    "application/x-bibtex",
    "application/x-endnote+xml",
    "application/x-fictionbook+xml",
    "application/x-ipynb+json",
    "application/x-jats+xml",
    "application/x-latex",
    "application/x-opml+xml",
    "text/troff",
    "text/x-dokuwiki",
)
# Literal types, but ".*" is a wildcard ("image/.*"); "+" and "." are not regex syntax here.
_OCR_PATTERNS = tuple(re.compile(re.escape(t).replace(r"\.\*", ".*")) for t in OCR_MIMETYPES)
_OCR_DETAIL = "Invalid file format."
#: Document suffixes whose type the server is taken to see, named as in OCR_MIMETYPES: Python's
#: ``mimetypes`` answers for these vary with the platform's mime.types (``.tex`` is
#: ``text/x-tex`` or ``application/x-tex``, ``.ipynb`` and ``.fb2`` are unknown), so they are
#: fixed here. [INFERRED: the real server's detection is undocumented.]
_DOCUMENT_TYPES = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".epub": "application/epub+zip",
    ".dbk": "application/docbook+xml",
    ".rtf": "application/rtf",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".bib": "application/x-bibtex",
    ".fb2": "application/x-fictionbook+xml",
    ".ipynb": "application/x-ipynb+json",
    ".tex": "application/x-latex",
    ".latex": "application/x-latex",
    ".opml": "application/x-opml+xml",
    ".roff": "text/troff",
}


@dataclass(frozen=True, slots=True)
class ContentReport:
    """What inspection found: the detected sample type and, for JSONL, the sample count."""

    sample_type: str
    num_lines: int | None


class ContentRejectedError(Exception):
    """The upload's content is not acceptable for its purpose; ``body`` is the 422 payload."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail", "invalid file"))
        self.body = body


@dataclass
class _Problems:
    """Line-numbered problems, capped in the list but counted in full."""

    count: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, line_number: int, message: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_REPORTED_ERRORS:
            self.listed.append({"message": message, "line_number": line_number})

    def raise_if_any(self) -> None:
        if self.count:
            raise ContentRejectedError(
                {
                    "detail": "Invalid file format.",
                    "description": f"Found {self.count} errors in this file. You can view"
                    f" supported formats here: {FORMATS_URL}. ",
                    "errors": self.listed,
                }
            )


def guess_mimetype(filename: str, declared: str | None) -> str:
    """The file's mimetype: ``application/jsonl`` for JSONL, the fixed type of a document
    suffix (``_DOCUMENT_TYPES``), else guessed from the name.

    The part's declared type is used only when the name says nothing, and never the generic
    ``application/octet-stream`` that clients send when they do not know either.
    """
    lowered = filename.lower()
    if lowered.endswith(".jsonl"):
        return "application/jsonl"
    suffix = lowered[lowered.rfind(".") :] if "." in lowered else ""
    if suffix in _DOCUMENT_TYPES:
        return _DOCUMENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    if guessed:
        return guessed
    if declared and declared.lower() != "application/octet-stream":
        return declared
    return "application/octet-stream"


def check_mimetype(purpose: str, mimetype: str) -> None:
    """Refuse a file type the purpose does not take: OCR takes documents and images only.

    Raises:
        ContentRejectedError: with the API's 422 body naming the type and the accepted ones.
    """
    if purpose != "ocr" or any(p.fullmatch(mimetype.lower()) for p in _OCR_PATTERNS):
        return
    raise ContentRejectedError(
        {
            "detail": _OCR_DETAIL,
            "message": f"Received file with mimetype {mimetype}, only {', '.join(OCR_MIMETYPES)}"
            " are currently supported",
        }
    )


def inspect_content(
    path: Path, filename: str, purpose: str, *, max_line_bytes: int = MAX_LINE_BYTES
) -> ContentReport:
    """Check the stored upload at ``path`` for ``purpose``.

    Raises:
        ContentRejectedError: with the API's 422 body when the content is not acceptable.
    """
    if purpose == "fine-tune":
        if not filename.lower().endswith(".jsonl"):
            problems = _Problems()
            problems.add(
                0,
                f"file {filename!r} is not a .jsonl file; the fine-tuning API only accepts .jsonl",
            )
            problems.raise_if_any()
        return _inspect_jsonl(path, _check_training_sample, max_line_bytes)
    if purpose == "batch":
        return _inspect_jsonl(path, _BatchRequests().check, max_line_bytes)
    return ContentReport(_UNCHECKED_SAMPLE_TYPES.get(purpose, _FALLBACK_SAMPLE_TYPE), None)


_SampleCheck = Callable[[int, object], tuple[str, list[str]]]


def _inspect_jsonl(path: Path, check: _SampleCheck, max_line_bytes: int) -> ContentReport:
    problems = _Problems()
    samples = 0
    sample_type: str | None = None
    with path.open("rb") as handle:
        for line_number, raw in enumerate(_lines(handle, max_line_bytes), start=1):
            if raw is None:
                problems.add(line_number, f"line is longer than {max_line_bytes} bytes")
                samples += 1
                continue
            if line_number == 1 and raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ContentRejectedError({"detail": _DECODE_DETAIL}) from None
            if not text.strip():
                continue  # blank lines (a trailing newline, spacing) are not samples
            samples += 1
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.add(line_number, f"line contains invalid json: {exc}")
                continue
            kind, messages = check(line_number, record)
            for message in messages:
                problems.add(line_number, message)
            if sample_type is None and kind and not messages:
                sample_type = kind
    if samples == 0:
        problems.add(0, "file contains no samples")
    problems.raise_if_any()
    return ContentReport(sample_type or "instruct", samples)


def _lines(handle: BinaryIO, max_line_bytes: int) -> Iterator[bytes | None]:
    """Yield each line's bytes without its line ending; None for a line over the cap."""
    while True:
        # +1 for the newline itself, so a line of exactly max_line_bytes still fits.
        raw: bytes = handle.readline(max_line_bytes + 1)
        if not raw:
            return
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the oversized line
                raw = handle.readline(max_line_bytes)
            yield None
            continue
        yield raw.rstrip(b"\r\n")


def _check_training_sample(line_number: int, record: object) -> tuple[str, list[str]]:
    """(sample type, problems) of one fine-tuning line, judged by syncd's own fine-tune rules
    (:mod:`syncd.validation.finetune`): the emulator refuses exactly what syncd quarantines,
    which is what Mistral's fine-tuning code refuses."""
    del line_number  # fine-tune records are judged one by one
    if not isinstance(record, dict):
        return "", [f"line must be a JSON object, got {type(record).__name__}"]
    is_chat = "messages" in record or "interactions" in record
    return ("instruct" if is_chat else "pretrain"), check_finetune_record(record)


class _BatchRequests:
    """Batch lines judged by syncd's own batch rules (:mod:`syncd.validation.batch`), which
    remember the ids seen so far in the file."""

    def __init__(self) -> None:
        self._batch = BatchCheck()

    def check(self, line_number: int, record: object) -> tuple[str, list[str]]:
        if not isinstance(record, dict):
            return "", [f"line must be a JSON object, got {type(record).__name__}"]
        return "batch_request", self._batch.check(line_number, record)
