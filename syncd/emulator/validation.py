"""Server-side content checks of an upload, and what they learn (sample type, line count).

Fine-tune files must be ``.jsonl`` in UTF-8 with one training sample per line (chat, pretrain
or classifier format); batch files need ``custom_id`` and ``body`` on every line. Files are read
line by line from disk, never whole. Failures carry the JSON body the API answers with (422).
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "FORMATS_URL",
    "MAX_LINE_BYTES",
    "ContentRejectedError",
    "ContentReport",
    "guess_mimetype",
    "inspect_content",
]

FORMATS_URL = "https://docs.mistral.ai/capabilities/finetuning"
#: A single sample longer than this is reported as an error instead of being held in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024
#: How many problems one 422 lists; the description still counts all of them.
MAX_REPORTED_ERRORS = 100

_ROLES = ("system", "user", "assistant", "tool")
_UTF8_BOM = b"\xef\xbb\xbf"
_DECODE_DETAIL = "Failed to decode data, please encode your file using UTF-8."
# Purposes whose content is not checked still get a sample type; "ocr_input" is what the real
# API reports for OCR documents, the rest fall back to the generic raw type.
_UNCHECKED_SAMPLE_TYPES = {"ocr": "ocr_input"}
_FALLBACK_SAMPLE_TYPE = "pretrain"


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
    """The file's mimetype: ``application/jsonl`` for JSONL, else guessed from the name.

    The part's declared type is used only when the name says nothing, and never the generic
    ``application/octet-stream`` that clients send when they do not know either.
    """
    if filename.lower().endswith(".jsonl"):
        return "application/jsonl"
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    if guessed:
        return guessed
    if declared and declared.lower() != "application/octet-stream":
        return declared
    return "application/octet-stream"


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
        return _inspect_jsonl(path, _check_batch_request, max_line_bytes)
    return ContentReport(_UNCHECKED_SAMPLE_TYPES.get(purpose, _FALLBACK_SAMPLE_TYPE), None)


_SampleCheck = Callable[[object], tuple[str, list[str]]]


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
            kind, messages = check(record)
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


def _check_training_sample(record: object) -> tuple[str, list[str]]:
    """(sample type, problems) of one fine-tuning line: chat, pretrain or classifier."""
    if not isinstance(record, dict):
        return "", [f"line must be a JSON object, got {type(record).__name__}"]
    has_labels = "labels" in record
    if "messages" in record:
        kind = "instruct"
        problems = _message_problems(record["messages"], needs_assistant_last=not has_labels)
    elif "text" in record:
        kind = "pretrain"
        text = record["text"]
        problems = [] if isinstance(text, str) and text else ["'text' must be a non-empty string"]
    else:
        return "", [
            "line must have 'messages' (chat), 'text' (pretrain) or one of them with 'labels'"
            " (classifier)"
        ]
    if has_labels:
        problems.extend(_label_problems(record["labels"]))
    return kind, problems


def _message_problems(messages: object, *, needs_assistant_last: bool) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty list"]
    problems: list[str] = []
    last_role: object = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(f"messages[{index}] must be an object")
            continue
        role = last_role = message.get("role")
        if role not in _ROLES:
            problems.append(
                f"messages[{index}]: role must be one of {', '.join(_ROLES)}; got {role!r}"
            )
            continue
        content = message.get("content")
        calls_tools = role == "assistant" and bool(message.get("tool_calls"))
        if "tool_calls" in message and not isinstance(message["tool_calls"], list):
            problems.append(f"messages[{index}]: 'tool_calls' must be a list")
        if content is None and not calls_tools:
            problems.append(f"messages[{index}] ({role}): missing 'content'")
        elif content is not None and not isinstance(content, str | list):
            problems.append(f"messages[{index}] ({role}): 'content' must be a string or a list")
    if needs_assistant_last and last_role in _ROLES and last_role != "assistant":
        problems.append(f"Expected last role to be one of: [assistant] but got {last_role}")
    return problems


def _label_problems(labels: object) -> list[str]:
    if not isinstance(labels, dict) or not labels:
        return ["'labels' must be a non-empty object"]
    problems = []
    for name, value in labels.items():
        is_label_list = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        if not (isinstance(value, str) or is_label_list):
            problems.append(f"labels[{name!r}] must be a string or a list of strings")
    return problems


def _check_batch_request(record: object) -> tuple[str, list[str]]:
    """(sample type, problems) of one batch line: ``custom_id`` plus an object ``body``."""
    if not isinstance(record, dict):
        return "", [f"line must be a JSON object, got {type(record).__name__}"]
    problems = []
    custom_id = record.get("custom_id")
    if custom_id is None:
        problems.append("missing required field 'custom_id'")
    elif not isinstance(custom_id, str | int) or isinstance(custom_id, bool) or custom_id == "":
        problems.append("'custom_id' must be a non-empty string")
    if "body" not in record:
        problems.append("missing required field 'body'")
    elif not isinstance(record["body"], dict):
        problems.append("'body' must be an object")
    return "batch_request", problems
