"""What every command that reads the configuration does first, and the exit codes it uses."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from syncd.config import Config, load_config
from syncd.errors import ConfigError, StoreError
from syncd.store import Store, open_store

__all__ = [
    "EXIT_BUSY",
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "fail",
    "load_config_or_exit",
    "open_store_or_exit",
]

EXIT_OK = 0
EXIT_FAILURE = 1
#: EX_CONFIG from sysexits.h: systemd's RestartPreventExitStatus=78 stops restart loops on it.
EXIT_CONFIG = 78
#: EX_TEMPFAIL from sysexits.h: another syncd holds the store as this node (try again later).
EXIT_BUSY = 75


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_config_or_exit(ctx: click.Context, *, log: bool = True) -> Config:
    """Load the root group's config; a bad one exits 78 with the message."""
    path = ctx.find_root().obj
    try:
        config = load_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    if log:
        from syncd.logs import configure_logging  # structlog's console stack: not for `status`

        configure_logging(config.log.format, config.log.level)
    return config


def open_store_or_exit(config: Config) -> Store:
    try:
        return open_store(config.state.database_url, threads=config.store_threads)
    except StoreError as exc:
        fail(str(exc))
