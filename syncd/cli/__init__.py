"""The ``syncd`` command line: the only place that prints or chooses an exit code.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import click

from syncd import __version__
from syncd.cli import (
    config_cmd,
    emulator,
    files,
    manifest_cmd,
    migrate_cmd,
    retention_cmd,
    run_cmd,
    status_cmd,
    sync_cmd,
    verify_cmd,
)

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncd")
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="SYNCD_CONFIG",
    default="/etc/syncd/config.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="TOML configuration file (also SYNCD_CONFIG).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str) -> None:
    """Keep folders of training data in step with the Mistral AI Files API."""
    ctx.obj = config_path


cli.add_command(run_cmd.run)
cli.add_command(sync_cmd.sync)
cli.add_command(status_cmd.status)
cli.add_command(files.files)
cli.add_command(migrate_cmd.migrate)
cli.add_command(emulator.emulator)
cli.add_command(config_cmd.check_config)
cli.add_command(retention_cmd.cleanup)
cli.add_command(verify_cmd.verify_command)
cli.add_command(manifest_cmd.manifest)


def main() -> None:
    cli()
