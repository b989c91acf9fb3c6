"""Validation by purpose: a catalogue of bad inputs with their messages, plus invariants."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.domain import MAX_UPLOAD_BYTES
from syncd.errors import FileUnreadableError, FileVanishedError
from syncd.validation import (
    MAX_REPORTED_ERRORS,
    VALIDATION_MODES,
    ValidationMode,
    ValidationResult,
    validate_content,
    validate_file,
)
from syncd.validation.jsonl import MAX_LINE_BYTES

USER = {"role": "user", "content": "What is 2+2?"}
ASSISTANT = {"role": "assistant", "content": "4"}
CHAT = {"messages": [USER, ASSISTANT]}


def _jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def _file(tmp_path: Path, content: bytes, name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _validate(
    tmp_path: Path,
    content: bytes,
    *,
    purpose: str = "fine-tune",
    mode: ValidationMode = "strict",
    name: str = "train.jsonl",
) -> ValidationResult:
    path = _file(tmp_path, content, name)
    return validate_file(path, purpose=purpose, mode=mode, size=path.stat().st_size)


def _fine_tune_errors(*records: object) -> tuple[str, ...]:
    """Strict fine-tune errors for ``records`` (validated as a stream)."""
    stream = io.BytesIO(_jsonl(*records))
    return validate_content(stream, check="fine-tune", mode="strict").errors


class TestFileLevel:
    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty file is refused in every mode but off, without reading it."""
        for mode in ("strict", "basic"):
            result = _validate(tmp_path, b"", mode=mode)
            assert result == ValidationResult(ok=False, errors=("file is empty",), lines=None)

    def test_oversize_file(self, tmp_path: Path) -> None:
        """A file over 512 MB is refused with its size (sparse: no disk used, nothing read)."""
        path = tmp_path / "huge.jsonl"
        with path.open("wb") as f:
            f.truncate(600_000_000)
        result = validate_file(path, purpose="fine-tune", mode="basic", size=600_000_000)
        assert result.errors == ("file is 600.0 MB, over the Files API limit of 512 MB",)
        assert not result.ok

    def test_just_over_the_limit_shows_bytes(self, tmp_path: Path) -> None:
        """One byte over the limit does not read as "512.0 MB, over ... 512 MB"."""
        path = _file(tmp_path, b"x")
        result = validate_file(path, purpose="ocr", mode="basic", size=MAX_UPLOAD_BYTES + 1)
        assert result.errors == ("file is 512,000,001 bytes, over the Files API limit of 512 MB",)

    def test_exactly_the_limit_is_allowed(self, tmp_path: Path) -> None:
        """512,000,000 bytes is within the limit."""
        path = _file(tmp_path, b"%PDF", "doc.pdf")
        assert validate_file(path, purpose="ocr", mode="strict", size=MAX_UPLOAD_BYTES).ok

    def test_wrong_extension(self, tmp_path: Path) -> None:
        """A fine-tune file must end in .jsonl; the message names the file."""
        result = _validate(tmp_path, _jsonl(CHAT), name="data.txt")
        assert result.errors == ("fine-tune files must end in .jsonl; got data.txt",)

    def test_wrong_extension_lists_the_choices_for_ocr(self, tmp_path: Path) -> None:
        """A purpose with several extensions lists them."""
        result = _validate(tmp_path, b"hello", purpose="ocr", name="notes.txt")
        assert result.errors[0].startswith("ocr files must end in one of .pdf, .png, .jpg")
        assert result.errors[0].endswith("; got notes.txt")

    def test_extension_is_case_insensitive(self, tmp_path: Path) -> None:
        """``TRAIN.JSONL`` is a .jsonl file."""
        assert _validate(tmp_path, _jsonl(CHAT), name="TRAIN.JSONL").ok

    def test_filename_overrides_the_path_name(self, tmp_path: Path) -> None:
        """The name the upload will carry is the one checked."""
        path = _file(tmp_path, _jsonl(CHAT), "train.jsonl")
        result = validate_file(
            path, purpose="fine-tune", mode="strict", size=path.stat().st_size, filename="x.csv"
        )
        assert result.errors == ("fine-tune files must end in .jsonl; got x.csv",)

    def test_off_checks_nothing(self, tmp_path: Path) -> None:
        """Mode off passes even an empty file with the wrong extension."""
        result = _validate(tmp_path, b"", mode="off", name="x.txt")
        assert result == ValidationResult(ok=True, errors=(), lines=None)

    def test_unknown_mode_is_refused(self, tmp_path: Path) -> None:
        """A mode that is not strict/basic/off is a programming error, not a silent pass."""
        path = _file(tmp_path, _jsonl(CHAT))
        with pytest.raises(ValueError, match="unknown validation mode 'lenient'"):
            validate_file(path, purpose="fine-tune", mode="lenient", size=10)  # type: ignore[arg-type]
        assert VALIDATION_MODES == ("strict", "basic", "off")

    @pytest.mark.parametrize(("purpose", "name"), [("ocr", "scan.pdf"), ("audio", "a.mp3")])
    def test_content_is_not_read_for_binary_purposes(
        self, tmp_path: Path, purpose: str, name: str
    ) -> None:
        """OCR and audio files get size/extension checks only: garbage content passes."""
        result = _validate(tmp_path, b"\xff\xfe not json", purpose=purpose, name=name)
        assert result == ValidationResult(ok=True, errors=(), lines=None)

    def test_unknown_purpose_takes_any_name(self, tmp_path: Path) -> None:
        """A purpose the API adds later is not blocked by syncd's tables."""
        assert _validate(tmp_path, b"anything", purpose="agentic_safety", name="x.bin").ok

    def test_missing_file_raises(self, tmp_path: Path) -> None:
        """A file gone before validation raises FileVanishedError, not a verdict."""
        with pytest.raises(FileVanishedError):
            validate_file(tmp_path / "gone.jsonl", purpose="batch", mode="basic", size=10)

    def test_fifo_raises_unreadable(self, tmp_path: Path) -> None:
        """A FIFO swapped in for the file is refused without blocking."""
        os.mkfifo(tmp_path / "p.jsonl")
        with pytest.raises(FileUnreadableError, match="is a FIFO"):
            validate_file(tmp_path / "p.jsonl", purpose="fine-tune", mode="basic", size=10)


