"""The ``syncd`` command line: the only place that prints or chooses an exit code.

Each command lives in its own module, named here and imported only when it runs: ``syncd sync``
never loads the daemon's watcher, scheduler and metrics server, nor the emulator's web stack,
which keeps a run that has little to do short.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
import os
import sys
import threading
from typing import NoReturn

import click

__all__ = ["SHORT_HELP", "cli", "main"]

#: Command name -> ``module:attribute`` of its click command, in the order ``--help`` lists them.
_COMMANDS = {
    "run": "syncd.cli.run_cmd:run",
    "sync": "syncd.cli.sync_cmd:sync",
    "status": "syncd.cli.status_cmd:status",
    "nodes": "syncd.cli.nodes_cmd:nodes",
    "retry": "syncd.cli.retry_cmd:retry",
    "files": "syncd.cli.files:files",
    "migrate": "syncd.cli.migrate_cmd:migrate",
    "emulator": "syncd.cli.emulator:emulator",
    "check-config": "syncd.cli.config_cmd:check_config",
    "cleanup": "syncd.cli.retention_cmd:cleanup",
    "verify": "syncd.cli.verify_cmd:verify_command",
    "manifest": "syncd.cli.manifest_cmd:manifest",
}


_CONFIG_OPTIONS = ("-c", "--config")


def _hoist_config(args: list[str]) -> list[str]:
    """``syncd status -c FILE`` means ``syncd -c FILE status``: a ``-c``/``--config`` after the
    command (and before any ``--``) is moved in front of it. No command has a ``-c`` of its own.
    """
    command_at = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _CONFIG_OPTIONS:
            i += 2
            continue
        if not arg.startswith("-"):
            command_at = i
            break
        i += 1
    if command_at is None:
        return args
    moved: list[str] = []
    rest: list[str] = []
    tail = args[command_at:]
    j = 0
    while j < len(tail):
        arg = tail[j]
        if arg == "--":
            rest.extend(tail[j:])
            break
        if arg in _CONFIG_OPTIONS and j + 1 < len(tail):
            moved += [arg, tail[j + 1]]
            j += 2
            continue
        if arg.startswith("--config=") or (arg.startswith("-c") and len(arg) > 2):
            moved.append(arg)
        else:
            rest.append(arg)
        j += 1
    return [*args[:command_at], *moved, *rest]


#: Command name -> its one-line help for ``syncd --help``, kept here so listing the commands
#: imports none of them (tests/test_cli_startup.py checks each against its command's own).
SHORT_HELP = {
    "run": "Watch the configured folders and upload new or changed files until stopped.",
    "sync": "Scan every folder, upload everything new or changed, wait for it, then exit.",
    "status": "Counts per folder and state, and per file its state, remote file id and any reason.",
    "nodes": "Every node in the state store: alive or stale, version, last heartbeat, folders, "
    "queue depth, oldest file not synced yet, and what it reports as wrong.",
    "retry": "Requeue failed files and have quarantined files judged again.",
    "files": "Work with files on the Files API the config talks to.",
    "migrate": "Apply the state database migrations and print the revision before and after.",
    "emulator": "Serve a local emulator of the Mistral Files API until SIGINT or SIGTERM.",
    "check-config": "Validate the config file and print a summary (folders, state, server, API "
    "key).",
    "cleanup": "Delete remote files past their folder's retention age, now.",
    "verify": "Check store, disk and remote against each other; change nothing.",
    "manifest": "Print which bytes (folder, path, sha256) became which remote file, and when.",
}


def _shortened(text: str, limit: int) -> str:
    """``text`` cut at a word to fit ``limit`` characters, with "..." (as click does)."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 1)].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "..."


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's documented lazy pattern)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _hoist_config(args))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in _COMMANDS:
            close = difflib.get_close_matches(name, list(_COMMANDS), n=1)
            if close:
                ctx.fail(f"No such command {name!r}. Did you mean {close[0]!r}?")
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from ``SHORT_HELP``: printing help imports no command."""
        width = formatter.width or 80
        limit = width - 6 - max(len(name) for name in _COMMANDS)
        rows = [(name, _shortened(SHORT_HELP[name], limit)) for name in _COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command), target
        return command


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from syncd.version import version_text

    click.echo(version_text())
    ctx.exit()


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version (and the git commit of a checkout) and exit.",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="SYNCD_CONFIG",
    default="/etc/syncd/config.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="TOML configuration file (also SYNCD_CONFIG); may also follow the command.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str) -> None:
    """Keep folders of training data in step with the Mistral AI Files API."""
    ctx.obj = config_path


def main() -> None:
    """The ``syncd`` program: run the command, then exit without tearing the interpreter down.

    When a command returns its work is done: state committed, output printed, its threads
    stopped. Python's own exit would then free every object of ~600 imported modules, about
    0.2 s of CPU (a fifth of an empty ``syncd sync``) that nobody waits for on purpose. So once
    the streams are flushed the process ends at once (``os._exit``), unless a thread that is
    not a daemon is still running: then Python's exit waits for it as usual. Tests run ``cli``
    in their own process and keep the ordinary exit.
    """
    try:
        cli()
        status: str | int | None = 0
    except SystemExit as exc:
        status = exc.code
    _exit_now(status)


def _exit_now(status: str | int | None) -> NoReturn:
    """End the process with ``status`` as ``sys.exit`` would; see :func:`main`."""
    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.exit(status)
    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status
    else:
        print(status, file=sys.stderr)  # sys.exit("message") prints it and fails
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
