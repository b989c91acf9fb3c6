"""Schema of batch request files: each line ``{"custom_id": ..., "body": {...}}``.

The rule is asymmetric: a line is a *problem* (the file is quarantined) only where Mistral
certainly refuses it, and gets a non-blocking *warning* where the docs ask for more than is
certainly enforced. "Certainly refuses" means the docs say "must", or the OpenAPI spec requires
the field with that type (the API validates requests against it: 422). Whether a refused line
fails the upload, the job, or only its own request in the results, the docs do not say.

Sources, in ``mistralai/platform-docs-public`` (commit 222f4ba, 2026-08-21): PAGE is
``src/content/en/docs/studio/batch-processing/page.mdx`` (the same text as
``public/studio-api/batch-processing.md``), TABS are its ``*_tab/_page.mdx`` per endpoint, SPEC
is ``openapi.yaml`` (``public/openapi.yaml`` agrees) under ``components/schemas``. Nothing
found in issue trackers or elsewhere shows what the real API does with a bad batch line.

rule                               verdict   source
---------------------------------  --------  ---------------------------------------------------
line is a JSON object              problem   PAGE: "Each line must be a valid JSON object"
                                             (checked by syncd.validation.jsonl)
"body" present                     problem   SPEC BatchRequest: required [body];
                                             public/openapi.yaml CreateBatchJobRequest
                                             .input_files: "Each line must be a JSON object
                                             with a `body` field"
"body" is an object                problem   SPEC BatchRequest.body: type object
"custom_id" present and not null   warning   SPEC BatchRequest.custom_id: optional, string or
                                             null; PAGE: each request has one, to reference
                                             its results
"custom_id" is a string            warning   SPEC BatchRequest.custom_id: string; PAGE and TABS
                                             only show strings ("0"); whether a number is
                                             refused or converted is unknown
"custom_id" not empty              warning   SPEC: no minimum length
"custom_id" unique in the file     warning   PAGE: "A unique `custom_id`"; no source says a
                                             duplicate is refused (1 and "1" count as one id)
no top-level keys but these two    warning   SPEC BatchRequest: only custom_id and body, extra
                                             keys not forbidden
"model" in the body                nothing   PAGE: "optional when you specify the model at job
                                             creation time"
body fits some endpoint            warning   without batch_endpoint: a body with none of the
                                             endpoints' main fields (below) fits none of them

A batch file does not say which endpoint its job will run, so body fields are checked only when
the folder names it (``batch_endpoint``, one of SPEC ApiEndpoint; PAGE lists all of them but
/v1/chat/classifications). Then, per TABS ("any valid request body for the endpoint") and the
endpoint's request schema in SPEC:

endpoint                   required field: JSON type (problem)     SPEC schema
-------------------------  --------------------------------------  -------------------------
/v1/chat/completions       messages: array                         ChatCompletionRequest
/v1/embeddings             input: string or array                  EmbeddingRequest
/v1/fim/completions        prompt: string                          FIMCompletionRequest
/v1/moderations            input: string or array                  ClassificationRequest
/v1/classifications        input: string or array                  ClassificationRequest
/v1/chat/moderations       input: array                            ChatModerationRequest
/v1/chat/classifications   input: object or array                  ChatClassificationRequest
/v1/ocr                    document: object                        OCRRequest
/v1/conversations          inputs: string or array                 ConversationRequestBase
/v1/audio/transcriptions   none; one of file_url, file_id, file    AudioTranscriptionRequest
                           expected (warning)

Each schema also requires ``model``, which the job supplies (TABS: "except the model id that
will be provided only during the job creation"), so it is never required here. The schemas
with ``additionalProperties: false`` (all but the last two) refuse unknown fields, but fields
are added to the spec from release to release, so an unknown field is a warning only. So is an
OCR ``document`` with none of ``document_url``, ``image_url``, ``file_id`` (SPEC
DocumentURLChunk, ImageURLChunk, FileChunk): below the top level of a body nothing is certain
enough to quarantine for.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from syncd.validation.jsonl import json_type, short_repr

__all__ = ["BATCH_ENDPOINTS", "BatchCheck", "BatchEndpoint"]

BatchEndpoint = Literal[
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/fim/completions",
    "/v1/moderations",
    "/v1/chat/moderations",
    "/v1/ocr",
    "/v1/classifications",
    "/v1/chat/classifications",
    "/v1/conversations",
    "/v1/audio/transcriptions",
]
"""The endpoints a batch job can run: SPEC ``ApiEndpoint``, in its order."""

#: The endpoints, for configuration checks and messages.
BATCH_ENDPOINTS: Final[tuple[BatchEndpoint, ...]] = get_args(BatchEndpoint)

_JsonType = Literal["string", "array", "object"]
_PYTHON_TYPES: Final[dict[_JsonType, type]] = {"string": str, "array": list, "object": dict}
_TYPE_NAMES: Final[dict[_JsonType, str]] = {
    "string": "a string",
    "array": "an array",
    "object": "an object",
}
_TOP_LEVEL_KEYS: Final = ("custom_id", "body")


@dataclass(frozen=True, slots=True)
class _Shape:
    """What the spec asks of a request body for one endpoint (``model`` left out)."""

    schema: str
    required: str | None = None
    types: tuple[_JsonType, ...] = ()
    any_of: tuple[str, ...] = ()
    """Without a required field: the fields of which one is expected (a warning if none)."""
    fields: frozenset[str] = frozenset()
    """Every field of a schema that refuses others; empty: the schema takes any field."""


def _fields(names: str) -> frozenset[str]:
    """``model`` and the space-separated ``names``."""
    return frozenset(("model", *names.split()))


# Fields: the union of openapi.yaml and public/openapi.yaml (they differ by one field or two).
_CLASSIFICATION = _Shape(
    "ClassificationRequest", "input", ("string", "array"), fields=_fields("input metadata")
)
_SHAPES: Final[dict[str, _Shape]] = {
    "/v1/chat/completions": _Shape(
        "ChatCompletionRequest",
        "messages",
        ("array",),
        fields=_fields(
            "messages metadata frequency_penalty guardrails max_tokens n parallel_tool_calls"
            " prediction presence_penalty prompt_cache_key prompt_mode random_seed"
            " reasoning_effort response_format safe_prompt service_tier stop stream"
            " temperature tool_choice tools top_p"
        ),
    ),
    "/v1/embeddings": _Shape(
        "EmbeddingRequest",
        "input",
        ("string", "array"),
        fields=_fields("input metadata encoding_format output_dimension output_dtype"),
    ),
    "/v1/fim/completions": _Shape(
        "FIMCompletionRequest",
        "prompt",
        ("string",),
        fields=_fields(
            "prompt suffix metadata max_tokens min_tokens prompt_cache_key random_seed stop"
            " stream temperature top_p"
        ),
    ),
    "/v1/moderations": _CLASSIFICATION,
    "/v1/classifications": _CLASSIFICATION,
    "/v1/chat/moderations": _Shape(
        "ChatModerationRequest", "input", ("array",), fields=_fields("input")
    ),
    "/v1/chat/classifications": _Shape(
        "ChatClassificationRequest", "input", ("object", "array"), fields=_fields("input")
    ),
    "/v1/ocr": _Shape(
        "OCRRequest",
        "document",
        ("object",),
        fields=_fields(
            "document id pages include_image_base64 image_limit image_min_size"
            " bbox_annotation_format document_annotation_format document_annotation_prompt"
            " table_format extract_header extract_footer include_blocks"
            " confidence_scores_granularity"
        ),
    ),
    "/v1/conversations": _Shape("ConversationRequestBase", "inputs", ("string", "array")),
    "/v1/audio/transcriptions": _Shape(
        "AudioTranscriptionRequest", any_of=("file_url", "file_id", "file")
    ),
}

#: The main fields of the endpoints' bodies: a body for any endpoint has one of them.
_KEY_FIELDS: Final = ("messages", "input", "inputs", "prompt", "document", "file_url", "file_id")
_OCR_DOCUMENT_KEYS: Final = ("document_url", "image_url", "file_id")


class BatchCheck:
    """Checks the records of one batch file in order, remembering the ids seen so far.

    ``endpoint`` (one of :data:`BATCH_ENDPOINTS`) is the endpoint the file's job will run;
    without it, body fields only ever give a warning. Memory grows with the number of distinct
    ids (a batch holds up to about a million).

    Raises:
        ValueError: ``endpoint`` is not a batch endpoint.
    """

    __slots__ = ("_first_line_of", "_shape", "endpoint")

    def __init__(self, endpoint: str | None = None) -> None:
        shape = None if endpoint is None else _SHAPES.get(endpoint)
        if endpoint is not None and shape is None:
            raise ValueError(
                f"unknown batch endpoint {endpoint!r}; use one of {', '.join(BATCH_ENDPOINTS)}"
            )
        self.endpoint = endpoint
        self._shape = shape
        self._first_line_of: dict[str, int] = {}

    def check(
        self, number: int, record: Mapping[str, Any], warnings: list[str] | None = None
    ) -> list[str]:
        """Problems of the record on line ``number`` (without the line prefix).

        Warnings (what Mistral's docs ask for but nothing shows it enforces) are appended to
        ``warnings`` when a list is given, also without the line prefix.
        """
        noted: list[str] = [] if warnings is None else warnings
        problems: list[str] = []
        self._check_id(number, record, noted)
        for key in record:
            if key not in _TOP_LEVEL_KEYS:
                noted.append(
                    f'unexpected key {short_repr(key)}; a batch line has "custom_id" and "body"'
                )
        if "body" not in record:
            problems.append('missing "body"')
        elif not isinstance(record["body"], dict):
            problems.append(f'"body" must be an object, got {json_type(record["body"])}')
        elif self._shape is None:
            _check_any_body(record["body"], noted)
        else:
            self._check_body(record["body"], self._shape, problems, noted)
        return problems

    def _check_id(self, number: int, record: Mapping[str, Any], noted: list[str]) -> None:
        if "custom_id" not in record:
            noted.append('no "custom_id": the result cannot be matched to this request')
            return
        custom_id = record["custom_id"]
        if custom_id is None:
            noted.append('"custom_id" is null: the result cannot be matched to this request')
            return
        if isinstance(custom_id, int) and not isinstance(custom_id, bool):
            noted.append(
                f'"custom_id" should be a string, got the number {custom_id} (write "{custom_id}")'
            )
        elif not isinstance(custom_id, str):
            noted.append(f'"custom_id" should be a string, got {json_type(custom_id)}')
            return
        elif not custom_id:
            noted.append('"custom_id" is empty')
            return
        first = self._first_line_of.setdefault(str(custom_id), number)
        if first != number:
            noted.append(
                f"custom_id {short_repr(custom_id)} duplicates line {first}; "
                "Mistral's docs ask for a unique id per request"
            )

    def _check_body(
        self, body: Mapping[str, Any], shape: _Shape, problems: list[str], noted: list[str]
    ) -> None:
        endpoint = self.endpoint
        required = shape.required
        if required is not None:
            if required not in body:
                problems.append(f'"body" has no "{required}", which {endpoint} requires')
            elif not isinstance(body[required], tuple(_PYTHON_TYPES[t] for t in shape.types)):
                wanted = " or ".join(_TYPE_NAMES[t] for t in shape.types)
                problems.append(
                    f'"body.{required}" must be {wanted} for {endpoint}, '
                    f"got {json_type(body[required])}"
                )
        if shape.any_of and not any(name in body for name in shape.any_of):
            noted.append(f'"body" has none of {_quoted(shape.any_of)}; {endpoint} needs one')
        document = body.get("document") if endpoint == "/v1/ocr" else None
        if isinstance(document, dict) and not any(name in document for name in _OCR_DOCUMENT_KEYS):
            noted.append(f'"body.document" has none of {_quoted(_OCR_DOCUMENT_KEYS)}')
        unknown = [name for name in body if name not in shape.fields] if shape.fields else []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(shape.fields), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            noted.append(
                f'"body" field {short_repr(name)} is not in the {shape.schema} schema of '
                f"{endpoint}{hint}; the API may refuse it"
            )


def _check_any_body(body: Mapping[str, Any], noted: list[str]) -> None:
    """With no endpoint configured: a warning when the body fits no endpoint at all."""
    if not any(name in body for name in _KEY_FIELDS):
        noted.append(f'"body" matches no batch endpoint: it has none of {_quoted(_KEY_FIELDS)}')


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{name}"' for name in names)
