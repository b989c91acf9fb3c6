"""``syncd run``: the daemon (what systemd starts)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import structlog

from syncd.cli.context import EXIT_BUSY, EXIT_CONFIG, EXIT_FAILURE, fail, load_config_or_exit
from syncd.daemon import DEFAULT_GRACE, Daemon
from syncd.errors import ConfigError, StoreBusyError, StoreError

__all__ = ["run"]


@click.command("run")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE,
    show_default=True,
    help="Seconds in-flight uploads may take to finish after SIGTERM.",
)
@click.pass_context
def run(ctx: click.Context, grace: float) -> None:
    """Watch the configured folders and upload new or changed files until stopped.

    SIGTERM/SIGINT stop gracefully (a second one at once), SIGHUP reloads the config.
    Exit status: 0 clean stop, 78 configuration error, 75 another syncd holds the store as
    this node, 1 any other failure.
    """
    config = load_config_or_exit(ctx)
    daemon = Daemon(config, config_path=Path(ctx.find_root().obj), grace=grace)
    try:
        code = daemon.run()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except StoreBusyError as exc:
        structlog.get_logger(__name__).error("daemon_refused", error=str(exc))
        fail(str(exc), EXIT_BUSY)
    except StoreError as exc:
        structlog.get_logger(__name__).error("daemon_failed", error=str(exc))
        fail(str(exc), EXIT_FAILURE)
    sys.exit(code)
