"""Human duration strings ("500ms", "2s", "5m", "1h30m", "30d") to and from ``timedelta``.

Pure text handling: no pydantic, no I/O. The config models wrap :func:`parse_duration` so every
duration key in the TOML accepts the same forms and rejects everything else with one message.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["DURATION_FORMS", "format_duration", "parse_duration"]

#: Said in every error about a duration, so the user sees what would have worked.
DURATION_FORMS = (
    'a duration such as "500ms", "2s", "5m", "1h", "30d" or "1h30m" (units: ms, s, m, h, d, w)'
)

_UNITS: dict[str, timedelta] = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
# "ms" must come before "m" in the alternation, or "500ms" would read as 500 minutes + "s".
_PART = r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)"
_PART_RE = re.compile(_PART)
_WHOLE_RE = re.compile(rf"\s*(?:{_PART}\s*)+")


def parse_duration(text: str) -> timedelta:
    """Parse ``"1h30m"``-style text into a ``timedelta``.

    A bare number is refused on purpose: ``30`` could mean seconds or minutes, and a wrong guess
    silently changes how long the daemon waits.

    Raises:
        ValueError: the text is not a duration; the message lists the accepted forms.
    """
    if not _WHOLE_RE.fullmatch(text):
        hint = f'; did you mean "{text.strip()}s"?' if _is_bare_number(text) else ""
        raise ValueError(f"expected {DURATION_FORMS}{hint}")
    total = timedelta()
    for number, unit in _PART_RE.findall(text):
        total += _UNITS[unit] * float(number)
    return total


def format_duration(value: timedelta) -> str:
    """The shortest text :func:`parse_duration` reads back as ``value`` (``"1h30m"``, ``"0s"``)."""
    remaining_ms = round(value.total_seconds() * 1000)
    if remaining_ms == 0:
        return "0s"
    sign = "-" if remaining_ms < 0 else ""
    remaining_ms = abs(remaining_ms)
    parts: list[str] = []
    # Weeks are left out: "30d" reads better than "4w2d" for retention periods.
    for unit in ("d", "h", "m", "s", "ms"):
        unit_ms = round(_UNITS[unit].total_seconds() * 1000)
        count, remaining_ms = divmod(remaining_ms, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def _is_bare_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
