"""``syncd check-config``: a summary on success (never the key), exit 78 on a bad config."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner, Result

from syncd.cli import cli
from syncd.emulator import EmulatorServer

KEY = "sk-check-config-7f3a9c"
# Variables the command reads; cleared so the machine running the tests does not leak in.
CLEAN_ENV: dict[str, str | None] = {
    "MISTRAL_API_KEY": None,
    "SYNCD_CONFIG": None,
    "STATE_DIRECTORY": None,
    "CREDENTIALS_DIRECTORY": None,
    "PGPASSWORD": None,
    "PGPASSFILE": None,
}


def write_config(tmp_path: Path, text: str) -> Path:
    """A config file in ``tmp_path`` with one existing folder ``data`` plus ``text``."""
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(
        text + '\n[[folders]]\npath = "data"\npurpose = "fine-tune"\nretention = "30d"\n'
    )
    return path


def check(path: Path, env: Mapping[str, str] | None = None) -> Result:
    """Run ``syncd -c PATH check-config`` in a clean environment."""
    return CliRunner().invoke(
        cli, ["-c", str(path), "check-config"], env={**CLEAN_ENV, **(env or {})}
    )


def test_valid_config_prints_a_summary(tmp_path: Path) -> None:
    """Exit 0 with folders (purpose, include, retention), state url and server listed."""
    path = write_config(
        tmp_path, '[api]\nserver_url = "embedded"\n[state]\nurl = "sqlite:///var/state.db"\n'
    )
    result = check(path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"config:    {path} (ok)" in out
    assert (
        "embedded emulator (local emulator: nothing leaves this machine), "
        f"data in {tmp_path / 'var' / 'emulator'}"
    ) in out
    assert f"state:     sqlite:///{tmp_path}/var/state.db" in out
    assert f"  - data: {tmp_path / 'data'}" in out
    assert "purpose fine-tune, include *.jsonl, exclude built-in" in out
    assert "delete after 30d" in out
    assert "retention: runs every 1h, at most 100 deletes per run" in out
    assert "password" not in out  # SQLite has none
    assert result.stderr == ""


def test_key_found_in_environment_is_reported_not_shown(tmp_path: Path) -> None:
    """The summary says where the key was found and never prints it."""
    path = write_config(tmp_path, '[api]\nserver_url = "https://api.mistral.ai"\n')
    result = check(path, {"MISTRAL_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert "api key:   found in environment variable MISTRAL_API_KEY" in result.stdout
    assert KEY not in result.output


def test_key_found_in_file_is_reported_not_shown(tmp_path: Path) -> None:
    """A key from $CREDENTIALS_DIRECTORY names the file, not its content."""
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "mistral").write_text(KEY + "\n")
    path = write_config(
        tmp_path, '[api]\nserver_url = "https://api.mistral.ai"\napi_key_file = "mistral"\n'
    )
    result = check(path, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert result.exit_code == 0, result.output
    assert f"api key:   found in file {credentials / 'mistral'}" in result.stdout
    assert KEY not in result.output


def test_missing_key_for_a_real_api_exits_78_as_sync_does(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """No key with a real server: 'not found', an error, and exit 78: the verdict and the
    exit status of `syncd sync` on the same config."""
    path = write_config(tmp_path, f'[api]\nserver_url = "{emulator.url}"\n')
    result = check(path)
    assert result.exit_code == 78, result.output
    assert "api key:   not found (looked in environment variable MISTRAL_API_KEY)" in result.stdout
    assert "error: no API key found: set the MISTRAL_API_KEY environment variable" in result.stderr
    synced = CliRunner().invoke(cli, ["-c", str(path), "sync", "--no-progress"], env=CLEAN_ENV)
    assert synced.exit_code == result.exit_code
    assert emulator.stats()["uploads"] == 0


def test_missing_key_with_the_default_server_exits_78(tmp_path: Path) -> None:
    """A config without server_url is Mistral's API: a key is needed."""
    result = check(write_config(tmp_path, ""))
    assert result.exit_code == 78, result.output
    assert "server:    https://api.mistral.ai\n" in result.stdout
    assert "error: no API key found" in result.stderr


def test_database_password_in_the_url_exits_78_without_showing_it(tmp_path: Path) -> None:
    """A password in the state url is refused like an API key in the TOML: exit 78, unshown."""
    path = write_config(tmp_path, '[state]\nurl = "postgresql://syncd:hunter22@db/syncd"\n')
    result = check(path)
    assert result.exit_code == 78
    assert (
        f"error: {path}: state.url: database passwords never live in the config file"
        in result.stderr
    )
    assert "hunter22" not in result.output


