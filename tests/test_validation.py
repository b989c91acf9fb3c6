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
        """A record cannot be both chat and text."""
        assert _fine_tune_errors({"messages": [USER, ASSISTANT], "text": "x"}) == (
            'line 1: has both "messages" and "text"; a record is either a chat or a text',
        )

    def test_empty_messages(self) -> None:
        """``messages`` must be a non-empty list."""
        assert _fine_tune_errors({"messages": []}, {"messages": "hi"}) == (
            'line 1: "messages" must be a non-empty list, got an array',
            "line 2: \"messages\" must be a non-empty list, got the string 'hi'",
        )

    def test_last_role_user(self) -> None:
        """A conversation must end with the assistant."""
        errors = _fine_tune_errors(CHAT, CHAT, {"messages": [USER, ASSISTANT, USER]})
        assert errors == ("line 3: last message must be from the assistant, got 'user'",)

    def test_no_assistant_at_all(self) -> None:
        """A conversation with no assistant turn has nothing to train on."""
        assert _fine_tune_errors({"messages": [{"role": "system", "content": "s"}, USER]}) == (
            "line 1: last message must be from the assistant, got 'user'",
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
        )
        assert errors == (
            'line 1: message 1: missing "content"',
            'line 2: message 1: "content" must be a string or a list, got a number',
            'line 3: message 1: content part 1 must be an object with a "type" string',
            'line 4: message 2: an assistant message needs "content" or "tool_calls"',
        )

    def test_content_parts_are_accepted(self) -> None:
        """A list of typed content parts is valid content."""
        parts = [{"type": "text", "text": "Describe this."}]
        assert (
            _fine_tune_errors({"messages": [{"role": "user", "content": parts}, ASSISTANT]}) == ()
        )

    def test_weight(self) -> None:
        """``weight`` is 0 or 1; true/false and 0.5 are refused."""
        ok = {"messages": [USER, {**ASSISTANT, "weight": 0}, USER, {**ASSISTANT, "weight": 1}]}
        assert _fine_tune_errors(ok) == ()
        errors = _fine_tune_errors(
            {"messages": [USER, {**ASSISTANT, "weight": 0.5}]},
            {"messages": [USER, {**ASSISTANT, "weight": True}]},
        )
        assert errors == (
            'line 1: message 2: "weight" must be 0 or 1, got 0.5',
            'line 2: message 2: "weight" must be 0 or 1, got True',
        )

    def test_extra_top_level_keys_are_allowed(self) -> None:
        """Unknown keys beside messages (metadata, tools) do not fail the record."""
        assert _fine_tune_errors({**CHAT, "metadata": {"source": "x"}, "id": 7}) == ()

    def test_pretrain_text(self) -> None:
        """``text`` records pass with text and fail when it is empty or not a string."""
        assert _fine_tune_errors({"text": "Once upon a time"}) == ()
        assert _fine_tune_errors({"text": ""}, {"text": "  "}, {"text": 5}) == (
            'line 1: "text" must be a non-empty string, got an empty string',
            'line 2: "text" must be a non-empty string, got an empty string',
            'line 3: "text" must be a non-empty string, got a number',
        )


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
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        }

    def test_tool_call_round_trip_is_accepted(self) -> None:
        """Assistant tool call, tool answer, assistant reply: valid."""
        assert _fine_tune_errors(self._record()) == ()

    def test_tool_call_shape(self) -> None:
        """id, type "function", function name and JSON-text arguments are all checked."""
        bad = self._record(id="", type="api", function={"name": "", "arguments": {"a": 1}})
        bad["messages"][2]["tool_call_id"] = "TX92Jm8Zi"
        errors = _fine_tune_errors(bad)
        assert errors[:4] == (
            'line 1: message 2, tool call 1: "id" must be a non-empty string',
            'line 1: message 2, tool call 1: "type" must be "function", got \'api\'',
            'line 1: message 2, tool call 1: "function.name" must be a non-empty string',
            'line 1: message 2, tool call 1: "function.arguments" must be a string of JSON, '
            "got an object",
        )

    def test_arguments_must_be_json_text(self) -> None:
        """``arguments`` is a string holding JSON."""
        errors = _fine_tune_errors(
            self._record(function={"name": "get_weather", "arguments": "city=Paris"})
        )
        assert errors == (
            'line 1: message 2, tool call 1: "function.arguments" is not valid JSON text',
        )

    def test_tool_message_needs_tool_call_id(self) -> None:
        """A tool message without tool_call_id is refused; the call is then unanswered."""
        record = self._record()
        del record["messages"][2]["tool_call_id"]
        assert _fine_tune_errors(record) == (
            'line 1: message 3: a tool message needs a "tool_call_id" string',
            "line 1: message 2: tool call 'TX92Jm8Zi' is not answered by a later tool message",
        )

    def test_tool_answer_to_no_call(self) -> None:
        """A tool_call_id must answer an earlier call."""
        record = self._record()
        record["messages"][2]["tool_call_id"] = "zzzzzzzzz"
        errors = _fine_tune_errors(record)
        assert (
            errors[0] == "line 1: message 3: tool_call_id 'zzzzzzzzz' answers no earlier tool call"
        )

    def test_tool_calls_only_on_assistant(self) -> None:
        """A user message cannot carry tool_calls."""
        record = {"messages": [{**USER, "tool_calls": []}, ASSISTANT]}
        assert _fine_tune_errors(record) == (
            'line 1: message 1: only assistant messages may have "tool_calls"',
        )

    def test_tools_must_define_called_functions(self) -> None:
        """Every called function appears in the top-level tools list."""
        missing = self._record()
        del missing["tools"]
        undefined = self._record()
        undefined["tools"] = [{"type": "function", "function": {"name": "other"}}]
        assert _fine_tune_errors(missing, undefined) == (
            "line 1: tool calls ('get_weather') need a top-level \"tools\" list defining them",
            "line 2: message 2: tool 'get_weather' is called but not defined in \"tools\"",
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

    def test_classifier_text_must_not_be_empty(self) -> None:
        """The text of a classifier record follows the pretrain rule."""
        assert _fine_tune_errors({"text": "", "labels": {"a": "b"}}) == (
            'line 1: "text" must be a non-empty string, got an empty string',
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
        """custom_id must exist and be a string or integer; body must be an object."""
        errors = self._errors(
            tmp_path,
            {"body": {}},
            {"custom_id": None, "body": {}},
            {"custom_id": True, "body": {}},
            {"custom_id": "", "body": {}},
            {"custom_id": "x"},
            {"custom_id": "y", "body": "hi"},
        )
        assert errors == (
            'line 1: missing "custom_id"',
            'line 2: "custom_id" must be a string or an integer, got null',
            'line 3: "custom_id" must be a string or an integer, got a boolean',
            'line 4: "custom_id" must not be empty',
            'line 5: missing "body"',
            'line 6: "body" must be an object, got a string',
        )

    def test_duplicate_custom_ids(self, tmp_path: Path) -> None:
        """A repeated custom_id names the line that used it first; 1 and "1" collide."""
        errors = self._errors(
            tmp_path,
            {"custom_id": "a", "body": {}},
            {"custom_id": 1, "body": {}},
            {"custom_id": "a", "body": {}},
            {"custom_id": "1", "body": {}},
        )
        assert errors == (
            "line 3: custom_id 'a' duplicates line 1",
            "line 4: custom_id '1' duplicates line 2",
        )

    def test_basic_mode_skips_batch_schema(self, tmp_path: Path) -> None:
        """Basic mode checks only that lines are JSON objects."""
        result = _validate(tmp_path, _jsonl({"x": 1}, {"x": 1}), purpose="batch", mode="basic")
        assert result.ok


_text = st.text(st.characters(codec="utf-8"), max_size=20)  # no lone surrogates
_message = st.fixed_dictionaries({"role": st.sampled_from(["system", "user"]), "content": _text})
_chat = st.builds(
    lambda head, reply, weight: {
        "messages": [*head, {"role": "assistant", "content": reply, **weight}]
    },
    st.lists(_message, max_size=4),
    _text,
    st.sampled_from([{}, {"weight": 0}, {"weight": 1}]),
)
_corruptions = st.sampled_from(
    [b"not json", b"[1, 2]", b'{"messages": "x"}', b'{"text": ""}', b'"\xff"', b""]
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
