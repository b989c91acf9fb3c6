"""What each Files API purpose accepts: file types, default include globs, content checks.

One table, read by config (defaults for a folder's ``include``) and by validation (which
extensions and which content check apply). An unknown purpose is a config error (a typo, with
a did-you-mean) unless the folder sets ``allow_unknown_purpose``; it then gets the permissive
rule, and the API refuses it with 422 if it is not in its enum (the file is then quarantined).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_EXCLUDE",
    "KNOWN_PURPOSES",
    "PURPOSE_LENGTH",
    "ContentCheck",
    "PurposeRule",
    "rule_for",
    "unknown_purpose_message",
]

ContentCheck = Literal["fine-tune", "batch", "none"]

#: The longest purpose the state database stores (its column's size; PostgreSQL enforces it).
PURPOSE_LENGTH = 32

#: Hidden files, editor backups and partial downloads are never data.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".*",
    "*~",
    "#*#",
    "*.tmp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.swp",
)


@dataclass(frozen=True, slots=True)
class PurposeRule:
    purpose: str
    extensions: tuple[str, ...]
    """Lower-case suffixes (with the dot) the API accepts; empty means any."""
    content_check: ContentCheck

    @property
    def default_include(self) -> tuple[str, ...]:
        return tuple(f"*{ext}" for ext in self.extensions) or ("*",)

    def allows_name(self, name: str) -> bool:
        lowered = name.lower()
        return not self.extensions or lowered.endswith(self.extensions)


# Every one names a type the API takes for OCR (its 422 lists them; the emulator's
# OCR_MIMETYPES and its suffix table, checked by tests/test_emulator_purposes.py).
_OCR_EXTENSIONS = (
    ".pdf",
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".bmp",
    ".gif",
    ".webp",
    ".avif",
    ".docx",
    ".pptx",
    ".epub",
    ".rtf",
    ".odt",
    ".ipynb",
    ".tex",
)
_AUDIO_EXTENSIONS = (".mp3", ".wav", ".m4a", ".flac", ".ogg", ".opus", ".webm", ".aac")

_RULES: dict[str, PurposeRule] = {
    "fine-tune": PurposeRule("fine-tune", (".jsonl",), "fine-tune"),
    "batch": PurposeRule("batch", (".jsonl",), "batch"),
    "ocr": PurposeRule("ocr", _OCR_EXTENSIONS, "none"),
    "audio": PurposeRule("audio", _AUDIO_EXTENSIONS, "none"),
}

#: Purposes with a known rule; others are uploaded without local checks (and the API decides).
KNOWN_PURPOSES: tuple[str, ...] = tuple(_RULES)


def rule_for(purpose: str) -> PurposeRule:
    """The rule for ``purpose``; an unknown purpose accepts any file and checks no content."""
    return _RULES.get(purpose, PurposeRule(purpose, (), "none"))


def unknown_purpose_message(purpose: str) -> str:
    """Why ``purpose`` is refused, with the nearest known one when it looks like a typo."""
    normalized = purpose.lower().replace("_", "-").replace(" ", "-")
    close = difflib.get_close_matches(normalized, KNOWN_PURPOSES, n=1, cutoff=0.6)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    known = ", ".join(KNOWN_PURPOSES)
    return (
        f"unknown purpose {purpose!r}: {hint}(known: {known}; for one the API added later, "
        "also set allow_unknown_purpose = true)"
    )
