"""Reading request parameters the way the real (FastAPI) service does, and its error shapes.

Invalid query or form values become FastAPI-style 422 items (``type``, ``loc``, ``msg``,
``input``); ids that are not UUIDs can never name a file.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = [
    "InvalidInputError",
    "bool_param",
    "canonical_id",
    "enum_param",
    "int_param",
    "json_object_body",
    "not_found",
    "unprocessable",
]


class InvalidInputError(Exception):
    """A query/form value failed validation; carries one FastAPI-style error item."""

    def __init__(
        self,
        kind: str,
        loc: list[str],
        msg: str,
        value: object,
        ctx: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(msg)
        self.item: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
        if ctx is not None:
            self.item["ctx"] = ctx


def unprocessable(*items: dict[str, Any]) -> JSONResponse:
    """A 422 answer listing FastAPI-style error items."""
    return JSONResponse({"detail": list(items)}, status_code=422)


def not_found(file_id: str) -> JSONResponse:
    """The 404 answer for a file id that names no live file."""
    return JSONResponse({"detail": f"File {file_id} not found."}, status_code=404)


def canonical_id(raw: str) -> str | None:
    """The canonical form of a UUID file id, or None: a non-UUID can never name a file."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def int_param(raw: str | None, loc: list[str], default: int, minimum: int, maximum: int) -> int:
    """``raw`` as an int in ``minimum..maximum`` (``default`` when absent).

    Raises:
        InvalidInputError: not an integer, or out of range.
    """
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(
            "int_parsing", loc, "Input should be a valid integer", raw
        ) from None
    if value < minimum:
        raise InvalidInputError(
            "greater_than_equal",
            loc,
            f"Input should be greater than or equal to {minimum}",
            raw,
            {"ge": minimum},
        )
    if value > maximum:
        raise InvalidInputError(
            "less_than_equal",
            loc,
            f"Input should be less than or equal to {maximum}",
            raw,
            {"le": maximum},
        )
    return value


def enum_param(raw: str, loc: list[str], allowed: tuple[str, ...]) -> str:
    """``raw`` if it is one of ``allowed``: a closed enum, as pydantic checks one.

    Raises:
        InvalidInputError: anything else, with pydantic's ``enum`` error (``msg`` and
            ``ctx.expected`` list the members: ``'a', 'b' or 'c'``).
    """
    if raw in allowed:
        return raw
    quoted = [f"'{member}'" for member in allowed]
    expected = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    raise InvalidInputError("enum", loc, f"Input should be {expected}", raw, {"expected": expected})


def bool_param(raw: str | None, loc: list[str], default: bool) -> bool:
    """``raw`` as a boolean, accepting the spellings FastAPI accepts.

    Raises:
        InvalidInputError: not a recognisable boolean.
    """
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise InvalidInputError("bool_parsing", loc, "Input should be a valid boolean", raw)


async def json_object_body(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object.

    Raises:
        InvalidInputError: not JSON (``json_invalid``) or not an object (``model_type``).
    """
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInputError("json_invalid", ["body"], "JSON decode error", None) from None
    if not isinstance(body, dict):
        raise InvalidInputError("model_type", ["body"], "Input should be an object", body)
    return body
