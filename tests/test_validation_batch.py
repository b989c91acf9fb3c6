"""Batch request files against Mistral's batch docs: quarantined only where Mistral certainly
refuses, warned where the docs ask for more than is enforced, and the ``batch_endpoint``
folder setting that lets request bodies be checked for their endpoint."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from syncd.config import Config, FolderConfig, load_config
from syncd.errors import ConfigError
from syncd.validation import ValidationMode, ValidationResult, validate_content, validate_file
from syncd.validation.batch import BATCH_ENDPOINTS, BatchCheck

USER = {"role": "user", "content": "What is the best French cheese?"}
CHAT = {"max_tokens": 128, "messages": [USER]}

#: One body per endpoint, taken from the examples of Mistral's batch docs where there is one
#: (src/content/en/docs/studio/batch-processing/*_tab/_page.mdx), else from the spec.
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": CHAT,
    "/v1/embeddings": {"input": ["The quick brown fox.", "To be or not to be."]},
    "/v1/fim/completions": {"prompt": "def fib(n):", "suffix": "return a", "max_tokens": 64},
    "/v1/moderations": {"input": "Some text to moderate."},
    "/v1/chat/moderations": {"input": [USER]},
    "/v1/ocr": {"document": {"document_url": "https://arxiv.org/pdf/2410.07073"}},
    "/v1/classifications": {"input": ["first text", "second text"]},
    "/v1/chat/classifications": {"input": {"messages": [USER]}},
    "/v1/conversations": {"inputs": "Who is the best French painter?"},
    "/v1/audio/transcriptions": {"file_url": "https://docs.mistral.ai/audio/obama.mp3"},
}


def _jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def _lines(*bodies: object) -> bytes:
    """A batch file with one request per body, custom_ids "0", "1", ..."""
    return _jsonl(*({"custom_id": str(i), "body": body} for i, body in enumerate(bodies)))


def _validate(
    content: bytes, endpoint: str | None = None, mode: ValidationMode = "strict"
) -> ValidationResult:
    return validate_content(io.BytesIO(content), check="batch", mode=mode, batch_endpoint=endpoint)


#: The field each endpoint's body is about (required by its schema, but for transcriptions).
MAIN_FIELD = {
    "/v1/chat/completions": "messages",
    "/v1/embeddings": "input",
    "/v1/fim/completions": "prompt",
    "/v1/moderations": "input",
    "/v1/chat/moderations": "input",
    "/v1/ocr": "document",
    "/v1/classifications": "input",
    "/v1/chat/classifications": "input",
    "/v1/conversations": "inputs",
    "/v1/audio/transcriptions": "file_url",
}


class TestAccepted:
    @pytest.mark.parametrize("endpoint", list(BODIES))
    def test_documented_bodies_pass_for_their_endpoint(self, endpoint: str) -> None:
        """The docs' example body of each endpoint passes without a warning, while the same
        body without its main field does not pass silently."""
        body = BODIES[endpoint]
        result = _validate(_lines(body, body), endpoint)
        assert (result.ok, result.errors, result.warnings) == (True, (), ())
        stripped = {k: v for k, v in body.items() if k != MAIN_FIELD[endpoint]}
        flagged = _validate(_lines(stripped), endpoint)
        assert flagged.errors + flagged.warnings != ()

    @pytest.mark.parametrize("endpoint", list(BODIES))
    def test_model_in_the_body_is_optional(self, endpoint: str) -> None:
        """The docs: "The model field inside body is optional when you specify the model at
        job creation time": a body with one passes, but a model alone is no request."""
        model = {"model": "mistral-small-latest"}
        result = _validate(_lines({**BODIES[endpoint], **model}), endpoint)
        assert (result.ok, result.warnings) == (True, ())
        model_only = _validate(_lines(model), endpoint)
        assert model_only.errors + model_only.warnings != ()
        assert "model" not in " ".join(model_only.errors + model_only.warnings)

    def test_docs_page_examples_pass(self) -> None:
        """The structured-output and OCR-annotation examples of the docs pass as they are,
        and their bodies are really looked at (a misspelt field is noticed)."""
        structured = {
            "messages": [USER],
            "response_format": {"type": "json_schema", "json_schema": {"name": "m"}},
            "max_tokens": 256,
            "temperature": 0,
        }
        annotated = {
            "document": {"image_url": "data:image/jpeg;base64,AAAA"},
            "document_annotation_format": {"type": "json_schema"},
            "pages": [0, 1, 2],
        }
        assert _validate(_lines(structured), "/v1/chat/completions").warnings == ()
        assert _validate(_lines(annotated), "/v1/ocr").warnings == ()
        misspelt = {**annotated, "page": [0]}
        assert len(_validate(_lines(misspelt), "/v1/ocr").warnings) == 1

    def test_any_endpoint_body_passes_without_an_endpoint(self) -> None:
        """With no batch_endpoint, any body that fits some endpoint passes without warning;
        only the empty one is warned about."""
        result = _validate(_lines(*BODIES.values(), {}))
        assert result.ok
        assert len(result.warnings) == 1
        assert result.warnings[0].startswith(f"line {len(BODIES) + 1}: ")

    def test_every_spec_endpoint_is_known_and_nothing_else(self) -> None:
        """The endpoints are the spec's ApiEndpoint enum, in its order; others are refused."""
        assert tuple(BODIES) == BATCH_ENDPOINTS
        for endpoint in BATCH_ENDPOINTS:
            assert BatchCheck(endpoint).endpoint == endpoint
        with pytest.raises(ValueError, match="unknown batch endpoint"):
            BatchCheck("/v1/files")


