"""Server-side content checks: which JSONL the emulator accepts, and how it reports the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd.emulator.validation import (
    ContentRejectedError,
    guess_mimetype,
    inspect_content,
)


def write_lines(tmp_path: Path, *records: object, raw: bytes = b"") -> Path:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + raw)
    return path


def rejected(path: Path, purpose: str = "fine-tune", **kwargs: int) -> dict[str, object]:
    with pytest.raises(ContentRejectedError) as caught:
        inspect_content(path, path.name, purpose, **kwargs)
    return caught.value.body


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_chat_with_tools_is_instruct(tmp_path: Path) -> None:
    """Chat lines, including a tool-call turn without content, count as instruct samples."""
    call = {"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    path = write_lines(
        tmp_path,
        {"messages": [{"role": "system", "content": "s"}, user("q"), assistant("a")]},
        {
            "messages": [
                user("q"),
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "content": "42", "tool_call_id": "abcdefghi"},
                assistant("42"),
            ]
        },
        raw=b"\n  \n",
    )
    report = inspect_content(path, path.name, "fine-tune")
    assert (report.sample_type, report.num_lines) == ("instruct", 2)


def test_pretrain_and_classifier_formats_are_accepted(tmp_path: Path) -> None:
    """Pretrain text lines and classifier lines (text or chat plus labels) pass."""
    path = write_lines(
        tmp_path,
        {"text": "raw"},
        {"text": "x", "labels": {"topic": "sport", "tags": ["a", "b"]}},
        {"messages": [user("only a user turn")], "labels": {"lang": "en"}},
    )
    report = inspect_content(path, path.name, "fine-tune")
    assert (report.sample_type, report.num_lines) == ("pretrain", 3)


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark before the first line does not break JSON parsing."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"text":"x"}\n')
    assert inspect_content(path, path.name, "fine-tune").num_lines == 1


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ([1, 2], "JSON object"),
        ({"prompt": "x"}, '"messages"'),
        ({"messages": []}, "at least two are needed"),
        ({"messages": [{"role": "robot", "content": "x"}, assistant("a")]}, "is not one of"),
        ({"messages": [user("q"), {"role": "assistant"}]}, 'missing "content"'),
        ({"messages": [user("q"), assistant("a"), user("again")]}, "got 'user'"),
        ({"messages": [user("q"), {"role": "assistant", "content": 5}]}, "string or a list"),
        ({"messages": [assistant("a")]}, "must start with a user message"),
        ({"text": 5}, '"text" must be a string'),
        ({"text": "x", "labels": {}}, '"labels"'),
        ({"text": "x", "labels": {"a": 1}}, "label 'a'"),
    ],
)
def test_bad_training_lines_are_reported(tmp_path: Path, record: object, fragment: str) -> None:
    """Each kind of malformed training line produces a message naming the problem."""
    path = write_lines(tmp_path, {"text": "fine"}, record)
    body = rejected(path)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {e["line_number"] for e in errors} == {2}
    assert any(fragment in e["message"] for e in errors), errors


def test_error_list_is_capped_but_counted(tmp_path: Path) -> None:
    """Hundreds of bad lines list the first 100 errors and count every one."""
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"nope\n" * 250)
    body = rejected(path)
    assert body["detail"] == "Invalid file format."
    assert str(body["description"]).startswith("Found 250 errors in this file.")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert len(errors) == 100
    assert errors[-1]["line_number"] == 100


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    """A training file with no samples (only blank lines) is rejected."""
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n\n")
    assert "no samples" in str(rejected(path)["errors"])


def test_overlong_line_is_an_error_not_a_memory_spike(tmp_path: Path) -> None:
    """A line over the cap is reported by number and the lines after it are still checked."""
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"text":"' + b"x" * 500 + b'"}\n' + b"oops\n" + b'{"text":"ok"}\n')
    errors = rejected(path, max_line_bytes=100)["errors"]
    assert isinstance(errors, list)
    assert [e["line_number"] for e in errors] == [1, 2]
    assert "longer than 100 bytes" in errors[0]["message"]


def test_decode_error_wins_over_format_errors(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 give the decode detail, for batch files too."""
    path = tmp_path / "b.jsonl"
    path.write_bytes(b'{"custom_id":"1","body":{"x":"\xe9"}}\n')
    assert rejected(path, "batch") == {
        "detail": "Failed to decode data, please encode your file using UTF-8."
    }


def test_unchecked_purposes_skip_parsing(tmp_path: Path) -> None:
    """OCR and unknown purposes are not parsed; OCR reports the ocr_input sample type."""
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"\xff\xfe not text")
    assert inspect_content(path, path.name, "ocr").sample_type == "ocr_input"
    report = inspect_content(path, path.name, "future-purpose")
    assert (report.sample_type, report.num_lines) == ("pretrain", None)


@pytest.mark.parametrize(
    ("name", "declared", "expected"),
    [
        ("a.jsonl", "application/octet-stream", "application/jsonl"),
        ("A.JSONL", None, "application/jsonl"),
        ("doc.pdf", "application/octet-stream", "application/pdf"),
        ("noext", "text/plain", "text/plain"),
        ("noext", "application/octet-stream", "application/octet-stream"),
        ("noext", None, "application/octet-stream"),
    ],
)
def test_mimetype_comes_from_the_name_first(name: str, declared: str | None, expected: str) -> None:
    """The name decides the mimetype; a declared type only helps when the name cannot."""
    assert guess_mimetype(name, declared) == expected
