"""syncd's fine-tune verdicts against Mistral's own: a corpus of named cases and a differential
property test over thousands of generated conversations.

The oracle (tests/finetune_oracle.py) runs mistral-common's finetuning validator the way
mistral-finetune runs it. A record syncd refuses but the oracle accepts is a *false reject*
(training data silently kept from the user: the worst mistake); one syncd accepts but the oracle
refuses is a *false accept*. Both fail these tests.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.validation.finetune import check_finetune_record
from tests.finetune_oracle import judges, oracle_verdict

U = {"role": "user", "content": "What is the capital of France?"}
A = {"role": "assistant", "content": "Paris."}
SYSTEM = {"role": "system", "content": "You are terse."}
CALL_ID = "D681PevKs"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}


def call(call_id: str = CALL_ID, name: str = "get_weather", arguments: str = "{}") -> Any:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def calling(*calls: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(calls)}


def answer(call_id: str = CALL_ID, content: str = '{"temp": 21}') -> dict[str, Any]:
    return {"role": "tool", "content": content, "tool_call_id": call_id}


# (name, record, Mistral accepts it). Each is checked against the oracle too, so a wrong
# expectation here fails as loudly as a wrong rule in syncd.
CORPUS: list[tuple[str, dict[str, Any], bool]] = [
    ("plain chat", {"messages": [U, A]}, True),
    ("system first", {"messages": [SYSTEM, U, A]}, True),
    ("several turns", {"messages": [U, A, U, A]}, True),
    ("weights 0 and 1", {"messages": [U, {**A, "weight": 0}, U, {**A, "weight": 1}]}, True),
    ("weight 0.5", {"messages": [U, {**A, "weight": 0.5}]}, False),
    (
        "weight as text '1' (pydantic reads it as 1.0)",
        {"messages": [U, {**A, "weight": "1"}]},
        True,
    ),
    (
        "function call answered",
        {"messages": [U, calling(call()), answer(), A], "tools": [TOOL]},
        True,
    ),
    # The six disagreements measured on main before this change:
    ("tool calls with no tools list", {"messages": [U, calling(call()), answer(), A]}, True),
    (
        "called function not among tools",
        {
            "messages": [U, calling(call(name="other_fn")), answer(), A],
            "tools": [TOOL],
        },
        True,
    ),
    ("last message makes an unanswered call", {"messages": [U, calling(call())]}, True),
    ("last message is a system message", {"messages": [U, A, SYSTEM]}, True),
    ("a single assistant message", {"messages": [A]}, False),
    ("tools is an object", {"messages": [U, A], "tools": {"get_weather": TOOL}}, False),
    # Keys mistral-finetune reads that syncd did not know:
    ("interactions instead of messages", {"interactions": [U, A]}, True),
    ("text instead of content", {"messages": [{"role": "user", "text": "hi"}, A]}, True),
    (
        "available_tools",
        {"messages": [U, calling(call()), answer(), A], "available_tools": [TOOL]},
        True,
    ),
    ("system_prompt", {"messages": [U, A], "system_prompt": "Be brief."}, True),
    (
        "system_prompt and a system message",
        {"messages": [SYSTEM, U, A], "system_prompt": "x"},
        False,
    ),
    ("only_last", {"messages": [U, A, U, A], "only_last": True}, True),
    # What Mistral's code refuses:
    ("empty messages", {"messages": []}, False),
    ("last message from the user", {"messages": [U, A, U]}, False),
    ("tool message right after a user", {"messages": [U, answer(), A]}, False),
    ("two system messages", {"messages": [SYSTEM, U, SYSTEM, A]}, False),
    (
        "content and tool calls together",
        {"messages": [U, {**calling(call()), "content": "x"}]},
        False,
    ),
    ("empty assistant content", {"messages": [U, {"role": "assistant", "content": ""}]}, False),
    (
        "call id not 9 alphanumerics",
        {"messages": [U, calling(call("call_1")), answer("call_1"), A]},
        False,
    ),
    (
        "call id 'null' before the end",
        {"messages": [U, calling(call("null")), answer("null"), A]},
        False,
    ),
    ("call id 'null' on the last message", {"messages": [U, calling(call("null"))]}, True),
    (
        "call id as a number",
        {"messages": [U, {"role": "assistant", "tool_calls": [{**call(), "id": 123456789}]}]},
        False,
    ),
    ("too many tool answers", {"messages": [U, calling(call()), answer(), answer(), A]}, False),
    (
        "too few tool answers",
        {"messages": [U, calling(call(), call("Xy12345zz")), answer(), A]},
        False,
    ),
    ("function name with a space", {"messages": [U, calling(call(name="get weather"))]}, False),
    (
        "arguments not JSON text (only the docs ask for JSON)",
        {"messages": [U, calling(call(arguments="city=Paris"))]},
        True,
    ),
    (
        "arguments as an object",
        {
            "messages": [
                U,
                {
                    "role": "assistant",
                    "tool_calls": [{"id": CALL_ID, "function": {"name": "f", "arguments": {}}}],
                },
            ]
        },
        False,
    ),
    (
        "tool without description",
        {"messages": [U, A], "tools": [{"function": {"name": "f", "parameters": {}}}]},
        False,
    ),
    (
        "tool parameters not a schema",
        {
            "messages": [U, A],
            "tools": [{"function": {"name": "f", "description": "", "parameters": {"type": 5}}}],
        },
        False,
    ),
    ("unknown role", {"messages": [U, {"role": "bot", "content": "x"}, A]}, False),
    (
        "image_url part from the user",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "?"},
                        {"type": "image_url", "image_url": "https://example.com/a.png"},
                    ],
                },
                A,
            ]
        },
        True,
    ),
    (
        "text part with an extra key",
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "?", "lang": "en"}]},
                A,
            ]
        },
        False,
    ),
    (
        "thinking part from the assistant",
        {
            "messages": [
                U,
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]},
            ]
        },
        False,
    ),
    ("starts with an assistant", {"messages": [A, U, A]}, True),
    ("only_last as 'maybe'", {"messages": [U, A], "only_last": "maybe"}, False),
    ("top-level text beside messages", {"messages": [U, A], "text": "ignored"}, True),
]


@pytest.mark.parametrize(("name", "record", "accepted"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_case_agrees_with_mistral(name: str, record: dict[str, Any], accepted: bool) -> None:
    theirs = oracle_verdict(record)
    assert (theirs is None) == accepted, f"the corpus expectation is wrong: {theirs}"
    ours = check_finetune_record(record)
    assert (not ours) == accepted, f"{name}: syncd says {ours}, Mistral says {theirs}"


def test_warnings_name_what_the_docs_ask_for_and_do_not_block() -> None:
    warnings: list[str] = []
    record = {"messages": [U, calling(call(name="other_fn", arguments="x=1")), answer(), A]}
    assert check_finetune_record(record, warnings) == []
    assert any("no tools list" in w and "'other_fn'" in w for w in warnings)
    assert any("not JSON text" in w for w in warnings)

    warnings.clear()
    defined = {**record, "tools": [TOOL]}
    assert check_finetune_record(defined, warnings) == []
    assert any("'other_fn' is called but not in the tools list" in w for w in warnings)

    warnings.clear()
    assert (
        check_finetune_record(
            {"messages": [U, calling(call()), answer(), A], "tools": [TOOL]}, warnings
        )
        == []
    )
    assert warnings == []


# -- the differential property test ----------------------------------------------------------

VALID_IDS = ("D681PevKs", "Xy12345zz", "abcDEF789")
BAD_IDS = ("call_1", "null", "", "ABCDEFGHIJ", "abc def g")
NAMES = ("get_weather", "lookup-city", "f")
BAD_NAMES = ("get weather", "", "x" * 65)


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in ``one_in`` draws. (``st.integers(0, n) == 0`` would be true far more
    often: hypothesis favours boundary values, and sampled_from is uniform.)"""
    return draw(st.sampled_from(range(one_in))) == 0


