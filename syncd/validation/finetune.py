"""Schema of one fine-tuning record: chat, function calling, pretrain text or classifier.

Accepted shapes (one JSON object per line; extra top-level keys such as ``tools`` are allowed):

* chat: ``{"messages": [...]}``: roles system/user/assistant/tool, ``content`` a string or a
  list of parts (absent or null only on an assistant message with ``tool_calls``), optional
  ``"weight"`` 0 or 1, at least one assistant message and the last one from the assistant;
* function calling: an assistant ``tool_calls`` list of
  ``{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}``, each
  answered by a later ``tool`` message with that ``tool_call_id``, each name defined in a
  top-level ``"tools"`` list;
* pretrain: ``{"text": "..."}`` with non-blank text;
* classifier: ``{"text": ..., "labels": {...}}`` or ``{"messages": [...], "labels": {...}}``
  where each label is a string or a list of strings; its chat need not end with the assistant.

Functions return problems as messages without the line number; the caller adds it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from syncd.validation.jsonl import json_type, short_repr

__all__ = ["ROLES", "check_finetune_record"]

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
_ROLE_LIST = ", ".join(ROLES)


def check_finetune_record(record: Mapping[str, Any]) -> list[str]:
    """Every way ``record`` misses the accepted fine-tuning formats (empty when it fits)."""
    has_messages = "messages" in record
    has_text = "text" in record
    if has_messages and has_text:
        return ['has both "messages" and "text"; a record is either a chat or a text']
    if not (has_messages or has_text):
        return [
            'expected "messages" (chat), "text" (pretrain) or either with "labels" '
            f"(classifier); got keys: {_key_list(record)}"
        ]
    problems: list[str] = []
    is_classifier = "labels" in record
    if has_messages:
        _ChatCheck(problems, is_classifier=is_classifier).run(record["messages"], record)
    else:
        text = record["text"]
        if not isinstance(text, str) or not text.strip():
            problems.append(f'"text" must be a non-empty string, got {_describe(text)}')
    if is_classifier:
        _check_labels(record["labels"], problems)
    return problems


def _key_list(record: Mapping[str, Any], shown: int = 5) -> str:
    keys = [short_repr(key, 30) for key in list(record)[:shown]]
    more = f" and {len(record) - shown} more" if len(record) > shown else ""
    return (", ".join(keys) + more) if keys else "none"


def _describe(value: object) -> str:
    if isinstance(value, str):
        return "an empty string" if not value.strip() else f"the string {short_repr(value)}"
    return json_type(value)


def _check_labels(labels: object, problems: list[str]) -> None:
    if not isinstance(labels, dict) or not labels:
        problems.append(f'"labels" must be a non-empty object, got {_describe(labels)}')
        return
    for name, value in labels.items():
        is_string_list = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not (isinstance(value, str) or is_string_list):
            problems.append(
                f"label {short_repr(name)} must be a string or a list of strings, "
                f"got {json_type(value)}"
            )


class _ChatCheck:
    """Checks one ``messages`` list; collects problems and the tool calls it has seen."""

    def __init__(self, problems: list[str], *, is_classifier: bool) -> None:
        self.problems = problems
        self.is_classifier = is_classifier
        self.open_calls: dict[str, int] = {}  # tool call id -> number of the message making it
        self.called_names: dict[str, int] = {}  # function name -> first message calling it

    def run(self, messages: object, record: Mapping[str, Any]) -> None:
        if not isinstance(messages, list) or not messages:
            self.problems.append(f'"messages" must be a non-empty list, got {_describe(messages)}')
            return
        last_role: str | None = None
        for number, message in enumerate(messages, 1):
            last_role = self._message(number, message)
        for call_id, number in self.open_calls.items():
            self.problems.append(
                f"message {number}: tool call {short_repr(call_id)} is not answered by a later "
                "tool message"
            )
        if self.called_names:
            self._check_tools_defined(record)
        if not self.is_classifier and last_role is not None and last_role != "assistant":
            self.problems.append(f"last message must be from the assistant, got {last_role!r}")

    def _message(self, number: int, message: object) -> str | None:
        """Check one message; its role when valid, else None."""
        where = f"message {number}"
        if not isinstance(message, dict):
            self.problems.append(f"{where}: expected an object, got {json_type(message)}")
            return None
        if "role" not in message:
            self.problems.append(f'{where}: missing "role"')
            return None
        role = message["role"]
        if role not in ROLES:  # also rejects non-strings: they equal no role
            self.problems.append(
                f"{where}: role {short_repr(role)} is not one of {_ROLE_LIST}"
                if isinstance(role, str)
                else f'{where}: "role" must be a string, got {json_type(role)}'
            )
            return None
        has_calls = False
        if "tool_calls" in message:
            if role == "assistant":
                has_calls = self._tool_calls(where, number, message["tool_calls"])
            else:
                self.problems.append(f'{where}: only assistant messages may have "tool_calls"')
        self._content(where, role, message.get("content"), has_calls=has_calls)
        if "weight" in message:
            weight = message["weight"]
            if isinstance(weight, bool) or weight not in (0, 1):
                self.problems.append(f'{where}: "weight" must be 0 or 1, got {short_repr(weight)}')
        if role == "tool":
            self._tool_answer(where, message.get("tool_call_id"))
        return str(role)

    def _content(self, where: str, role: str, content: object, *, has_calls: bool) -> None:
        if content is None:
            if role == "assistant" and not has_calls:
                self.problems.append(
                    f'{where}: an assistant message needs "content" or "tool_calls"'
                )
            elif role != "assistant":
                self.problems.append(f'{where}: missing "content"')
            return
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            self.problems.append(
                f'{where}: "content" must be a string or a list, got {json_type(content)}'
            )
            return
        for index, part in enumerate(content, 1):
            if not (isinstance(part, dict) and isinstance(part.get("type"), str)):
                self.problems.append(
                    f'{where}: content part {index} must be an object with a "type" string'
                )

    def _tool_calls(self, where: str, number: int, calls: object) -> bool:
        """Check an assistant's ``tool_calls``; True when it is a non-empty list."""
        if not isinstance(calls, list) or not calls:
            self.problems.append(f'{where}: "tool_calls" must be a non-empty list')
            return False
        for index, call in enumerate(calls, 1):
            call_where = f"{where}, tool call {index}"
            if not isinstance(call, dict):
                self.problems.append(f"{call_where}: expected an object, got {json_type(call)}")
                continue
            call_id = call.get("id")
            if isinstance(call_id, str) and call_id:
                self.open_calls[call_id] = number
            else:
                self.problems.append(f'{call_where}: "id" must be a non-empty string')
            if call.get("type") != "function":
                self.problems.append(
                    f'{call_where}: "type" must be "function", got {short_repr(call.get("type"))}'
                )
            self._function(call_where, number, call.get("function"))
        return True

    def _function(self, where: str, number: int, function: object) -> None:
        if not isinstance(function, dict):
            self.problems.append(
                f'{where}: "function" must be an object with "name" and "arguments"'
            )
            return
        name = function.get("name")
        if isinstance(name, str) and name:
            self.called_names.setdefault(name, number)
        else:
            self.problems.append(f'{where}: "function.name" must be a non-empty string')
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            self.problems.append(
                f'{where}: "function.arguments" must be a string of JSON, '
                f"got {json_type(arguments)}"
            )
            return
        try:
            json.loads(arguments)
        except (ValueError, RecursionError):
            self.problems.append(f'{where}: "function.arguments" is not valid JSON text')

    def _tool_answer(self, where: str, call_id: object) -> None:
        if not isinstance(call_id, str) or not call_id:
            self.problems.append(f'{where}: a tool message needs a "tool_call_id" string')
        elif self.open_calls.pop(call_id, None) is None:
            self.problems.append(
                f"{where}: tool_call_id {short_repr(call_id)} answers no earlier tool call"
            )

    def _check_tools_defined(self, record: Mapping[str, Any]) -> None:
        tools = record.get("tools")
        if not isinstance(tools, list):
            names = ", ".join(short_repr(name) for name in self.called_names)
            got = f", got {json_type(tools)}" if "tools" in record else ""
            self.problems.append(
                f'tool calls ({names}) need a top-level "tools" list defining them{got}'
            )
            return
        defined: set[str] = set()
        for tool in tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if isinstance(name, str):
                defined.add(name)
        for name, number in self.called_names.items():
            if name not in defined:
                self.problems.append(
                    f"message {number}: tool {short_repr(name)} is called "
                    'but not defined in "tools"'
                )
