"""``syncd verify``: a read-only three-way check of the state store, the disk and the remote.

Exit status: 0 when all three agree; 1 on any mismatch (or when the check could not run); 78 for
a bad config. Remote files syncd did not upload are listed as foreign and do not fail the check.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from syncd.cli.access import connected_or_exit, log_to_stderr, open_store_read_only_or_exit
from syncd.cli.context import EXIT_FAILURE, EXIT_OK, fail, load_config_or_exit
from syncd.cli.output import porcelain_option, record, wants_porcelain
from syncd.errors import StoreError
from syncd.folder_specs import folder_specs
from syncd.verify import VerifyReport, verify

__all__ = ["verify_command"]


@click.command("verify")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option(
    "--deep",
    is_flag=True,
    help="Hash every synced file again instead of trusting its (size, mtime, inode, ctime).",
)
@porcelain_option("kind, folder, path, file id, detail; the verdict on stderr")
@click.pass_context
def verify_command(ctx: click.Context, as_json: bool, deep: bool, porcelain: bool | None) -> None:
    """Check store, disk and remote against each other; change nothing.

    Reports remote files that are missing, local files not uploaded (or quarantined), local
    content changed since its upload (files whose stat moved are hashed again; with --deep,
    every synced file), and remote files syncd does not own (listed, never touched). Exit 1 on
    any mismatch.
    """
    config = load_config_or_exit(ctx, log=False)
    log_to_stderr(config)
    folders = folder_specs(config)
    store = open_store_read_only_or_exit(config)
    try:
        with connected_or_exit(config, share_running=True) as connection:
            report = verify(store, connection.client.files, folders, deep=deep)
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    if as_json:
        click.echo(json.dumps(_document(report), indent=2))
    elif wants_porcelain(porcelain):
        for f in report.findings:
            click.echo(record(f.kind.value, f.folder, f.path, f.file_id, f.detail))
        click.echo(_verdict(report), err=True)
    else:
        _print(Console(), report)
    sys.exit(EXIT_OK if report.is_clean else EXIT_FAILURE)


def _document(report: VerifyReport) -> dict[str, object]:
    return {
        "ok": report.is_clean,
        "mismatches": len(report.mismatches),
        "local_files": report.local_files,
        "rehashed": report.rehashed,
        "deep": report.deep,
        "remote_files": report.remote_files,
        "recorded_files": report.recorded_files,
        "findings": [
            {
                "kind": f.kind.value,
                "mismatch": f.is_mismatch,
                "folder": f.folder,
                "path": f.path,
                "file_id": f.file_id,
                "detail": f.detail,
            }
            for f in report.findings
        ],
    }


def _counts(report: VerifyReport) -> str:
    return (
        f"{report.local_files} local file(s) ({report.rehashed} hashed again), "
        f"{report.remote_files} remote file(s), {report.recorded_files} recorded upload(s)"
    )


def _verdict(report: VerifyReport) -> str:
    if report.is_clean:
        return f"store, disk and remote agree: {_counts(report)}"
    return f"{len(report.mismatches)} mismatch(es): {_counts(report)}"


def _print(console: Console, report: VerifyReport) -> None:
    if report.findings:
        table = Table(title="Verify")
        for column in ("kind", "folder", "path", "file id", "detail"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            kind = f.kind.value if f.is_mismatch else f"[dim]{f.kind.value}[/dim]"
            table.add_row(kind, f.folder or "", f.path or "", f.file_id or "", f.detail)
        console.print(table)
    counts = _counts(report)
    if report.is_clean:
        console.print(f"[green]store, disk and remote agree[/green]: {counts}", highlight=False)
    else:
        console.print(
            f"[red]{len(report.mismatches)} mismatch(es)[/red]: {counts}", highlight=False
        )
