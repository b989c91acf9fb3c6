"""Quarantine verdicts judged again: after the folder's purpose changed, and on demand with
``syncd retry`` (which also requeues failed files). Real CLI, real store, emulator over loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from syncd.api import Mistral
from syncd.cli import cli
from syncd.domain import LocalState
from syncd.emulator import EmulatorServer
from syncd.store import open_store
from syncd.store.schema import LocalFile
from tests.configs import FolderSetup, write_chat_file, write_config

Run = Callable[..., Result]


@pytest.fixture
def run_cli(api_key: str) -> Run:
    def run(config: Path, *args: str) -> Result:
        return CliRunner().invoke(cli, ["-c", str(config), *args], env={"MISTRAL_API_KEY": api_key})

    return run


def states(run_cli: Run, config: Path) -> dict[str, str]:
    result = run_cli(config, "status", "--json")
    assert result.exit_code == 0, result.output
    return {f["path"]: f["state"] for f in json.loads(result.stdout)["files"]}


def remote_names(emulator: EmulatorServer, api_key: str) -> list[str]:
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        return sorted(f.filename for f in client.files.iter_all())


def test_file_quarantined_under_another_purpose_is_judged_again(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Run
) -> None:
    """A chat file in a folder first set to "batch" is quarantined; once the purpose is
    corrected, the next sync judges it again and uploads it, though its bytes never changed."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = write_config(
        tmp_path, server_url=emulator.url, folders=[FolderSetup(folder, purpose="batch")]
    )
    assert run_cli(config, "sync", "--no-progress").exit_code == 3
    assert states(run_cli, config) == {"a.jsonl": "quarantined"}
    write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    synced = run_cli(config, "sync", "--no-progress")
    assert synced.exit_code == 0, synced.output
    assert states(run_cli, config) == {"a.jsonl": "uploaded"}
    assert remote_names(emulator, api_key) == ["a.jsonl"]


def test_file_quarantined_under_another_batch_endpoint_is_judged_again(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Run
) -> None:
    """A batch request without "messages" is quarantined under batch_endpoint; once the
    config drops the endpoint (same purpose, same bytes), the next sync uploads it."""
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a.jsonl").write_text(
        json.dumps({"custom_id": "1", "body": {"max_tokens": 8}}) + "\n", encoding="utf-8"
    )
    strict = FolderSetup(folder, "batch", extra={"batch_endpoint": '"/v1/chat/completions"'})
    config = write_config(tmp_path, server_url=emulator.url, folders=[strict])
    assert run_cli(config, "sync", "--no-progress").exit_code == 3
    assert run_cli(config, "sync", "--no-progress").exit_code == 3  # same settings: kept
    write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder, "batch")])
    assert run_cli(config, "sync", "--no-progress").exit_code == 0
    assert remote_names(emulator, api_key) == ["a.jsonl"]


def test_retry_has_a_file_the_api_refused_tried_again(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    run_cli: Run,
) -> None:
    """The API refused a file (413: over its size limit) and it was quarantined; the API's
    limit has since changed, the config has not: only `syncd retry` makes syncd try again."""
    strict = make_emulator(max_upload_bytes=100)
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl", n=20)
    config = write_config(tmp_path, server_url=strict.url, folders=[FolderSetup(folder)])
    assert run_cli(config, "sync", "--no-progress").exit_code == 3
    roomy = make_emulator()
    write_config(tmp_path, server_url=roomy.url, folders=[FolderSetup(folder)])
    assert run_cli(config, "sync", "--no-progress").exit_code == 3  # still quarantined
    retried = run_cli(config, "retry")
    assert retried.exit_code == 0, retried.output
    assert "1 quarantined file(s) to be judged again" in retried.stdout
    assert run_cli(config, "sync", "--no-progress").exit_code == 0
    assert remote_names(roomy, api_key) == ["a.jsonl"]


def test_retry_requeues_failed_files(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Run
) -> None:
    """A failed file is pending again after `syncd retry`; `--only quarantined` leaves it."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    assert run_cli(config, "sync", "--no-progress").exit_code == 0
    store = open_store(f"sqlite:///{tmp_path / 'state' / 'state.db'}")
    try:
        with store.session() as s:
            s.execute(update(LocalFile).values(state=LocalState.FAILED, attempts=6))
    finally:
        store.dispose()
    untouched = run_cli(config, "retry", "--only", "quarantined")
    assert "0 failed file(s)" in untouched.stdout
    assert states(run_cli, config) == {"a.jsonl": "failed"}
    retried = run_cli(config, "retry", "--folder", "ft")
    assert retried.exit_code == 0, retried.output
    assert "1 failed file(s) queued for upload" in retried.stdout
    assert states(run_cli, config) == {"a.jsonl": "pending"}


def test_retry_names_the_folders_when_one_is_unknown(
    tmp_path: Path, emulator: EmulatorServer, run_cli: Run
) -> None:
    """A folder name that is not in the config: exit 2, naming the ones that are."""
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])
    result = run_cli(config, "retry", "--folder", "nope")
    assert result.exit_code == 2
    assert "no folder named nope in the config (folders: ft)" in result.stderr
