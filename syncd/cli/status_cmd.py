"""``syncd status``: what the state store says, per folder and per file. Reads only the store."""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.text import Text

from syncd.cli.context import load_config_or_exit, open_store_or_exit
from syncd.cli.output import porcelain_option, wants_porcelain
from syncd.cli.output import record as record_line
from syncd.config import describe_server
from syncd.documents import file_json
from syncd.domain import LocalState
from syncd.errors import StoreError
from syncd.folder_specs import adopt_legacy_keys, folder_specs
from syncd.paths import printable_key
from syncd.store import folder_rows
from syncd.store.records import LocalFileRecord

__all__ = ["status"]

#: States worth a line each even when a terminal listing is cut short.
_NEEDS_ATTENTION = (
    LocalState.QUARANTINED,
    LocalState.FAILED,
    LocalState.UNSTABLE,
    LocalState.PENDING,
    LocalState.UPLOADING,
)


def _reason(record: LocalFileRecord) -> Text:
    """Why the file is in its state, then its validation warnings (accepted, worth a look)."""
    from rich.text import Text

    lines = [printable_key(record.last_error)] if record.last_error else []
    if record.warnings:
        lines += [f"warning: {printable_key(w)}" for w in record.warnings.splitlines()]
    return Text("\n".join(lines))


#: With --problems, these make the exit status 1 (for cron): files syncd cannot get up alone.
_PROBLEMS = (LocalState.QUARANTINED, LocalState.FAILED, LocalState.UNSTABLE)
EXIT_PROBLEMS = 1


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option(
    "--all/--problems",
    "show_all",
    default=True,
    help="List every file (default) or only those that need attention or have warnings; "
    "--problems exits 1 when a file is quarantined, failed or unstable.",
)
@porcelain_option("folder, path, state, file id, reason")
@click.pass_context
def status(ctx: click.Context, as_json: bool, show_all: bool, porcelain: bool | None) -> None:
    """Counts per folder and state, and per file its state, remote file id and any reason.

    On a terminal: tables. Piped (or --porcelain): one line per file, tab-separated: folder,
    path, state, file id, reason. Exit status 0; with --problems, 1 when some file is
    quarantined, failed or unstable.
    """
    config = load_config_or_exit(ctx, log=False)
    store = open_store_or_exit(config)
    specs = folder_specs(config)
    with contextlib.suppress(StoreError):  # a read-only store keeps older keys until a sync
        adopt_legacy_keys(store, specs)
    names = {key: spec.name for key, spec in specs.items()}
    states = None if show_all else _NEEDS_ATTENTION
    jobs: dict[str, object] | None = None
    try:
        # SQLAlchemy Core, never the ORM: importing sqlalchemy.orm would double the start-up.
        with store.connection() as c:
            counts = folder_rows.state_counts(c)
            files = [
                (names[key], record)
                for key in specs
                for record in folder_rows.list_local(c, folder=key, states=states, or_warned=True)
            ]
        if any(folder.results is not None for folder in config.folders):
            from syncd.cli.status_jobs import jobs_document

            jobs = jobs_document(store, config, names)
    finally:
        store.dispose()
    folder_counts = {names[k]: counts.get(k, {}) for k in specs}
    code = 0
    if not show_all and any(record.state in _PROBLEMS for _, record in files):
        code = EXIT_PROBLEMS
    server = describe_server(config.api.server_url)
    if as_json:
        document = {
            "server": {"url": config.api.server_url, "described": server},
            "folders": [
                {
                    "name": names[k],
                    "path": k,
                    "purpose": specs[k].purpose,
                    "counts": folder_counts[names[k]],
                }
                for k in specs
            ],
            "files": [file_json(record, folder) for folder, record in files],
        }
        if jobs is not None:
            document["jobs"] = jobs
        click.echo(json.dumps(document, indent=2))
        ctx.exit(code)
    if wants_porcelain(porcelain):
        for folder, record in files:
            reason = "; ".join(
                [
                    *([record.last_error] if record.last_error else []),
                    *(f"warning: {w}" for w in (record.warnings or "").splitlines()),
                ]
            )
            click.echo(
                record_line(
                    folder, record.rel_path, record.state.value, record.remote_file_id, reason
                )
            )
        ctx.exit(code)
    # rich only for the tables: a pipe (and cron) never pays for importing it.
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    console.print(Text(f"Files API: {server}"))
    summary = Table(title="Folders")
    for column in ("folder", "purpose", "files", "by state"):
        summary.add_column(column, justify="right" if column == "files" else "left")
    warned = Counter(folder for folder, record in files if record.warnings)
    for spec in specs.values():
        by_state = folder_counts[spec.name]
        # Only the states that occur: ten mostly-zero columns do not fit a terminal.
        occurring = ", ".join(
            f"{by_state[st.value]} {st.value}" for st in LocalState if by_state.get(st.value)
        )
        if warned[spec.name]:
            occurring += f" ({warned[spec.name]} with warnings)"
        summary.add_row(
            Text(spec.name),
            Text(spec.purpose),
            str(sum(by_state.values())),
            occurring or "no files yet",
        )
    console.print(summary)
    if jobs is not None:
        from syncd.cli.status_jobs import print_jobs

        print_jobs(console, jobs)
    if not files:
        ctx.exit(code)
    table = Table(title="Files")
    for column in ("folder", "path", "state", "file id", "reason"):
        table.add_column(column, overflow="fold")
    for folder, record in files:
        # Text, not markup: a file named "[/x].jsonl" must show as it is, not crash rich's
        # markup parser; and a newline in a name must not split the row.
        table.add_row(
            Text(folder),
            Text(printable_key(record.rel_path)),
            record.state.value,
            record.remote_file_id or "",
            _reason(record),
        )
    console.print(table)
    sys.stdout.flush()
    ctx.exit(code)
