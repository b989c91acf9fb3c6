"""``syncd cleanup``: run retention now and show the plan (``--dry-run``) or what was deleted.

Exit status: 0 when every due file was handled (or planned, in a dry run); 1 when the run was
halted by a guard (over ``max_deletes_per_run``, job lists unreadable), a folder was blocked (it
looks unmounted), or a delete failed; 78 for a bad config.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime, timedelta

import click
from rich.console import Console
from rich.table import Table

from syncd.cli.access import connected_or_exit, log_to_stderr, open_store_read_only_or_exit
from syncd.cli.context import (
    EXIT_FAILURE,
    EXIT_OK,
    fail,
    load_config_or_exit,
    open_store_or_exit,
)
from syncd.config.durations import format_duration
from syncd.documents import retention_document, retention_rows
from syncd.errors import StoreError
from syncd.retention_job import RetentionResult, RetentionSettings, run_retention
from syncd.retention_setup import retention_settings

__all__ = ["cleanup"]


@click.command("cleanup")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_context
def cleanup(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Delete remote files past their folder's retention age, now.

    Only files this syncd uploaded are ever deleted, never while a fine-tuning or batch job
    still reads them, never from a folder that looks unmounted, and nothing at all when more
    are due than [retention] max_deletes_per_run. [retention] dry_run = true also makes this a
    dry run.
    """
    config = load_config_or_exit(ctx, log=False)
    log_to_stderr(config)
    settings = retention_settings(config)
    if dry_run:
        settings = dataclasses.replace(settings, dry_run=True)
    # A dry run only reads: it works beside a running daemon, on its embedded emulator too.
    store = open_store_read_only_or_exit(config) if dry_run else open_store_or_exit(config)
    try:
        with connected_or_exit(config, share_running=dry_run) as connection:
            result = run_retention(store, connection.client, settings, now=datetime.now(UTC))
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    if as_json:
        click.echo(json.dumps(retention_document(result, settings), indent=2))
    else:
        _print(Console(), result, settings)
    sys.exit(EXIT_OK if result.is_clean else EXIT_FAILURE)


def _print(console: Console, result: RetentionResult, settings: RetentionSettings) -> None:
    rows = retention_rows(result, settings)
    if rows:
        table = Table(title="Retention dry run" if result.dry_run else "Retention")
        for column in ("folder", "path", "file id", "reason", "age", "outcome"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                row["folder"],
                row["path"],
                row["file_id"],
                row["reason"],
                format_duration(timedelta(seconds=row["age_seconds"])),
                row["outcome"],
            )
        console.print(table)
    for item in retention_document(result, settings)["blocked"]:
        console.print(f"[red]{item['folder']}: {item['reason']}[/red]", highlight=False)
    style = "green" if result.is_clean else "red"
    summary = result.plan.message
    if not result.dry_run and result.plan.halted is None and result.plan.deletions:
        summary = f"{len(result.deleted)} deleted, {len(result.failed)} failed"
    console.print(f"[{style}]{summary}[/{style}]", highlight=False)
