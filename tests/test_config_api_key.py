"""Finding the API key: environment variable first, then the key file; never leaking it."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import ApiConfig, find_api_key, resolve_api_key
from syncd.errors import ConfigError

KEY = "sk-test-5b1c0e7d2a"


def api_with_file(path: Path | None, env: str = "MISTRAL_API_KEY") -> ApiConfig:
    """An [api] table naming ``path`` as the key file."""
    return ApiConfig(api_key_env=env, api_key_file=path)


def test_environment_variable_comes_first(tmp_path: Path) -> None:
    """The variable wins over the file."""
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file-000\n")
    api = api_with_file(key_file)
    assert resolve_api_key(api, {"MISTRAL_API_KEY": f"  {KEY}\n"}) == KEY


def test_named_variable_is_used(tmp_path: Path) -> None:
    """api_key_env picks which variable is read."""
    api = api_with_file(None, env="SYNCD_KEY")
    assert resolve_api_key(api, {"SYNCD_KEY": KEY, "MISTRAL_API_KEY": "other-000000"}) == KEY


def test_file_is_read_when_the_variable_is_unset_or_blank(tmp_path: Path) -> None:
    """With no (or a blank) variable the key file is read, whitespace stripped."""
    key_file = tmp_path / "key"
    key_file.write_text(f"\n {KEY}\r\n")
    api = api_with_file(key_file)
    assert resolve_api_key(api, {}) == KEY
    assert resolve_api_key(api, {"MISTRAL_API_KEY": "   "}) == KEY
    found = find_api_key(api, {})
    assert found is not None
    assert found.source == f"file {key_file}"


def test_no_key_anywhere_is_none() -> None:
    """No variable and no file: no key (the embedded emulator needs none)."""
    assert resolve_api_key(ApiConfig(), {}) is None


def test_source_of_an_environment_key(tmp_path: Path) -> None:
    """The found key says which variable it came from, and its repr hides the value."""
    found = find_api_key(ApiConfig(), {"MISTRAL_API_KEY": KEY})
    assert found is not None
    assert found.source == "environment variable MISTRAL_API_KEY"
    assert KEY not in repr(found)
    assert KEY not in str(found)


def test_missing_key_file_names_the_file(tmp_path: Path) -> None:
    """A key file that does not exist is a config error naming it."""
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(api_with_file(missing), {})
    assert str(raised.value) == (
        f"api.api_key_file: cannot read {missing}: No such file or directory"
    )


def test_unreadable_key_file_names_the_file(tmp_path: Path) -> None:
    """A key file that cannot be read (here: a directory) is a config error naming it."""
    with pytest.raises(ConfigError, match=r"api.api_key_file: cannot read .*: Is a directory"):
        resolve_api_key(api_with_file(tmp_path), {})


def test_empty_key_file_is_an_error(tmp_path: Path) -> None:
    """An empty key file is a config error, not a silent missing key."""
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_api_key(api_with_file(key_file), {})


def test_bad_key_file_error_never_shows_its_content(tmp_path: Path) -> None:
    """A key file with extra content is refused without repeating any of it."""
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\nsecond-line-secret\n")
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(api_with_file(key_file), {})
    message = str(raised.value)
    assert "must hold the key alone" in message
    assert KEY not in message
    assert "second-line-secret" not in message


def test_non_utf8_key_file_error_never_shows_its_content(tmp_path: Path) -> None:
    """A binary key file is refused by name only."""
    key_file = tmp_path / "key"
    key_file.write_bytes(b"sk-\xff\xfe-binary")
    with pytest.raises(ConfigError) as raised:
        resolve_api_key(api_with_file(key_file), {})
    assert str(raised.value) == f"api.api_key_file: {key_file} is not UTF-8 text"
    assert raised.value.__context__ is None