class TestQuarantined:
    def test_body_missing_or_not_an_object(self) -> None:
        """A line without an object body is refused (spec BatchRequest requires it); a
        missing custom_id on the same file does not add a problem."""
        result = _validate(
            _jsonl({"body": CHAT}, {"custom_id": "2"}, {"custom_id": "3", "body": ["hi"]})
        )
        assert not result.ok
        assert result.errors == (
            'line 2: missing "body"',
            'line 3: "body" must be an object, got an array',
        )

    @pytest.mark.parametrize(
        ("endpoint", "body", "error"),
        [
            (
                "/v1/chat/completions",
                {"max_tokens": 100},
                'line 1: "body" has no "messages", which /v1/chat/completions requires',
            ),
            (
                "/v1/chat/completions",
                {"input": "an embeddings body"},
                'line 1: "body" has no "messages", which /v1/chat/completions requires',
            ),
            (
                "/v1/embeddings",
                {"messages": [USER]},
                'line 1: "body" has no "input", which /v1/embeddings requires',
            ),
            (
                "/v1/fim/completions",
                {"suffix": "x"},
                'line 1: "body" has no "prompt", which /v1/fim/completions requires',
            ),
            ("/v1/ocr", {}, 'line 1: "body" has no "document", which /v1/ocr requires'),
            (
                "/v1/conversations",
                {"instructions": "be brief"},
                'line 1: "body" has no "inputs", which /v1/conversations requires',
            ),
            (
                "/v1/chat/classifications",
                {},
                'line 1: "body" has no "input", which /v1/chat/classifications requires',
            ),
        ],
    )
    def test_required_field_missing(self, endpoint: str, body: object, error: str) -> None:
        """With batch_endpoint set, a body without the field the endpoint's schema requires
        is quarantined, naming the field and the endpoint."""
        result = _validate(_lines(body), endpoint)
        assert not result.ok
        assert result.errors == (error,)

    @pytest.mark.parametrize(
        ("endpoint", "body", "error"),
        [
            (
                "/v1/chat/completions",
                {"messages": "hi"},
                'line 1: "body.messages" must be an array for /v1/chat/completions, got a string',
            ),
            (
                "/v1/embeddings",
                {"input": 5},
                'line 1: "body.input" must be a string or an array for /v1/embeddings, '
                "got a number",
            ),
            (
                "/v1/fim/completions",
                {"prompt": ["def"]},
                'line 1: "body.prompt" must be a string for /v1/fim/completions, got an array',
            ),
            (
                "/v1/ocr",
                {"document": "https://arxiv.org/pdf/2410.07073"},
                'line 1: "body.document" must be an object for /v1/ocr, got a string',
            ),
            (
                "/v1/chat/moderations",
                {"input": "text"},
                'line 1: "body.input" must be an array for /v1/chat/moderations, got a string',
            ),
            (
                "/v1/chat/classifications",
                {"input": "text"},
                'line 1: "body.input" must be an object or an array for '
                "/v1/chat/classifications, got a string",
            ),
        ],
    )
    def test_required_field_of_the_wrong_type(
        self, endpoint: str, body: object, error: str
    ) -> None:
        """A required field whose JSON type the schema does not allow is quarantined."""
        result = _validate(_lines(body), endpoint)
        assert result.errors == (error,)

    def test_problems_name_their_line(self) -> None:
        """Only the bad lines are reported, each with its own line number."""
        result = _validate(_lines(CHAT, CHAT, {"max_tokens": 5}, CHAT), "/v1/chat/completions")
        assert result.errors == (
            'line 3: "body" has no "messages", which /v1/chat/completions requires',
        )

    def test_validate_file_passes_the_endpoint_on(self, tmp_path: Path) -> None:
        """validate_file hands batch_endpoint to the batch check."""
        path = tmp_path / "b.jsonl"
        path.write_bytes(_lines(CHAT))
        size = path.stat().st_size
        result = validate_file(
            path, purpose="batch", mode="strict", size=size, batch_endpoint="/v1/embeddings"
        )
        assert result.errors == ('line 1: "body" has no "input", which /v1/embeddings requires',)
        assert validate_file(
            path, purpose="batch", mode="strict", size=size, batch_endpoint="/v1/chat/completions"
        ).ok


