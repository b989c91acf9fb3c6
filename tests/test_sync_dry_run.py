"""`syncd sync --dry-run` judges every file as a sync would and writes nothing to the state
database: not a row, not a byte; without a database it creates none (issue 22)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner, Result

from syncd.cli import cli
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config


def _run(config: Path, api_key: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(config), *args], env={"MISTRAL_API_KEY": api_key})


def _database(path: Path) -> tuple[bytes, int, list[tuple[object, ...]]]:
    """The file's bytes and mtime, and every row (read through a read-only connection, so
    what a WAL holds counts too)."""
    content, mtime = path.read_bytes(), path.stat().st_mtime_ns
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [
            (name, *row)
            for name in sorted(names)
            for row in db.execute(f"SELECT * FROM {name}")  # noqa: S608 (sqlite_master's names)
        ]
    return content, mtime, sorted(rows, key=repr)


def _records(result: Result) -> list[list[str]]:
    return sorted(line.split("\t")[:3] for line in result.stdout.splitlines())


def test_dry_run_leaves_the_state_database_as_it_was(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    folder = tmp_path / "ft"
    write_chat_file(folder / "old.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    assert _run(config, api_key, "sync", "--no-progress").exit_code == 0
    database = tmp_path / "state" / "state.db"
    write_chat_file(folder / "new.jsonl", salt="new")
    (folder / "bad.jsonl").write_text("not json\n", encoding="utf-8")
    before = _database(database)

    result = _run(config, "", "sync", "--dry-run")

    assert result.exit_code == 0, result.output
    assert _records(result) == [
        ["quarantined", "ft", "bad.jsonl"],
        ["would upload", "ft", "new.jsonl"],
    ]
    assert _database(database) == before
    assert "the state database was not changed" in result.stderr
    # The verdicts were not recorded: the real sync judges and uploads the new file itself.
    after = _run(config, api_key, "sync", "--no-progress")
    assert after.exit_code == 3, after.output  # 3: a file is quarantined
    assert emulator.stats()["uploads"] == 2


def test_dry_run_without_a_state_database_creates_none(tmp_path: Path) -> None:
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    config = write_config(tmp_path, server_url="embedded", folders=[FolderSetup(folder)])

    result = _run(config, "", "sync", "--dry-run")

    assert result.exit_code == 0, result.output
    assert _records(result) == [["would upload", "ft", "a.jsonl"]]
    assert not (tmp_path / "state").exists()
    assert "no state database yet" in result.stderr
    assert "none was created" in result.stderr