def test_database_password_file_is_named_never_shown(tmp_path: Path) -> None:
    """The summary says which file the database password comes from, masked in the URL."""
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "db-password").write_text("hunter22-db-secret\n")
    path = write_config(
        tmp_path,
        '[state]\nurl = "postgresql+psycopg://syncd@db/syncd?sslmode=verify-full"\n'
        'password_file = "db-password"\n',
    )
    result = check(path, {"CREDENTIALS_DIRECTORY": str(credentials), "MISTRAL_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert "state:     postgresql+psycopg://syncd:***@db/syncd?sslmode=verify-full" in result.stdout
    assert f"           password from file {credentials / 'db-password'}" in result.stdout
    assert "hunter22" not in result.output


def test_database_password_left_to_libpq_is_said_so(tmp_path: Path) -> None:
    """Without password_file the summary names libpq's sources: PGPASSWORD when it is set
    (never its value), else the password file libpq reads."""
    path = write_config(tmp_path, '[state]\nurl = "postgresql+psycopg://syncd@db/syncd"\n')
    result = check(path, {"PGPASSFILE": str(tmp_path / "pgpass"), "MISTRAL_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert (
        f"password: none in the config (no password_file); libpq's password file "
        f"{tmp_path / 'pgpass'} applies" in result.stdout
    )
    from_env = check(path, {"PGPASSWORD": "hunter22-env-secret", "MISTRAL_API_KEY": KEY})
    assert from_env.exit_code == 0, from_env.output
    assert "password from environment variable PGPASSWORD (libpq)" in from_env.stdout
    assert "hunter22" not in from_env.output


def test_unreadable_database_password_file_exits_78(tmp_path: Path) -> None:
    """A password_file that is missing is a config error naming the key and the path."""
    path = write_config(
        tmp_path,
        '[state]\nurl = "postgresql+psycopg://syncd@db/syncd"\npassword_file = "absent"\n',
    )
    result = check(path)
    assert result.exit_code == 78
    assert (
        f"error: {path}: state.password_file: cannot read {tmp_path / 'absent'}: "
        "No such file or directory" in result.stderr
    )


def test_allowed_unknown_purpose_is_a_warning_and_exit_is_zero(tmp_path: Path) -> None:
    """An unknown purpose the config opts into is a warning on stderr, not a failure."""
    path = write_config(
        tmp_path,
        '[api]\nserver_url = "embedded"\n'
        '[[folders]]\npath = "data2"\npurpose = "speech"\nallow_unknown_purpose = true\n',
    )
    (tmp_path / "data2").mkdir()
    result = check(path)
    assert result.exit_code == 0, result.output
    assert "warning: folders[0].purpose: unknown purpose 'speech'" in result.stderr


def test_purpose_typo_exits_78_with_a_did_you_mean(tmp_path: Path) -> None:
    """purpose = "finetune" is refused at once, naming "fine-tune"."""
    path = write_config(tmp_path, '[[folders]]\npath = "data2"\npurpose = "finetune"\n')
    result = check(path)
    assert result.exit_code == 78, result.output
    assert "folders[0].purpose: unknown purpose 'finetune': did you mean \"fine-tune\"?" in (
        result.stderr
    )


def test_missing_folder_exits_as_sync_does(tmp_path: Path) -> None:
    """A folder that does not exist: an error and the exit status `syncd sync` gives it (1)."""
    path = write_config(
        tmp_path,
        '[api]\nserver_url = "embedded"\n'
        f'[state]\nurl = "sqlite:///{tmp_path}/state.db"\n'
        '[[folders]]\npath = "absent"\npurpose = "fine-tune"\n',
    )
    result = check(path)
    assert result.exit_code == 1, result.output
    assert f"error: folders[0].path: {tmp_path / 'absent'} does not exist" in result.stderr
    synced = CliRunner().invoke(cli, ["-c", str(path), "sync", "--no-progress"], env=CLEAN_ENV)
    assert synced.exit_code == result.exit_code, synced.output


def test_bad_config_exits_78_with_one_error_line_per_problem(tmp_path: Path) -> None:
    """A bad config prints 'error: <file>: <key>: ...' lines to stderr and exits 78."""
    path = write_config(tmp_path, "[api]\nconcurrency = 0\n[log]\nformat = 'xml'\n")
    result = check(path)
    assert result.exit_code == 78
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {path}: api.concurrency: must be between 1 and 64 (got 0)",
        f"error: {path}: log.format: must be one of 'json', 'console' or 'auto' (got 'xml')",
    ]


def test_missing_config_exits_78(tmp_path: Path) -> None:
    """A missing config file is a config error: exit 78."""
    result = check(tmp_path / "missing.toml")
    assert result.exit_code == 78
    assert "config file not found" in result.stderr


def test_unreadable_key_file_exits_78(tmp_path: Path) -> None:
    """A key file that cannot be read is a config error: exit 78."""
    path = write_config(tmp_path, '[api]\napi_key_file = "no-such-key"\n')
    result = check(path)
    assert result.exit_code == 78
    assert f"cannot read {tmp_path / 'no-such-key'}" in result.stderr


def test_config_path_from_syncd_config_variable(tmp_path: Path) -> None:
    """Without -c the path comes from $SYNCD_CONFIG."""
    path = write_config(tmp_path, "")
    result = CliRunner().invoke(
        cli, ["check-config"], env={**CLEAN_ENV, "SYNCD_CONFIG": str(path), "MISTRAL_API_KEY": KEY}
    )
    assert result.exit_code == 0, result.output
    assert f"config:    {path} (ok)" in result.stdout
