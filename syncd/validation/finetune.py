"""Schema of one fine-tuning record, judged as Mistral's own fine-tuning code judges it.

The rule is asymmetric: a record is refused (the file quarantined) only where Mistral's code
refuses it, and everything Mistral refuses is refused here. Where Mistral's docs ask for more
than its code enforces, the record gets a *warning*: shown in the log and ``syncd status``,
never a quarantine.

Sources, cited beside each rule below:

* **[MF]** mistral-finetune, ``finetune/data/tokenize.py``: ``build_instruct_sample`` (how a
  conversation becomes ``mistral_common`` objects), ``_parse_available_tools``,
  ``_parse_tool_calls``, ``_parse_tool_message``, ``get_pretrain_sample``.
* **[MC]** mistral-common, ``protocol/instruct/validator.py``: ``MistralRequestValidatorV3`` in
  ``ValidationMode.finetuning``, which [MF] runs on every sample; and the pydantic models of
  ``protocol/instruct/messages.py``, ``chunk.py``, ``tool_calls.py`` and ``request.py``
  (``extra="forbid"``; lax coercion of numbers and booleans).
* **[DOCS]** docs.mistral.ai, "Fine-tuning" (text and function-calling data formats) and
  "Classifier factory" (``labels`` records), which [MF] does not read.

Accepted shapes (one JSON object per line):

* conversation: ``messages`` (or [MF]'s alternative ``interactions``) and optionally ``tools`` (or
  ``available_tools``), ``system_prompt``, ``only_last``; other keys are ignored;
* pretrain: ``text`` (or [MF]'s ``content``) holding a string;
* classifier ([DOCS]): ``text`` or ``messages`` with ``labels``.

tests/test_validation_oracle.py proves, on thousands of generated conversations, that
:func:`check_finetune_record` refuses exactly what mistral-common's validator refuses when applied
the way mistral-finetune applies it (tests/finetune_oracle.py).

Functions return problems as messages without the line number; the caller adds it.
"""

from __future__ import annotations

import functools
import json
import marshal
import re
from collections.abc import Callable, Mapping
from typing import Any

from syncd.validation.jsonl import json_type, short_repr

__all__ = ["ROLES", "check_finetune_record"]

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
_ROLE_LIST = ", ".join(ROLES)

# [MF] build_instruct_sample: both spellings are read, one at a time.
_MESSAGES_KEYS = ("messages", "interactions")
_CONTENT_KEYS = ("content", "text")

# [MC] MistralRequestValidatorV3._validate_tool_call_id / _validate_tool_message_id.
_CALL_ID = re.compile(r"[a-zA-Z0-9]{9}")
_NULL_CALL_ID = "null"
# [MC] MistralRequestValidator._validate_function / _validate_function_call.
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")

# [MC] chunk.py, messages.py and the V3 validator together: the content chunk types each role
# may carry. System content must be a plain string ([MF] makes it the InstructRequest's
# ``system_prompt: str``); audio and thinking chunks are refused in every role under V3.
_CHUNKS_BY_ROLE: dict[str, frozenset[str]] = {
    "user": frozenset({"text", "image", "image_url"}),
    "assistant": frozenset({"text"}),
    "tool": frozenset({"text"}),
}
# [MC] chunk.py: each chunk's fields (``extra="forbid"``); the required one is listed first.
_CHUNK_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "image": ("image",),
    "image_url": ("image_url",),
    "input_audio": ("input_audio",),
    "audio_url": ("audio_url",),
    "thinking": ("thinking", "closed"),
}

_DOCS_TOOLS = 'Mistral\'s docs define every called function in a top-level "tools" list'