texts = st.sampled_from(["hi", "", " ", "Paris.", "é", "line\nbreak"])
ids = st.one_of(
    st.sampled_from(VALID_IDS), st.sampled_from(BAD_IDS), st.integers(0, 10**9), st.none()
)
names = st.one_of(st.sampled_from(NAMES), st.sampled_from(BAD_NAMES), st.integers(0, 3))
arguments = st.one_of(
    st.sampled_from(['{"city": "Paris"}', "{}", "city=Paris", ""]),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
    st.none(),
)


@st.composite
def chunks(draw: st.DrawFn) -> Any:
    kind = draw(
        st.sampled_from(["text", "text", "image_url", "thinking", "input_audio", "video", None])
    )
    if kind is None:
        return draw(st.one_of(st.just("plain"), st.just({"text": "no type"}), st.just(3)))
    chunk: dict[str, Any] = {"type": kind}
    if kind == "text":
        chunk["text"] = draw(st.one_of(texts, st.integers(0, 3)))
    elif kind == "image_url":
        chunk["image_url"] = draw(
            st.one_of(
                st.just("https://example.com/a.png"),
                st.fixed_dictionaries(
                    {"url": st.just("https://example.com/a.png")},
                    optional={"detail": st.one_of(st.just("low"), st.none(), st.integers(0, 1))},
                ),
                st.just({"href": "x"}),
                st.integers(0, 1),
            )
        )
    elif kind == "thinking":
        chunk["thinking"] = "hmm"
    elif kind == "input_audio":
        chunk["input_audio"] = "AAAA"
    if rarely(draw, 10):
        chunk["extra"] = 1
    if rarely(draw, 10):
        chunk.pop(next((k for k in chunk if k != "type"), "type"))
    return chunk