class TestBasicFormat:
    def test_valid_lines_count_records(self, tmp_path: Path) -> None:
        """A valid file reports how many records it holds."""
        result = _validate(tmp_path, _jsonl(CHAT, CHAT, CHAT), mode="basic")
        assert result == ValidationResult(ok=True, errors=(), lines=3)

    def test_no_final_newline_is_fine(self, tmp_path: Path) -> None:
        """The last record needs no trailing newline."""
        assert _validate(tmp_path, _jsonl(CHAT).rstrip(b"\n"), mode="basic").lines == 1

    def test_crlf_line_endings_are_fine(self, tmp_path: Path) -> None:
        """Windows line endings are JSON whitespace."""
        content = _jsonl(CHAT, CHAT).replace(b"\n", b"\r\n")
        assert _validate(tmp_path, content).ok

    def test_not_json(self, tmp_path: Path) -> None:
        """A line that is not JSON names the line and the parser's complaint."""
        result = _validate(tmp_path, _jsonl(CHAT) + b'{"messages": [}\n', mode="basic")
        assert result.errors == ("line 2: not valid JSON: Expecting value (column 15)",)

    def test_json_array_instead_of_object(self, tmp_path: Path) -> None:
        """Each line must be an object, not an array."""
        result = _validate(tmp_path, _jsonl(CHAT, [CHAT]), mode="basic")
        assert result.errors == ("line 2: expected a JSON object, got an array",)

    @pytest.mark.parametrize(
        ("line", "kind"), [(b'"text"', "a string"), (b"42", "a number"), (b"null", "null")]
    )
    def test_json_scalar_instead_of_object(self, tmp_path: Path, line: bytes, kind: str) -> None:
        """Scalars are named by their JSON type."""
        result = _validate(tmp_path, line + b"\n", mode="basic")
        assert result.errors == (f"line 1: expected a JSON object, got {kind}",)

    def test_pretty_printed_json_is_not_jsonl(self, tmp_path: Path) -> None:
        """A multi-line object fails on its first line."""
        content = json.dumps(CHAT, indent=2).encode() + b"\n"
        result = _validate(tmp_path, content, mode="basic")
        assert result.errors[0].startswith("line 1: not valid JSON: Expecting property name")

    def test_nan_is_not_json(self, tmp_path: Path) -> None:
        """Python's json accepts NaN; JSON does not, so neither does validation."""
        result = _validate(tmp_path, b'{"text": NaN}\n', mode="basic")
        assert result.errors == ("line 1: not valid JSON: NaN is not allowed in JSON",)

    def test_deeply_nested_json_is_reported_not_crashed(self, tmp_path: Path) -> None:
        """Nesting beyond the parser's recursion limit is a line error."""
        content = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
        result = _validate(tmp_path, content, mode="basic")
        assert result.errors == ("line 1: not valid JSON: nested too deeply",)

    def test_invalid_utf8(self, tmp_path: Path) -> None:
        """A bad byte is named with its line and column."""
        content = _jsonl(CHAT, CHAT, CHAT) + b'{"text": "\xff"}\n'
        result = _validate(tmp_path, content, mode="basic")
        assert result.errors == ("line 4: not valid UTF-8 (byte 0xff at column 11)",)

    def test_byte_order_mark_is_reported(self, tmp_path: Path) -> None:
        """A UTF-8 BOM is an error (with advice); the line itself is still checked."""
        result = _validate(tmp_path, b"\xef\xbb\xbf" + _jsonl(CHAT), mode="basic")
        assert result.errors == (
            "line 1: starts with a byte order mark (BOM); save the file as UTF-8 without BOM",
        )

    def test_blank_line_in_the_middle(self, tmp_path: Path) -> None:
        """A blank line between records is an error at its own line number."""
        content = _jsonl(CHAT) + b"\n" + b"   \n" + _jsonl(CHAT)
        result = _validate(tmp_path, content, mode="basic")
        assert result.errors == (
            "line 2: blank line; JSONL needs one JSON object per line",
            "line 3: blank line; JSONL needs one JSON object per line",
        )

    def test_blank_lines_at_the_end_are_allowed(self, tmp_path: Path) -> None:
        """Trailing blank lines are tolerated and not counted."""
        result = _validate(tmp_path, _jsonl(CHAT) + b"\n\n", mode="basic")
        assert result == ValidationResult(ok=True, errors=(), lines=1)

    def test_only_blank_lines(self, tmp_path: Path) -> None:
        """A non-empty file with no records is refused."""
        result = _validate(tmp_path, b"\n\n", mode="basic")
        assert result.errors == ("file has only blank lines; no JSON records",)

    def test_basic_mode_skips_the_schema(self, tmp_path: Path) -> None:
        """Basic mode accepts any object, even one no fine-tuning format would."""
        assert _validate(tmp_path, _jsonl({"anything": 1}), mode="basic").ok

    def test_errors_are_capped_with_a_count_of_the_rest(self, tmp_path: Path) -> None:
        """Only the first ten errors are spelled out; the rest are counted."""
        result = _validate(tmp_path, b"oops\n" * 25, mode="basic")
        assert len(result.errors) == MAX_REPORTED_ERRORS + 1
        assert result.errors[0].startswith("line 1: not valid JSON")
        assert result.errors[9].startswith("line 10: not valid JSON")
        assert result.errors[-1] == "... and 15 more errors"
        assert result.lines == 25

    def test_one_error_over_the_cap_is_singular(self, tmp_path: Path) -> None:
        """Eleven errors end with "... and 1 more error"."""
        result = _validate(tmp_path, b"oops\n" * 11, mode="basic")
        assert result.errors[-1] == "... and 1 more error"

    def test_overlong_line_is_skipped_without_holding_it(self, tmp_path: Path) -> None:
        """A line over the limit is reported and skipped; the next line is still checked."""
        path = tmp_path / "blob.jsonl"
        with path.open("wb") as f:
            f.truncate(MAX_LINE_BYTES + 10)  # NUL bytes, no newline: one huge line
            f.seek(0, os.SEEK_END)
            f.write(b"\n[1]\n")
        result = validate_file(path, purpose="batch", mode="basic", size=path.stat().st_size)
        assert result.errors == (
            "line 1: longer than 64 MiB; not checked",
            "line 2: expected a JSON object, got an array",
        )

    def test_large_file_is_streamed(self, tmp_path: Path) -> None:
        """Validating ~20 MB allocates a small fraction of it: lines are read one at a time."""
        record = _jsonl({"messages": [USER, {"role": "assistant", "content": "x" * 10_000}]})
        path = _file(tmp_path, record * (20_000_000 // len(record)))
        tracemalloc.start()
        try:
            result = validate_file(path, purpose="fine-tune", mode="strict", size=10)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.ok
        assert peak < 4 * 1024 * 1024


class TestFineTuneSchema:
    def test_chat_record_is_accepted(self) -> None:
        """A plain user/assistant conversation (with a system prompt) passes."""
        system = {"role": "system", "content": "Be brief."}
        assert _fine_tune_errors(CHAT, {"messages": [system, USER, ASSISTANT]}) == ()

    def test_missing_messages(self) -> None:
        """A record with neither messages nor text says what it expected and what it got."""
        assert _fine_tune_errors({"prompt": "p", "completion": "c"}) == (
            'line 1: expected "messages" (chat), "text" (pretrain) or either with "labels" '
            "(classifier); got keys: 'prompt', 'completion'",
        )

    def test_messages_and_text_together(self) -> None:
        """A record with messages is a conversation: a top-level text is ignored, with a
        warning (mistral-finetune reads only the messages)."""
        stream = io.BytesIO(_jsonl({"messages": [USER, ASSISTANT], "text": "x"}))
        result = validate_content(stream, check="fine-tune", mode="strict")
        assert result.ok
        assert result.warnings == (
            'line 1: the top-level "text" is ignored: the record is read as a conversation',
        )

    def test_empty_messages(self) -> None:
        """``messages`` must be a list with a user and an assistant message."""
        assert _fine_tune_errors({"messages": []}, {"messages": "hi"}) == (
            'line 1: "messages" has no user, assistant or tool message; at least two are needed',
            "line 2: \"messages\" must be a list of messages, got the string 'hi'",
        )

    def test_last_role_user(self) -> None:
        """A conversation must end with the assistant."""
        errors = _fine_tune_errors(CHAT, CHAT, {"messages": [USER, ASSISTANT, USER]})
        assert errors == (
            "line 3: message 3: the last message must be from the assistant, got 'user'",
        )

    def test_no_assistant_at_all(self) -> None:
        """A conversation with no assistant turn has nothing to train on."""
        assert _fine_tune_errors(
            {"messages": [{"role": "system", "content": "s"}, USER, USER]}
        ) == ("line 1: message 3: the last message must be from the assistant, got 'user'",)

    def test_single_assistant_message(self) -> None:
        """Mistral's validator wants a conversation to start with a user message."""
        assert _fine_tune_errors({"messages": [ASSISTANT]}) == (
            "line 1: message 1: a conversation must start with a user message",
        )

    def test_last_system_message_becomes_the_system_prompt(self) -> None:
        """mistral-finetune lifts system messages out wherever they stand."""
        system = {"role": "system", "content": "Be brief."}
        assert _fine_tune_errors({"messages": [USER, ASSISTANT, system]}) == ()
        assert _fine_tune_errors({"messages": [system, USER, system, ASSISTANT]}) == (
            "line 1: message 3: a second system prompt; a conversation has at most one "
            '(the system messages and "system_prompt" together)',
        )

    def test_bad_role(self) -> None:
        """Roles outside system/user/assistant/tool are named."""
        errors = _fine_tune_errors({"messages": [{"role": "bot", "content": "hi"}, ASSISTANT]})
        assert errors == (
            "line 1: message 1: role 'bot' is not one of system, user, assistant, tool",
        )

    def test_role_missing_or_not_a_string(self) -> None:
        """A message needs a string role."""
        errors = _fine_tune_errors(
            {"messages": [{"content": "hi"}, ASSISTANT]},
            {"messages": [{"role": 3, "content": "hi"}, ASSISTANT]},
        )
        assert errors == (
            'line 1: message 1: missing "role"',
            'line 2: message 1: "role" must be a string, got a number',
        )

    def test_message_not_an_object(self) -> None:
        """Each message is an object."""
        assert _fine_tune_errors({"messages": ["hi", ASSISTANT]}) == (
            "line 1: message 1: expected an object, got a string",
        )

    def test_content_missing_or_wrong_type(self) -> None:
        """User content is required; content is a string or a list of typed parts."""
        errors = _fine_tune_errors(
            {"messages": [{"role": "user"}, ASSISTANT]},
            {"messages": [{"role": "user", "content": 5}, ASSISTANT]},
            {"messages": [{"role": "user", "content": ["x"]}, ASSISTANT]},
            {"messages": [USER, {"role": "assistant"}]},
            {"messages": [USER, {"role": "assistant", "content": ""}]},
        )
        assert errors == (
            'line 1: message 1: missing "content"',
            'line 2: message 1: "content" must be a string or a list of parts, got a number',
            'line 3: message 1: content part 1: expected an object with a "type"',
            'line 4: message 2: missing "content"',
            'line 5: message 2: an assistant message needs "content" or "tool_calls"',
        )

    def test_text_is_an_alternative_to_content(self) -> None:
        """mistral-finetune reads a message's "text" where "content" is absent, not both."""
        assert _fine_tune_errors({"messages": [{"role": "user", "text": "hi"}, ASSISTANT]}) == ()
        both = {"role": "user", "text": "hi", "content": "hi"}
        assert _fine_tune_errors({"messages": [both, ASSISTANT]}) == (
            'line 1: message 1: has both "content" and "text"; use one',
        )

    def test_content_parts_are_accepted(self) -> None:
        """Text and image parts from the user, text parts from the assistant are valid."""
        parts = [
            {"type": "text", "text": "Describe this."},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ]
        reply = {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}
        assert _fine_tune_errors({"messages": [{"role": "user", "content": parts}, reply]}) == ()

    def test_content_parts_mistral_refuses(self) -> None:
        """Unknown fields, unknown types and types the role may not carry are named."""
        errors = _fine_tune_errors(
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "x", "a": 1}]},
                    ASSISTANT,
                ]
            },
            {"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}, ASSISTANT]},
            {
                "messages": [
                    USER,
                    {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]},
                ]
            },
        )
        assert errors == (
            "line 1: message 1: content part 1: unexpected key 'a' in a 'text' part",
            "line 2: message 1: content part 1: unknown type 'video'",
            "line 3: message 2: content part 1: 'thinking' parts are not accepted in this message",
        )

    def test_weight(self) -> None:
        """``weight`` is 0 or 1 as pydantic reads it (true and "1" are 1); 0.5 is refused."""
        ok = {"messages": [USER, {**ASSISTANT, "weight": 0}, USER, {**ASSISTANT, "weight": 1}]}
        coerced = {
            "messages": [USER, {**ASSISTANT, "weight": True}, USER, {**ASSISTANT, "weight": "0"}]
        }
        assert _fine_tune_errors(ok, coerced) == ()
        errors = _fine_tune_errors(
            {"messages": [USER, {**ASSISTANT, "weight": 0.5}]},
            {"messages": [USER, {**ASSISTANT, "weight": "heavy"}]},
        )
        assert errors == (
            'line 1: message 2: "weight" must be 0 or 1, got 0.5',
            "line 2: message 2: \"weight\" must be 0 or 1, got 'heavy'",
        )

    def test_extra_top_level_keys_are_allowed(self) -> None:
        """Unknown keys beside messages (metadata, ids) do not fail the record."""
        assert _fine_tune_errors({**CHAT, "metadata": {"source": "x"}, "id": 7}) == ()

    def test_pretrain_text(self) -> None:
        """``text`` (or ``content``) records need a string; an empty one only warns."""
        assert _fine_tune_errors({"text": "Once upon a time"}, {"content": "x"}) == ()
        assert _fine_tune_errors({"text": 5}, {"text": "a", "content": "b"}) == (
            'line 1: "text" must be a string, got a number',
            'line 2: has both "text" and "content"; a pretrain record has one of them',
        )
        result = validate_content(
            io.BytesIO(_jsonl({"text": " "})), check="fine-tune", mode="strict"
        )
        assert result.ok
        assert result.warnings == ('line 1: "text" is empty: the record adds nothing to train on',)


