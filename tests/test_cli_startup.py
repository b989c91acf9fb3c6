"""What the quick commands load: `--help` imports no command, `status` in a pipe no ORM, no
PostgreSQL dialect, no cron parser and no API client (their speed is the benchmark's business:
benchmarks/bench_cli_startup.py; here only what is imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from syncd.cli import _COMMANDS, SHORT_HELP, cli
from tests.configs import FolderSetup, write_chat_file, write_config

# ``cli``, not ``main``: main ends the process at once (syncd.cli._exit_now), before the print.
_PROBE = """
import json, sys
from syncd.cli import cli
sys.argv = ["syncd", *json.loads(sys.argv[1])]
try:
    cli()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_loaded_by(*args: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SYNCD_CONFIG", "MISTRAL_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_the_command_list_is_each_commands_own_help() -> None:
    """`syncd --help` lists SHORT_HELP without importing commands: each entry is the first
    sentence of the command's own help, so the two cannot drift apart."""
    ctx = click.Context(cli)
    assert list(SHORT_HELP) == list(_COMMANDS)
    for name in _COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=1000) == SHORT_HELP[name], name


def test_help_imports_no_command() -> None:
    loaded = _modules_loaded_by("--help")
    assert "syncd.cli.run_cmd" not in loaded
    assert not {"syncd.daemon", "sqlalchemy", "jinja2", "uvicorn", "pydantic"} & loaded


def test_status_in_a_pipe_loads_no_orm_logging_table_postgresql_or_api(tmp_path: Path) -> None:
    write_chat_file(tmp_path / "ft" / "a.jsonl")
    config = write_config(tmp_path, server_url="embedded", folders=[FolderSetup(tmp_path / "ft")])
    subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "sync", "--no-progress"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    loaded = _modules_loaded_by("-c", str(config), "status")
    assert "syncd.cli.status_cmd" in loaded
    unwanted = {
        # SQLAlchemy Core only: the ORM costs half of SQLAlchemy's own import again.
        "sqlalchemy.orm",
        "syncd.pipeline",
        "syncd.store.repo",
        "sqlalchemy.dialects.postgresql",
        "syncd.api",
        "httpx",
        "apscheduler.triggers.cron",
        "structlog",
        "rich",
        "syncd.engine",
        "syncd.retention_job",
    }
    assert not unwanted & loaded, unwanted & loaded


def test_status_with_a_results_folder_reads_its_jobs_without_the_orm(tmp_path: Path) -> None:
    """A results folder adds the jobs to ``status``, read in Core as the rest of it."""
    config = write_config(
        tmp_path,
        server_url="embedded",
        folders=[
            FolderSetup(tmp_path / "ocr", "ocr", {"results": f'"{tmp_path / "text"}"'}),
        ],
    )
    subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "migrate"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    loaded = _modules_loaded_by("-c", str(config), "status", "--json")
    assert "syncd.cli.status_jobs" in loaded
    assert not {"sqlalchemy.orm", "syncd.store.jobs", "syncd.store.schema"} & loaded


def test_the_daemon_loads_the_status_pages_stack_only_for_a_listener() -> None:
    """`syncd run` without `[metrics] listen` serves no page: Starlette, uvicorn and Jinja2
    (several MB of a daemon's idle RSS) are not imported with the daemon, and come on first
    use of what needs them."""
    page_stack = ("starlette", "uvicorn", "jinja2", "syncd.web.app", "syncd.web.server")
    code = (
        "import json, sys\n"
        "import syncd.cli.run_cmd, syncd.daemon\n"
        f"stack = {page_stack!r}\n"
        "before = sorted(m for m in sys.modules if m.startswith(stack))\n"
        "from syncd.web import StatusServer, create_status_app\n"
        "after = sorted(m for m in sys.modules if m.startswith(stack))\n"
        "print(json.dumps([before, after]))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    before, after = json.loads(shown)
    assert before == []
    assert {"starlette", "uvicorn", "jinja2", "syncd.web.app", "syncd.web.server"} <= set(after)


def _exit_probe(body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` (which ends in ``_exit_now``) in a fresh interpreter."""
    probe = "import sys, threading, time\nfrom syncd.cli import _exit_now\n" + body
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_quick_exit_flushes_output_and_keeps_sys_exit_semantics(tmp_path: Path) -> None:
    """syncd leaves without the interpreter's teardown once a command is done: what it wrote
    still arrives (even without a newline, into a pipe), a status is the exit code, a message
    goes to stderr with status 1, and a thread that is not a daemon is still waited for."""
    written = _exit_probe("sys.stdout.write('report, no newline'); _exit_now(3)")
    message = _exit_probe("_exit_now('error: it went wrong')")
    marker = tmp_path / "thread-finished"
    waited = _exit_probe(
        "def late():\n"
        "    time.sleep(0.3)\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "threading.Thread(target=late).start()\n"
        "_exit_now(0)"
    )
    assert (written.returncode, written.stdout) == (3, "report, no newline")
    assert (message.returncode, message.stderr.strip()) == (1, "error: it went wrong")
    assert waited.returncode == 0
    assert marker.exists()
