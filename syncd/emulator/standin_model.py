"""The emulator's stand-in model: a deterministic answer for each batch request body.

No model runs here. Each answer is derived from a SHA-256 of the request (its body as canonical
JSON, and the model name), so the same request always gets the same answer, across runs and
emulator restarts, and different requests get different ones:

* ``/v1/chat/completions``: a ``chat.completion`` whose assistant message names the stand-in and
  quotes the start of the last user message; ``/v1/conversations``: the same text as a
  ``conversation.response`` with one ``message.output`` entry;
* ``/v1/fim/completions``: a completion that bridges ``prompt`` and ``suffix``;
* ``/v1/embeddings``: one unit vector of :data:`EMBEDDING_DIMENSION` floats per input;
* ``/v1/moderations`` and ``/v1/chat/moderations``: every category false, every score 0;
* ``/v1/ocr``: whatever :mod:`syncd.emulator.ocr` answers for the document (passed in as
  ``ocr``, since reading a document needs the file store).

A body that is not a valid request for its endpoint (a missing or mistyped main field) raises
:class:`BadRequestBodyError`, which the batch runner turns into an error line. Token counts are
rough (a word is a token): enough for ``usage`` to look real and add up.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "EMBEDDING_DIMENSION",
    "STANDIN_ENDPOINTS",
    "BadRequestBodyError",
    "OcrAnswer",
    "answer",
]

#: The size of mistral-embed's vectors.
EMBEDDING_DIMENSION = 1024
#: How many characters of the prompt a chat answer quotes.
_QUOTE_CHARS = 60
#: The moderation categories of the real API's answers.
_MODERATION_CATEGORIES = (
    "sexual",
    "hate_and_discrimination",
    "violence_and_threats",
    "dangerous_and_criminal_content",
    "selfharm",
    "health",
    "financial",
    "law",
    "pii",
)

#: Answers an OCR request body (with the job's model filled in) as the ``/v1/ocr`` route would.
OcrAnswer = Callable[[Mapping[str, Any]], dict[str, Any]]


class BadRequestBodyError(Exception):
    """The body is not a valid request for the endpoint; ``status`` is what the API would say."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _digest(model: str, body: Mapping[str, Any]) -> bytes:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{model}\n{canonical}".encode()).digest()


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _text_of(content: object) -> str:
    """The text of a message's content: a string, or the text chunks of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(chunk.get("text", "")) for chunk in content if isinstance(chunk, dict)
        ).strip()
    return ""


def _require(body: Mapping[str, Any], field: str, *types: type) -> Any:
    value = body.get(field)
    if value is None:
        raise BadRequestBodyError(f"body.{field}: Field required")
    if not isinstance(value, types):
        names = " or ".join("a string" if t is str else f"a {t.__name__}" for t in types)
        raise BadRequestBodyError(f"body.{field}: Input should be {names}")
    return value


def _completion(
    digest: bytes, model: str, created: int, content: str, prompt_tokens: int
) -> dict[str, Any]:
    completion_tokens = _tokens(content)
    return {
        "id": digest[:16].hex(),
        "object": "chat.completion",
        "model": model,
        "created": created,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "tool_calls": None},
            }
        ],
    }


def _chat(body: Mapping[str, Any], model: str, created: int, digest: bytes) -> dict[str, Any]:
    messages = body.get("messages")
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, list) or not messages:
        raise BadRequestBodyError("body.messages: Field required (a non-empty array)")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequestBodyError("body.messages: every message must be an object")
    users = [_text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    prompt = users[-1] if users else _text_of(messages[-1].get("content"))
    quoted = " ".join(prompt.split())[:_QUOTE_CHARS]
    content = f'Stand-in answer {digest[:4].hex()} to "{quoted}".'
    prompt_tokens = sum(_tokens(_text_of(m.get("content"))) for m in messages)
    return _completion(digest, model, created, content, prompt_tokens)


def _conversation(
    body: Mapping[str, Any], model: str, created: int, digest: bytes
) -> dict[str, Any]:
    inputs = _require(body, "inputs", str, list)
    chat = _chat({"messages": inputs}, model, created, digest)
    moment = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    usage = chat["usage"]
    return {
        "object": "conversation.response",
        "conversation_id": f"conv_{digest[:12].hex()}",
        "outputs": [
            {
                "object": "entry",
                "type": "message.output",
                "created_at": moment,
                "completed_at": moment,
                "id": f"msg_{digest[12:24].hex()}",
                "model": model,
                "role": "assistant",
                "content": chat["choices"][0]["message"]["content"],
            }
        ],
        "usage": usage,
        "guardrails": None,
    }


def _fim(body: Mapping[str, Any], model: str, created: int, digest: bytes) -> dict[str, Any]:
    prompt = _require(body, "prompt", str)
    suffix = body.get("suffix") or ""
    if not isinstance(suffix, str):
        raise BadRequestBodyError("body.suffix: Input should be a string")
    content = f"/* stand-in {digest[:4].hex()}: {len(prompt)} chars before, {len(suffix)} after */"
    return _completion(digest, model, created, content, _tokens(prompt) + _tokens(suffix or "x"))


def _vector(seed: bytes) -> list[float]:
    # Not for security: a reproducible vector per input is the point.
    rng = random.Random(seed)  # noqa: S311
    values = [rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIMENSION)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _inputs(body: Mapping[str, Any]) -> list[Any]:
    raw = _require(body, "input", str, list)
    inputs = [raw] if isinstance(raw, str) else raw
    if not inputs:
        raise BadRequestBodyError("body.input: List should have at least 1 item")
    return inputs


def _embeddings(body: Mapping[str, Any], model: str, created: int, digest: bytes) -> dict[str, Any]:
    del created  # embedding answers carry no time
    inputs = _inputs(body)
    if not all(isinstance(item, str) for item in inputs):
        raise BadRequestBodyError("body.input: Input should be a string or a list of strings")
    tokens = sum(_tokens(text) for text in inputs)
    return {
        "id": digest[:16].hex(),
        "object": "list",
        "model": model,
        "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
        "data": [
            {
                "object": "embedding",
                "embedding": _vector(hashlib.sha256(f"{model}\n{text}".encode()).digest()),
                "index": index,
            }
            for index, text in enumerate(inputs)
        ],
    }


def _moderations(
    body: Mapping[str, Any], model: str, created: int, digest: bytes
) -> dict[str, Any]:
    del created
    inputs = _inputs(body)
    return {
        "id": digest[:16].hex(),
        "model": model,
        "results": [
            {
                "categories": dict.fromkeys(_MODERATION_CATEGORIES, False),
                "category_scores": dict.fromkeys(_MODERATION_CATEGORIES, 0.0),
            }
            for _ in inputs
        ],
    }


_Handler = Callable[[Mapping[str, Any], str, int, bytes], dict[str, Any]]
_HANDLERS: dict[str, _Handler] = {
    "/v1/chat/completions": _chat,
    "/v1/conversations": _conversation,
    "/v1/fim/completions": _fim,
    "/v1/embeddings": _embeddings,
    "/v1/moderations": _moderations,
    "/v1/chat/moderations": _moderations,
}
#: The endpoints the stand-in answers; a job on any other gets an error line per request.
STANDIN_ENDPOINTS = (*_HANDLERS, "/v1/ocr")


def answer(
    endpoint: str, model: str | None, body: object, *, created: int, ocr: OcrAnswer
) -> dict[str, Any]:
    """The response body the stand-in gives to one request ``body`` sent to ``endpoint``.

    ``model`` is the job's model (a body's own ``model`` wins); ``created`` stamps completions.

    Raises:
        BadRequestBodyError: the body is not a valid request for the endpoint, or the stand-in
            has no model for the endpoint.
    """
    if not isinstance(body, dict):
        raise BadRequestBodyError("body: Input should be a valid dictionary")
    name = body.get("model") if isinstance(body.get("model"), str) else model
    if not name:
        raise BadRequestBodyError("body.model: Field required (no model on the job either)")
    if endpoint == "/v1/ocr":
        _require(body, "document", dict)
        return ocr({**body, "model": name})
    handler = _HANDLERS.get(endpoint)
    if handler is None:
        raise BadRequestBodyError(f"the emulator's stand-in model does not serve {endpoint}", 400)
    return handler(body, name, created, _digest(name, body))
