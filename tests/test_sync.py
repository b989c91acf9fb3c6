"""`syncd sync` end to end: real files, a real SQLite store, the emulator over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from syncd.api import Mistral
from syncd.cli import cli
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_batch_file, write_chat_file, write_config

Sync = Callable[..., Result]


@pytest.fixture
def run_cli(api_key: str) -> Callable[..., Result]:
    def run(config: Path, *args: str) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli,
            ["-c", str(config), *args],
            env={"MISTRAL_API_KEY": api_key},
            catch_exceptions=False,
        )

    return run


def remote_files(emulator: EmulatorServer, api_key: str) -> list[dict[str, object]]:
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        return [f.model_dump() for f in client.files.iter_all()]


def status_json(run_cli: Callable[..., Result], config: Path) -> dict[str, object]:
    result = run_cli(config, "status", "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads(result.stdout)
    return document


def files_by_path(document: dict[str, object]) -> dict[str, dict[str, object]]:
    files = document["files"]
    assert isinstance(files, list)
    return {str(f["path"]): f for f in files}


def test_sync_uploads_each_file_once_with_its_folder_purpose(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Sync
) -> None:
    """New files go up with their folder's purpose; a second pass uploads nothing."""
    write_chat_file(tmp_path / "ft" / "a.jsonl")
    write_chat_file(tmp_path / "ft" / "nested" / "b.jsonl", salt="b")
    write_batch_file(tmp_path / "batch" / "req.jsonl")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(tmp_path / "ft"), FolderSetup(tmp_path / "batch", "batch")],
    )
    result = run_cli(config, "sync")
    assert result.exit_code == 0, result.output
    remote = remote_files(emulator, api_key)
    assert sorted((f["filename"], f["purpose"]) for f in remote) == [
        ("a.jsonl", "fine-tune"),
        ("b.jsonl", "fine-tune"),
        ("req.jsonl", "batch"),
    ]
    uploads = emulator.stats()["uploads"]

    again = run_cli(config, "sync")
    assert again.exit_code == 0, again.output
    assert emulator.stats()["uploads"] == uploads
    files = files_by_path(status_json(run_cli, config))
    assert {p: f["state"] for p, f in files.items()} == {
        "a.jsonl": "uploaded",
        "nested/b.jsonl": "uploaded",
        "req.jsonl": "uploaded",
    }
    assert {f["file_id"] for f in files.values()} == {f["id"] for f in remote}


def test_rename_and_copy_upload_nothing(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Sync
) -> None:
    """A renamed file keeps its remote file; a copy of known content reuses it."""
    write_chat_file(tmp_path / "ft" / "a.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])
    assert run_cli(config, "sync").exit_code == 0
    uploads = emulator.stats()["uploads"]
    (tmp_path / "ft" / "a.jsonl").rename(tmp_path / "ft" / "renamed.jsonl")
    (tmp_path / "ft" / "copy.jsonl").write_bytes((tmp_path / "ft" / "renamed.jsonl").read_bytes())

    assert run_cli(config, "sync").exit_code == 0
    assert emulator.stats()["uploads"] == uploads
    files = files_by_path(status_json(run_cli, config))
    assert set(files) == {"renamed.jsonl", "copy.jsonl"}
    assert files["renamed.jsonl"]["file_id"] == files["copy.jsonl"]["file_id"]
    assert len(remote_files(emulator, api_key)) == 1


@pytest.mark.parametrize(("on_change", "old_kept"), [("replace", False), ("keep", True)])
def test_changed_content_uploads_a_new_version(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    run_cli: Sync,
    on_change: str,
    old_kept: bool,
) -> None:
    """Changed bytes upload a new version; "replace" deletes the superseded one, "keep" not."""
    path = write_chat_file(tmp_path / "ft" / "a.jsonl")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(tmp_path / "ft", extra={"on_change": f'"{on_change}"'})],
    )
    assert run_cli(config, "sync").exit_code == 0
    (old,) = remote_files(emulator, api_key)
    write_chat_file(path, 5, salt="v2")
    assert run_cli(config, "sync").exit_code == 0
    ids = {f["id"] for f in remote_files(emulator, api_key)}
    current = files_by_path(status_json(run_cli, config))["a.jsonl"]["file_id"]
    assert current != old["id"]
    assert current in ids
    assert (old["id"] in ids) is old_kept


