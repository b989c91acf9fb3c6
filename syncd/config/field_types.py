"""Reusable field types for the config models, and what relative values resolve against.

Durations with their minimums, non-empty strings, and path resolution against the config file's
directory (carried through pydantic's validation context as a :class:`ResolveContext`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StrictStr, ValidationInfo

from syncd.config.durations import DURATION_FORMS, parse_duration

__all__ = [
    "Duration",
    "NonEmptyStr",
    "PositiveDuration",
    "ResolveContext",
    "SecondsDuration",
    "context_of",
    "resolve_path",
]

_CONTEXT_KEY = "syncd.resolve"


@dataclass(frozen=True, slots=True)
class ResolveContext:
    """What relative paths and environment-based defaults resolve against.

    ``base_dir`` is the config file's directory; ``environ`` supplies systemd's
    ``STATE_DIRECTORY`` and ``CREDENTIALS_DIRECTORY``. Models built without one resolve against
    the working directory and an empty environment.
    """

    base_dir: Path
    environ: Mapping[str, str] = field(default_factory=dict)

    def as_validation_context(self) -> dict[str, object]:
        """The ``context=`` argument for ``Config.model_validate``."""
        return {_CONTEXT_KEY: self}


def resolve_path(value: object, base_dir: Path) -> Path:
    """``value`` (a path string; ``~`` expanded) as an absolute path, relative to ``base_dir``.

    Raises:
        ValueError: not a non-empty string.
    """
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty path string")
    return (base_dir / Path(value).expanduser()).resolve()


def context_of(info: ValidationInfo) -> ResolveContext:
    """The resolve context passed to validation, or the working directory and no environment."""
    context = info.context
    if isinstance(context, dict):
        found = context.get(_CONTEXT_KEY)
        if isinstance(found, ResolveContext):
            return found
    return ResolveContext(base_dir=Path.cwd())


def _to_timedelta(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f'expected {DURATION_FORMS} as a quoted string; did you mean "{value}s"?')
    raise ValueError(f"expected {DURATION_FORMS}")


def _longer_than_zero(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _at_least_one_second(value: timedelta) -> timedelta:
    if value < timedelta(seconds=1):
        raise ValueError("must be at least 1s")
    return value


#: A duration string such as "2s" or "1h30m"; zero allowed.
Duration = Annotated[timedelta, BeforeValidator(_to_timedelta)]
#: A duration longer than zero.
PositiveDuration = Annotated[
    timedelta, BeforeValidator(_to_timedelta), AfterValidator(_longer_than_zero)
]
#: A duration of one second or more (periods that drive network calls or rescans).
SecondsDuration = Annotated[
    timedelta, BeforeValidator(_to_timedelta), AfterValidator(_at_least_one_second)
]
NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