class TestFunctionCalling:
    @staticmethod
    def _record(**overrides: Any) -> dict[str, Any]:
        call = {
            "id": "TX92Jm8Zi",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
        call.update(overrides)
        return {
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "TX92Jm8Zi", "content": "22C"},
                {"role": "assistant", "content": "22C and sunny."},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "description": "", "parameters": {}},
                }
            ],
        }

    @staticmethod
    def _warnings(*records: object) -> tuple[str, ...]:
        stream = io.BytesIO(_jsonl(*records))
        result = validate_content(stream, check="fine-tune", mode="strict")
        assert result.ok, result.errors
        return result.warnings

    def test_tool_call_round_trip_is_accepted(self) -> None:
        """Assistant tool call, tool answer, assistant reply: valid, nothing to warn about."""
        assert self._warnings(self._record()) == ()

    def test_tool_call_shape(self) -> None:
        """The call id and function name follow Mistral's patterns; arguments are a string."""
        bad = self._record(id="call_1", function={"name": "get weather", "arguments": {"a": 1}})
        errors = _fine_tune_errors(bad)
        assert errors == (
            'line 1: message 2, tool call 1: "function.arguments" must be a string of JSON, '
            "got an object",
            "line 1: message 2, tool call 1: function name 'get weather' must be 1-64 "
            "characters of a-z, A-Z, 0-9, _ and -",
        )
        assert _fine_tune_errors(self._record(id="call_1")) == (
            'line 1: message 2, tool call 1: "id" must be 9 characters of a-z, A-Z and 0-9, '
            "got 'call_1'",
        )

    def test_arguments_not_json_text_only_warns(self) -> None:
        """The docs ask for JSON text; mistral-finetune takes any string."""
        record = self._record(function={"name": "get_weather", "arguments": "city=Paris"})
        assert self._warnings(record) == (
            'line 1: message 2, tool call 1: "function.arguments" is not JSON text, as the '
            "docs ask",
        )

    def test_tool_message_needs_tool_call_id(self) -> None:
        """A tool message without a tool_call_id is refused."""
        record = self._record()
        del record["messages"][2]["tool_call_id"]
        assert _fine_tune_errors(record) == (
            'line 1: message 3: a tool message needs a "tool_call_id"',
        )

    def test_tool_answers_are_counted(self) -> None:
        """Each call gets one answer before the next assistant message."""
        record = self._record()
        record["messages"].insert(3, dict(record["messages"][2]))
        assert _fine_tune_errors(record) == (
            "line 1: message 5: the tool calls before it got 1 answer(s) too many",
        )

    def test_tool_calls_on_a_user_message_are_ignored(self) -> None:
        """mistral-finetune reads tool calls on assistant messages only."""
        record = {"messages": [{**USER, "tool_calls": []}, ASSISTANT]}
        assert _fine_tune_errors(record) == ()

    def test_undefined_functions_only_warn(self) -> None:
        """The docs define every called function in "tools"; Mistral's code does not check."""
        missing = self._record()
        del missing["tools"]
        undefined = self._record()
        undefined["tools"][0]["function"]["name"] = "other"
        assert self._warnings(missing, undefined) == (
            "line 1: tool calls ('get_weather') but no tools list: Mistral's docs define every "
            'called function in a top-level "tools" list',
            "line 2: message 2: tool 'get_weather' is called but not in the tools list: "
            'Mistral\'s docs define every called function in a top-level "tools" list',
        )

    def test_tools_need_description_and_parameters(self) -> None:
        """mistral-finetune requires name, description and dict parameters of every tool."""
        record = self._record()
        record["tools"] = [{"type": "function", "function": {"name": "get_weather"}}]
        assert _fine_tune_errors(record) == (
            'line 1: tools 1: the function needs "description", "parameters"',
        )


