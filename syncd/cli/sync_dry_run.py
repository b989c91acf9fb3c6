"""``syncd sync --dry-run``: scan and validate every folder, then say what a sync would upload.

Nothing is sent and no API key is needed: the API is not contacted at all. Nothing is written
to the state database either: the real pipeline judges the files against a throw-away copy of
the store (:mod:`syncd.store.scratch`), so the verdicts are the ones a sync would record, and
where there is no database yet none is created. Piped, one line per file.
"""

from __future__ import annotations

import sys

import click

from syncd.cli.context import EXIT_FAILURE, EXIT_OK, fail
from syncd.cli.output import record
from syncd.config import Config
from syncd.domain import LocalState
from syncd.errors import LocalFileError, StoreError
from syncd.folder_specs import adopt_legacy_keys, folder_specs
from syncd.pipeline import Pipeline
from syncd.store import folder_rows
from syncd.store.scratch import scratch_copy

__all__ = ["dry_run_sync"]

_SHOWN = (LocalState.PENDING, LocalState.FAILED, LocalState.QUARANTINED)


def dry_run_sync(config: Config) -> None:
    """List, per file, ``would upload`` or ``quarantined`` (with the reason); exit 1 when a
    folder cannot be read, as ``sync`` would."""
    specs = folder_specs(config)
    errors: dict[str, str] = {}
    try:
        with scratch_copy(config.state.database_url) as scratch:
            store = scratch.store
            adopt_legacy_keys(store, specs)
            pipeline = Pipeline(
                store, timestamp_granularity_ns=config.watch.timestamp_granularity_ns
            )
            for spec in specs.values():
                try:
                    pipeline.scan(spec)
                except LocalFileError as exc:
                    errors[spec.name] = str(exc)
            with store.connection() as c:
                rows = [
                    (spec.name, row)
                    for key, spec in specs.items()
                    for row in folder_rows.list_local(c, folder=key, states=_SHOWN)
                ]
    except StoreError as exc:
        fail(str(exc))
    upload = [(name, row) for name, row in rows if row.state is not LocalState.QUARANTINED]
    for name, row in rows:
        what = "quarantined" if row.state is LocalState.QUARANTINED else "would upload"
        click.echo(record(what, name, row.rel_path, row.size, row.last_error))
    size = sum(row.size for _, row in upload)
    click.echo(
        f"dry run: {len(upload)} file(s) ({size} bytes) would be uploaded, "
        f"{len(rows) - len(upload)} quarantined; nothing was sent and the state database "
        "was not changed",
        err=True,
    )
    if not scratch.source_exists:
        click.echo(
            f"dry run: no state database yet at {scratch.source}: every file was judged as new "
            "(none was created)",
            err=True,
        )
    for name, error in errors.items():
        click.echo(f"error: {name}: {error}", err=True)
    sys.exit(EXIT_FAILURE if errors else EXIT_OK)