contents = st.one_of(
    texts,
    texts,
    st.lists(chunks(), max_size=3),
    st.none(),
    st.integers(0, 2),
    st.booleans(),
)


@st.composite
def tool_calls(draw: st.DrawFn) -> Any:
    if rarely(draw, 20):
        return draw(st.sampled_from([[], {}, "", "x", 3, {"id": "D681PevKs"}, False]))
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        entry: dict[str, Any] = {}
        if not rarely(draw, 15):
            entry["id"] = draw(ids)
        if draw(st.booleans()):
            entry["type"] = draw(st.sampled_from(["function", "tool"]))
        if not rarely(draw, 15):
            function: Any = {}
            if not rarely(draw, 15):
                function["name"] = draw(names)
            if not rarely(draw, 15):
                function["arguments"] = draw(arguments)
            if rarely(draw, 20):
                function = "get_weather"
            entry["function"] = function
        calls.append("call" if rarely(draw, 20) else entry)
    return calls


@st.composite
def messages(draw: st.DrawFn) -> Any:
    role = draw(
        st.one_of(
            st.sampled_from(["user", "assistant", "assistant", "tool", "system"]),
            st.sampled_from(["bot", "User", None, 1]),
        )
    )
    message: dict[str, Any] = {}
    if not rarely(draw, 20):
        message["role"] = role
    key = draw(st.sampled_from(["content"] * 8 + ["text", "both", "none"]))
    if key in ("content", "both"):
        message["content"] = draw(contents)
    if key in ("text", "both"):
        message["text"] = draw(contents)
    if (role == "assistant" and rarely(draw, 3)) or rarely(draw, 30):
        message["tool_calls"] = draw(tool_calls())
        if draw(st.booleans()):
            message["content"] = None
    if role == "tool" or rarely(draw, 30):
        if not rarely(draw, 10):
            message["tool_call_id"] = draw(ids)
        if rarely(draw, 5):
            message["name"] = draw(names)
    if rarely(draw, 6):
        message["weight"] = draw(
            st.sampled_from([0, 1, 0.0, 1.0, 0.5, -1, 2, True, False, "1", "0", "x", None])
        )
    if rarely(draw, 10):
        message["extra_key"] = "ignored"
    return message if not rarely(draw, 50) else draw(st.sampled_from(["hi", 3, None, []]))


MESSAGE_FIELDS = ("role", "content", "text", "weight", "tool_calls", "tool_call_id", "name", "x")


