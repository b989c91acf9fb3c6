"""Query parameters of the page and ``/api``: parsed, range-checked, or a 400 naming them."""

from __future__ import annotations

from collections.abc import Mapping

from syncd.domain import LocalState

__all__ = ["BadQueryError", "int_param", "page_number", "states_param"]


class BadQueryError(ValueError):
    """A query parameter out of range: answered 400 with this message."""


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """``params[name]`` as a whole number in ``low..high``; ``default`` when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQueryError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise BadQueryError(f"{name} must be between {low} and {high}, got {value}")
    return value


def page_number(params: Mapping[str, str], name: str) -> int:
    """A 1-based page number (1 when absent)."""
    return int_param(params, name, 1, 1, 2**31)


def states_param(params: Mapping[str, str]) -> tuple[LocalState, ...] | None:
    """``state=pending,failed`` as states; None (every state) when absent."""
    raw = params.get("state")
    if not raw:
        return None
    try:
        return tuple(LocalState(part.strip()) for part in raw.split(","))
    except ValueError:
        known = ", ".join(state.value for state in LocalState)
        raise BadQueryError(f"state must be one or more of {known} (comma-separated)") from None
