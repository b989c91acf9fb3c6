"""The PostgreSQL state store's password: from ``[state] password_file`` or libpq, never shown.

Against the suite's real PostgreSQL cluster. Its roles use trust auth, so a password would
prove nothing there: the ``password_role`` fixture makes a role with a real password and puts a
``scram-sha-256`` line for that role alone at the top of ``pg_hba.conf`` (reloaded, restored
afterwards). The server then refuses the role without its password, so a test that logs in
shows the password reached libpq, and a test without it shows the refusal and its message.
The password is then looked for in everything syncd writes: the JSON logs of ``syncd sync``
and of a ``syncd run`` daemon, ``status --json``, ``check-config``, exceptions with their
chained causes, and every table of the database.
"""

from __future__ import annotations

import os
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from syncd.cli import cli
from syncd.config import load_config
from syncd.emulator import EmulatorServer
from syncd.errors import StoreError
from syncd.store import open_store
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.daemon_process import DaemonProcess
from tests.support import wait_until

if TYPE_CHECKING:
    from tests.postgres_cluster import PostgresCluster


@dataclass(frozen=True)
class PasswordRole:
    """A login role that the server only lets in with its password, owning its own database."""

    name: str
    password: str
    database: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """The state URL as a config holds it: no password."""
        return f"postgresql+psycopg://{self.name}@{self.host}:{self.port}/{self.database}"

    @property
    def spellings(self) -> tuple[str, ...]:
        """The password as it could appear anywhere: raw, and quoted for a URL."""
        return (self.password, quote(self.password, safe=""))


@pytest.fixture
def password_role(postgres_cluster: PostgresCluster) -> Iterator[PasswordRole]:
    import psycopg
    from psycopg import sql

    postgres_cluster.ensure_running()
    tag = uuid.uuid4().hex[:10]
    role = PasswordRole(
        name=f"syncd_pw_{tag}",
        # Characters a URL must quote, so a password that survives the trip is really handed
        # over (and a search of the output for it cannot miss a quoted form).
        password=f"Pw-{tag}-s3cret:@/%#?+ x",
        database=f"syncd_pw_{tag}",
        host=postgres_cluster.host,
        port=postgres_cluster.port,
    )
    hba = postgres_cluster.data_dir / "pg_hba.conf"
    original = hba.read_text()
    with psycopg.connect(postgres_cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role.name), sql.Literal(role.password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(role.database), sql.Identifier(role.name)
            )
        )
        # First match wins: this role (and only it) must now show its password. write_text
        # keeps the file's inode, owner and mode (the server may run as another user).
        hba.write_text(f"host all {role.name} 127.0.0.1/32 scram-sha-256\n" + original)
        admin.execute("SELECT pg_reload_conf()")
    wait_until(lambda: _refused_without_password(role), what="pg_hba.conf reloaded")
    try:
        yield role
    finally:
        postgres_cluster.ensure_running()
        hba.write_text(original)
        with psycopg.connect(postgres_cluster.dsn("postgres"), autocommit=True) as admin:
            admin.execute("SELECT pg_reload_conf()")
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(role.database)
                )
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role.name)))


def _refused_without_password(role: PasswordRole) -> bool:
    import psycopg

    dsn = f"host={role.host} port={role.port} user={role.name} dbname={role.database}"
    try:
        with psycopg.connect(dsn, passfile=os.devnull, connect_timeout=5):
            return False
    except psycopg.OperationalError as exc:
        return "no password supplied" in str(exc)


def database_text(cluster: PostgresCluster, role: PasswordRole) -> str:
    """Every row of every table of the role's database, as JSON text."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(cluster.dsn(role.database)) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        assert "local_files" in tables
        rows: list[str] = []
        for table in tables:
            query = sql.SQL("SELECT row_to_json(t)::text FROM {} AS t").format(
                sql.Identifier(table)
            )
            rows.extend(str(row[0]) for row in connection.execute(query).fetchall())
    return "\n".join(rows)


def run(config: Path, *args: str, env: Mapping[str, str | None]) -> Result:
    """``syncd -c CONFIG ARGS`` in process; libpq's own password sources cleared unless given."""
    clean: dict[str, str | None] = {
        "PGPASSWORD": None,
        "PGPASSFILE": os.devnull,  # not root's ~/.pgpass
        "CREDENTIALS_DIRECTORY": None,
        "SYNCD_CONFIG": None,
    }
    return CliRunner().invoke(
        cli, ["-c", str(config), *args], env={**clean, **env}, catch_exceptions=False
    )