class TestWarned:
    @pytest.mark.parametrize(
        ("record", "warning"),
        [
            (
                {"body": CHAT},
                'line 1: no "custom_id": the result cannot be matched to this request',
            ),
            (
                {"custom_id": None, "body": CHAT},
                'line 1: "custom_id" is null: the result cannot be matched to this request',
            ),
            (
                {"custom_id": 7, "body": CHAT},
                'line 1: "custom_id" should be a string, got the number 7 (write "7")',
            ),
            (
                {"custom_id": 1.5, "body": CHAT},
                'line 1: "custom_id" should be a string, got a number',
            ),
            (
                {"custom_id": False, "body": CHAT},
                'line 1: "custom_id" should be a string, got a boolean',
            ),
            (
                {"custom_id": {"id": 1}, "body": CHAT},
                'line 1: "custom_id" should be a string, got an object',
            ),
            ({"custom_id": "", "body": CHAT}, 'line 1: "custom_id" is empty'),
        ],
    )
    def test_custom_id_rules_only_warn(self, record: object, warning: str) -> None:
        """The spec makes custom_id an optional, nullable string and nothing shows Mistral
        refusing other values: each case is uploaded, with a warning."""
        result = _validate(_jsonl(record), "/v1/chat/completions")
        assert (result.ok, result.warnings) == (True, (warning,))

    def test_duplicate_custom_id_warns_with_the_first_line(self) -> None:
        """The docs ask for unique ids; a repeat is a warning naming where the id was first."""
        result = _validate(
            _jsonl(
                {"custom_id": "a", "body": CHAT},
                {"custom_id": "b", "body": CHAT},
                {"custom_id": "a", "body": CHAT},
            )
        )
        assert result.ok
        assert result.warnings == (
            "line 3: custom_id 'a' duplicates line 1; Mistral's docs ask for a unique id per "
            "request",
        )

    def test_number_and_string_ids_collide(self) -> None:
        """1 and "1" reach the results as the same text: the second is a duplicate."""
        result = _validate(_jsonl({"custom_id": "1", "body": CHAT}, {"custom_id": 1, "body": CHAT}))
        assert result.ok
        assert result.warnings == (
            'line 2: "custom_id" should be a string, got the number 1 (write "1")',
            "line 2: custom_id 1 duplicates line 1; Mistral's docs ask for a unique id per request",
        )

    def test_other_top_level_keys_warn(self) -> None:
        """OpenAI-style "method" and "url" are not part of a Mistral batch line."""
        record = {"custom_id": "0", "method": "POST", "url": "/v1/chat/completions", "body": CHAT}
        result = _validate(_jsonl(record))
        assert result.ok
        assert result.warnings == (
            'line 1: unexpected key \'method\'; a batch line has "custom_id" and "body"',
            'line 1: unexpected key \'url\'; a batch line has "custom_id" and "body"',
        )

    def test_unknown_body_field_warns_with_a_hint(self) -> None:
        """The chat schema refuses extra fields, but the spec grows: only a warning, with the
        closest known field when there is one."""
        result = _validate(
            _lines({"messages": [USER], "max_token": 5, "colour": "red"}), "/v1/chat/completions"
        )
        assert result.ok
        assert result.warnings == (
            "line 1: \"body\" field 'max_token' is not in the ChatCompletionRequest schema of "
            '/v1/chat/completions (did you mean "max_tokens"?); the API may refuse it',
            "line 1: \"body\" field 'colour' is not in the ChatCompletionRequest schema of "
            "/v1/chat/completions; the API may refuse it",
        )

    def test_only_closed_schemas_warn_about_extra_fields(self) -> None:
        """Schemas that do not forbid extra fields (conversations, transcriptions) get no
        warning for them; every other endpoint's does."""
        warned = {
            endpoint
            for endpoint, body in BODIES.items()
            if _validate(_lines({**body, "colour": "red"}), endpoint).warnings
        }
        assert warned == set(BODIES) - {"/v1/conversations", "/v1/audio/transcriptions"}

    def test_transcription_without_a_file_warns(self) -> None:
        """The spec requires none of file_url, file_id, file, yet one is needed."""
        result = _validate(_lines({"language": "en"}), "/v1/audio/transcriptions")
        assert result.ok
        assert result.warnings == (
            'line 1: "body" has none of "file_url", "file_id", "file"; '
            "/v1/audio/transcriptions needs one",
        )

    def test_ocr_document_without_a_source_warns(self) -> None:
        """A document with none of document_url, image_url, file_id is a warning only."""
        result = _validate(_lines({"document": {"url": "https://x/a.pdf"}}), "/v1/ocr")
        assert result.ok
        assert result.warnings == (
            'line 1: "body.document" has none of "document_url", "image_url", "file_id"',
        )

    def test_without_an_endpoint_a_shapeless_body_only_warns(self) -> None:
        """Not knowing the endpoint, syncd quarantines no body: one that fits no endpoint is
        a warning, one that would miss a field for some endpoint passes silently."""
        result = _validate(_lines({"max_tokens": 100}, {}, {"messages": "hi"}))
        assert result.ok
        shapeless = (
            '"body" matches no batch endpoint: it has none of "messages", "input", "inputs", '
            '"prompt", "document", "file_url", "file_id"'
        )
        assert result.warnings == (f"line 1: {shapeless}", f"line 2: {shapeless}")

    def test_basic_mode_checks_no_bodies(self) -> None:
        """validate = "basic" checks JSON only, even with an endpoint; strict would not pass
        the same file."""
        content = _lines({"x": 1})
        result = _validate(content, "/v1/chat/completions", mode="basic")
        assert (result.ok, result.warnings) == (True, ())
        assert not _validate(content, "/v1/chat/completions", mode="strict").ok


