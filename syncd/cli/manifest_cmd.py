"""``syncd manifest``: the lineage of every upload, ``path@sha256 -> file_id``, as JSONL or CSV.

Reads only the state store. Rows stream from the database to stdout one at a time, so a store
with 100k uploads never sits in memory; each row is one remote file syncd uploaded (or adopted),
deleted ones included, oldest upload first.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from typing import TextIO

import click

from syncd.cli.access import log_to_stderr, open_store_read_only_or_exit
from syncd.cli.context import fail, load_config_or_exit
from syncd.documents import lineage_json
from syncd.errors import StoreError
from syncd.store import repo

__all__ = ["MANIFEST_FIELDS", "manifest"]

#: Column order of both formats.
MANIFEST_FIELDS = (
    "folder",
    "path",
    "sha256",
    "file_id",
    "purpose",
    "filename",
    "bytes",
    "created_at",
    "uploaded_at",
    "superseded_at",
    "deleted_at",
    "delete_reason",
)


@click.command("manifest")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="One JSON object per line, or CSV with a header row.",
)
@click.pass_context
def manifest(ctx: click.Context, output_format: str) -> None:
    """Print which bytes (folder, path, sha256) became which remote file, and when.

    For reproducing which data trained which job: file_id, purpose, remote filename, bytes,
    created_at (server), uploaded_at, superseded_at, deleted_at and delete_reason.
    """
    config = load_config_or_exit(ctx, log=False)
    log_to_stderr(config)
    store = open_store_read_only_or_exit(config)
    out = sys.stdout
    try:
        with store.session() as s:
            rows = (lineage_json(record) for record in repo.iter_remote_files(s))
            if output_format == "csv":
                _write_csv(out, rows)
            else:
                _write_jsonl(out, rows)
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    out.flush()


def _write_jsonl(out: TextIO, rows: Iterator[dict[str, str | int | None]]) -> None:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_csv(out: TextIO, rows: Iterator[dict[str, str | int | None]]) -> None:
    writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
