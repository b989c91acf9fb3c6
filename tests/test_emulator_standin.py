"""The emulator's stand-in model on its own: the shape of each endpoint's answer, determinism,
and the bodies it refuses (which become a batch job's error lines)."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.emulator.standin_model import BadRequestBodyError, answer


def no_ocr(body: Any) -> dict[str, Any]:
    raise AssertionError("no OCR expected")


def run(endpoint: str, body: object, model: str | None = "m") -> dict[str, Any]:
    return answer(endpoint, model, body, created=1_700_000_000, ocr=no_ocr)


@pytest.mark.parametrize(
    ("endpoint", "body", "kind"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "chat"),
        ("/v1/fim/completions", {"prompt": "def f(", "suffix": "return 1"}, "chat"),
        ("/v1/conversations", {"inputs": "hello"}, "conversation"),
        ("/v1/embeddings", {"input": ["a", "b"]}, "embeddings"),
        ("/v1/moderations", {"input": "text"}, "moderation"),
        ("/v1/chat/moderations", {"input": [[{"role": "user", "content": "x"}]]}, "moderation"),
    ],
)
def test_each_endpoint_gets_its_answer_shape_the_same_way_every_time(
    endpoint: str, body: dict[str, Any], kind: str
) -> None:
    """The answer has the endpoint's response shape and depends only on the request."""
    first = run(endpoint, body)
    assert first == run(endpoint, body)
    if kind == "chat":
        assert first["object"] == "chat.completion"
        assert first["choices"][0]["message"]["role"] == "assistant"
        usage = first["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    elif kind == "conversation":
        assert first["object"] == "conversation.response"
        assert first["outputs"][0]["type"] == "message.output"
    elif kind == "embeddings":
        assert [item["index"] for item in first["data"]] == [0, 1]
    else:
        assert len(first["results"]) == 1
        assert not any(first["results"][0]["categories"].values())
    assert first != run(endpoint, body, model="other")


def test_a_bodys_own_model_wins_over_the_jobs() -> None:
    """A line that names its model is answered by that model's name."""
    body = {"model": "mine", "messages": [{"role": "user", "content": "x"}]}
    assert run("/v1/chat/completions", body, model="job-model")["model"] == "mine"


@pytest.mark.parametrize(
    ("endpoint", "body", "model", "status"),
    [
        ("/v1/chat/completions", {"max_tokens": 3}, "m", 422),
        ("/v1/chat/completions", {"messages": []}, "m", 422),
        ("/v1/chat/completions", {"messages": ["hi"]}, "m", 422),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, None, 422),
        ("/v1/embeddings", {"input": [1, 2]}, "m", 422),
        ("/v1/embeddings", {"input": []}, "m", 422),
        ("/v1/fim/completions", {"prompt": 3}, "m", 422),
        ("/v1/conversations", {"messages": []}, "m", 422),
        ("/v1/ocr", {"pages": [0]}, "m", 422),
        ("/v1/audio/transcriptions", {"file_id": "x"}, "m", 400),
        ("/v1/chat/completions", ["not", "an", "object"], "m", 422),
    ],
)
def test_bodies_the_endpoint_would_refuse_raise_with_a_status(
    endpoint: str, body: object, model: str | None, status: int
) -> None:
    """A missing or mistyped main field, no model anywhere, or an endpoint the stand-in does
    not serve: BadRequestBodyError with the status its error line reports."""
    with pytest.raises(BadRequestBodyError) as caught:
        run(endpoint, body, model)
    assert caught.value.status == status