class TestBatchCheckApi:
    def test_check_returns_problems_and_appends_warnings_without_prefix(self) -> None:
        """check() returns the blocking problems; warnings go to the list given."""
        check = BatchCheck("/v1/embeddings")
        warnings: list[str] = []
        assert check.check(4, {"custom_id": 4, "body": {}}, warnings) == [
            '"body" has no "input", which /v1/embeddings requires'
        ]
        assert warnings == ['"custom_id" should be a string, got the number 4 (write "4")']

    def test_warnings_are_optional(self) -> None:
        """Without a list, warnings are dropped and the problems are the same."""
        check = BatchCheck()
        assert check.check(1, {"custom_id": 1, "body": {}}) == []
        assert check.check(2, {"custom_id": 1}) == ['missing "body"']

    def test_keyword_warnings(self) -> None:
        """warnings can be passed by keyword too."""
        warnings: list[str] = []
        assert BatchCheck().check(1, {"body": {"messages": []}}, warnings=warnings) == []
        assert warnings == ['no "custom_id": the result cannot be matched to this request']

    def test_unknown_endpoint_is_refused(self) -> None:
        """A programming error, named with the endpoints that exist."""
        with pytest.raises(ValueError, match=r"unknown batch endpoint '/v1/chat'.*/v1/ocr"):
            BatchCheck("/v1/chat")


