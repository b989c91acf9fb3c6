"""The fine-tune validator's fast paths against its full check (syncd/validation/finetune.py).

``check_finetune_record`` answers the common records (plain chats, function-calling
conversations) with cheap lookups and runs the full rules on the rest. A fast path may only ever
say "accepted, no warning" where the full check says so too; these tests compare the two on
records generated around every condition the fast paths test, so that a fast path that drifts
from the full check (too lax, or a different message) fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.validation import finetune
from syncd.validation.finetune import _check_record, _is_json, check_finetune_record

CALL_IDS = ("D681PevKs", "Xy12345zz", "abcDEF789")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}
LOOKUP = {
    "type": "function",
    "function": {"name": "lookup-city", "description": "", "parameters": {}},
}


def _mostly(draw: st.DrawFn, good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """A value from ``good``, or about one time in twenty from ``odd``: records with a single
    flaw sit right at a fast path's boundary. (``st.integers`` would favour its bounds, so a
    uniform choice decides.)"""
    return draw(odd if draw(st.sampled_from(range(20))) == 0 else good)


def _conversation(draw: st.DrawFn) -> dict[str, Any]:
    """A record both paths mostly accept: an optional system message, then turns of a user
    message, maybe a round of tool calls and their answers, and an assistant reply; each value
    now and then swapped for an odd one."""
    messages: list[Any] = []
    if draw(st.booleans()):
        content = _mostly(draw, st.sampled_from(["Be terse.", ""]), ODD_VALUES)
        messages.append({"role": "system", "content": content})
    with_tools = draw(st.sampled_from([True, True, False]))
    for _ in range(draw(st.integers(1, 3))):
        role = _mostly(draw, st.just("user"), st.sampled_from(["tool", "bot", "User", None]))
        content = _mostly(draw, st.sampled_from(["Weather?", ""]), ODD_VALUES)
        messages.append({"role": role, "content": content})
        if with_tools and draw(st.sampled_from([True, True, False])):
            ids = [
                _mostly(draw, st.sampled_from(CALL_IDS), CALL_ID_VALUES)
                for _ in range(draw(st.integers(1, 3)))
            ]
            calls = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": _mostly(
                            draw, st.sampled_from(["get_weather", "lookup-city"]), NAME_VALUES
                        ),
                        "arguments": _mostly(
                            draw,
                            st.sampled_from(['{"city": "Paris"}', "{}", "[1]"]),
                            ARGUMENT_VALUES,
                        ),
                    },
                }
                for call_id in ids
            ]
            calling: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
            calling.update(
                _mostly(
                    draw,
                    st.sampled_from([{}, {"content": None}, {"content": ""}]),
                    st.builds(lambda value: {"content": value}, ODD_VALUES),
                )
            )
            messages.append(calling)
            for call_id in ids:
                answer = {
                    "role": "tool",
                    "content": _mostly(draw, st.just('{"temp": 21}'), ODD_VALUES),
                    "tool_call_id": _mostly(draw, st.just(call_id), CALL_ID_VALUES),
                }
                if draw(st.booleans()):
                    answer["name"] = _mostly(draw, st.just("get_weather"), NAME_VALUES)
                messages.append(answer)
        reply: dict[str, Any] = {
            "role": "assistant",
            "content": _mostly(draw, st.just("It is 21 degrees."), ODD_VALUES),
        }
        if draw(st.booleans()):
            reply["weight"] = _mostly(draw, st.sampled_from([0, 1]), ODD_VALUES)
        messages.append(reply)
    record: dict[str, Any] = {"messages": messages}
    if with_tools:
        record["tools"] = _mostly(
            draw, st.sampled_from([[WEATHER, LOOKUP], [LOOKUP, WEATHER]]), TOOLS_VALUES
        )
    return record


# Values each perturbation draws from: the boundaries of the fast paths' conditions.
ODD_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [None, "", " ", "x", 0, 1, 0.0, 1.0, 0.5, 2, -1, True, False, "1", "null", [], {}, [{}]]
)
CALL_ID_VALUES = st.sampled_from([*CALL_IDS, "null", "call_1", "ABCDEFGHIJ", 123456789, None])
NAME_VALUES = st.sampled_from(["get_weather", "undefined_fn", "get weather", "", "x" * 65, 3])
ARGUMENT_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    ["{}", " {}", "{} ", "\ufeff{}", "city=Paris", "", "NaN", "[1, 2", '"x"', {}, None]
)
TOOLS_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [
        [],
        {},
        "",
        None,
        [WEATHER],
        [LOOKUP],
        [{"function": {"name": "f", "parameters": {}}}],  # no description
        [{"function": {"name": "f", "description": 3, "parameters": {}}}],
        [{"function": {"name": "f", "description": "", "parameters": "{}"}}],
        [{"function": {"name": "f g", "description": "", "parameters": {}}}],
        [{"function": {"name": "f", "description": "", "parameters": {"type": 5}}}],
        [{"name": "f"}],
        ["get_weather"],
        # Equal under ==, not as JSON: only the int is a valid minLength.
        [{"function": {"name": "f", "description": "", "parameters": {"minLength": 1}}}],
        [{"function": {"name": "f", "description": "", "parameters": {"minLength": True}}}],
        [{"function": {"name": "f", "description": "", "parameters": {"minLength": 1.0}}}],
    ]
)
RECORD_KEYS = st.sampled_from(
    ["interactions", "available_tools", "system_prompt", "only_last", "text", "labels", "id"]
)
MESSAGE_KEYS = st.sampled_from(
    ["role", "content", "text", "weight", "tool_calls", "tool_call_id", "name", "extra"]
)


def _perturb(draw: st.DrawFn, record: dict[str, Any]) -> None:
    """One small change, most of them to a condition a fast path tests."""
    messages = record["messages"]
    kind = draw(
        st.sampled_from(
            [
                *("record_key", "drop_tools", "tools", "messages"),
                *("insert", "delete", "shuffle", "not_an_object", "second_system"),
                *("message_key", "drop_key", "call"),
            ]
        )
    )
    if not (isinstance(messages, list) and messages):
        kind = draw(st.sampled_from(["record_key", "drop_tools", "tools"]))
    if kind == "record_key":
        record[draw(RECORD_KEYS)] = draw(st.one_of(ODD_VALUES, st.just(record["messages"])))
    elif kind == "drop_tools":
        record.pop("tools", None)
    elif kind == "tools":
        record["tools"] = draw(TOOLS_VALUES)
    elif kind == "messages":
        ends = [messages[:1], messages[-1:], [messages[0], messages[-1]]]
        record["messages"] = draw(st.sampled_from([[], {}, None, "hi", *ends]))
    elif kind == "insert":
        message = draw(st.sampled_from(messages))
        messages.insert(draw(st.integers(0, len(messages))), json.loads(json.dumps(message)))
    elif kind == "delete" and len(messages) > 1:
        del messages[draw(st.integers(0, len(messages) - 1))]
    elif kind == "shuffle" and len(messages) > 1:
        index = draw(st.integers(0, len(messages) - 2))
        messages[index], messages[index + 1] = messages[index + 1], messages[index]
    elif kind == "not_an_object":
        messages[draw(st.integers(0, len(messages) - 1))] = draw(ODD_VALUES)
    elif kind == "second_system":
        messages.insert(draw(st.integers(0, len(messages))), {"role": "system", "content": "x"})
    else:
        message = messages[draw(st.integers(0, len(messages) - 1))]
        if not isinstance(message, dict):
            return
        if kind == "message_key":
            key = draw(MESSAGE_KEYS)
            values = {
                "role": st.sampled_from(["user", "assistant", "tool", "system", "bot", None]),
                "tool_call_id": CALL_ID_VALUES,
                "name": st.one_of(NAME_VALUES, st.none()),
            }.get(key, ODD_VALUES)
            message[key] = draw(values)
        elif kind == "drop_key" and message:
            del message[draw(st.sampled_from(sorted(message)))]
        elif kind == "call" and isinstance(message.get("tool_calls"), list):
            calls = message["tool_calls"]
            call = calls[draw(st.integers(0, len(calls) - 1))] if calls else None
            if not (isinstance(call, dict) and isinstance(call.get("function"), dict)):
                return
            part = draw(st.sampled_from(["id", "name", "arguments", "function", "drop", "dup"]))
            if part == "id":
                call["id"] = draw(CALL_ID_VALUES)
            elif part == "name":
                call["function"]["name"] = draw(NAME_VALUES)
            elif part == "arguments":
                call["function"]["arguments"] = draw(ARGUMENT_VALUES)
            elif part == "function":
                call["function"] = draw(ODD_VALUES)
            elif part == "drop":
                call.pop(draw(st.sampled_from(["id", "function"])))
            else:
                calls.append(json.loads(json.dumps(call)))


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record = _conversation(draw)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        _perturb(draw, record)
    # A JSON round trip: records reach the validator from a JSONL line, and the tools values
    # above are shared between examples.
    return dict(json.loads(json.dumps(record)))


@pytest.fixture(autouse=True)
def _fresh_tools_cache() -> None:
    finetune._TOOL_NAMES.clear()


def _compare(record: Any, tally: dict[str, int]) -> None:
    """Assert that the validator's verdict on ``record`` is the full check's, and count which
    fast path (if any) took it."""
    full_warnings: list[str] = []
    full = _check_record(record, full_warnings)
    warnings: list[str] = []
    assert (check_finetune_record(record, warnings), warnings) == (full, full_warnings), record
    plain = len(record) == 1 and finetune._is_plain_chat(record.get("messages"))
    tools = finetune._is_clean_tool_chat(record)
    if plain or tools:
        assert (full, full_warnings) == ([], []), record
    tally["plain"] += plain
    tally["tools"] += tools
    tally["full accepts" if not full else "full refuses"] += 1


# -- every record one edit away from an accepted one --------------------------------------------

BASES: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": "?"}, {"role": "assistant", "content": "!"}]},
    {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "?"},
            {"role": "assistant", "content": "!", "weight": 0},
            {"role": "user", "content": "More?"},
            {"role": "assistant", "content": "!!", "weight": 1},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": CALL_IDS[0], "function": {"name": "get_weather", "arguments": "{}"}},
                    {"id": CALL_IDS[1], "function": {"name": "lookup-city", "arguments": "[]"}},
                ],
            },
            {"role": "tool", "content": "21", "tool_call_id": CALL_IDS[0], "name": "get_weather"},
            {"role": "tool", "content": "Paris", "tool_call_id": CALL_IDS[1]},
            {"role": "assistant", "content": "It is 21 degrees.", "weight": 1},
        ],
        "tools": [WEATHER, LOOKUP],
    },
    {  # opens with a call: the full check does not count the first message's calls
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": CALL_IDS[2], "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "system", "content": ""},
            {"role": "user", "content": ""},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": CALL_IDS[0], "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "", "tool_call_id": CALL_IDS[0]},
            {"role": "assistant", "content": "ok"},
        ],
        "tools": [WEATHER],
    },
]
#: What an edit sets a key to: the values either side of each condition of the fast paths.
EDIT_VALUES: tuple[Any, ...] = (
    *(None, "", " ", "x", 0, 1, 0.0, 1.0, 0.5, 2, True, False, "1", [], {}, [{}]),
    *(CALL_IDS[0], "null", "call_1", "get_weather", "undefined_fn", "get weather"),
    *("{}", " {}", "{}x", "NaN", "user", "assistant", "tool", "system", "bot"),
)
#: Keys an edit may add, beside those a dict has.
EDIT_KEYS = (
    *("role", "content", "text", "weight", "tool_calls", "tool_call_id", "name", "id"),
    *("function", "arguments", "messages", "interactions", "tools", "available_tools"),
    *("system_prompt", "only_last", "labels"),
)


def _one_edit(value: Any) -> Iterator[Any]:
    """Every copy of ``value`` with one change: a key of one of its objects set to one of
    :data:`EDIT_VALUES` or deleted, one item of one of its lists deleted, repeated, swapped
    with the next or left alone in it. (A function's "parameters" is left alone: each new
    schema costs the full check a jsonschema run, and the schema's verdict is the full
    check's own.)"""
    if isinstance(value, dict):
        for key in dict.fromkeys([*value, *EDIT_KEYS]):
            for new in EDIT_VALUES:
                yield {**value, key: new}
            if key in value:
                yield {k: v for k, v in value.items() if k != key}
        for key, child in value.items():
            if key != "parameters":
                for edited in _one_edit(child):
                    yield {**value, key: edited}
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield [item]
            yield value[:i] + value[i + 1 :]
            yield value[: i + 1] + value[i:]
            if i + 1 < len(value):
                yield [*value[:i], value[i + 1], item, *value[i + 2 :]]
            for edited in _one_edit(item):
                yield [*value[:i], edited, *value[i + 1 :]]


@pytest.mark.parametrize("base", BASES, ids=["plain", "multi-turn", "calls", "opening call"])
def test_one_edit_from_an_accepted_record(base: dict[str, Any]) -> None:
    """Every record one edit away from an accepted one gets the full check's verdict: each
    condition of a fast path is crossed here by some edit, whatever the random examples do."""
    tally = dict.fromkeys(["plain", "tools", "full accepts", "full refuses"], 0)
    _compare(base, tally)
    assert tally["plain"] + tally["tools"] == 1
    for record in _one_edit(base):
        _compare(record, tally)
    assert tally["full accepts"] >= 100 and tally["full refuses"] >= 100, tally


# -- records generated around the fast paths' conditions ----------------------------------------


def test_fast_paths_give_the_full_checks_verdict() -> None:
    """On every generated record (some with several flaws), the validator with its fast paths
    returns what the full check returns, problems and warnings alike; a record a fast path
    accepts is one the full check accepts without a warning. Both fast paths and both verdicts
    are seen often."""
    tally = dict.fromkeys(["plain", "tools", "full accepts", "full refuses"], 0)

    @settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(records())
    def agrees(record: dict[str, Any]) -> None:
        _compare(record, tally)

    agrees()
    assert min(tally.values()) >= 150, tally


def test_the_benchmarks_records_take_the_fast_paths() -> None:
    """The shapes of benchmarks/bench_validation.py: a plain chat, a multi-turn chat with a
    system prompt and weights, a function-calling exchange (the speed figure rests on them)."""
    from benchmarks.bench_validation import _records

    shapes = _records(3)
    chat, multi, calling = (json.loads(json.dumps(shapes[i])) for i in (0, 7, 9))
    assert finetune._is_plain_chat(chat["messages"])
    assert finetune._is_plain_chat(multi["messages"])
    assert finetune._is_clean_tool_chat(calling)


def test_a_tools_list_is_judged_by_its_json_types() -> None:
    """Tools lists equal under Python's == (1, 1.0 and true) but not as JSON schemas each get
    their own verdict, in either order: the cache of judged lists keeps them apart."""

    def record(min_length: object) -> dict[str, Any]:
        tool = {"function": {"name": "f", "description": "", "parameters": {}}}
        tool["function"]["parameters"] = {"type": "string", "minLength": min_length}
        return {"messages": [{"role": "user", "content": "?"}, {"role": "assistant",
                "content": "!"}], "tools": [tool]}  # fmt: skip

    for order in ([1, True, 1.0], [True, 1.0, 1]):
        finetune._TOOL_NAMES.clear()
        verdicts = [(value, check_finetune_record(record(value))) for value in order]
        assert verdicts == [(value, _check_record(record(value), [])) for value in order]
        refused = {repr(value) for value, problems in verdicts if problems}
        assert refused == {"True"}, verdicts


@settings(max_examples=500)
@given(
    st.one_of(
        st.text(
            st.sampled_from(' \t\n\r{}[]",:0123456789.eE+-truefalsnNaIiy\\u\ufeff'), max_size=12
        ),
        st.sampled_from(['{"city": "Paris"}', "[1]", "1", "-0", "1e5", '"x"', "Infinity", "NaN"]),
    )
)
def test_is_json_agrees_with_json_loads(text: str) -> None:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        expected = False
    else:
        expected = True
    assert _is_json(text) is expected
