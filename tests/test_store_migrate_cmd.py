"""``syncd migrate``: applies the migrations, reports the revisions, maps errors to exit codes.

The command is invoked in-process with click's CliRunner; the root group's config path is
passed as ``obj``, as the root group stores it.
"""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner, Result

from syncd.cli.migrate_cmd import migrate
from syncd.store import connect
from syncd.store import migrate as migrations


def run(*args: str, config: Path | None = None) -> Result:
    return CliRunner().invoke(
        migrate, list(args), obj=str(config) if config else "/nonexistent/config.toml"
    )


def write_config(tmp_path: Path, database: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[state]\nurl = "sqlite:///{database}"\n\n'
        f'[[folders]]\npath = "{data}"\npurpose = "fine-tune"\n'
    )
    return config


def test_migrate_url_reports_before_and_after(db_url: str) -> None:
    """A fresh database (SQLite file or PostgreSQL) is migrated from empty to head; a second
    run says it is up to date."""
    database = connect.parse_target(db_url).display
    head = migrations.head_revision()
    first = run("--url", db_url)
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"migrated {database}: (empty) -> {head}"
    assert migrations.current_revision(db_url) == head
    second = run("--url", db_url)
    assert second.exit_code == 0, second.output
    assert second.output.strip() == f"{database} is up to date (revision {head})"


def test_migrate_uses_the_configured_database(tmp_path: Path) -> None:
    """Without --url the database comes from the configuration's [state] url."""
    database = tmp_path / "var" / "state.db"
    result = run(config=write_config(tmp_path, database))
    assert result.exit_code == 0, result.output
    assert str(database) in result.output
    assert database.stat().st_mode & 0o777 == 0o600


def test_bad_configuration_exits_78(tmp_path: Path) -> None:
    """A configuration that cannot be loaded exits 78 (EX_CONFIG) with 'error:' on stderr."""
    config = tmp_path / "syncd.toml"
    config.write_text("[state]\nurl = 5\n")
    result = run(config=config)
    assert result.exit_code == 78
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""


def test_unusable_database_exits_1_with_the_reason(tmp_path: Path) -> None:
    """A file that is not a database exits 1 and says which file and why."""
    database = tmp_path / "state.db"
    database.write_text("not a database\n" * 40)
    result = run("--url", f"sqlite:///{database}")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert str(database) in result.stderr
    assert "not a SQLite database" in result.stderr


def test_unreachable_server_database_exits_1_without_showing_the_password() -> None:
    """A PostgreSQL URL where no server listens: exit 1, the URL named with its password masked."""
    with socket.socket() as probe:  # a port nothing listens on: bound here, never listened to
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        result = run("--url", f"postgresql+psycopg://syncd:hunter2@127.0.0.1:{port}/syncd")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert f"postgresql+psycopg://syncd:***@127.0.0.1:{port}/syncd" in result.stderr
    assert "hunter2" not in result.output + result.stderr
