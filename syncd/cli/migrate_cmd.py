"""``syncd migrate``: bring the state database's schema to this syncd's version.

``syncd run`` migrates at start anyway; this command lets a deployment do it as its own step
(and shows the revisions), e.g. before starting a new version of the service.
"""

from __future__ import annotations

import click

from syncd.cli.context import fail, load_config_or_exit
from syncd.errors import StoreError
from syncd.store import migrate as migrations

__all__ = ["migrate"]


@click.command("migrate")
@click.option(
    "--url",
    "database_url",
    metavar="URL",
    help="Migrate this database (SQLAlchemy URL) instead of the configured one.",
)
@click.pass_context
def migrate(ctx: click.Context, database_url: str | None) -> None:
    """Apply the state database migrations and print the revision before and after.

    Exit status: 0 when the schema is current, 78 for a bad configuration, 1 when the
    database cannot be migrated.
    """
    if database_url is None:
        database_url = load_config_or_exit(ctx, log=False).state.database_url
    try:
        result = migrations.upgrade(database_url)
    except StoreError as exc:
        fail(str(exc))
    if result.changed:
        before = result.before or "(empty)"
        click.echo(f"migrated {result.database}: {before} -> {result.after}")
    else:
        click.echo(f"{result.database} is up to date (revision {result.after})")