def _mutate(draw: st.DrawFn, out: list[Any]) -> None:
    """One small change to a conversation, so that a single rule decides its verdict."""
    kind = draw(
        st.sampled_from(
            [
                "insert",
                "delete",
                "swap",
                "role",
                "field",
                "drop",
                "chunks",
                "calls",
                "named",
                "interject",
                "bare_calls",
            ]
        )
    )
    tools_at = [i for i, m in enumerate(out) if isinstance(m, dict) and m.get("role") == "tool"]
    if kind == "interject" and tools_at:  # a user message between a call and its answer
        out.insert(draw(st.sampled_from(tools_at)), {"role": "user", "content": "wait"})
        return
    if kind == "insert" or not out:
        out.insert(draw(st.integers(0, len(out))), draw(messages()))
        return
    index = draw(st.integers(0, len(out) - 1))
    message = out[index]
    if kind == "delete":
        del out[index]
    elif kind == "swap" and index + 1 < len(out):
        out[index], out[index + 1] = out[index + 1], out[index]
    elif not isinstance(message, dict):
        return
    elif kind == "role":
        message["role"] = draw(st.sampled_from(["user", "assistant", "tool", "system", "bot"]))
    elif kind == "field":
        field = draw(st.sampled_from(MESSAGE_FIELDS))
        values = {
            "role": st.sampled_from(["user", "assistant", "tool", "system"]),
            "weight": st.sampled_from([0, 1, 0.5, True, "1", "x", None, 2]),
            "tool_calls": tool_calls(),
            "tool_call_id": ids,
            "name": names,
        }.get(field, contents)
        message[field] = draw(values)
    elif kind == "drop" and len(message) > 1:
        del message[draw(st.sampled_from(sorted(message)))]
    elif kind == "named":
        if message.get("role") == "tool":
            message["name"] = draw(names)
        else:
            message["tool_calls"] = draw(st.sampled_from([[], {}, ""]))
    elif kind == "bare_calls":  # tool calls and no content, on any role
        message["tool_calls"] = [{"id": "D681PevKs", "function": {"name": "f", "arguments": "{}"}}]
        message.pop("content", None)
    elif kind == "chunks":
        message["content"] = draw(st.lists(chunks(), min_size=1, max_size=2))
    elif kind == "calls" and message.get("tool_calls"):
        calls = message["tool_calls"]
        call = calls[draw(st.integers(0, len(calls) - 1))]
        part = draw(st.sampled_from(["id", "name", "arguments", "type", "dup"]))
        if part == "id":
            call["id"] = draw(ids)
        elif part == "type":
            call["type"] = draw(st.sampled_from(["tool", None]))
        elif part == "dup":
            calls.append(dict(call))
        else:
            call["function"][part] = draw(names if part == "name" else arguments)


user_parts = st.lists(
    st.sampled_from(
        [
            {"type": "text", "text": "see"},
            IMAGE,
            {"type": "image_url", "image_url": "https://example.com/b.png"},
            {"type": "text", "text": "see", "lang": "en"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "alt": "x"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": 1}},
        ]
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def plausible_conversations(draw: st.DrawFn) -> list[Any]:
    """Mostly well-formed exchanges, so accepted records are common, then perturbed."""
    out: list[Any] = []
    if rarely(draw, 8):  # opens with a call: the validator does not count the first message
        opening = {
            "id": draw(st.sampled_from(("null", *VALID_IDS))),
            "function": {"name": "f", "arguments": "{}"},
        }
        out.append({"role": "assistant", "tool_calls": [opening]})
    if draw(st.booleans()):
        out.append({"role": "system", "content": draw(texts)})
    for _ in range(draw(st.integers(1, 3))):
        content = draw(texts) if not rarely(draw, 4) else draw(user_parts)
        out.append({"role": "user", "content": content})
        if rarely(draw, 3):
            call_ids = draw(st.lists(st.sampled_from((*VALID_IDS, "null")), min_size=1, max_size=2))
            out.append(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": i,
                            "type": "function",
                            "function": {"name": draw(st.sampled_from(NAMES)), "arguments": "{}"},
                        }
                        for i in call_ids
                    ],
                }
            )
            answered = len(call_ids) if not rarely(draw, 4) else draw(st.integers(0, 3))
            for i in (call_ids * 2)[:answered]:
                out.append({"role": "tool", "content": "ok", "tool_call_id": i})
        out.append(
            {
                "role": "assistant",
                "content": draw(texts) if rarely(draw, 6) else "Paris.",
                **draw(
                    st.fixed_dictionaries({}, optional={"weight": st.sampled_from([0, 1, 0.5])})
                ),
            }
        )
    if draw(st.booleans()):  # half of them stay as built, the rest get one or two mutations
        for _ in range(draw(st.sampled_from([1, 1, 2]))):
            _mutate(draw, out)
    return out