class TestClassifier:
    def test_text_and_chat_classifier_records(self) -> None:
        """Labels with string or list values pass; classifier chats need no assistant turn."""
        assert (
            _fine_tune_errors(
                {"text": "great product", "labels": {"sentiment": "positive"}},
                {"text": "x", "labels": {"topics": ["a", "b"], "lang": "en"}},
                {"messages": [USER], "labels": {"intent": "math"}},
            )
            == ()
        )

    def test_bad_labels(self) -> None:
        """Labels must be a non-empty object of strings or lists of strings."""
        errors = _fine_tune_errors(
            {"text": "x", "labels": {}},
            {"text": "x", "labels": ["positive"]},
            {"text": "x", "labels": {"score": 5}},
            {"text": "x", "labels": {"tags": ["a", 1]}},
        )
        assert errors == (
            'line 1: "labels" must be a non-empty object, got an object',
            'line 2: "labels" must be a non-empty object, got an array',
            "line 3: label 'score' must be a string or a list of strings, got a number",
            "line 4: label 'tags' must be a string or a list of strings, got an array",
        )

    def test_classifier_text_must_be_a_string(self) -> None:
        """The text of a classifier record follows the pretrain rule."""
        assert _fine_tune_errors({"text": 3, "labels": {"a": "b"}}) == (
            'line 1: "text" must be a string, got a number',
        )


