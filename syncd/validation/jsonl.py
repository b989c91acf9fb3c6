"""Read a JSONL stream one line at a time and hand out the lines that are JSON objects.

Format errors (not UTF-8, not JSON, not an object, a blank line between records, a line too long
to check) go to an :class:`~syncd.validation.result.ErrorLog` with their line numbers. Memory
stays bounded by one line, and one line by :data:`MAX_LINE_BYTES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from syncd.validation.result import ErrorLog

__all__ = ["MAX_LINE_BYTES", "JsonlReader", "json_type", "short_repr"]

#: Longest line that is parsed. A longer one is reported and skipped without being held in
#: memory, so a binary file with no newlines cannot make validation read 500 MB at once.
MAX_LINE_BYTES = 64 * 1024 * 1024

#: Chunk size used to skip past the rest of an over-long line.
_SKIP_CHUNK_BYTES = 1024 * 1024

_BOM = "\ufeff"

#: Added when line 1 is a lone "{" or "[": a JSON document written with indentation.
_PRETTY_PRINTED_HINT = "; this looks like pretty-printed JSON: JSONL needs one record per line"


def json_type(value: object) -> str:
    """The JSON name of ``value``'s type, with an article: "an array", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def short_repr(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for quoting user data in messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity by default; JSON (and the API) does not.
    raise ValueError(f"{name} is not allowed in JSON")


# One stateless decoder for every line: json.loads with a hook would build one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
#: Its scanner (C): one value at an index, and where it ends; what ``json.loads`` runs after
#: decoding bytes, stripping whitespace and wrapping errors, none of which a line of a valid
#: file needs.
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


class JsonlReader:
    """Iterate ``(line number, object)`` over the JSON-object lines of a binary stream.

    Blank lines at the end are allowed; a blank line followed by another record is an error.
    After iterating, :attr:`records` holds the number of non-blank lines.
    """

    def __init__(self, stream: BinaryIO, errors: ErrorLog) -> None:
        self._stream = stream
        self._errors = errors
        self.records = 0

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        blank_lines: list[int] = []
        number = 0
        read_line = self._stream.readline
        scan = _SCAN
        while raw := read_line(MAX_LINE_BYTES + 1):
            number += 1
            # The common line, a JSON object and its line break, in one call of the C
            # scanner; anything else (or any doubt) takes the full path below, which says why.
            if raw[:1] == b"{" and not blank_lines and len(raw) <= MAX_LINE_BYTES:
                try:
                    text = raw.decode("utf-8")
                    value, end = scan(text, 0)
                except (ValueError, RecursionError, StopIteration):  # not UTF-8, JSON; NaN
                    pass
                else:
                    tail = text[end:]
                    if not tail or tail == "\n" or tail == "\r\n":
                        self.records += 1
                        yield number, value
                        continue
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while chunk := read_line(_SKIP_CHUNK_BYTES):
                    if chunk.endswith(b"\n"):
                        break
                line: bytes | None = None
            else:
                line = raw
            if line is not None and not line.strip():
                blank_lines.append(number)
                continue
            for blank in blank_lines:
                self._errors.add(f"line {blank}: blank line; JSONL needs one JSON object per line")
            blank_lines.clear()
            self.records += 1
            if line is None:
                limit_mib = MAX_LINE_BYTES // (1024 * 1024)
                self._errors.add(f"line {number}: longer than {limit_mib} MiB; not checked")
                continue
            parsed = self._parse(number, line)
            if parsed is not None:
                yield number, parsed
        if number and self.records == 0:
            self._errors.add("file has only blank lines; no JSON records")

    def _parse(self, number: int, raw: bytes) -> dict[str, Any] | None:
        """The object on this line, or None after recording why there is none."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._errors.add(
                f"line {number}: not valid UTF-8 "
                f"(byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            )
            return None
        if number == 1 and text.startswith(_BOM):
            self._errors.add(
                "line 1: starts with a byte order mark (BOM); save the file as UTF-8 without BOM"
            )
            text = text[len(_BOM) :]
        # Without its line break, so an error at the end of the line gets a column on it
        # ("{" alone is "column 2"), not "column 1" of the parser's next line.
        text = text.rstrip("\r\n")
        try:
            value = _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            hint = _PRETTY_PRINTED_HINT if number == 1 and text.strip() in ("{", "[") else ""
            self._errors.add(f"line {number}: not valid JSON: {exc.msg} (column {exc.colno}){hint}")
            return None
        except ValueError as exc:  # a NaN or Infinity, from _reject_constant
            self._errors.add(f"line {number}: not valid JSON: {exc}")
            return None
        except RecursionError:
            self._errors.add(f"line {number}: not valid JSON: nested too deeply")
            return None
        if not isinstance(value, dict):
            self._errors.add(f"line {number}: expected a JSON object, got {json_type(value)}")
            return None
        return value
