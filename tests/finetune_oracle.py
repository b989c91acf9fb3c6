"""The reference verdict on one fine-tuning record: Mistral's own code, as mistral-finetune runs it.

mistral-finetune (github.com/mistralai/mistral-finetune, ``finetune/data/tokenize.py``) reads an
instruct sample in ``build_instruct_sample``: it builds ``mistral_common`` message objects from
the record's known keys, turns system messages into the one system prompt, parses ``tools`` (or
``available_tools``), then validates with ``MistralRequestValidatorV3(ValidationMode.finetuning)``
and finally builds a ``TrainingInstructSample``. Any exception on that path means the sample is
refused. :func:`oracle_verdict` follows the same steps, in the same order and with the same
lookups (``in`` tests, ``.get``, ``len``), and calls the real ``mistral_common`` classes and
validator (the version pinned in the ``test`` extra), so that pydantic's coercions and the
validator's rules are Mistral's, not ours.

Records without ``messages``/``interactions`` are not conversations; this oracle does not judge
them (see :func:`judges`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mistral_common.protocol.instruct.messages import (
    FinetuningAssistantMessage,
    Roles,
    ToolMessage,
    UserMessage,
)
from mistral_common.protocol.instruct.request import InstructRequest
from mistral_common.protocol.instruct.tool_calls import Function, FunctionCall, Tool, ToolCall
from mistral_common.protocol.instruct.validator import MistralRequestValidatorV3, ValidationMode

__all__ = ["judges", "oracle_verdict"]

_MESSAGES_KEYS = ("messages", "interactions")
_CONTENT_KEYS = ("content", "text")


class _TrainingInstructSample(InstructRequest):  # type: ignore[type-arg]
    """mistral-finetune's sample type: an instruct request plus its two training fields."""

    available_tools: list[Tool] | None = None
    only_last: bool = False


def judges(record: Mapping[str, Any]) -> bool:
    """Whether this oracle has a verdict: the record is a conversation without ``labels``."""
    return any(key in record for key in _MESSAGES_KEYS) and "labels" not in record


def oracle_verdict(record: Any) -> str | None:
    """None when Mistral's fine-tuning code accepts ``record``, else why it refuses it."""
    try:
        _build_instruct_sample(record)
    except Exception as exc:  # noqa: BLE001 - any failure on Mistral's path is a refusal
        return f"{type(exc).__name__}: {exc}"
    return None


def _build_instruct_sample(data: Any) -> None:
    messages: list[Any] = []
    available_tools = data.get("available_tools")
    system_prompt = data.get("system_prompt")
    if not any(key in data for key in _MESSAGES_KEYS):
        raise ValueError("no messages")
    if all(key in data for key in _MESSAGES_KEYS):
        raise ValueError("both messages and interactions")
    data_messages = None
    for key in _MESSAGES_KEYS:
        data_messages = data[key] if key in data else data_messages  # noqa: SIM401 - as [MF]
    if data_messages is None:
        raise ValueError("messages is null")
    if "available_tools" in data and "tools" in data:
        raise ValueError("both available_tools and tools")
    if data.get("tools", None) is not None and len(data["tools"]) > 0:
        available_tools = _parse_tools(data["tools"])
    elif data.get("available_tools", None) is not None and len(data["available_tools"]) > 0:
        available_tools = _parse_tools(data["available_tools"])

    for data_message in data_messages:
        is_tool_call = data_message.get("tool_calls") is not None
        if "role" not in data_message:
            raise ValueError("message without role")
        role = data_message["role"]
        if all(key in data_message for key in _CONTENT_KEYS):
            raise ValueError("both text and content")
        content = None
        for key in _CONTENT_KEYS:
            content = content if content is not None else data_message.get(key)
        if not is_tool_call and content is None:
            raise ValueError("message without content")
        if role not in [r.value for r in Roles]:
            raise ValueError(f"unknown role {role!r}")
        if role == "user":
            if content is None:
                raise AssertionError("user content is None")
            messages.append(UserMessage(content=content))
        elif role == "assistant":
            tool_calls = _parse_tool_calls(data_message["tool_calls"]) if is_tool_call else None
            weight = data_message.get("weight")
            messages.append(
                FinetuningAssistantMessage(content=content, tool_calls=tool_calls, weight=weight)
            )
        elif role == "system":
            if system_prompt is not None:
                raise ValueError("several system messages")
            system_prompt = content
        elif role == "tool":
            if content is None:
                raise AssertionError("tool content is None")
            if "tool_call_id" not in data_message:
                raise ValueError("tool message without tool_call_id")
            messages.append(
                ToolMessage(
                    content=content,
                    tool_call_id=data_message["tool_call_id"],
                    name=data_message.get("name"),
                )
            )

    validator = MistralRequestValidatorV3(ValidationMode.finetuning)
    validator.validate_messages(messages)
    validator._validate_tools(available_tools or [])
    only_last = data.get("only_last", False) or available_tools is not None
    _TrainingInstructSample(
        messages=messages,
        system_prompt=system_prompt,
        available_tools=available_tools,
        only_last=only_last,
    )


def _parse_tools(tools: Any) -> list[Tool]:
    parsed = []
    for tool in tools:
        if "function" not in tool:
            raise ValueError("tool without function")
        func_data = tool["function"]
        for key in ("name", "description", "parameters"):
            if key not in func_data:
                raise ValueError(f"function without {key}")
        if not isinstance(func_data["parameters"], dict):
            raise ValueError("parameters is not a dict")
        function = Function(
            name=func_data["name"],
            description=func_data["description"],
            parameters=func_data["parameters"],
        )
        parsed.append(Tool(function=function))
    return parsed


def _parse_tool_calls(calls: Any) -> list[ToolCall]:
    for key in ("id", "function"):
        if not all(key in call for call in calls):
            raise ValueError(f"tool call without {key}")
    for key in ("name", "arguments"):
        if not all(key in call["function"] for call in calls):
            raise ValueError(f"tool call function without {key}")
    if not all(isinstance(call["function"]["arguments"], str) for call in calls):
        raise ValueError("arguments is not a string")
    return [
        ToolCall(
            id=call["id"],
            function=FunctionCall(
                name=call["function"]["name"], arguments=call["function"]["arguments"]
            ),
        )
        for call in calls
    ]
