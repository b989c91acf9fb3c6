"""Schema of batch request files: each line ``{"custom_id": ..., "body": {...}}``.

``custom_id`` is a string or an integer and must be unique within the file (``1`` and ``"1"``
count as the same id, since both reach the results as the text "1"). ``body`` is the request
for the batch's endpoint; only its being an object is checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.validation.jsonl import json_type, short_repr

__all__ = ["BatchCheck"]


class BatchCheck:
    """Checks the records of one batch file in order, remembering the ids seen so far.

    Memory grows with the number of distinct ids (a batch holds up to about a million).
    """

    __slots__ = ("_first_line_of",)

    def __init__(self) -> None:
        self._first_line_of: dict[str, int] = {}

    def check(self, number: int, record: Mapping[str, Any]) -> list[str]:
        """Problems of the record on line ``number`` (without the line prefix)."""
        problems: list[str] = []
        if "custom_id" not in record:
            problems.append('missing "custom_id"')
        else:
            self._check_id(number, record["custom_id"], problems)
        if "body" not in record:
            problems.append('missing "body"')
        elif not isinstance(record["body"], dict):
            problems.append(f'"body" must be an object, got {json_type(record["body"])}')
        return problems

    def _check_id(self, number: int, custom_id: object, problems: list[str]) -> None:
        if isinstance(custom_id, bool) or not isinstance(custom_id, str | int):
            problems.append(
                f'"custom_id" must be a string or an integer, got {json_type(custom_id)}'
            )
            return
        if custom_id == "":
            problems.append('"custom_id" must not be empty')
            return
        first = self._first_line_of.setdefault(str(custom_id), number)
        if first != number:
            problems.append(f"custom_id {short_repr(custom_id)} duplicates line {first}")
