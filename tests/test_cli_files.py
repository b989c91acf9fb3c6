"""``syncd files ...`` against the emulator: click's CliRunner in-process, plus one real
subprocess for the installed entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from click.testing import CliRunner, Result

from syncd.cli import cli
from syncd.emulator import EmulatorServer
from syncd.logs import reset_logging

CHAT_LINE = (
    b'{"messages": [{"role": "user", "content": "hi"}, '
    b'{"role": "assistant", "content": "hello"}]}\n'
)
UNKNOWN_ID = "6f1c1d0e-0000-4000-8000-000000000001"


@pytest.fixture(autouse=True)
def _restore_logging_config() -> Iterator[None]:
    """The command sets structlog up when nobody has; undo that for the tests that follow."""
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    yield
    if was_configured:
        structlog.configure(**saved)
    else:
        reset_logging()


@pytest.fixture
def env(emulator: EmulatorServer, api_key: str) -> dict[str, str]:
    """The environment that points the CLI at the emulator."""
    return {"MISTRAL_API_KEY": api_key, "MISTRAL_SERVER_URL": emulator.url}


def run(env: dict[str, str], *args: str | Path) -> Result:
    """Invoke ``syncd files ARGS`` in-process with ``env``."""
    return CliRunner().invoke(cli, ["files", *map(str, args)], env=env, catch_exceptions=False)


def run_json(env: dict[str, str], *args: str | Path) -> Any:
    """Invoke with ``--json``; assert success and return the parsed document."""
    result = run(env, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _jsonl(tmp_path: Path, name: str, lines: int = 1) -> Path:
    path = tmp_path / name
    path.write_bytes(CHAT_LINE * lines)
    return path


@pytest.fixture
def uploaded(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """One fine-tune file uploaded through the CLI; its JSON description."""
    [info] = run_json(env, "upload", _jsonl(tmp_path, "one.jsonl", 2), "--purpose", "fine-tune")
    return dict(info)


def test_upload_many_paths(env: dict[str, str], tmp_path: Path) -> None:
    """upload PATH PATH --json prints one JSON array describing both files."""
    a, b = _jsonl(tmp_path, "a.jsonl"), _jsonl(tmp_path, "b.jsonl", 3)
    infos = run_json(env, "upload", a, b, "--purpose", "fine-tune")
    assert [(i["filename"], i["num_lines"]) for i in infos] == [("a.jsonl", 1), ("b.jsonl", 3)]


def test_upload_failure_does_not_stop_the_rest(
    env: dict[str, str], emulator: EmulatorServer, tmp_path: Path
) -> None:
    """A refused file is reported on stderr with exit 1; the other file is still uploaded."""
    bad = tmp_path / "notes.txt"
    bad.write_bytes(CHAT_LINE)
    good = _jsonl(tmp_path, "good.jsonl")
    result = run(env, "upload", bad, good, "--purpose", "fine-tune", "--json")
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "notes.txt" in result.stderr
    assert [i["filename"] for i in json.loads(result.stdout)] == ["good.jsonl"]
    assert emulator.stats()["files"] == 1


def test_upload_with_filename_and_table(env: dict[str, str], tmp_path: Path) -> None:
    """--filename renames the stored file; without --json a table shows it."""
    result = run(
        env,
        "upload",
        _jsonl(tmp_path, "x.jsonl"),
        "--purpose",
        "agentic_safety",
        "--filename",
        "renamed.jsonl",
    )
    assert result.exit_code == 0, result.stderr
    assert "renamed.jsonl" in result.stdout


def test_filename_needs_one_path(env: dict[str, str], tmp_path: Path) -> None:
    """--filename with two paths is a usage error."""
    a, b = _jsonl(tmp_path, "a.jsonl"), _jsonl(tmp_path, "b.jsonl")
    result = run(env, "upload", a, b, "--purpose", "fine-tune", "--filename", "x.jsonl")
    assert result.exit_code == 2
    assert "exactly one PATH" in result.stderr


def test_list_filters_pages_and_all(env: dict[str, str], tmp_path: Path) -> None:
    """list honours --purpose, --search, --page/--page-size, and --all walks every page."""
    paths = [_jsonl(tmp_path, f"f{n}.jsonl", n + 1) for n in range(3)]
    run_json(env, "upload", *paths, "--purpose", "fine-tune")
    page = run_json(env, "list", "--page", "1", "--page-size", "2")
    assert (len(page["data"]), page["total"]) == (1, 3)
    everything = run_json(env, "list", "--all", "--page-size", "1")
    assert sorted(i["filename"] for i in everything["data"]) == ["f0.jsonl", "f1.jsonl", "f2.jsonl"]
    assert [i["filename"] for i in run_json(env, "list", "--search", "f1")["data"]] == ["f1.jsonl"]
    assert run_json(env, "list", "--purpose", "batch")["data"] == []


def test_list_table_shows_whole_ids(env: dict[str, str], uploaded: dict[str, Any]) -> None:
    """The table (stdout not a terminal) keeps the full id and the filename."""
    result = run(env, "list")
    assert result.exit_code == 0, result.stderr
    assert uploaded["id"] in result.stdout
    assert "one.jsonl" in result.stdout


def test_info(env: dict[str, str], uploaded: dict[str, Any]) -> None:
    """info prints the file's fields, as JSON or a table."""
    assert run_json(env, "info", uploaded["id"]) == {**uploaded, "deleted": False}
    table = run(env, "info", uploaded["id"])
    assert table.exit_code == 0
    assert "sample_type" in table.stdout
    assert "instruct" in table.stdout