FOLDER = '[[folders]]\npath = "data"\npurpose = "batch"\n'


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


def _problems(tmp_path: Path, text: str) -> list[str]:
    """The lines of the ConfigError, without the file prefix."""
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    prefix = f"{tmp_path / 'config.toml'}: "
    lines = str(raised.value).splitlines()
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


class TestBatchEndpointConfig:
    def test_default_is_unset(self, tmp_path: Path) -> None:
        """Absent, no endpoint is assumed and nothing is warned."""
        config = _load(tmp_path, FOLDER)
        assert config.folders[0].batch_endpoint is None
        assert config.warnings == ()

    @pytest.mark.parametrize("endpoint", BATCH_ENDPOINTS)
    def test_every_spec_endpoint_is_accepted(self, tmp_path: Path, endpoint: str) -> None:
        """Each endpoint of the spec's ApiEndpoint enum is a valid value."""
        config = _load(tmp_path, FOLDER + f'batch_endpoint = "{endpoint}"\n')
        assert config.folders[0].batch_endpoint == endpoint
        assert config.warnings == ()

    def test_the_docs_spelling_without_slash_is_accepted(self, tmp_path: Path) -> None:
        """The docs' tabs write "v1/chat/completions"; it means the endpoint with the slash."""
        config = _load(tmp_path, FOLDER + 'batch_endpoint = "v1/chat/completions"\n')
        assert config.folders[0].batch_endpoint == "/v1/chat/completions"

    @pytest.mark.parametrize(("value", "shown"), [('"/v1/chat"', "'/v1/chat'"), ("3", "3")])
    def test_bad_value_names_the_key_and_the_allowed_values(
        self, tmp_path: Path, value: str, shown: str
    ) -> None:
        """A value outside the spec's endpoints is a config error listing them all."""
        (line,) = _problems(tmp_path, FOLDER + f"batch_endpoint = {value}\n")
        allowed = ", ".join(f"'{e}'" for e in BATCH_ENDPOINTS[:-1])
        assert line == (
            f"folders[0].batch_endpoint: must be one of {allowed} or "
            f"'{BATCH_ENDPOINTS[-1]}' (got {shown})"
        )

    def test_misspelt_key_is_pointed_to(self, tmp_path: Path) -> None:
        """An unknown key close to batch_endpoint suggests it."""
        (line,) = _problems(tmp_path, FOLDER + 'batch_endpont = "/v1/ocr"\n')
        assert line.startswith(
            "folders[0].batch_endpont: unknown key; did you mean 'batch_endpoint'?"
        )

    def test_on_a_non_batch_folder_it_warns(self, tmp_path: Path) -> None:
        """It does nothing for other purposes: accepted, with a warning."""
        text = '[[folders]]\npath = "d"\npurpose = "fine-tune"\nbatch_endpoint = "/v1/ocr"\n'
        assert _load(tmp_path, text).warnings == (
            "folders[0].batch_endpoint: has no effect on a 'fine-tune' folder; it applies to "
            'purpose = "batch" only',
        )

    def test_without_strict_validation_it_warns(self, tmp_path: Path) -> None:
        """Bodies are checked by strict validation only."""
        text = FOLDER + 'validate = "basic"\nbatch_endpoint = "/v1/ocr"\n'
        assert _load(tmp_path, text).warnings == (
            'folders[0].batch_endpoint: has no effect with validate = "basic"; bodies are '
            'checked by validate = "strict" only',
        )

    def test_model_field(self, tmp_path: Path) -> None:
        """The model takes it directly too (as the daemon's reload builds folders)."""
        folder = FolderConfig(path=tmp_path, purpose="batch", batch_endpoint="/v1/embeddings")
        assert folder.batch_endpoint == "/v1/embeddings"