def state_config(
    tmp_path: Path, server_url: str, url: str, *, password_file: str | None = None
) -> Path:
    """A config with one fine-tune folder holding one file, debug JSON logs, ``url`` as state."""
    write_chat_file(tmp_path / "ft" / "a.jsonl")
    state = {"url": f'"{url}"'}
    if password_file is not None:
        state["password_file"] = f'"{password_file}"'
    return write_config(
        tmp_path,
        server_url=server_url,
        folders=[FolderSetup(tmp_path / "ft")],
        sections={"state": state, "log": {"format": '"json"', "level": '"debug"'}},
    )


def assert_hidden(role: PasswordRole, *texts: str) -> None:
    for shown in texts:
        for spelling in role.spellings:
            assert spelling not in shown


def test_password_file_from_credentials_directory_is_used_and_never_shown(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    postgres_cluster: PostgresCluster,
    password_role: PasswordRole,
) -> None:
    """systemd's LoadCredential= directory holds the password: sync logs in with it, and it
    is in no log line, no status or check-config output, and nowhere in the database."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "db-password").write_text(password_role.password + "\n")
    config = state_config(tmp_path, emulator.url, password_role.url, password_file="db-password")
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "MISTRAL_API_KEY": api_key}

    synced = run(config, "sync", env=env)
    assert synced.exit_code == 0, synced.output
    status = run(config, "status", "--json", env=env)
    assert status.exit_code == 0, status.output
    assert '"a.jsonl"' in status.stdout
    checked = run(config, "check-config", env=env)
    assert checked.exit_code == 0, checked.output
    assert f"password from file {credentials / 'db-password'}" in checked.stdout
    assert f"postgresql+psycopg://{password_role.name}:***@" in checked.stdout

    stored = database_text(postgres_cluster, password_role)
    assert "a.jsonl" in stored
    assert '"event"' in synced.stderr  # the JSON log lines were captured
    assert_hidden(
        password_role,
        synced.stdout,
        synced.stderr,
        status.stdout,
        status.stderr,
        checked.stdout,
        checked.stderr,
        stored,
    )


def test_password_file_beside_the_config_is_used(
    tmp_path: Path, password_role: PasswordRole
) -> None:
    """Without $CREDENTIALS_DIRECTORY a relative password_file is beside the config file."""
    (tmp_path / "db-password").write_text(password_role.password)
    config = state_config(tmp_path, "embedded", password_role.url, password_file="db-password")
    loaded = load_config(config, environ={})
    with open_store(loaded.state.database_url) as opened, opened.session() as s:
        assert s.execute(text("SELECT current_user")).scalar_one() == password_role.name
    assert_hidden(password_role, opened.url, repr(opened), repr(loaded))


def test_without_the_password_the_login_fails_with_a_message_saying_what_to_check(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, password_role: PasswordRole
) -> None:
    """No password_file and nothing for libpq: the server refuses the role; sync exits 1 with
    one line naming the database and the settings to check, not a traceback."""
    config = state_config(tmp_path, emulator.url, password_role.url)
    result = run(config, "sync", env={"MISTRAL_API_KEY": api_key})
    assert result.exit_code == 1
    assert (
        f"error: cannot log in to state database {password_role.url} (connection failed: "
        in result.stderr
    )
    assert "no password supplied" in result.stderr
    assert "check the user in [state] url and the password in [state] password_file" in (
        result.stderr
    )
    assert "Traceback" not in result.output


def test_a_wrong_password_is_refused_and_neither_password_is_shown(
    tmp_path: Path, password_role: PasswordRole
) -> None:
    """A wrong password in the file: a StoreError saying authentication failed; neither the
    wrong nor the right password is in it or in its chained driver exceptions."""
    wrong = "Wrong-" + password_role.password[::-1]
    (tmp_path / "db-password").write_text(wrong)
    config = state_config(tmp_path, "embedded", password_role.url, password_file="db-password")
    with pytest.raises(StoreError) as caught:
        open_store(load_config(config, environ={}).state.database_url)
    message = str(caught.value)
    masked = password_role.url.replace(f"{password_role.name}@", f"{password_role.name}:***@")
    assert message.startswith(f"cannot log in to state database {masked} ")
    assert "password authentication failed" in message
    everything = "".join(traceback.format_exception(caught.value))
    assert_hidden(password_role, everything)
    assert wrong not in everything
    assert quote(wrong, safe="") not in everything


def test_libpq_password_file_applies_without_password_file(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, password_role: PasswordRole
) -> None:
    """No password_file: libpq's PGPASSFILE (~/.pgpass format) supplies the password, and
    check-config says that is where it comes from."""
    escaped = password_role.password.replace("\\", "\\\\").replace(":", "\\:")
    pgpass = tmp_path / "pgpass"
    role = password_role
    pgpass.write_text(f"{role.host}:{role.port}:{role.database}:{role.name}:{escaped}\n")
    pgpass.chmod(0o600)  # libpq ignores a password file others can read
    config = state_config(tmp_path, emulator.url, role.url)
    env = {"MISTRAL_API_KEY": api_key, "PGPASSFILE": str(pgpass)}
    checked = run(config, "check-config", env=env)
    assert checked.exit_code == 0, checked.output
    assert f"libpq's password file {pgpass} applies" in checked.stdout
    synced = run(config, "sync", env=env)
    assert synced.exit_code == 0, synced.output
    assert_hidden(role, synced.output, checked.output)


def test_daemon_logs_never_show_the_password(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    daemons: list[DaemonProcess],
    password_role: PasswordRole,
) -> None:
    """``syncd run`` as a real process, password from $CREDENTIALS_DIRECTORY, debug JSON logs:
    it uploads through the PostgreSQL store and no log line carries the password."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "db-password").write_text(password_role.password + "\n")
    config = state_config(tmp_path, emulator.url, password_role.url, password_file="db-password")
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "PGPASSFILE": os.devnull}
    daemon = DaemonProcess(config, api_key=api_key, extra_env=env)
    daemons.append(daemon)
    daemon.wait_event("file_uploaded", path="a.jsonl", timeout=30)
    assert daemon.stop() == 0
    assert_hidden(password_role, "".join(daemon.raw))


