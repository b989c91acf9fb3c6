"""``syncd sync --dry-run``: scan and validate every folder, then say what a sync would upload.

Nothing is sent and no API key is needed: the API is not contacted at all. The scan records
what it found in the state store, as any scan does (hashes and verdicts: local bookkeeping),
so the next real ``sync`` does not read the files again. Piped, one line per file.
"""

from __future__ import annotations

import sys

import click

from syncd.cli.context import EXIT_FAILURE, EXIT_OK, fail, open_store_or_exit
from syncd.cli.output import record
from syncd.config import Config
from syncd.domain import LocalState
from syncd.errors import LocalFileError, StoreError
from syncd.folder_specs import adopt_legacy_keys, folder_specs
from syncd.pipeline import Pipeline
from syncd.store import repo

__all__ = ["dry_run_sync"]

_SHOWN = (LocalState.PENDING, LocalState.FAILED, LocalState.QUARANTINED)


def dry_run_sync(config: Config) -> None:
    """List, per file, ``would upload`` or ``quarantined`` (with the reason); exit 1 when a
    folder cannot be read, as ``sync`` would."""
    store = open_store_or_exit(config)
    specs = folder_specs(config)
    errors: dict[str, str] = {}
    try:
        adopt_legacy_keys(store, specs)
        pipeline = Pipeline(store, timestamp_granularity_ns=config.watch.timestamp_granularity_ns)
        for spec in specs.values():
            try:
                pipeline.scan(spec)
            except LocalFileError as exc:
                errors[spec.name] = str(exc)
        with store.session() as s:
            rows = [
                (spec.name, row)
                for key, spec in specs.items()
                for row in repo.list_local(s, folder=key, states=_SHOWN)
            ]
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    upload = [(name, row) for name, row in rows if row.state is not LocalState.QUARANTINED]
    for name, row in rows:
        what = "quarantined" if row.state is LocalState.QUARANTINED else "would upload"
        click.echo(record(what, name, row.rel_path, row.size, row.last_error))
    size = sum(row.size for _, row in upload)
    click.echo(
        f"dry run: {len(upload)} file(s) ({size} bytes) would be uploaded, "
        f"{len(rows) - len(upload)} quarantined; nothing was sent",
        err=True,
    )
    for name, error in errors.items():
        click.echo(f"error: {name}: {error}", err=True)
    sys.exit(EXIT_FAILURE if errors else EXIT_OK)
