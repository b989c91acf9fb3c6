"""``syncd files``: upload, list, inspect, download, delete and share files on the Files API.

Like every command, ``files`` reads the config (``-c``, ``SYNCD_CONFIG`` or the default path
when it exists): its server (the embedded emulator included: a running daemon's, found through
its data dir, or one started for the command) and its API key (``api_key_env``, then
``api_key_file``). ``--server-url`` (or ``MISTRAL_SERVER_URL``) overrides the server. Without a
config: ``MISTRAL_API_KEY`` and Mistral's API. Each command prints a rich table for people or,
with ``--json``, one JSON document for scripts, and exits 1 with the API's message on stderr
when something fails (78 for a bad config).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import structlog
from rich.console import Console
from rich.table import Table

from syncd.api import FileInfo, Mistral
from syncd.api.client import SERVER_URL_ENV
from syncd.cli.files_access import files_client
from syncd.errors import SyncdError
from syncd.logs import configure_logging

__all__ = ["files"]

F = TypeVar("F", bound=Callable[..., Any])

#: Tables are not squeezed to 80 columns when stdout is a pipe: ids must stay whole.
_PIPE_WIDTH = 200
_LIST_COLUMNS = ("id", "filename", "bytes", "purpose", "sample_type", "num_lines", "created_at")


def _common_options(command: F) -> F:
    command = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document instead of a table.",
    )(command)
    command = click.option(
        "--server-url",
        envvar=SERVER_URL_ENV,
        default=None,
        help=f"Files API base URL (also {SERVER_URL_ENV}; default https://api.mistral.ai).",
    )(command)
    return command


@click.group()
def files() -> None:
    """Work with files on the Files API the config talks to.

    The server and the API key come from the config (-c; the embedded emulator too, a running
    daemon's included); --server-url or MISTRAL_SERVER_URL overrides the server. Without a
    config file: MISTRAL_API_KEY and https://api.mistral.ai. The key is never printed.
    """
    _keep_stdout_for_results()


def _keep_stdout_for_results() -> None:
    """Unless the root command set logging up already, log warnings and errors to stderr.

    structlog's unconfigured default prints every event to stdout, which would corrupt
    ``--json`` output.
    """
    if not structlog.is_configured():
        configure_logging(level="warning")


@contextmanager
def _client(server_url: str | None) -> Iterator[Mistral]:
    """A client for one command; any syncd error becomes ``error: ...`` on stderr and exit 1."""
    with _reporting_errors(), files_client(click.get_current_context(), server_url) as client:
        yield client


@contextmanager
def _reporting_errors() -> Iterator[None]:
    try:
        yield
    except SyncdError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(1) from exc


def _console() -> Console:
    is_terminal = sys.stdout.isatty()
    return Console(width=None if is_terminal else _PIPE_WIDTH, highlight=False)


def _print_json(document: object) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _cell(key: str, value: object) -> str:
    if value is None:
        return ""
    if key in ("created_at", "expires_at") and isinstance(value, int):
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(value)


def _files_table(infos: Sequence[FileInfo], *, title: str | None = None) -> Table:
    table = Table(title=title)
    for column in _LIST_COLUMNS:
        table.add_column(
            column,
            no_wrap=column == "id",
            justify="right" if column in ("bytes", "num_lines") else "left",
        )
    for info in infos:
        dumped = info.model_dump()
        table.add_row(*(_cell(column, dumped.get(column)) for column in _LIST_COLUMNS))
    return table


def _fields_table(fields: Mapping[str, object]) -> Table:
    table = Table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in fields.items():
        table.add_row(key, _cell(key, value))
    return table


@files.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--purpose", required=True, help="fine-tune, batch, ocr, audio, ... (open set).")
@click.option("--filename", default=None, help="Name stored on the server (one PATH only).")
@_common_options
def upload(
    paths: tuple[Path, ...],
    purpose: str,
    filename: str | None,
    server_url: str | None,
    as_json: bool,
) -> None:
    """Upload PATH... with PURPOSE; a failed file does not stop the others."""
    if filename is not None and len(paths) > 1:
        raise click.UsageError("--filename needs exactly one PATH")
    uploaded: list[FileInfo] = []
    failed = 0
    with _client(server_url) as client:
        for path in paths:
            try:
                uploaded.append(client.files.upload(file=path, purpose=purpose, filename=filename))
            except SyncdError as exc:
                failed += 1
                click.echo(f"error: {path}: {exc}", err=True)
    if as_json:
        _print_json([info.model_dump(mode="json") for info in uploaded])
    elif uploaded:
        _console().print(_files_table(uploaded, title="uploaded"))
    if failed:
        raise click.exceptions.Exit(1)


@files.command(name="list")
@click.option("--purpose", default=None, help="Only files with this purpose.")
@click.option("--search", default=None, help="Only files whose name matches.")
@click.option("--page", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--page-size", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--all", "every_page", is_flag=True, help="Page through every file.")
@_common_options
def list_files(
    purpose: str | None,
    search: str | None,
    page: int,
    page_size: int,
    every_page: bool,
    server_url: str | None,
    as_json: bool,
) -> None:
    """List files, one page (or --all)."""
    with _client(server_url) as client:
        if every_page:
            infos = list(client.files.iter_all(purpose=purpose, page_size=page_size, search=search))
            total: int | None = len(infos)
        else:
            listing = client.files.list(
                page=page, page_size=page_size, purpose=purpose, search=search
            )
            infos, total = listing.data, listing.total
    if as_json:
        _print_json(
            {
                "object": "list",
                "data": [info.model_dump(mode="json") for info in infos],
                "total": total,
            }
        )
        return
    title = f"{len(infos)} file(s)" + (f" of {total}" if total is not None else "")
    _console().print(_files_table(infos, title=title))


@files.command()
@click.argument("file_id")
@_common_options
def info(file_id: str, server_url: str | None, as_json: bool) -> None:
    """Show one file's details."""
    with _client(server_url) as client:
        retrieved = client.files.retrieve(file_id)
    if as_json:
        _print_json(retrieved.model_dump(mode="json"))
    else:
        _console().print(_fields_table(retrieved.model_dump()))


@files.command()
@click.argument("file_id")
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(path_type=Path, allow_dash=True),
    help="Where to write (default: the remote file name here; - for stdout).",
)
@_common_options
def download(file_id: str, output: Path | None, server_url: str | None, as_json: bool) -> None:
    """Download one file's content (atomically: a partial download never shows up)."""
    with _client(server_url) as client:
        if output is not None and str(output) == "-":
            with client.files.download(file_id) as response:
                stdout = sys.stdout.buffer
                for chunk in response.iter_bytes():
                    stdout.write(chunk)
                stdout.flush()
            return
        if output is None:
            # Only the last component of the remote name: it must not write outside this folder.
            output = Path(Path(client.files.retrieve(file_id).filename).name)
        written = client.files.download_to(file_id, output)
    size = written.stat().st_size
    if as_json:
        _print_json({"id": file_id, "path": str(written), "bytes": size})
    else:
        click.echo(f"saved {written} ({size} bytes)")


@files.command()
@click.argument("file_id")
@_common_options
def delete(file_id: str, server_url: str | None, as_json: bool) -> None:
    """Delete one file on the server."""
    with _client(server_url) as client:
        deleted = client.files.delete(file_id)
    if as_json:
        _print_json(deleted.model_dump(mode="json"))
    else:
        click.echo(f"deleted {deleted.id}" if deleted.deleted else f"not deleted: {deleted.id}")


@files.command()
@click.argument("file_id")
@click.option(
    "--expiry",
    default=24,
    show_default=True,
    type=click.IntRange(1, 168),
    help="Hours the URL stays valid (1-168).",
)
@_common_options
def url(file_id: str, expiry: int, server_url: str | None, as_json: bool) -> None:
    """Print a signed URL that downloads the file without the API key."""
    with _client(server_url) as client:
        signed = client.files.get_signed_url(file_id, expiry=expiry)
    if as_json:
        _print_json(signed.model_dump(mode="json"))
    else:
        click.echo(signed.url)