def test_download_to_path_default_name_and_stdout(
    env: dict[str, str], uploaded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """download writes to -o, to the remote name by default, or to stdout with -o -."""
    expected = CHAT_LINE * 2
    target = tmp_path / "out.jsonl"
    saved = run_json(env, "download", uploaded["id"], "-o", target)
    assert saved == {"id": uploaded["id"], "path": str(target), "bytes": len(expected)}
    assert target.read_bytes() == expected
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    assert run(env, "download", uploaded["id"]).exit_code == 0
    assert (workdir / "one.jsonl").read_bytes() == expected
    piped = CliRunner().invoke(cli, ["files", "download", uploaded["id"], "-o", "-"], env=env)
    assert piped.stdout_bytes == expected


def test_delete_then_info_fails_with_the_api_message(
    env: dict[str, str], uploaded: dict[str, Any]
) -> None:
    """delete confirms; info on the deleted id exits 1 with "error: HTTP 404: ..." on stderr."""
    result = run(env, "delete", uploaded["id"])
    assert (result.exit_code, result.stdout.strip()) == (0, f"deleted {uploaded['id']}")
    missing = run(env, "info", uploaded["id"])
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: HTTP 404: ")
    assert uploaded["id"] in missing.stderr
    assert missing.stdout == ""


def test_signed_url(env: dict[str, str], uploaded: dict[str, Any]) -> None:
    """url prints a URL that downloads without the key; --expiry outside 1-168 is refused."""
    plain = run(env, "url", uploaded["id"], "--expiry", "2")
    assert plain.exit_code == 0
    assert httpx.get(plain.stdout.strip()).content == CHAT_LINE * 2
    assert run_json(env, "url", uploaded["id"])["url"].startswith("http")
    assert run(env, "url", uploaded["id"], "--expiry", "169").exit_code == 2


def test_wrong_key_exit_1_and_key_never_printed(emulator: EmulatorServer) -> None:
    """A wrong key exits 1 with the 401 message; the key appears in no output."""
    secret = "sk-cli-secret-987654321"
    result = run({"MISTRAL_API_KEY": secret, "MISTRAL_SERVER_URL": emulator.url}, "list")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: HTTP 401: Unauthorized"
    assert secret not in result.output


def test_missing_key(emulator: EmulatorServer) -> None:
    """No MISTRAL_API_KEY exits 78 (as sync does) and says which variable to set, in the words
    of the command line (no Python's "pass api_key=")."""
    result = run({"MISTRAL_API_KEY": "", "MISTRAL_SERVER_URL": emulator.url}, "list")
    assert result.exit_code == 78
    assert "MISTRAL_API_KEY" in result.stderr
    assert "api_key=" not in result.stderr


def test_server_url_option_wins(env: dict[str, str], emulator: EmulatorServer) -> None:
    """--server-url overrides MISTRAL_SERVER_URL."""
    wrong_env = {**env, "MISTRAL_SERVER_URL": "http://127.0.0.1:9"}
    document = run_json(wrong_env, "list", "--server-url", emulator.url)
    assert document["data"] == []


def test_entry_point_prints_pure_json(env: dict[str, str], tmp_path: Path) -> None:
    """``python -m syncd files`` in a real subprocess: stdout is exactly one JSON document."""
    path = _jsonl(tmp_path, "sub.jsonl")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncd",
            "files",
            "upload",
            str(path),
            "--purpose",
            "fine-tune",
            "--json",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    [info] = json.loads(completed.stdout)
    assert info["filename"] == "sub.jsonl"
    assert env["MISTRAL_API_KEY"] not in completed.stdout + completed.stderr


def _config(tmp_path: Path, api: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(
        f"[api]\n{api}\n[state]\nurl = 'sqlite:///{tmp_path}/state.db'\n"
        "[[folders]]\npath = 'data'\npurpose = 'fine-tune'\n",
        encoding="utf-8",
    )
    return path


def test_files_uses_the_config_server_and_key_file(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """-c: the config's server_url and its api_key_file (no key in the environment); -c after
    the command works too."""
    (tmp_path / "key").write_text(api_key + "\n", encoding="utf-8")
    config = _config(tmp_path, f"server_url = '{emulator.url}'\napi_key_file = 'key'")
    upload = _jsonl(tmp_path, "c.jsonl")
    env = {"MISTRAL_API_KEY": "", "MISTRAL_SERVER_URL": ""}
    before = CliRunner().invoke(
        cli, ["-c", str(config), "files", "upload", str(upload), "--purpose", "fine-tune"], env=env
    )
    assert before.exit_code == 0, before.output
    after = CliRunner().invoke(cli, ["files", "list", "--json", "-c", str(config)], env=env)
    assert after.exit_code == 0, after.output
    assert [f["filename"] for f in json.loads(after.stdout)["data"]] == ["c.jsonl"]


def test_files_reaches_the_embedded_emulator_of_the_config(tmp_path: Path) -> None:
    """server_url = "embedded" with no daemon running: the emulator starts for the command, on
    the config's data dir, so an upload is still there for the next command."""
    config = _config(tmp_path, "server_url = 'embedded'")
    env = {"MISTRAL_API_KEY": "", "MISTRAL_SERVER_URL": ""}
    args = ["-c", str(config), "files"]
    upload = _jsonl(tmp_path, "e.jsonl")
    done = CliRunner().invoke(
        cli, [*args, "upload", str(upload), "--purpose", "fine-tune"], env=env
    )
    assert done.exit_code == 0, done.output
    listed = CliRunner().invoke(cli, [*args, "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [f["filename"] for f in json.loads(listed.stdout)["data"]] == ["e.jsonl"]


def test_named_config_that_is_missing_exits_78(tmp_path: Path) -> None:
    """-c naming no file is a config error, not a silent fall back to the environment."""
    result = CliRunner().invoke(
        cli, ["-c", str(tmp_path / "absent.toml"), "files", "list"], env={"MISTRAL_API_KEY": "k"}
    )
    assert result.exit_code == 78
    assert "config file not found" in result.stderr