def check_finetune_record(
    record: Mapping[str, Any], warnings: list[str] | None = None
) -> list[str]:
    """Every way Mistral's fine-tuning code would refuse ``record`` (empty when it accepts it).

    Warnings (accepted, but not as Mistral's docs describe it) are appended to ``warnings``
    when a list is given.
    """
    # The common records, judged by fast paths that answer "accepted, no warning" only where
    # the full check below would say so too (tests/test_validation_fast.py compares them).
    if (len(record) == 1 and _is_plain_chat(record.get("messages"))) or _is_clean_tool_chat(record):
        return []
    return _check_record(record, [] if warnings is None else warnings)


def _check_record(record: Mapping[str, Any], noted: list[str]) -> list[str]:
    """:func:`check_finetune_record` without its fast paths: every rule, on every record."""
    if "messages" in record or "interactions" in record:
        if "labels" in record:
            return _check_classifier_chat(record)
        if "text" in record:
            noted.append('the top-level "text" is ignored: the record is read as a conversation')
        return _ConversationCheck(record, noted).run()
    if "text" in record or "content" in record:
        problems = _check_pretrain(record, noted)
        if "labels" in record:
            _check_labels(record["labels"], problems)
        return problems
    return [
        'expected "messages" (chat), "text" (pretrain) or either with "labels" '
        f"(classifier); got keys: {_key_list(record)}"
    ]


def _is_plain_chat(messages: object) -> bool:
    """Whether ``messages`` is a plain chat that :class:`_ConversationCheck` accepts without a
    warning: ``{"role": ..., "content": str}`` messages (a ``weight`` of 0 or 1 allowed), at most
    one of them a system message, two or more from the user and the assistant, every assistant
    message with content, the last one from the assistant. The same rules as the full check for
    such messages, in one tight loop: this is most records of most files, and the full check
    costs several times the JSON parse."""
    if type(messages) is not list or len(messages) < 2:
        return False
    role: object = None
    system = False
    for message in messages:
        if type(message) is not dict:
            return False
        size = len(message)
        if size != 2 and not (size == 3 and message.get("weight", 2) in (0, 1)):
            return False
        content = message.get("content")
        if type(content) is not str:
            return False
        kind = message.get("role")
        if kind == "assistant":
            if not content:
                return False
        elif kind == "system":
            if system:
                return False  # a second system prompt is refused
            system = True
            continue  # not part of the conversation's structure
        elif kind != "user":
            return False
        role = kind
    return role == "assistant" and len(messages) - system >= 2


