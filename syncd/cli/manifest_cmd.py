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
from typing import Any, TextIO

import click

from syncd.cli.access import log_to_stderr, open_store_read_only_or_exit
from syncd.cli.context import fail, load_config_or_exit
from syncd.documents import lineage_json
from syncd.errors import StoreError
from syncd.store import jobs as job_rows
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
    "job_id",
    "output_file_id",
    "results",
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
    created_at (server), uploaded_at, superseded_at, deleted_at and delete_reason; for files
    whose results come home, the batch job (or OCR request), its output file and the result
    files written for this path (relative to the folder's results folder).
    """
    config = load_config_or_exit(ctx, log=False)
    log_to_stderr(config)
    store = open_store_read_only_or_exit(config)
    out = sys.stdout
    try:
        with store.session() as s:
            jobs = job_rows.job_lineage(s)
            rows = (_with_job(lineage_json(record), jobs) for record in repo.iter_remote_files(s))
            if output_format == "csv":
                _write_csv(out, rows)
            else:
                _write_jsonl(out, rows)
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.dispose()
    out.flush()


def _with_job(row: dict[str, Any], jobs: dict[str, job_rows.JobLineage]) -> dict[str, Any]:
    """The row with the job that answered its content, when one did."""
    kind = {"batch": "batch", "ocr": "ocr"}.get(str(row["purpose"]))
    lineage = None
    if kind is not None and row["sha256"]:
        lineage = jobs.get(job_rows.job_key(str(row["folder"]), kind, str(row["sha256"])))
    row["job_id"] = lineage.job_id if lineage else None
    row["output_file_id"] = lineage.output_file_id if lineage else None
    row["results"] = lineage.results.get(str(row["path"]), []) if lineage else []
    return row


def _write_jsonl(out: TextIO, rows: Iterator[dict[str, Any]]) -> None:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_csv(out: TextIO, rows: Iterator[dict[str, Any]]) -> None:
    writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "results": ";".join(row["results"])})
