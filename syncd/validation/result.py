"""What a validation returns, and the error log that keeps its message list short.

A file with a million bad lines must not produce a million messages: the log keeps the first
:data:`MAX_REPORTED_ERRORS` and counts the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "MAX_REPORTED_ERRORS",
    "VALIDATION_MODES",
    "ErrorLog",
    "ValidationMode",
    "ValidationResult",
]

#: How many error messages a result spells out; the rest are summed up in one more line.
MAX_REPORTED_ERRORS = 10

ValidationMode = Literal["strict", "basic", "off"]
"""``strict``: format + schema by purpose; ``basic``: format only; ``off``: nothing at all."""

#: The modes, in order of strictness, for configuration checks and messages.
VALIDATION_MODES: tuple[ValidationMode, ...] = get_args(ValidationMode)


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The verdict on one file.

    ``errors`` are human messages, most with a line number, at most
    :data:`MAX_REPORTED_ERRORS` plus a final "... and N more errors". ``lines`` is the number
    of records (non-blank lines) read, or ``None`` when the content was not read.
    ``warnings`` (capped the same way) never make a file invalid: they say where the content
    differs from what Mistral's docs describe although Mistral's code accepts it.
    """

    ok: bool
    errors: tuple[str, ...]
    lines: int | None
    warnings: tuple[str, ...] = ()


class ErrorLog:
    """Collects error (or warning) messages, keeping only the first ``limit`` of them."""

    __slots__ = ("_kept", "count", "limit", "noun")

    def __init__(self, limit: int = MAX_REPORTED_ERRORS, noun: str = "error") -> None:
        self.limit = limit
        self.noun = noun
        self.count = 0
        self._kept: list[str] = []

    def add(self, message: str) -> None:
        """Record one error."""
        self.count += 1
        if len(self._kept) < self.limit:
            self._kept.append(message)

    def messages(self) -> tuple[str, ...]:
        """The kept messages, plus a summary line for those left out."""
        left_out = self.count - len(self._kept)
        if left_out <= 0:
            return tuple(self._kept)
        noun = self.noun if left_out == 1 else self.noun + "s"
        return (*self._kept, f"... and {left_out} more {noun}")

    def result(self, lines: int | None, warnings: ErrorLog | None = None) -> ValidationResult:
        """The verdict: ok when nothing was recorded; ``warnings`` never change it."""
        return ValidationResult(
            ok=self.count == 0,
            errors=self.messages(),
            lines=lines,
            warnings=warnings.messages() if warnings is not None else (),
        )
