"""Content validation by purpose, before a file is uploaded.

:func:`validate_file` is the entry point; the modules below it are split by concern:
``checks`` (file-level checks and dispatch), ``jsonl`` (streaming line reader), ``finetune``
and ``batch`` (record schemas), ``result`` (the verdict and its capped error list).
"""

from __future__ import annotations

from syncd.validation.checks import check_file_level, validate_content, validate_file
from syncd.validation.result import (
    MAX_REPORTED_ERRORS,
    VALIDATION_MODES,
    ValidationMode,
    ValidationResult,
)

__all__ = [
    "MAX_REPORTED_ERRORS",
    "VALIDATION_MODES",
    "ValidationMode",
    "ValidationResult",
    "check_file_level",
    "validate_content",
    "validate_file",
]
