"""Output for scripts and people: one record per line in a pipe, exit statuses for cron, a
summary of what this pass did, suggestions for typos, `-c` anywhere, `sync --dry-run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from syncd.cli import cli
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config

Run = Callable[..., Result]
LONG_NAME = "sample-chat-with-a-name-long-enough-to-wrap-in-an-eighty-column-table.jsonl"


@pytest.fixture
def run_cli(api_key: str) -> Run:
    def run(config: Path, *args: str) -> Result:
        return CliRunner().invoke(cli, ["-c", str(config), *args], env={"MISTRAL_API_KEY": api_key})

    return run


@pytest.fixture
def synced(tmp_path: Path, emulator: EmulatorServer, run_cli: Run) -> Path:
    """A folder with one good file (long name) and one bad one, synced once; its config."""
    folder = tmp_path / "ft"
    write_chat_file(folder / LONG_NAME)
    (folder / "bad.jsonl").write_text("not json\n", encoding="utf-8")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    first = run_cli(config, "sync", "--no-progress")
    assert first.exit_code == 3, first.output
    return config


def test_status_in_a_pipe_prints_one_tab_separated_line_per_file(
    synced: Path, run_cli: Run
) -> None:
    """No box, no wrapping: grep finds the long name, and its line holds state and file id."""
    result = run_cli(synced, "status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    by_path = {line.split("\t")[1]: line.split("\t") for line in lines}
    folder, _, state, file_id, reason = by_path[LONG_NAME]
    assert (folder, state, reason) == ("ft", "uploaded", "-")
    assert file_id != "-"
    assert by_path["bad.jsonl"][2] == "quarantined"
    assert "─" not in result.stdout and "│" not in result.stdout
    table = run_cli(synced, "status", "--table")
    assert "│" in table.stdout


def test_status_problems_exits_1_when_a_file_needs_attention(
    synced: Path, run_cli: Run, tmp_path: Path
) -> None:
    """For cron: --problems exits 1 while a file is quarantined, 0 once it is fixed."""
    problems = run_cli(synced, "status", "--problems")
    assert problems.exit_code == 1
    assert [line.split("\t")[1] for line in problems.stdout.splitlines()] == ["bad.jsonl"]
    write_chat_file(tmp_path / "ft" / "bad.jsonl", salt="fixed")
    assert run_cli(synced, "sync", "--no-progress").exit_code == 0
    clean = run_cli(synced, "status", "--problems")
    assert clean.exit_code == 0, clean.output
    assert clean.stdout == ""


def test_sync_summary_reports_this_pass(synced: Path, run_cli: Run, tmp_path: Path) -> None:
    """The summary says what the pass did: a second pass with nothing new says so, and a new
    file shows as 1 uploaded, not as the folder's total."""
    again = run_cli(synced, "sync", "--no-progress")
    assert "ft: nothing to do (2 file(s) in all" in again.stderr
    write_chat_file(tmp_path / "ft" / "new.jsonl", salt="new")
    third = run_cli(synced, "sync", "--no-progress")
    assert "ft: 1 uploaded (3 file(s) in all" in third.stderr


def test_verify_and_nodes_in_a_pipe_print_records(synced: Path, run_cli: Run) -> None:
    """verify: one line per finding, the verdict on stderr unwrapped; nodes: one per node."""
    verified = run_cli(synced, "verify")
    assert verified.exit_code == 1  # the quarantined file is not uploaded: a finding
    (finding,) = verified.stdout.splitlines()
    assert finding.split("\t")[1:3] == ["ft", "bad.jsonl"]
    (verdict,) = verified.stderr.splitlines()
    assert verdict.startswith("1 mismatch(es): ")
    nodes = run_cli(synced, "nodes")
    assert nodes.exit_code == 0, nodes.output
    (node,) = nodes.stdout.splitlines()
    assert len(node.split("\t")) == 8


def test_a_mistyped_command_suggests_the_right_one() -> None:
    result = CliRunner().invoke(cli, ["stauts"])
    assert result.exit_code == 2
    assert "No such command 'stauts'. Did you mean 'status'?" in result.stderr


def test_config_option_after_the_command(synced: Path, api_key: str) -> None:
    """`syncd status -c FILE` is `syncd -c FILE status` (the real entry point)."""
    env = {**os.environ, "MISTRAL_API_KEY": api_key}
    env.pop("SYNCD_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "status", "--json", "-c", str(synced)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["files"]) == 2


def test_sync_dry_run_sends_nothing_and_needs_no_key(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """--dry-run lists what would go up and what is quarantined; the API sees no request."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    (folder / "bad.jsonl").write_text("not json\n", encoding="utf-8")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    result = CliRunner().invoke(
        cli, ["-c", str(config), "sync", "--dry-run"], env={"MISTRAL_API_KEY": ""}
    )
    assert result.exit_code == 0, result.output
    records = sorted(line.split("\t")[:3] for line in result.stdout.splitlines())
    assert records == [["quarantined", "ft", "bad.jsonl"], ["would upload", "ft", "a.jsonl"]]
    assert "nothing was sent" in result.stderr
    assert emulator.stats()["uploads"] == 0
