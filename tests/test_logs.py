"""Logging: JSON lines or console output, stdlib loggers routed alongside, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from syncd.logs import (
    REDACTED,
    RepeatThrottle,
    SecretRedactor,
    configure_logging,
    redact_text,
    register_secret,
    reset_logging,
)


class TerminalStream(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave structlog and the root logger as they were for the rest of the suite."""
    yield
    reset_logging()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written so far, parsed as one JSON object each."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class TestFormats:
    def test_json_lines_carry_event_level_and_utc_timestamp(self) -> None:
        """JSON format writes one object per line with the event, its fields, level and time."""
        stream = io.StringIO()
        configure_logging("json", "info", stream)
        structlog.get_logger().info("file_settled", path="a.jsonl", attempt=2)
        (line,) = json_lines(stream)
        assert line["event"] == "file_settled"
        assert (line["path"], line["attempt"], line["level"]) == ("a.jsonl", 2, "info")
        assert line["timestamp"].endswith("Z")
        stamp = datetime.fromisoformat(line["timestamp"])
        assert stamp.utcoffset() == timedelta(0)
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60

    def test_level_filters_events(self) -> None:
        """Events below the level are dropped; at debug level they are written."""
        stream = io.StringIO()
        configure_logging("json", "warning", stream)
        log = structlog.get_logger()
        log.info("quiet")
        log.warning("loud")
        assert [line["event"] for line in json_lines(stream)] == ["loud"]
        configure_logging("json", "DEBUG", stream)
        log.debug("detail")
        assert [line["event"] for line in json_lines(stream)] == ["loud", "detail"]

    def test_console_format_is_readable_text(self) -> None:
        """Console format writes 'timestamp [level] event key=value', not JSON."""
        stream = io.StringIO()
        configure_logging("console", "info", stream)
        structlog.get_logger().info("upload_finished", file_id="f-1")
        text = stream.getvalue()
        assert not text.startswith("{")
        assert "[info     ] upload_finished" in text
        assert "file_id=f-1" in text
        assert "\x1b[" not in text  # no colour codes when the stream is not a terminal

    def test_auto_is_json_off_a_terminal_and_console_on_one(self) -> None:
        """'auto' picks JSON for a pipe (journald) and console output for a terminal."""
        piped = io.StringIO()
        configure_logging("auto", "info", piped)
        structlog.get_logger().info("started")
        assert json_lines(piped)[0]["event"] == "started"
        terminal = TerminalStream()
        configure_logging("auto", "info", terminal)
        structlog.get_logger().info("started")
        assert not terminal.getvalue().startswith("{")
        assert "started" in terminal.getvalue()

    def test_exceptions_are_rendered_into_the_line(self) -> None:
        """log.exception includes the traceback text in the JSON object."""
        stream = io.StringIO()
        configure_logging("json", "info", stream)
        try:
            raise RuntimeError("disk on fire")
        except RuntimeError:
            structlog.get_logger().exception("scan_failed")
        (line,) = json_lines(stream)
        assert line["level"] == "error"
        assert "RuntimeError: disk on fire" in line["exception"]

    def test_bad_level_or_format_is_refused(self) -> None:
        """Unknown level or format names raise ValueError naming the choices."""
        with pytest.raises(ValueError, match="debug, info, warning, error"):
            configure_logging("json", "loud", io.StringIO())
        with pytest.raises(ValueError, match="json, console, auto"):
            configure_logging("xml", "info", io.StringIO())  # type: ignore[arg-type]


class TestStdlibRouting:
    def test_library_warnings_use_the_same_renderer(self) -> None:
        """A stdlib warning (uvicorn, apscheduler...) comes out as a JSON line with its logger."""
        stream = io.StringIO()
        configure_logging("json", "info", stream)
        logging.getLogger("apscheduler.scheduler").warning("job %s missed", "retention")
        (line,) = json_lines(stream)
        assert line["event"] == "job retention missed"
        assert (line["level"], line["logger"]) == ("warning", "apscheduler.scheduler")
        assert line["timestamp"].endswith("Z")

    def test_library_info_noise_is_off(self) -> None:
        """httpx's per-request info lines and uvicorn access lines are not written."""
        stream = io.StringIO()
        configure_logging("json", "debug", stream)
        logging.getLogger("httpx").info("HTTP Request: GET https://x")
        logging.getLogger("uvicorn.access").info("127.0.0.1 GET /v1/files 200")
        logging.getLogger("alembic.runtime.migration").info("Running upgrade")
        assert stream.getvalue() == ""

    def test_configuring_twice_installs_one_handler(self) -> None:
        """Reconfiguring replaces the handler: a library line is written once, to the new stream."""
        first, second = io.StringIO(), io.StringIO()
        configure_logging("json", "info", first)
        configure_logging("json", "info", second)
        logging.getLogger("uvicorn.error").error("bind failed")
        assert first.getvalue() == ""
        assert [line["event"] for line in json_lines(second)] == ["bind failed"]

    def test_logger_made_before_reconfiguration_follows_it(self) -> None:
        """A module-level logger made early writes where the latest configuration says."""
        early = structlog.get_logger()
        configure_logging("json", "info", io.StringIO())
        later_stream = io.StringIO()
        configure_logging("json", "info", later_stream)
        early.info("moved")
        assert json_lines(later_stream)[0]["event"] == "moved"

    def test_closed_stream_does_not_raise(self) -> None:
        """Logging to a closed stream loses the line but never crashes the caller."""
        stream = io.StringIO()
        configure_logging("json", "info", stream)
        stream.close()
        structlog.get_logger().info("lost")
        logging.getLogger("uvicorn.error").error("lost too")