def _is_clean_tool_chat(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` is a function-calling conversation that the full check accepts
    without a warning, judged with plain type and key lookups: the full check costs about 15
    plain chats on such a record. False at any doubt (the full check then runs and says why).

    Every value the full check reads is read here, with a condition at least as strict:

    * the record has "messages" and a non-empty "tools" list and no other key (no
      "interactions", "available_tools", "system_prompt", "only_last", "text" or "labels");
    * "tools" is clean by the full check's own rules (:func:`_tool_names`, once per distinct
      list: a file repeats the same few on every line);
    * every message is an object without "text" (so "content" is its content), with the role
      ``system`` (the first system message, string content), ``user`` (string content),
      ``tool`` (string content, a 9-character call id, a valid function name if any) or
      ``assistant`` (a weight of None, 0 or 1 as an int, and either non-empty string content
      or a non-empty list of valid calls, with null or "" content, to defined functions with
      JSON arguments and 9-character ids, never "null", which only the last message may have);
    * the order of the messages passes :meth:`_ConversationCheck._structure`, whose rules are
      repeated below on the same user/assistant/tool messages (system messages are not part
      of it).
    """
    if len(record) != 2:
        return False
    messages = record.get("messages")
    tools = record.get("tools")
    if type(messages) is not list or type(tools) is not list or not tools:
        return False
    defined = _tool_names(tools)
    if defined is None:
        return False
    system = False
    built = 0  # user, assistant and tool messages: the ones _structure sees
    previous = ""  # the role of the one before
    expected_answers = 0
    for message in messages:
        if type(message) is not dict or "text" in message:
            return False
        role = message.get("role")
        content = message.get("content")
        if role == "assistant":
            weight = message.get("weight")
            if not (weight is None or (type(weight) is int and weight in (0, 1))):
                return False
            calls = message.get("tool_calls")
            if calls is None:
                if type(content) is not str or not content:
                    return False  # no content and no calls
            elif not (
                type(calls) is list
                and calls
                and (content is None or content == "")
                and all(_is_clean_call(call, defined) for call in calls)
            ):
                return False
            # _structure: from the second message on, an assistant message closes the calls
            # before it, which must all have been answered.
            if built:
                if expected_answers != 0:
                    return False
                if calls is not None:
                    expected_answers = len(calls)
        elif role == "user":
            if type(content) is not str:
                return False
        elif role == "tool":
            call_id = message.get("tool_call_id")
            name = message.get("name")
            if not (
                type(content) is str
                and type(call_id) is str
                and _CALL_ID.fullmatch(call_id)
                and (name is None or (type(name) is str and _FUNCTION_NAME.fullmatch(name)))
            ):
                return False
            if built:  # _structure: one answer to the calls before it, never after a user
                if previous == "user":
                    return False
                expected_answers -= 1
        elif role == "system" and not system and type(content) is str:
            system = True
            continue  # not part of the conversation's structure
        else:
            return False
        built += 1
        previous = role
    # _structure: two messages or more (one alone is refused whatever it is), the last one
    # from the assistant.
    return built >= 2 and previous == "assistant"


def _is_clean_call(call: object, defined: frozenset[str]) -> bool:
    """A tool call the full check accepts without a warning on any message: ``{"id": 9
    alphanumerics, "function": {"name": a defined function, "arguments": JSON text}}``."""
    if type(call) is not dict:
        return False
    call_id = call.get("id")
    function = call.get("function")
    if type(call_id) is not str or type(function) is not dict or not _CALL_ID.fullmatch(call_id):
        return False
    name = function.get("name")
    arguments = function.get("arguments")
    return (
        type(name) is str
        and name in defined
        and type(arguments) is str
        and _is_json(arguments)
        and _FUNCTION_NAME.fullmatch(name) is not None
    )


def _tool_names(tools: list[Any]) -> frozenset[str] | None:
    """The functions a clean "tools" list defines, or None when the full check would find a
    problem in it (or cannot be sure: a value that is not plain data)."""
    # A file repeats the same few tools lists on every line: each distinct one is judged once,
    # by the full check itself. marshal makes the key because it is exact and cheap: it writes
    # each value's type (1, 1.0 and true stay apart, as they must for a JSON schema), so equal
    # keys mean equal values and equal verdicts; json.dumps of the list costs 5x more.
    try:
        key = marshal.dumps(tools)
    except ValueError:  # not plain data, or nested too deeply
        return None
    try:
        return _TOOL_NAMES[key]
    except KeyError:
        pass
    warnings: list[str] = []
    check = _ConversationCheck({"tools": tools}, warnings)
    check._tools()
    clean = not (check.problems or warnings or check.defined_tools is None)
    if len(_TOOL_NAMES) >= 64:
        _TOOL_NAMES.clear()  # bounded: a file of ever-different tools lists just misses
    names = _TOOL_NAMES[key] = frozenset(check.defined_tools or ()) if clean else None
    return names


#: Verdicts of :func:`_tool_names` by key.
_TOOL_NAMES: dict[bytes, frozenset[str] | None] = {}


def _key_list(record: Mapping[str, Any], shown: int = 5) -> str:
    keys = [short_repr(key, 30) for key in list(record)[:shown]]
    more = f" and {len(record) - shown} more" if len(record) > shown else ""
    return (", ".join(keys) + more) if keys else "none"


def _describe(value: object) -> str:
    if isinstance(value, str):
        return "an empty string" if not value.strip() else f"the string {short_repr(value)}"
    return json_type(value)


def _either(record: Mapping[str, Any], first: str, second: str, noun: str) -> tuple[str, str]:
    """[MF] reads one of two spellings of a key, never both: the one present (``first`` when
    neither is), and why the record is refused when both are (else "")."""
    if first in record and second in record:
        return first, f'has both "{first}" and "{second}"; {noun} has one of them'
    return (first if first in record else second), ""


def _check_pretrain(record: Mapping[str, Any], warnings: list[str]) -> list[str]:
    """[MF] get_pretrain_sample: ``text`` or ``content`` (not both) holding a string."""
    key, both = _either(record, "text", "content", "a pretrain record")
    if both:
        return [both]
    text = record[key]
    if not isinstance(text, str):
        return [f'"{key}" must be a string, got {json_type(text)}']
    if not text.strip():
        warnings.append(f'"{key}" is empty: the record adds nothing to train on')
    return []


def _check_labels(labels: object, problems: list[str]) -> None:
    """[DOCS] classifier factory: ``labels`` maps each label name to a string or strings."""
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


def _check_classifier_chat(record: Mapping[str, Any]) -> list[str]:
    """[DOCS] classifier chats: messages with a known role and content; no assistant needed."""
    problems: list[str] = []
    key = "messages" if "messages" in record else "interactions"
    messages = record[key]
    if not isinstance(messages, list) or not messages:
        problems.append(f'"{key}" must be a non-empty list, got {_describe(messages)}')
    else:
        for number, message in enumerate(messages, 1):
            where = f"message {number}"
            if not isinstance(message, dict):
                problems.append(f"{where}: expected an object, got {json_type(message)}")
            elif message.get("role") not in ROLES:
                problems.append(f"{where}: role must be one of {_ROLE_LIST}")
            elif not isinstance(message.get("content"), str | list):
                problems.append(f'{where}: "content" must be a string or a list')
    _check_labels(record["labels"], problems)
    return problems


@functools.cache
def _lax(kind: str) -> Any:
    """pydantic's lax validator for ``kind``: the exact coercions mistral-common's models apply
    (``weight: float | None``, ``only_last: bool``), so "1", 1.0 and true read as Mistral reads
    them."""
    from pydantic import TypeAdapter

    return TypeAdapter(float | None) if kind == "weight" else TypeAdapter(bool)


def _coerces(kind: str, value: object) -> tuple[bool, Any]:
    from pydantic import ValidationError

    try:
        return True, _lax(kind).validate_python(value)
    except ValidationError:
        return False, None


#: A message as mistral-finetune builds it: (role, number in the record, content, tool calls).
#: A plain tuple: a record's messages are built by the hundred thousand per file.
_Message = tuple[str, int, object, "list[dict[str, Any]] | None"]


class _ConversationCheck:
    """[MF] build_instruct_sample followed by [MC] the V3 finetuning validator, for one record."""

    def __init__(self, record: Mapping[str, Any], warnings: list[str]) -> None:
        self.record = record
        self.warnings = warnings
        self.problems: list[str] = []
        self.defined_tools: set[str] | None = None  # names in "tools", None when there is none
        self.called: dict[str, int] = {}  # function name -> first message calling it
        self.system_prompt: object = None  # [MF] the one system prompt, once one is seen

    def run(self) -> list[str]:
        record = self.record
        key, both = _either(record, "messages", "interactions", "a conversation")
        if both:
            return [both]
        messages = record[key]
        if not isinstance(messages, list):
            return [f'"{key}" must be a list of messages, got {_describe(messages)}']
        # [MF] "tools" and "available_tools" exclude each other.
        if "tools" in record and "available_tools" in record:
            return ['has both "tools" and "available_tools"; use one of them']
        if "tools" in record or "available_tools" in record:
            self._tools()
        if record.get("system_prompt") is not None:
            self.system_prompt = self._system_prompt(record["system_prompt"], "system_prompt")
        built: list[_Message] = []
        append = built.append
        for number, message in enumerate(messages, 1):
            # The common message, {"role": "user" or "assistant", "content": "..."} (maybe
            # with a weight of 0 or 1), needs no further look: this loop runs for every message
            # of every record of a file.
            if type(message) is dict and (
                len(message) == 2 or (len(message) == 3 and message.get("weight", 2) in (0, 1))
            ):
                role = message.get("role")
                content = message.get("content")
                if type(content) is str and (role == "user" or role == "assistant"):
                    append((role, number, content, None))
                    continue
            built_message = self._message(number, message)
            if built_message is not None:
                append(built_message)
        if not self.problems:
            self._structure(built, key)
            if "only_last" in record:
                self._only_last()
            if self.called:
                self._warn_undefined_calls()
        return self.problems

    # -- top-level keys ----------------------------------------------------------------------

    def _tools(self) -> None:
        """Check ``tools`` / ``available_tools``."""
        record = self.record
        for key in ("tools", "available_tools"):
            value = record.get(key)
            if value is None:
                continue
            # [MF] build_instruct_sample: parsed when non-empty (``len``), so a value without a
            # length (number, boolean) is refused and an empty one is skipped.
            if not isinstance(value, list | dict | str):
                self.problems.append(f'"{key}" must be a list of tools, got {json_type(value)}')
            elif value:
                self._tool_list(key, value)
            elif key == "available_tools" and not isinstance(value, list):
                # [MC] request.py: left unparsed, it must still be an ``available_tools`` list.
                self.problems.append(f'"{key}" must be a list of tools, got {_describe(value)}')
            return

    def _tool_list(self, key: str, tools: object) -> None:
        """[MF] _parse_available_tools, then [MC] _validate_tools (name, Draft 7 schema)."""
        if not isinstance(tools, list):
            self.problems.append(f'"{key}" must be a list of tools, got {json_type(tools)}')
            return
        self.defined_tools = set()
        for index, tool in enumerate(tools, 1):
            where = f"{key} {index}"
            if not isinstance(tool, dict) or "function" not in tool:
                self.problems.append(f'{where}: expected an object with a "function"')
                continue
            function = tool["function"]
            if not isinstance(function, dict):
                self.problems.append(
                    f'{where}: "function" must be an object, got {json_type(function)}'
                )
                continue
            missing = [k for k in ("name", "description", "parameters") if k not in function]
            if missing:
                # [MF] requires all three keys, even where the docs leave description out.
                listed = ", ".join(f'"{k}"' for k in missing)
                self.problems.append(f"{where}: the function needs {listed}")
                continue
            name, description = function["name"], function["description"]
            parameters = function["parameters"]
            if not isinstance(parameters, dict):
                self.problems.append(
                    f'{where}: "parameters" must be an object (a JSON schema; {{}} for none), '
                    f"got {json_type(parameters)}"
                )
                continue
            if not isinstance(description, str):
                self.problems.append(
                    f'{where}: "description" must be a string, got {json_type(description)}'
                )
            if self._function_name(where, name):
                self.defined_tools.add(name)
            schema_error = _schema_problem(parameters)
            if schema_error is not None:
                self.problems.append(
                    f'{where}: "parameters" is not a valid JSON schema: {schema_error}'
                )

    def _function_name(self, where: str, name: object) -> bool:
        """[MC] function names are 1-64 of a-z, A-Z, 0-9, _ and -."""
        if not isinstance(name, str):
            self.problems.append(f'{where}: the function "name" must be a string')
            return False
        if not _FUNCTION_NAME.fullmatch(name):
            self.problems.append(
                f"{where}: function name {short_repr(name)} must be 1-64 characters of "
                "a-z, A-Z, 0-9, _ and -"
            )
            return False
        return True

    def _system_prompt(self, value: object, where: str) -> object:
        # [MC] request.py: ``system_prompt: str | None``.
        if value is not None and not isinstance(value, str):
            self.problems.append(
                f"{where}: a system prompt must be a string, got {json_type(value)}"
            )
        return value

    def _only_last(self) -> None:
        # [MF] ``only_last = data.get("only_last", False) or available_tools is not None``, then
        # [MC] pydantic reads it as a bool: a truthy value must be one pydantic accepts (a falsy
        # one is replaced by the boolean "has tools", always valid).
        value = self.record.get("only_last", False)
        if value and not _coerces("only_last", value)[0]:
            self.problems.append(f'"only_last" must be true or false, got {short_repr(value)}')

    # -- one message -------------------------------------------------------------------------

    def _message(self, number: int, message: object) -> _Message | None:
        """[MF] the loop body of build_instruct_sample: the built message (None for system
        messages, which set :attr:`system_prompt`, and for refused ones)."""
        where = f"message {number}"
        if not isinstance(message, dict):
            self.problems.append(f"{where}: expected an object, got {json_type(message)}")
            return None
        is_tool_call = message.get("tool_calls") is not None
        if "role" not in message:
            self.problems.append(f'{where}: missing "role"')
            return None
        role = message["role"]
        if "content" in message and "text" in message:
            self.problems.append(f'{where}: has both "content" and "text"; use one')
            return None
        content = message.get("content")
        if content is None:
            content = message.get("text")
        if role not in ROLES:  # also rejects non-strings: they equal no role
            self.problems.append(
                f"{where}: role {short_repr(role)} is not one of {_ROLE_LIST}"
                if isinstance(role, str)
                else f'{where}: "role" must be a string, got {json_type(role)}'
            )
            return None
        # [MF] a message needs content unless it makes tool calls, and user and tool messages
        # need it even then (an assert in build_instruct_sample). A system message with tool
        # calls and no content is the exception: it sets no prompt.
        if content is None and not (is_tool_call and role in ("assistant", "system")):
            self.problems.append(f'{where}: missing "content"')
            return None
        if role == "system":
            if self.system_prompt is not None:
                self.problems.append(
                    f"{where}: a second system prompt; a conversation has at most one "
                    '(the system messages and "system_prompt" together)'
                )
            else:
                self.system_prompt = self._system_prompt(content, where)
            return None
        if content is not None:
            self._content(where, role, content)
        calls: list[dict[str, Any]] | None = None
        if role == "assistant":
            if is_tool_call:
                calls = self._tool_calls(where, number, message["tool_calls"])
            self._weight(where, message.get("weight"))
        elif role == "tool":
            self._tool_message(where, message)
        return (str(role), number, content, calls)

    def _content(self, where: str, role: str, content: object) -> None:
        """[MC] ``content: str | list[ContentChunk]`` with the chunk types the role may carry."""
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            self.problems.append(
                f'{where}: "content" must be a string or a list of parts, got {json_type(content)}'
            )
            return
        allowed = _CHUNKS_BY_ROLE[role]
        for index, chunk in enumerate(content, 1):
            problem = _chunk_problem(chunk, allowed)
            if problem is not None:
                self.problems.append(f"{where}: content part {index}: {problem}")

    def _weight(self, where: str, weight: object) -> None:
        # [MC] ``weight: float | None`` read laxly, then the validator wants 0 or 1.
        if weight is None or (type(weight) is int and weight in (0, 1)):
            return
        ok, value = _coerces("weight", weight)
        if not ok or value not in (0, 1):
            self.problems.append(f'{where}: "weight" must be 0 or 1, got {short_repr(weight)}')

    def _tool_message(self, where: str, message: Mapping[str, Any]) -> None:
        """[MF] _parse_tool_message and [MC] the V3 tool message checks."""
        if "tool_call_id" not in message:
            self.problems.append(f'{where}: a tool message needs a "tool_call_id"')
        else:
            self._call_id(where, "tool_call_id", message["tool_call_id"], may_be_null=False)
        name = message.get("name")  # deprecated, but checked when present
        if name is not None:
            self._function_name(where, name)

    def _call_id(self, where: str, key: str, call_id: object, *, may_be_null: bool) -> None:
        if isinstance(call_id, str) and (
            _CALL_ID.fullmatch(call_id) or (may_be_null and call_id == _NULL_CALL_ID)
        ):
            return
        self.problems.append(
            f'{where}: "{key}" must be 9 characters of a-z, A-Z and 0-9, got {short_repr(call_id)}'
        )

    def _tool_calls(self, where: str, number: int, calls: object) -> list[dict[str, Any]]:
        """[MF] _parse_tool_calls and [MC] the V3 tool call checks (ids checked later, when it
        is known whether this is the last message)."""
        if isinstance(calls, dict | str) and not calls:
            return []  # iterated by [MF] as an empty list
        if not isinstance(calls, list):
            self.problems.append(
                f'{where}: "tool_calls" must be a list of calls, got {json_type(calls)}'
            )
            return []
        parsed: list[dict[str, Any]] = []
        for index, call in enumerate(calls, 1):
            call_where = f"{where}, tool call {index}"
            if not isinstance(call, dict) or "id" not in call or "function" not in call:
                self.problems.append(f'{call_where}: expected an object with "id" and "function"')
                continue
            function = call["function"]
            if not isinstance(function, dict) or not (
                "name" in function and "arguments" in function
            ):
                self.problems.append(
                    f'{call_where}: "function" must be an object with "name" and "arguments"'
                )
                continue
            arguments = function["arguments"]
            if not isinstance(arguments, str):
                self.problems.append(
                    f'{call_where}: "function.arguments" must be a string of JSON, '
                    f"got {json_type(arguments)}"
                )
            elif not _is_json(arguments):
                self.warnings.append(
                    f'{call_where}: "function.arguments" is not JSON text, as the docs ask'
                )
            name = function["name"]
            if self._function_name(call_where, name):
                self.called.setdefault(name, number)
            parsed.append(call)
        return parsed

    # -- the conversation as a whole ---------------------------------------------------------

    def _structure(self, messages: list[_Message], key: str) -> None:
        """[MC] _validate_message_list_structure and the per-message checks that depend on a
        message's place (tool call ids, content beside tool calls)."""
        if not messages:
            self.problems.append(
                f'"{key}" has no user, assistant or tool message; at least two are needed'
            )
            return
        last_role, last_number, _, _ = messages[-1]
        if len(messages) == 1 and last_role != "user":
            self.problems.append(
                f"message {last_number}: a conversation must start with a user message"
            )
            return
        if last_role != "assistant":
            self.problems.append(
                f"message {last_number}: the last message must be from the assistant, "
                f"got {last_role!r}"
            )
        previous_role = ""
        expected_answers = 0
        for role, number, content, calls in messages:
            if role == "assistant":
                # [MC] V3: content or tool calls, not both and not neither (an empty string or
                # list counts as no content).
                if bool(content) == bool(calls):
                    self._content_or_calls(number, has_content=bool(content))
                if calls:
                    self._call_ids(number, calls, is_last=number == last_number)
            # [MC] _validate_tool_calls_followed_by_tool_messages counts from the second
            # message on: the first one's calls are not counted. (Its last check, more answers
            # than calls at the end, needs a last tool message: refused above.)
            if previous_role:
                if role == "tool":
                    if previous_role == "user":
                        self.problems.append(
                            f"message {number}: a tool message cannot follow a user message"
                        )
                    expected_answers -= 1
                elif role == "assistant":
                    if expected_answers != 0:
                        self.problems.append(
                            f"message {number}: the tool calls before it got "
                            + _answer_mismatch(expected_answers)
                        )
                    if calls is not None:
                        expected_answers = len(calls)
            previous_role = role

    def _content_or_calls(self, number: int, *, has_content: bool) -> None:
        self.problems.append(
            f"message {number}: an assistant message needs either content or tool calls, not both"
            if has_content
            else f'message {number}: an assistant message needs "content" or "tool_calls"'
        )

    def _call_ids(self, number: int, calls: list[dict[str, Any]], *, is_last: bool) -> None:
        for index, call in enumerate(calls, 1):
            # [MC] id "null" (no id) is allowed on the last message only: mistral-finetune
            # strips the ids there anyway (maybe_remove_call_id).
            where = f"message {number}, tool call {index}"
            self._call_id(where, "id", call["id"], may_be_null=is_last)

    def _warn_undefined_calls(self) -> None:
        if not self.called:
            return
        if self.defined_tools is None:
            names = ", ".join(short_repr(name) for name in self.called)
            self.warnings.append(f"tool calls ({names}) but no tools list: {_DOCS_TOOLS}")
            return
        for name, number in self.called.items():
            if name not in self.defined_tools:
                self.warnings.append(
                    f"message {number}: tool {short_repr(name)} is called but not in the tools "
                    f"list: {_DOCS_TOOLS}"
                )


def _answer_mismatch(expected: int) -> str:
    if expected > 0:
        return f"{expected} answer(s) too few"
    return f"{-expected} answer(s) too many"


#: The scanner of ``json.loads``'s own decoder (the same defaults): one value at an index.
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _is_json(text: str) -> bool:
    """Whether ``json.loads(text)`` succeeds."""
    # The common text, a value from its first character to its last, in one call of the C
    # scanner: json.loads would parse that same value from index 0 and find nothing after it.
    # Anything else (leading or trailing whitespace, a BOM, an error) gets json.loads itself.
    try:
        if _SCAN_JSON(text, 0)[1] == len(text):
            return True
    except (StopIteration, ValueError, RecursionError):
        pass
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _chunk_problem(chunk: object, allowed: frozenset[str]) -> str | None:
    """[MC] chunk.py: a part is an object tagged by "type" with exactly that type's fields."""
    if not isinstance(chunk, dict) or "type" not in chunk:
        return 'expected an object with a "type"'
    kind = chunk["type"]
    fields = _CHUNK_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return f"unknown type {short_repr(kind)}"
    if kind not in allowed:
        return f"{kind!r} parts are not accepted in this message"
    extra = [k for k in chunk if k != "type" and k not in fields]
    if extra:
        return f"unexpected key {short_repr(extra[0])} in a {kind!r} part"
    required = fields[0]
    if required not in chunk:
        return f'a {kind!r} part needs "{required}"'
    value = chunk[required]
    if kind == "image_url":
        return _image_url_problem(value)
    if not isinstance(value, str):
        return f'"{required}" must be a string, got {json_type(value)}'
    return None


def _image_url_problem(value: object) -> str | None:
    """[MC] ``image_url: ImageURL | str`` where ImageURL is ``{"url": str, "detail": str?}``."""
    if isinstance(value, str):
        return None
    if not isinstance(value, dict):
        return f'"image_url" must be a string or an object, got {json_type(value)}'
    extra = [k for k in value if k not in ("url", "detail")]
    if extra:
        return f'unexpected key {short_repr(extra[0])} in "image_url"'
    if not isinstance(value.get("url"), str):
        return '"image_url.url" must be a string'
    detail = value.get("detail")
    if detail is not None and not isinstance(detail, str):
        return '"image_url.detail" must be a string'
    return None


def _schema_problem(parameters: dict[str, Any]) -> str | None:
    """[MC] _validate_function: ``jsonschema.Draft7Validator.check_schema(parameters)``."""
    if not parameters:
        return None
    # A file repeats the same few tool schemas on every line: judge each distinct one once
    # (checking a schema against the meta-schema costs a millisecond or more).
    return _schema_problem_of(_CANONICAL.encode(parameters))


# A canonical text of a JSON value (keys sorted): what json.dumps(value, sort_keys=True)
# returns, without building the encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True)


@functools.lru_cache(maxsize=256)
def _schema_problem_of(schema_text: str) -> str | None:
    # Imported on first use: most fine-tuning files have no tools.
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft7Validator.check_schema(json.loads(schema_text))
    except SchemaError as exc:
        return str(exc.message)
    return None
