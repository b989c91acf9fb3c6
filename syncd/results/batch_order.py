"""Batch output lines in the order of the input's ``custom_id``s.

The API writes output lines in any order. The output is indexed by ``custom_id`` (offsets
only, not the lines) and written again in the input's order; lines whose id the input does not
name (or that carry none) follow in the order they came.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import BinaryIO

__all__ = ["custom_ids", "ordered_by"]


def custom_ids(lines: Iterable[bytes]) -> Iterator[str]:
    """The ``custom_id`` of each request line that has one, in order."""
    for line in lines:
        found = _custom_id(line)
        if found is not None:
            yield found


def ordered_by(order: list[str]) -> _Reorder:
    """A landing transform writing the output in ``order`` of custom_ids."""
    return _Reorder(order)


class _Reorder:
    def __init__(self, order: list[str]) -> None:
        self._order = order

    def __call__(self, src: BinaryIO, dst: BinaryIO) -> None:
        index: dict[str, list[tuple[int, int]]] = {}
        rest: list[tuple[int, int]] = []
        offset = 0
        for line in src:
            span = (offset, len(line))
            offset += len(line)
            if not line.strip():
                continue
            found = _custom_id(line)
            if found is None:
                rest.append(span)
            else:
                index.setdefault(found, []).append(span)
        for wanted in self._order:
            for span in index.pop(wanted, ()):
                _copy(src, dst, span)
        leftovers = sorted([span for spans in index.values() for span in spans] + rest)
        for span in leftovers:
            _copy(src, dst, span)


def _copy(src: BinaryIO, dst: BinaryIO, span: tuple[int, int]) -> None:
    src.seek(span[0])
    line = src.read(span[1])
    dst.write(line if line.endswith(b"\n") else line + b"\n")


def _custom_id(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict):
        value = record.get("custom_id")
        if isinstance(value, str):
            return value
    return None
