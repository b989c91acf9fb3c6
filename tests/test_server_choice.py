"""Which Files API a config talks to: Mistral's unless the config asks for the emulator, and
every surface that reports uploads names it (never the real API here: fake URLs only)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from click.testing import CliRunner, Result

from syncd.cli import cli
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.conftest import StartDaemon

NOTE = "local emulator: nothing leaves this machine"
CLEAN_ENV: dict[str, str | None] = {
    "MISTRAL_API_KEY": None,
    "SYNCD_CONFIG": None,
    "STATE_DIRECTORY": None,
    "CREDENTIALS_DIRECTORY": None,
}


def invoke(config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["-c", str(config), *args], env={**CLEAN_ENV, **(env or {})})


def config_without_server_url(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[state]\nurl = "sqlite:///{tmp_path}/state.db"\n'
        '[[folders]]\npath = "data"\npurpose = "fine-tune"\n'
    )
    return path


def test_a_config_without_server_url_talks_to_mistral(tmp_path: Path) -> None:
    """No server_url: check-config names Mistral's API, and sync without a key refuses (78)
    instead of uploading into an emulator."""
    path = config_without_server_url(tmp_path)
    checked = invoke(path, "check-config", env={"MISTRAL_API_KEY": "sk-test"})
    assert "server:    https://api.mistral.ai\n" in checked.stdout
    assert "emulator" not in checked.stdout
    synced = invoke(path, "sync", "--no-progress")
    assert synced.exit_code == 78, synced.output
    assert "no API key found" in synced.stderr


def test_embedded_emulator_is_said_to_be_local_everywhere(tmp_path: Path) -> None:
    """Asked for explicitly, the emulator is named by check-config, sync and status."""
    write_chat_file(tmp_path / "ft" / "a.jsonl")
    config = write_config(tmp_path, server_url="embedded", folders=[FolderSetup(tmp_path / "ft")])
    checked = invoke(config, "check-config")
    assert checked.exit_code == 0, checked.output
    assert f"server:    embedded emulator ({NOTE})" in checked.stdout
    synced = invoke(config, "sync", "--no-progress")
    assert synced.exit_code == 0, synced.output
    assert NOTE in synced.stderr
    shown = invoke(config, "status", "--table")
    assert f"Files API: embedded emulator ({NOTE})" in shown.stdout
    document = json.loads(invoke(config, "status", "--json").stdout)
    assert document["server"] == {"url": "embedded", "described": f"embedded emulator ({NOTE})"}


def test_sync_names_the_url_it_uploaded_to(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """A server given by URL is named in sync's summary, and not called an emulator."""
    write_chat_file(tmp_path / "ft" / "a.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])
    synced = invoke(config, "sync", "--no-progress", env={"MISTRAL_API_KEY": api_key})
    assert synced.exit_code == 0, synced.output
    assert f"Files API: {emulator.url} (a server on this machine)" in synced.stderr
    assert NOTE not in synced.output


def test_status_page_of_an_embedded_daemon_says_nothing_leaves(
    tmp_path: Path, start_daemon: StartDaemon
) -> None:
    """The daemon's status page names the emulator it uploads to."""
    config = write_config(
        tmp_path,
        server_url="embedded",
        folders=[FolderSetup(tmp_path / "ft")],
        sections={"metrics": {"listen": '"127.0.0.1:0"'}},
    )
    daemon = start_daemon(config)
    listen = daemon.wait_event("metrics_listening")["listen"]
    page = httpx.get(f"http://{listen}/", timeout=10).text
    assert NOTE in page
    document = httpx.get(f"http://{listen}/api/status", timeout=10).json()
    assert NOTE in document["api"]["server"]
