"""`syncd verify` and `syncd manifest` end to end: real files, a real store, the emulator."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from syncd.api import Mistral
from syncd.cli import cli
from syncd.cli.manifest_cmd import MANIFEST_FIELDS
from syncd.config import load_config
from syncd.emulator import EmulatorServer
from syncd.folder_specs import folder_specs
from syncd.store import open_store, repo
from tests.configs import FolderSetup, write_chat_file, write_config

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def synced(tmp_path: Path, emulator: EmulatorServer, api_key: str) -> tuple[Path, Run]:
    """ft/a.jsonl and ft/b.jsonl synced; returns the config and a CLI runner for it."""
    write_chat_file(tmp_path / "ft" / "a.jsonl", salt="a")
    write_chat_file(tmp_path / "ft" / "b.jsonl", salt="b")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            cli,
            ["-c", str(config), *args],
            env={"MISTRAL_API_KEY": api_key},
            catch_exceptions=False,
        )
        return result.exit_code, result.stdout

    code, output = run("sync", "--no-progress")
    assert code == 0, output
    return config, run


def verify_json(run: Run) -> tuple[int, dict[str, Any]]:
    code, output = run("verify", "--json")
    document: dict[str, Any] = json.loads(output)
    return code, document


def kinds(document: dict[str, Any]) -> list[tuple[str, str | None]]:
    return sorted((f["kind"], f["path"]) for f in document["findings"])


def database_bytes(database: Path) -> list[bytes]:
    """The database and its WAL as they are on disk (a write would change one of them)."""
    files = [database, database.with_name(database.name + "-wal")]
    return [path.read_bytes() for path in files if path.exists()]


def store_file_id(config: Path, rel_path: str) -> str:
    loaded = load_config(config)
    (key,) = folder_specs(loaded)
    with open_store(loaded.state.database_url) as store, store.session() as s:
        record = repo.get_local(s, key, rel_path)
    assert record is not None and record.remote_file_id is not None
    return record.remote_file_id


def test_verify_passes_when_store_disk_and_remote_agree_and_lists_foreign_files(
    synced: tuple[Path, Run], emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    """Exit 0 when all agree; a file syncd did not upload is reported as foreign, not a failure."""
    _config, run = synced
    other = write_chat_file(tmp_path / "other" / "x.jsonl", salt="other")
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        foreign = client.files.upload(other, "fine-tune").id
    code, document = verify_json(run)
    assert code == 0, document
    assert document["ok"] is True
    assert document["local_files"] == 2
    assert document["recorded_files"] == 2
    assert [(f["kind"], f["file_id"], f["mismatch"]) for f in document["findings"]] == [
        ("foreign", foreign, False)
    ]


def test_verify_reports_each_kind_of_mismatch_and_exits_1(
    synced: tuple[Path, Run], emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    """Missing remote, content changed since upload and a new file not uploaded all fail it."""
    config, run = synced
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        client.files.delete(store_file_id(config, "a.jsonl"))
    write_chat_file(tmp_path / "ft" / "b.jsonl", salt="edited after upload")
    write_chat_file(tmp_path / "ft" / "new.jsonl", salt="new")
    code, document = verify_json(run)
    assert code == 1
    assert kinds(document) == [
        ("changed_since_upload", "b.jsonl"),
        ("missing_remote", "a.jsonl"),
        ("not_uploaded", "new.jsonl"),
    ]
    assert document["rehashed"] == 1


def test_verify_hashes_a_touched_file_again_and_finds_nothing_when_bytes_are_equal(
    synced: tuple[Path, Run], tmp_path: Path
) -> None:
    """A new mtime with the same bytes is re-hashed and agrees; the store is left unchanged."""
    config, run = synced
    path = tmp_path / "ft" / "a.jsonl"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    database = load_config(config).state.database_path
    assert database is not None
    before = database_bytes(database)
    code, document = verify_json(run)
    assert code == 0, document
    assert document["rehashed"] == 1
    assert database_bytes(database) == before


def test_verify_changes_nothing_on_the_remote(
    synced: tuple[Path, Run], emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Even with mismatches to report, verify uploads and deletes nothing."""
    _config, run = synced
    write_chat_file(tmp_path / "ft" / "new.jsonl", salt="new")
    stats = emulator.stats()
    assert run("verify")[0] == 1
    after = emulator.stats()
    assert (after["uploads"], after["files"]) == (stats["uploads"], stats["files"])


def test_manifest_jsonl_maps_path_and_sha256_to_file_id_with_deletions(
    synced: tuple[Path, Run], tmp_path: Path
) -> None:
    """One JSON line per upload: folder, path, sha256 -> file_id, purpose, times, delete reason."""
    config, run = synced
    write_chat_file(tmp_path / "ft" / "a.jsonl", salt="second version")
    assert run("sync", "--no-progress")[0] == 0  # on_change "replace" deletes the old version
    code, output = run("manifest")
    assert code == 0
    rows = [json.loads(line) for line in output.splitlines()]
    assert [tuple(row) for row in rows] == [MANIFEST_FIELDS] * 3
    by_path: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    first, second = by_path["a.jsonl"]
    assert (first["deleted_at"] is not None, first["delete_reason"]) == (True, "superseded")
    assert (second["deleted_at"], second["delete_reason"]) == (None, None)
    assert second["file_id"] == store_file_id(config, "a.jsonl")
    assert {row["purpose"] for row in rows} == {"fine-tune"}
    # The folder's key in the store: this node's name and the folder's path.
    assert {row["folder"] for row in rows} == set(folder_specs(load_config(config)))
    assert {row["folder"].endswith(f":{tmp_path / 'ft'}") for row in rows} == {True}
    assert len(second["sha256"]) == 64 and first["sha256"] != second["sha256"]


def test_manifest_csv_has_a_header_and_the_same_rows(synced: tuple[Path, Run]) -> None:
    """CSV carries the same columns and rows as JSONL, empty cells for missing times."""
    _config, run = synced
    code, output = run("manifest", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(output)))
    code, jsonl = run("manifest", "--format", "jsonl")
    expected = [json.loads(line) for line in jsonl.splitlines()]
    assert [row["file_id"] for row in rows] == [row["file_id"] for row in expected]
    assert [row["deleted_at"] for row in rows] == ["", ""]
    assert list(rows[0]) == list(MANIFEST_FIELDS)


def test_manifest_rows_stream_from_the_store_in_batches(synced: tuple[Path, Run]) -> None:
    """iter_remote_files yields every row in upload order whatever the batch size."""
    config, _run = synced
    with open_store(load_config(config).state.database_url) as store, store.session() as s:
        batched = [r.file_id for r in repo.iter_remote_files(s, batch_rows=1)]
        listed = [r.file_id for r in repo.remote_files(s, include_deleted=True)]
    assert batched == listed
    assert len(batched) == 2