@st.composite
def tools_values(draw: st.DrawFn) -> Any:
    """A tools value: odd shapes, the valid list, or that list with one defect."""
    shape = draw(st.sampled_from(range(10)))
    if shape == 0:
        return draw(st.sampled_from([{}, {"get_weather": TOOL}, "", "x", 0, None, []]))
    if shape < 4:
        return [TOOL]
    tool: Any = json.loads(json.dumps(TOOL))
    function = tool["function"]
    defect = draw(st.sampled_from(["drop", "name", "description", "parameters", "shape"]))
    if defect == "drop":
        del function[draw(st.sampled_from(["name", "description", "parameters"]))]
    elif defect == "name":
        function["name"] = draw(names)
    elif defect == "description":
        function["description"] = draw(st.one_of(texts, st.integers(0, 1), st.none()))
    elif defect == "parameters":
        function["parameters"] = draw(
            st.sampled_from(
                [
                    {},
                    {"type": 5},
                    {"type": "object", "required": "city"},
                    {"properties": {"city": {"type": "strin"}}},
                    "{}",
                    None,
                    [],
                ]
            )
        )
    else:
        tool = draw(st.sampled_from([{"name": "x"}, {"function": "get_weather"}, "tool"]))
    return [TOOL, tool] if rarely(draw, 3) else [tool]


def _mutate_record(draw: st.DrawFn, record: dict[str, Any]) -> None:
    """One change to a record's top-level keys."""
    kind = draw(
        st.sampled_from(
            [
                "interactions",
                "both",
                "tools",
                "tools",
                "tools",
                "available_tools",
                "both_tools",
                "system_prompt",
                "only_last",
                "extra",
                "wild",
                "odd",
            ]
        )
    )
    if kind == "interactions":
        record["interactions"] = record.pop("messages", [])
    elif kind == "both":
        record["interactions"] = record.get("messages")
    elif kind in ("tools", "both_tools"):
        record["tools"] = draw(tools_values())
    if kind in ("available_tools", "both_tools"):
        record.pop("tools", None) if kind == "available_tools" else None
        record["available_tools"] = draw(tools_values())
    elif kind == "system_prompt":
        record["system_prompt"] = draw(st.one_of(texts, st.none(), st.integers(0, 1)))
    elif kind == "only_last":
        record["only_last"] = draw(
            st.sampled_from([True, 0, 2, "yes", "maybe", "", [1], 1.0, None, {"a": 1}])
        )
    elif kind == "extra":
        record[draw(st.sampled_from(["text", "id", "metadata"]))] = "extra"
    elif kind == "wild":
        record["messages"] = draw(st.lists(messages(), max_size=5))
    elif kind == "odd":
        record["messages"] = draw(st.sampled_from([None, "hi", {}, {"role": "user"}, 3, []]))


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible conversation (half of them with tools), then zero to two record changes."""
    record: dict[str, Any] = {"messages": draw(plausible_conversations())}
    if draw(st.booleans()):
        record["tools"] = [TOOL]
    for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
        _mutate_record(draw, record)
    # A JSON round trip: records reach syncd from a JSONL line, never as Python objects.
    return dict(json.loads(json.dumps(record)))


@pytest.mark.slow  # 4,000 examples: the longest test of the suite (CPU)
def test_syncd_refuses_exactly_what_mistral_refuses() -> None:
    """Thousands of generated records: syncd's verdict equals Mistral's on every one, and the
    generator produced plenty of both verdicts (a run that only saw refusals would prove little).
    """
    tally = {"accepted": 0, "refused": 0}

    @settings(
        max_examples=4000,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(records())
    def agrees(record: dict[str, Any]) -> None:
        assert judges(record)
        theirs = oracle_verdict(record)
        ours = check_finetune_record(record)
        if theirs is None:
            tally["accepted"] += 1
            assert ours == [], f"false reject: Mistral accepts {record!r}; syncd says {ours}"
        else:
            tally["refused"] += 1
            assert ours, f"false accept: Mistral refuses {record!r} ({theirs}); syncd accepts it"

    agrees()
    assert tally["accepted"] >= 400, tally
    assert tally["refused"] >= 400, tally
