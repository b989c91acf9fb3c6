"""Turn pydantic's ``ValidationError`` into one plain line per problem.

Each line is ``key.path[0].name: what is wrong (got VALUE)``: TOML words ("table", "array"),
never pydantic's type names or documentation URLs. Values of unknown keys and values raised as
:class:`HiddenValueError` are never echoed, because they may hold a secret.
"""

from __future__ import annotations

import datetime as dt
import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

__all__ = ["HiddenValueError", "describe_validation_error", "key_path"]

_MAX_VALUE_CHARS = 60

_EXPECTED: dict[str, str] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "tuple_type": "an array",
    "list_type": "an array",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "path_type": "a path string",
}


class HiddenValueError(ValueError):
    """A validation failure whose bad value is not repeated after the message.

    Raised when the value may carry a credential (a URL with a password), or when the message
    already names the values that clash.
    """


def describe_validation_error(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """One ``"key.path: message"`` line per problem in ``error``, validated against ``root``."""
    details = error.errors(include_url=False)
    item_locs = {tuple(d["loc"][:-1]) for d in details if len(d["loc"]) > 1}
    lines: list[str] = []
    for detail in details:
        loc = tuple(detail["loc"])
        if detail["type"] == "too_short" and any(item[: len(loc)] == loc for item in item_locs):
            continue  # pydantic counts only the valid items; the bad ones are reported already
        for message in _message(detail, loc, root).splitlines():
            lines.append(f"{key_path(loc)}: {message}")
    return lines


def key_path(loc: Sequence[int | str]) -> str:
    """``("folders", 1, "purpose")`` -> ``"folders[1].purpose"``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _message(detail: Any, loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    kind: str = detail["type"]
    ctx: dict[str, Any] = detail.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(loc, root)
    if loc == ("folders",) and kind in {"missing", "too_short"}:
        return "at least one [[folders]] table is required"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        cause = ctx.get("error")
        text = str(cause)
        if isinstance(cause, HiddenValueError):
            return text
        return f"{text} (got {_show(detail['input'])})"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return f"must be {_allowed_range(root, loc)} (got {_show(detail['input'])})"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']} (got {_show(detail['input'])})"
    if kind in {"string_too_short", "too_short"}:
        return "must not be empty"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]} (got {_show(detail['input'])})"
    return f"{detail['msg']} (got {_show(detail['input'])})"


def _unknown_key(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    key = str(loc[-1])
    model = _model_at(root, loc[:-1])
    if model is None:
        return "unknown key"
    allowed = sorted(_key_names(model))
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key; {hint}allowed here: {', '.join(allowed)}"


def _allowed_range(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    field = _field_at(root, loc)
    low = high = None
    for rule in field.metadata if field else ():
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge
        elif isinstance(rule, annotated_types.Le):
            high = rule.le
    if low is not None and high is not None:
        return f"between {low} and {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return "in range"


def _key_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _field_named(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in {name, info.alias}:
            return info
    return None


def _field_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> FieldInfo | None:
    if not loc or isinstance(loc[-1], int):
        return None
    model = _model_at(root, loc[:-1])
    return _field_named(model, loc[-1]) if model else None


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the table at ``loc``, if the path leads to one."""
    current: object = root
    for part in loc:
        if isinstance(part, int):
            continue  # the element type was already unwrapped from tuple[X, ...]
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = _field_named(current, part)
        if field is None:
            return None
        current = _element_type(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _element_type(annotation: object) -> object:
    """``tuple[X, ...]`` and ``X | None`` -> ``X``; anything else unchanged."""
    origin = typing.get_origin(annotation)
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if origin in {tuple, list, typing.Union, types.UnionType} and args:
        return args[0]
    return annotation


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        shown = repr(value)
        return shown if len(shown) <= _MAX_VALUE_CHARS else shown[: _MAX_VALUE_CHARS - 4] + "...'"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dt.date | dt.time):
        return "a date/time"
    return type(value).__name__
