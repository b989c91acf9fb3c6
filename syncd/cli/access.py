"""Opening the state store read-only and reaching the remote, for cleanup, verify and manifest.

Every failure here ends the command with ``error: ...`` on stderr and the matching exit code
(78 for configuration problems, 1 otherwise); commands never see a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from syncd.cli.context import EXIT_CONFIG, fail
from syncd.config import Config
from syncd.connection import Connection, connect
from syncd.emulator import DataDirBusyError
from syncd.errors import ApiError, ConfigError, StoreError
from syncd.logs import configure_logging
from syncd.store import Store, open_store

__all__ = ["CLIENT_RETRIES", "connected_or_exit", "log_to_stderr", "open_store_read_only_or_exit"]

#: Interactive commands retry 429/5xx/transport failures in-call (the daemon schedules its own).
CLIENT_RETRIES = 4


def log_to_stderr(config: Config) -> None:
    """Warnings and errors on stderr only, so stdout carries nothing but the command's output."""
    configure_logging(config.log.format, "warning")


def open_store_read_only_or_exit(config: Config) -> Store:
    """The state store without migrating it: a reading command must not change the file."""
    try:
        return open_store(config.state.database_url, migrate=False)
    except StoreError as exc:
        fail(str(exc))


@contextmanager
def connected_or_exit(config: Config, *, share_running: bool = False) -> Iterator[Connection]:
    """The configured remote (starting the embedded emulator when the config says so).

    ``share_running``: a reading command beside a running syncd talks to that syncd's
    embedded emulator; otherwise (or when it publishes no address) it is refused in one line.
    """
    try:
        with connect(
            config, os.environ, max_retries=CLIENT_RETRIES, share_running=share_running
        ) as connection:
            yield connection
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except DataDirBusyError:
        if share_running:
            fail(
                f"the embedded emulator's data in {config.state.embedded_data_dir} is held by "
                "a running syncd that publishes no address (an older version?); stop it or "
                "restart it with this version"
            )
        fail(
            f"the embedded emulator's data in {config.state.embedded_data_dir} is in use by "
            "a running syncd; stop it first (a dry run or `syncd verify` works beside it)"
        )
    except ApiError as exc:
        fail(str(exc))
