"""The small value parsers behind the config: durations, schedules and addresses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.config.durations import format_duration, parse_duration
from syncd.config.endpoints import check_server_url, parse_listen_address
from syncd.config.problems import HiddenValueError, key_path
from syncd.config.schedules import parse_schedule


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("500ms", timedelta(milliseconds=500)),
            ("2s", timedelta(seconds=2)),
            ("5m", timedelta(minutes=5)),
            ("1h", timedelta(hours=1)),
            ("30d", timedelta(days=30)),
            ("2w", timedelta(weeks=2)),
            ("1h30m", timedelta(hours=1, minutes=30)),
            (" 1h 30m 15s ", timedelta(hours=1, minutes=30, seconds=15)),
            ("1.5h", timedelta(minutes=90)),
            ("1m500ms", timedelta(minutes=1, milliseconds=500)),
            ("0s", timedelta(0)),
        ],
    )
    def test_accepted_forms(self, text: str, expected: timedelta) -> None:
        """Units ms/s/m/h/d/w, combined and with spaces, parse to the right timedelta."""
        assert parse_duration(text) == expected

    @pytest.mark.parametrize("text", ["", "5", "5 minutes", "h", "1x", "-1s", "1h-", "1,5h"])
    def test_rejected_forms_name_the_accepted_ones(self, text: str) -> None:
        """Anything else is refused with the list of accepted forms."""
        with pytest.raises(ValueError, match=r'expected a duration such as "500ms"'):
            parse_duration(text)

    def test_bare_number_gets_a_hint(self) -> None:
        """A bare number suggests adding a unit."""
        with pytest.raises(ValueError, match='did you mean "90s"'):
            parse_duration("90")

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (timedelta(0), "0s"),
            (timedelta(milliseconds=500), "500ms"),
            (timedelta(minutes=90), "1h30m"),
            (timedelta(days=30), "30d"),
            (timedelta(days=1, seconds=1, milliseconds=5), "1d1s5ms"),
        ],
    )
    def test_format(self, value: timedelta, text: str) -> None:
        """Durations print in the shortest form the parser reads back."""
        assert format_duration(value) == text

    @given(st.integers(min_value=0, max_value=10**12))
    def test_format_then_parse_round_trips(self, milliseconds: int) -> None:
        """format_duration's output always parses back to the same duration."""
        value = timedelta(milliseconds=milliseconds)
        assert parse_duration(format_duration(value)) == value


class TestSchedules:
    def test_interval(self) -> None:
        """An interval string comes back as a timedelta."""
        assert parse_schedule("6h") == timedelta(hours=6)

    def test_cron_is_normalised(self) -> None:
        """A 5-field cron expression comes back with single spaces."""
        assert parse_schedule(" */15  2-4 1 jan,jul sat-sun ") == "*/15 2-4 1 jan,jul sat-sun"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("0 25 * * *", "invalid cron expression"),
            ("0 3 32 * *", "invalid cron expression"),
            ("0 3 * * 1-5", "must use names"),
            ("0 3 * * * *", "expected an interval"),
            ("@daily", "expected an interval"),
            ("500ms", "at least 1s"),
        ],
    )
    def test_bad_schedules(self, text: str, message: str) -> None:
        """Out-of-range cron fields, numeric weekdays, wrong field counts, tiny intervals fail."""
        with pytest.raises(ValueError, match=message):
            parse_schedule(text)


class TestEndpoints:
    @pytest.mark.parametrize(
        "url",
        [
            "embedded",
            "https://api.mistral.ai",
            "https://proxy.internal:8443/mistral",
            "http://localhost",
        ],
    )
    def test_good_server_urls(self, url: str) -> None:
        """The embedded marker, https anywhere and http to loopback are accepted."""
        assert check_server_url(url) == url

    @pytest.mark.parametrize(
        "url", ["http://10.0.0.5", "http://127.0.0.1.example.com", "http://localhost.evil.com"]
    )
    def test_plain_http_off_loopback_is_refused(self, url: str) -> None:
        """Names that only look like loopback do not get plain http."""
        with pytest.raises(ValueError, match="loopback"):
            check_server_url(url)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("https://api.mistral.ai?x=1", "query string"),
            ("https://api.mistral.ai:99999", "port"),
        ],
    )
    def test_other_bad_server_urls(self, url: str, message: str) -> None:
        """Query strings and bad ports are refused."""
        with pytest.raises(ValueError, match=message):
            check_server_url(url)

    def test_credentials_in_url_raise_the_hidden_error(self) -> None:
        """A URL with a password raises the error whose value is never echoed."""
        with pytest.raises(HiddenValueError):
            check_server_url("https://user:pw@api.mistral.ai")

    @pytest.mark.parametrize(
        ("text", "address"),
        [
            ("127.0.0.1:9108", ("127.0.0.1", 9108)),
            ("localhost:0", ("localhost", 0)),
            ("metrics.local:80", ("metrics.local", 80)),
            ("[::]:9108", ("::", 9108)),
        ],
    )
    def test_listen_addresses(self, text: str, address: tuple[str, int]) -> None:
        """host:port and [ipv6]:port parse; port 0 means any free port."""
        assert parse_listen_address(text) == address


class TestKeyPath:
    def test_key_path_renders_indices(self) -> None:
        """Locations read like the TOML: dotted tables, bracketed array indices."""
        assert key_path(("folders", 1, "include", 0)) == "folders[1].include[0]"
        assert key_path(()) == "(top level)"