def test_vanished_file_is_recorded_and_its_remote_kept(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Sync
) -> None:
    """A deleted local file is marked missing; its remote file is not deleted for that."""
    path = write_chat_file(tmp_path / "ft" / "a.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])
    assert run_cli(config, "sync").exit_code == 0
    path.unlink()
    assert run_cli(config, "sync").exit_code == 0
    assert files_by_path(status_json(run_cli, config))["a.jsonl"]["state"] == "missing"
    assert len(remote_files(emulator, api_key)) == 1


def test_bad_files_are_quarantined_and_the_rest_still_syncs(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Sync
) -> None:
    """Bad input is quarantined with a reason; good files upload; exit status 3 says so."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "good.jsonl")
    (folder / "broken.jsonl").write_text('{"messages": [\nnot json\n', encoding="utf-8")
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "user-last.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n", encoding="utf-8"
    )
    (folder / "bad-utf8.jsonl").write_bytes(b'{"text": "\xff"}\n')
    (folder / "escape.jsonl").symlink_to("/etc/passwd")
    os.mkfifo(folder / "pipe.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])

    result = run_cli(config, "sync")
    assert result.exit_code == 3, result.output
    assert [f["filename"] for f in remote_files(emulator, api_key)] == ["good.jsonl"]
    files = files_by_path(status_json(run_cli, config))
    assert files["good.jsonl"]["state"] == "uploaded"
    reasons = {p: str(f["reason"]) for p, f in files.items() if f["state"] == "quarantined"}
    assert "line 1" in reasons["broken.jsonl"]
    assert "empty" in reasons["empty.jsonl"]
    assert "assistant" in reasons["user-last.jsonl"]
    assert "UTF-8" in reasons["bad-utf8.jsonl"]
    assert "outside" in reasons["escape.jsonl"]
    assert "FIFO" in reasons["pipe.jsonl"]


def test_quarantined_file_is_taken_once_fixed(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Sync
) -> None:
    """A quarantined file is not retried until its content changes, then it uploads."""
    path = tmp_path / "ft" / "a.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("oops\n", encoding="utf-8")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(path.parent)])
    assert run_cli(config, "sync").exit_code == 3
    assert run_cli(config, "sync").exit_code == 3
    write_chat_file(path)
    assert run_cli(config, "sync").exit_code == 0
    assert [f["filename"] for f in remote_files(emulator, api_key)] == ["a.jsonl"]


def test_faults_every_file_uploaded_exactly_once(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str, run_cli: Sync
) -> None:
    """With 30% of requests failing (lost responses included) every file lands exactly once."""
    emulator = make_emulator(
        dedupe=False, fault_rate=0.3, retry_after=0.05, seed=7, api_key=api_key
    )
    for i in range(20):
        write_chat_file(tmp_path / "ft" / f"f{i:02}.jsonl", salt=str(i))
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(tmp_path / "ft")],
        sections={"api": {"max_attempts": "30"}},
    )
    result = run_cli(config, "sync")
    assert result.exit_code == 0, result.output
    emulator.set_faults(fault_rate=0.0)
    names = sorted(str(f["filename"]) for f in remote_files(emulator, api_key))
    assert names == [f"f{i:02}.jsonl" for i in range(20)]
    assert emulator.stats()["faults"]


def test_status_without_config_exits_78(tmp_path: Path, run_cli: Sync) -> None:
    """A missing config file is a configuration error (78) naming the path."""
    result = run_cli(tmp_path / "nope.toml", "status")
    assert result.exit_code == 78
    assert "nope.toml" in result.output


def test_a_sync_loads_neither_the_daemon_nor_the_emulator_nor_alembic(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """`syncd sync` against a real API imports only what it uses: the watcher, the scheduler,
    the metrics server, the web stack and (for a migrated store) Alembic stay unloaded."""
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])
    code = (
        "import sys\n"
        "from syncd.cli import cli\n"
        "try:\n"
        "    cli(sys.argv[1:])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        "heavy = ('watchdog', 'apscheduler.schedulers', 'prometheus_client', 'uvicorn', "
        "'starlette', 'alembic', 'mako')\n"
        "print(sorted(h for h in heavy if h in sys.modules))\n"
    )
    argv = [sys.executable, "-c", code, "-c", str(config), "sync", "--no-progress"]
    env = {**os.environ, "MISTRAL_API_KEY": api_key}
    subprocess.run(argv, env=env, capture_output=True, check=True)  # migrates the new store
    shown = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip().splitlines()[-1] == "[]", shown.stdout + shown.stderr