class TestRedaction:
    def test_registered_secret_is_redacted_from_exception_and_fields(self) -> None:
        """A registered key never appears: not in an exception message, event, or field."""
        secret = "sk-registered-3f9a1c77"
        register_secret(secret)
        stream = io.StringIO()
        configure_logging("json", "info", stream)
        log = structlog.get_logger()
        try:
            raise ValueError(f"server rejected key {secret}")
        except ValueError:
            log.exception("upload_failed", detail=f"key={secret}", nested={"list": [secret]})
        log.info(f"event text with {secret}", error=ValueError(secret))
        output = stream.getvalue()
        assert secret not in output
        first, second = json_lines(stream)
        assert f"ValueError: server rejected key {REDACTED}" in first["exception"]
        assert first["detail"] == f"key={REDACTED}"
        assert first["nested"] == {"list": [REDACTED]}
        assert second["event"] == f"event text with {REDACTED}"
        assert second["error"] == REDACTED

    def test_registered_secret_is_redacted_from_console_output(self) -> None:
        """Console output is redacted the same way."""
        secret = "sk-console-8d2e4b10"
        register_secret(secret)
        stream = io.StringIO()
        configure_logging("console", "info", stream)
        structlog.get_logger().warning("bad_key", message=f"Bearer {secret}")
        assert secret not in stream.getvalue()
        assert REDACTED in stream.getvalue()

    def test_registered_secret_is_redacted_from_stdlib_records(self) -> None:
        """A library's log line holding the key is redacted too."""
        secret = "sk-stdlib-51c0ffee"
        register_secret(secret)
        stream = io.StringIO()
        configure_logging("json", "info", stream)
        logging.getLogger("uvicorn.error").warning("header was %s", secret)
        assert json_lines(stream)[0]["event"] == f"header was {REDACTED}"

    @pytest.mark.parametrize(
        "key", ["api_key", "Authorization", "token", "password", "signature", "sig", "access_token"]
    )
    def test_sensitive_keys_are_redacted(self, key: str) -> None:
        """Values under credential-like keys are replaced, at any depth."""
        stream = io.StringIO()
        configure_logging("json", "info", stream)
        structlog.get_logger().info("request", **{key: "value-1"}, headers={key: "value-2"})
        (line,) = json_lines(stream)
        assert line[key] == REDACTED
        assert line["headers"] == {key: REDACTED}
        assert "value-" not in stream.getvalue()

    def test_signed_url_query_and_bearer_tokens_are_redacted(self) -> None:
        """A signed URL keeps its path but loses its query; a bearer token is dropped."""
        stream = io.StringIO()
        configure_logging("json", "info", stream)
        url = "https://blob.example/fine-tune/ab.jsonl?se=2030-01-01&sp=r&sv=2021&sr=b&sig=AbC%2Bd"
        structlog.get_logger().info("signed_url", url=url, note="Authorization: Bearer abc.def-1")
        (line,) = json_lines(stream)
        assert line["url"] == f"https://blob.example/fine-tune/ab.jsonl?{REDACTED}"
        assert line["note"] == f"Authorization: Bearer {REDACTED}"

    def test_ordinary_values_are_untouched(self) -> None:
        """Redaction leaves normal fields and URLs without a signature alone."""
        redactor = SecretRedactor()
        event = {"event": "listed", "url": "https://api/v1/files?page=2", "count": 3, "ok": True}
        assert redactor(None, "info", dict(event)) == event

    def test_short_secrets_are_ignored(self) -> None:
        """Registering a blank or tiny value does not blank out ordinary words."""
        redactor = SecretRedactor()
        redactor.register("  ")
        redactor.register("abc")
        assert redactor.redact_text("abc def") == "abc def"

    def test_longer_secret_is_redacted_whole(self) -> None:
        """When one secret contains another, the longer one is removed in one piece."""
        redactor = SecretRedactor()
        redactor.register("secret-1")
        redactor.register("secret-1-extended")
        assert redactor.redact_text("x secret-1-extended y") == f"x {REDACTED} y"

    def test_redact_text_uses_registered_secrets(self) -> None:
        """redact_text scrubs text bound for other outputs (status, stored errors)."""
        secret = "sk-redact-text-6e21"
        register_secret(secret)
        assert redact_text(f"401 for {secret}") == f"401 for {REDACTED}"


def test_the_same_store_error_is_logged_once_then_with_a_count() -> None:
    """Issue 21.5: a store outage repeated its error for every retry and tick (~60 lines a
    second); now each (event, error, folder, path) passes once, then at most every few seconds
    with a count. Other files' lines and events of other kinds are never held back."""
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    log = structlog.get_logger("test")
    for _ in range(100):
        log.warning("store_unavailable", path="a.jsonl", error="the disk is full")
    log.warning("store_unavailable", path="b.jsonl", error="the disk is full")
    log.warning("store_unavailable", path="a.jsonl", error="locked by another process")
    for _ in range(3):
        log.warning("upload_retry_scheduled", path="a.jsonl", error="HTTP 503")
    events = [(e["event"], e["path"], e["error"]) for e in json_lines(stream)]
    assert events == [
        ("store_unavailable", "a.jsonl", "the disk is full"),
        ("store_unavailable", "b.jsonl", "the disk is full"),
        ("store_unavailable", "a.jsonl", "locked by another process"),
        *[("upload_retry_scheduled", "a.jsonl", "HTTP 503")] * 3,
    ]

    now = [0.0]
    throttle = RepeatThrottle(every=5.0, clock=lambda: now[0])
    passed = []
    for step in range(120):  # one a 100 ms, for 12 s
        now[0] = step / 10
        try:
            passed.append(throttle(None, "warning", {"event": "store_unavailable", "error": "x"}))
        except structlog.DropEvent:
            continue
    assert [e.get("repeated") for e in passed] == [None, 49, 49]
