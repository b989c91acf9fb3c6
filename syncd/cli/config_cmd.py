"""``syncd check-config``: validate the config file and show what syncd would do with it.

Shows where the API key and the database password come from (and whether the key was found),
never the key or the password themselves.

The verdict is the one ``run`` and ``sync`` reach at start, with their exit status: 0 usable
(warnings included); 78 (EX_CONFIG) when they would refuse to start (a bad file, no API key
for a real server); 1 when ``sync`` would fail (a folder that does not exist).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from syncd import purposes
from syncd.config import (
    ApiKey,
    Config,
    FolderConfig,
    describe_server,
    find_api_key,
    format_duration,
    load_config,
    require_api_key,
)
from syncd.config.database_urls import is_sqlite
from syncd.config.loader import DEFAULT_CONFIG_PATH
from syncd.errors import ConfigError

__all__ = ["check_config"]

EXIT_CONFIG = os.EX_CONFIG  # 78: systemd's RestartPreventExitStatus= keeps a bad config down
EXIT_FAILURE = 1  # what `syncd sync` exits with when a folder fails


@click.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the config file and print a summary (folders, state, server, API key).

    Exit status: what `run` and `sync` would exit with at start: 0 usable, 78 a
    configuration error (no API key for a real server included), 1 a folder that does not
    exist (sync fails it).
    """
    path = _config_path(ctx.obj)
    try:
        config = load_config(path)
        api_key = find_api_key(config.api, os.environ)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        ctx.exit(EXIT_CONFIG)
    for line in _summary(path, config, api_key):
        click.echo(line)
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    code = 0
    for error in _folder_errors(config):
        click.echo(f"error: {error}", err=True)
        code = EXIT_FAILURE
    try:
        require_api_key(config.api, os.environ)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        code = EXIT_CONFIG
    ctx.exit(code)


def _config_path(obj: object) -> Path:
    """The ``-c`` path the root group stored in ``ctx.obj`` (a path, or an object holding one)."""
    if isinstance(obj, str | Path):
        return Path(obj)
    held = getattr(obj, "config_path", None)
    return Path(held) if isinstance(held, str | Path) else DEFAULT_CONFIG_PATH


def _summary(path: Path, config: Config, api_key: ApiKey | None) -> list[str]:
    api, watch, retention = config.api, config.watch, config.retention
    server = describe_server(api.server_url)
    if api.is_embedded:
        server += f", data in {config.state.embedded_data_dir}"
    lines = [
        f"config:    {path.absolute()} (ok)",
        f"server:    {server}",
        f"           timeout {format_duration(api.timeout)}, concurrency {api.concurrency}, "
        f"max attempts {api.max_attempts}",
        f"api key:   {_describe_key(config, api_key)}",
        f"state:     {config.state.display_url}",
        *_describe_db_password(config),
        f"watch:     settle {format_duration(watch.settle)} (at most "
        f"{format_duration(watch.settle_max)}), rescan every "
        f"{format_duration(watch.rescan_interval)}"
        f"{', polling' if watch.use_polling else ''}",
        f"retention: {_describe_schedule(config)}"
        f"{', dry run' if retention.dry_run else ''}, "
        f"at most {retention.max_deletes_per_run} deletes per run",
        f"log:       {config.log.format}, {config.log.level}",
        f"metrics:   {_describe_metrics(config)}",
        f"folders:   {len(config.folders)}",
    ]
    for folder in config.folders:
        lines.extend(_describe_folder(folder))
    return lines


def _describe_key(config: Config, api_key: ApiKey | None) -> str:
    if api_key is not None:
        return f"found in {api_key.source}"
    api = config.api
    places = f"environment variable {api.api_key_env}"
    if api.api_key_file is not None:
        places += f" or file {api.api_key_file}"
    needed = "; not needed by the embedded emulator" if api.is_embedded else ""
    return f"not found (looked in {places}){needed}"


def _describe_db_password(config: Config) -> list[str]:
    """Where a server database's password comes from (no line for SQLite); never the password."""
    state = config.state
    if is_sqlite(state.url):
        return []
    if state.password_file is not None:
        return [f"           password from file {state.password_file.path}"]
    if os.environ.get("PGPASSWORD"):
        return ["           password from environment variable PGPASSWORD (libpq)"]
    passfile = make_url(state.url).query.get("passfile") or os.environ.get("PGPASSFILE")
    shown = str(passfile) if passfile else "~/.pgpass"
    return [
        "           password: none in the config (no password_file); libpq's password file "
        f"{shown} applies if the server asks for one"
    ]


def _describe_schedule(config: Config) -> str:
    retention = config.retention
    if retention.schedule_interval is not None:
        return f"runs every {format_duration(retention.schedule_interval)}"
    return f'runs at cron "{retention.schedule_cron}" (UTC)'


def _describe_metrics(config: Config) -> str:
    address = config.metrics.address
    if address is None:
        return "off"
    host, port = address
    shown_host = f"[{host}]" if ":" in host else host
    access = (
        "open to this host"
        if config.metrics.token_file is None
        else f"bearer token from {config.metrics.token_file}"
    )
    return f"http://{shown_host}:{port}/ (status page; /api, /metrics, /healthz), {access}"


def _describe_folder(folder: FolderConfig) -> list[str]:
    retention = "keep forever"
    if folder.retention is not None:
        retention = f"delete after {format_duration(folder.retention)}"
        if folder.keep_current:
            retention += " unless still present locally"
    extra_excludes = [glob for glob in folder.exclude if glob not in purposes.DEFAULT_EXCLUDE]
    if folder.exclude_defaults:
        excludes = " + ".join(["built-in", *extra_excludes])
    else:
        excludes = ", ".join(folder.exclude) or "none"
    return [
        f"  - {folder.name}: {folder.path}",
        f"      purpose {folder.purpose}, include {', '.join(folder.include)}, exclude {excludes}",
        f"      validate {folder.validation}, on change {folder.on_change}, {retention}",
        *_describe_results(folder),
    ]


def _describe_results(folder: FolderConfig) -> list[str]:
    if folder.results is None:
        return []
    if folder.purpose == "ocr":
        how = f"OCR with {folder.ocr_model}"
    elif folder.batch_jobs == "submit":
        how = f"one batch job per file ({folder.batch_model}, {folder.batch_endpoint})"
    else:
        how = "outputs of batch jobs anyone creates on its uploads"
    return [
        f"      results -> {folder.results}: {how}, at most {folder.max_jobs_per_hour} new per hour"
    ]


def _folder_errors(config: Config) -> list[str]:
    """Folders that are not there: ``sync`` fails them (exit 1), ``run`` reports them degraded."""
    found: list[str] = []
    for index, folder in enumerate(config.folders):
        if not folder.path.exists():
            found.append(f"folders[{index}].path: {folder.path} does not exist")
        elif not folder.path.is_dir():
            found.append(f"folders[{index}].path: {folder.path} is not a directory")
    return found
