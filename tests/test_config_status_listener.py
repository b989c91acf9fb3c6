"""``[metrics] listen`` and ``token_file``: the status listener is open only on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd.cli import cli
from syncd.config import load_config
from syncd.errors import ConfigError
from tests.configs import FolderSetup, write_config

TOKEN = "0123456789abcdef-token"


def _config(tmp_path: Path, **metrics: str) -> Path:
    return write_config(
        tmp_path,
        server_url="embedded",
        folders=[FolderSetup(tmp_path / "train")],
        sections={"metrics": metrics},
    )


@pytest.mark.parametrize("listen", ['"127.0.0.1:9108"', '"localhost:0"', '"[::1]:9108"'])
def test_loopback_needs_no_token(tmp_path: Path, listen: str) -> None:
    config = load_config(_config(tmp_path, listen=listen), environ={})
    assert config.metrics.token_file is None


@pytest.mark.parametrize(
    "listen", ['"0.0.0.0:9108"', '"[::]:9108"', '"192.168.1.20:9108"', '"status.example.com:80"']
)
def test_any_other_address_without_a_token_exits_78(tmp_path: Path, listen: str) -> None:
    """check-config (and run) refuse it, naming the key, the address and the fix."""
    result = CliRunner().invoke(cli, ["-c", str(_config(tmp_path, listen=listen)), "check-config"])
    assert result.exit_code == 78
    assert "metrics.token_file" in result.output
    assert "is not a loopback address" in result.output
    assert listen.strip('"') in result.output


def test_token_file_is_read_beside_the_config_or_in_credentials_dir(tmp_path: Path) -> None:
    (tmp_path / "status-token").write_text(f"  {TOKEN}\n")
    path = _config(tmp_path, listen='"0.0.0.0:9108"', token_file='"status-token"')
    config = load_config(path, environ={})
    assert config.metrics.token_file is not None
    assert config.metrics.token_file.value.get_secret_value() == TOKEN
    assert TOKEN not in repr(config)
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "status-token").write_text("other-token\n")
    from_systemd = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert from_systemd.metrics.token_file is not None
    assert from_systemd.metrics.token_file.value.get_secret_value() == "other-token"
    shown = CliRunner().invoke(cli, ["-c", str(path), "check-config"], env={})
    assert "bearer token from" in shown.output and TOKEN not in shown.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("", "is empty"),
        ("two words\n", "one token alone"),
        ("Bearer abc\n", "one token alone"),
        ("line1\nline2\n", "one token alone"),
    ],
)
def test_bad_token_files_are_named_never_quoted(
    tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / "status-token").write_text(content)
    path = _config(tmp_path, listen='"127.0.0.1:0"', token_file='"status-token"')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    text = str(caught.value)
    assert "metrics.token_file" in text and message in text
    assert str(tmp_path / "status-token") in text
    for secret in ("two words", "abc", "line1"):
        assert secret not in text
