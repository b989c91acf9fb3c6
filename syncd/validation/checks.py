"""Validate a local file for its folder's purpose before it is uploaded.

File-level checks (size within the Files API limit, an extension the purpose accepts) come
first and need no reading. Only when they pass are fine-tune and batch files read, as a stream,
one line at a time: ``basic`` checks that each line is a UTF-8 JSON object, ``strict`` also
checks the record schema of the purpose. OCR, audio and unknown purposes get the file-level
checks only.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from syncd import hashing, purposes
from syncd.domain import MAX_UPLOAD_BYTES
from syncd.errors import FileUnreadableError
from syncd.paths import printable_key
from syncd.validation.batch import BatchCheck
from syncd.validation.finetune import check_finetune_record
from syncd.validation.jsonl import JsonlReader
from syncd.validation.result import (
    VALIDATION_MODES,
    ErrorLog,
    ValidationMode,
    ValidationResult,
)

__all__ = ["check_file_level", "validate_content", "validate_file"]

_OK_UNREAD = ValidationResult(ok=True, errors=(), lines=None)


def validate_file(
    path: Path,
    *,
    purpose: str,
    mode: ValidationMode,
    size: int,
    filename: str | None = None,
    batch_endpoint: str | None = None,
    root: Path | None = None,
) -> ValidationResult:
    """Check the file at ``path`` (``size`` bytes, as stat saw it) for upload with ``purpose``.

    ``filename`` is the name the upload will carry (default: ``path.name``);
    ``batch_endpoint`` is the endpoint a batch file's job will run, when the folder names it.
    ``root``: the watched folder ``path`` is in; no symlink below it is followed.
    With ``mode="off"`` nothing is checked. The content is read only when the file-level checks
    pass and the purpose has a content check.

    Raises:
        ValueError: ``mode`` is not one of :data:`VALIDATION_MODES`, or a batch file's
            ``batch_endpoint`` is not a batch endpoint.
        FileVanishedError: the file is gone.
        FileUnreadableError: it cannot be opened or read, or is not a regular file.
    """
    if mode not in VALIDATION_MODES:
        raise ValueError(f"unknown validation mode {mode!r}; use one of {VALIDATION_MODES}")
    if mode == "off":
        return _OK_UNREAD
    rule = purposes.rule_for(purpose)
    problem = check_file_level(rule, filename if filename is not None else path.name, size)
    if problem is not None:
        return ValidationResult(ok=False, errors=(problem,), lines=None)
    if rule.content_check == "none":
        return _OK_UNREAD
    with (
        hashing.open_regular(path, root=root) as raw,
        io.BufferedReader(raw, 1024 * 1024) as stream,
    ):
        try:
            return validate_content(
                stream, check=rule.content_check, mode=mode, batch_endpoint=batch_endpoint
            )
        except OSError as exc:
            shown = printable_key(str(path))
            raise FileUnreadableError(
                f"cannot read {shown}: {exc.strerror or exc}", path=str(path)
            ) from exc


def check_file_level(rule: purposes.PurposeRule, filename: str, size: int) -> str | None:
    """The first problem with a file's size or name for ``rule``'s purpose, or None."""
    if size <= 0:
        return "file is empty"
    if size > MAX_UPLOAD_BYTES:
        return (
            f"file is {_megabytes(size)}, over the Files API limit of {MAX_UPLOAD_BYTES / 1e6:g} MB"
        )
    if not rule.allows_name(filename):
        if len(rule.extensions) == 1:
            allowed = rule.extensions[0]
        else:
            allowed = "one of " + ", ".join(rule.extensions)
        return f"{rule.purpose} files must end in {allowed}; got {printable_key(filename)}"
    return None


def validate_content(
    stream: BinaryIO,
    *,
    check: purposes.ContentCheck,
    mode: ValidationMode,
    batch_endpoint: str | None = None,
) -> ValidationResult:
    """Check a JSONL stream for a content ``check``, reading one line at a time.

    ``basic``: every line is a UTF-8 JSON object. ``strict``: also the record schema of the
    check (fine-tune formats, or batch requests, their bodies checked for ``batch_endpoint``
    when it is given), with its warnings.
    """
    if mode == "off" or check == "none":
        return _OK_UNREAD
    errors = ErrorLog()
    warnings = ErrorLog(noun="warning")
    reader = JsonlReader(stream, errors)
    noted: list[str] = []  # one record's warnings, reused from line to line
    if mode == "basic":
        for _ in reader:
            pass
    elif check == "fine-tune":
        for number, record in reader:
            problems = check_finetune_record(record, noted)
            if problems or noted:  # the common record has neither: no call for it
                _add_all(errors, number, problems)
                _add_all(warnings, number, noted)
    else:
        batch = BatchCheck(batch_endpoint)
        for number, record in reader:
            _add_all(errors, number, batch.check(number, record, noted))
            _add_all(warnings, number, noted)
    return errors.result(lines=reader.records, warnings=warnings)


def _add_all(log: ErrorLog, number: int, messages: list[str]) -> None:
    """Add a record's messages to ``log`` with its line number, then empty the list."""
    for message in messages:
        log.add(f"line {number}: {message}")
    messages.clear()


def _megabytes(size: int) -> str:
    shown = f"{size / 1e6:.1f} MB"
    # Just over the limit must not read as "512.0 MB, over the limit of 512 MB".
    return shown if size / 1e6 >= MAX_UPLOAD_BYTES / 1e6 + 0.05 else f"{size:,} bytes"