class TestBatch:
    def _errors(self, tmp_path: Path, *records: object) -> tuple[str, ...]:
        return _validate(tmp_path, _jsonl(*records), purpose="batch", name="b.jsonl").errors

    def test_valid_batch(self, tmp_path: Path) -> None:
        """String and integer custom_ids with object bodies pass."""
        body = {"max_tokens": 10, "messages": [USER]}
        assert (
            self._errors(tmp_path, {"custom_id": "a", "body": body}, {"custom_id": 2, "body": body})
            == ()
        )

    def test_custom_id_and_body_rules(self, tmp_path: Path) -> None:
        """body must be an object (quarantined otherwise); a missing, null, non-string or
        empty custom_id is only a warning: Mistral's spec makes it an optional string."""
        body = {"messages": [USER]}
        result = _validate(
            tmp_path,
            _jsonl(
                {"body": body},
                {"custom_id": None, "body": body},
                {"custom_id": True, "body": body},
                {"custom_id": "", "body": body},
                {"custom_id": "x"},
                {"custom_id": "y", "body": "hi"},
            ),
            purpose="batch",
            name="b.jsonl",
        )
        assert result.errors == (
            'line 5: missing "body"',
            'line 6: "body" must be an object, got a string',
        )
        assert result.warnings == (
            'line 1: no "custom_id": the result cannot be matched to this request',
            'line 2: "custom_id" is null: the result cannot be matched to this request',
            'line 3: "custom_id" should be a string, got a boolean',
            'line 4: "custom_id" is empty',
        )

    def test_duplicate_custom_ids(self, tmp_path: Path) -> None:
        """A repeated custom_id is a warning naming the line that used it first (Mistral's
        docs ask for unique ids, nothing shows it refuses duplicates); 1 and "1" collide."""
        body = {"messages": [USER]}
        result = _validate(
            tmp_path,
            _jsonl(
                {"custom_id": "a", "body": body},
                {"custom_id": 1, "body": body},
                {"custom_id": "a", "body": body},
                {"custom_id": "1", "body": body},
            ),
            purpose="batch",
            name="b.jsonl",
        )
        assert result.ok
        assert result.warnings == (
            'line 2: "custom_id" should be a string, got the number 1 (write "1")',
            "line 3: custom_id 'a' duplicates line 1; Mistral's docs ask for a unique id per "
            "request",
            "line 4: custom_id '1' duplicates line 2; Mistral's docs ask for a unique id per "
            "request",
        )

    def test_basic_mode_skips_batch_schema(self, tmp_path: Path) -> None:
        """Basic mode checks only that lines are JSON objects."""
        result = _validate(tmp_path, _jsonl({"x": 1}, {"x": 1}), purpose="batch", mode="basic")
        assert result.ok


