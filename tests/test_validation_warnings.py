"""Warnings end to end: a file Mistral accepts but its docs would write differently is uploaded,
and the warning reaches the log, the state store and ``syncd status``; a quarantined file keeps
its reason when it is looked at again with the same bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_config
from tests.test_sync import Sync, files_by_path, remote_files, run_cli, status_json

__all__ = ["run_cli"]  # the fixture, imported for pytest to find

CALL = {"id": "D681PevKs", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
UNDEFINED_TOOL = {
    "messages": [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "content": "found", "tool_call_id": "D681PevKs"},
        {"role": "assistant", "content": "Found it."},
    ]
}


def _write(path: Path, *records: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_warned_file_is_uploaded_and_status_shows_the_warning(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, run_cli: Sync
) -> None:
    _write(tmp_path / "ft" / "calls.jsonl", UNDEFINED_TOOL)
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])

    result = run_cli(config, "sync")

    assert result.exit_code == 0, result.output
    assert [f["filename"] for f in remote_files(emulator, api_key)] == ["calls.jsonl"]
    warning_lines = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if '"file_validation_warnings"' in line
    ]
    assert len(warning_lines) == 1
    assert warning_lines[0]["path"] == "calls.jsonl"
    assert "line 1: tool calls ('lookup') but no tools list" in warning_lines[0]["warnings"][0]

    entry = files_by_path(status_json(run_cli, config))["calls.jsonl"]
    assert entry["state"] == "uploaded"
    assert entry["reason"] is None
    assert entry["warnings"] == [warning_lines[0]["warnings"][0]]

    problems = run_cli(config, "status", "--problems", "--table")
    assert problems.exit_code == 0
    assert "calls.jsonl" in problems.stdout
    assert "warning: line 1:" in problems.stdout  # the rest is folded to the table's width
    assert "1 with warnings" in problems.stdout


def test_new_content_without_the_problem_clears_the_warning(
    tmp_path: Path, emulator: EmulatorServer, run_cli: Sync
) -> None:
    path = _write(tmp_path / "ft" / "calls.jsonl", UNDEFINED_TOOL)
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])
    assert run_cli(config, "sync").exit_code == 0
    tool = {"type": "function", "function": {"name": "lookup", "description": "", "parameters": {}}}
    _write(path, {**UNDEFINED_TOOL, "tools": [tool]})

    assert run_cli(config, "sync").exit_code == 0

    assert files_by_path(status_json(run_cli, config))["calls.jsonl"]["warnings"] == []


def test_a_quarantined_file_keeps_its_reason_when_touched(
    tmp_path: Path, emulator: EmulatorServer, run_cli: Sync
) -> None:
    path = _write(
        tmp_path / "ft" / "bad.jsonl", {"messages": [{"role": "assistant", "content": "x"}]}
    )
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(tmp_path / "ft")])
    assert run_cli(config, "sync").exit_code == 3
    reason = "line 1: message 1: a conversation must start with a user message"
    assert files_by_path(status_json(run_cli, config))["bad.jsonl"]["reason"] == reason
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # same bytes

    run_cli(config, "sync")

    entry = files_by_path(status_json(run_cli, config))["bad.jsonl"]
    assert (entry["state"], entry["reason"]) == ("quarantined", reason)