def test_password_in_the_url_stops_sync_with_exit_78(tmp_path: Path) -> None:
    """A password in [state] url is a config error (78), like an API key in the TOML, and the
    URL (with it) is not repeated."""
    config = state_config(
        tmp_path, "embedded", "postgresql+psycopg://syncd:Hunter2-in-url@db.example/syncd"
    )
    result = run(config, "sync", env={})
    assert result.exit_code == 78
    assert "state.url: database passwords never live in the config file" in result.stderr
    assert "Hunter2-in-url" not in result.output


def test_sync_against_an_unreachable_server_exits_1_naming_host_and_port(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """Nothing listens at the configured port: sync exits 1 (no crash, no hang) with a line
    naming the database (password masked) and the host:port to check."""
    import socket

    (tmp_path / "db-password").write_text("Hunter2-unreachable\n")
    with socket.socket() as probe:  # bound, never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        url = f"postgresql+psycopg://syncd@127.0.0.1:{port}/syncd"
        config = state_config(tmp_path, emulator.url, url, password_file="db-password")
        result = run(config, "sync", env={"MISTRAL_API_KEY": api_key})
    assert result.exit_code == 1
    assert (
        f"error: cannot connect to state database postgresql+psycopg://syncd:***@127.0.0.1:"
        f"{port}/syncd (" in result.stderr
    )
    assert f"is PostgreSQL running and reachable at 127.0.0.1:{port}?" in result.stderr
    assert "Hunter2-unreachable" not in result.output