_text = st.text(st.characters(codec="utf-8"), max_size=20)  # no lone surrogates
_user = st.fixed_dictionaries({"role": st.just("user"), "content": _text})
_system = st.fixed_dictionaries({"role": st.just("system"), "content": _text})
_chat = st.builds(
    lambda system, users, reply, weight: {
        "messages": [*system, *users, {"role": "assistant", "content": reply, **weight}]
    },
    st.lists(_system, max_size=1),
    st.lists(_user, min_size=1, max_size=3),
    _text.filter(bool),  # Mistral refuses an empty assistant message
    st.sampled_from([{}, {"weight": 0}, {"weight": 1}]),
)
_corruptions = st.sampled_from(
    [b"not json", b"[1, 2]", b'{"messages": "x"}', b'{"messages": []}', b'"\xff"', b""]
)


class TestInvariants:
    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(records=st.lists(_chat, min_size=1, max_size=20))
    def test_any_valid_chat_records_validate(self, records: list[dict[str, Any]]) -> None:
        """Any list of well-formed chat records, serialized as JSONL, passes strict checks."""
        stream = io.BytesIO(_jsonl(*records))
        result = validate_content(stream, check="fine-tune", mode="strict")
        assert result == ValidationResult(ok=True, errors=(), lines=len(records))

    @settings(max_examples=60)
    @given(
        records=st.lists(_chat, min_size=2, max_size=20),
        where=st.integers(min_value=0),
        corrupt=_corruptions,
    )
    def test_one_corrupt_line_is_the_first_error(
        self, records: list[dict[str, Any]], where: int, corrupt: bytes
    ) -> None:
        """Replacing one line with a bad one makes that line number the first error."""
        lines = _jsonl(*records).splitlines(keepends=True)
        index = where % (len(lines) - 1)  # not the last line: a trailing blank line is fine
        lines[index] = corrupt + b"\n"
        result = validate_content(io.BytesIO(b"".join(lines)), check="fine-tune", mode="strict")
        assert not result.ok
        assert result.errors[0].startswith(f"line {index + 1}: ")
