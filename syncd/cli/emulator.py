"""``syncd emulator``: serve the local Files API emulator in the foreground until SIGINT/SIGTERM.

Prints ``syncd emulator listening on <url>`` (flushed) once it accepts connections, so scripts
and tests can read the real port when ``--port 0`` let the OS choose; exits 0 on a signal.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from syncd.cli.context import EXIT_CONFIG
from syncd.emulator import FAULT_KINDS, FILE_PURPOSES, EmulatorOptions, EmulatorServer
from syncd.emulator.options import DEFAULT_BATCH_JOB_SECONDS, DEFAULT_FAULT_KINDS
from syncd.hosts import is_loopback_host

__all__ = ["emulator"]

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
#: How often the main thread checks that the server thread is still alive while it waits.
_LIVENESS_SECONDS = 1.0


def _parse_fault_kinds(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_FAULT_KINDS
    kinds = tuple(kind.strip() for kind in value.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown:
        raise click.BadParameter(
            f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(FAULT_KINDS)}"
        )
    return kinds


def _parse_purposes(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...]:
    if value is None:
        return FILE_PURPOSES
    purposes = tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    if not purposes:
        raise click.BadParameter("name at least one purpose")
    return purposes


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the printed URL shows it).",
)
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where files, metadata and the URL-signing secret persist (created if missing).",
)
@click.option(
    "--api-key",
    envvar="SYNCD_EMULATOR_API_KEY",
    default=None,
    help="Accept only this bearer token (also SYNCD_EMULATOR_API_KEY); without it any token"
    " works, so a --host that is not loopback requires it.",
)
@click.option(
    "--dedupe/--no-dedupe",
    default=True,
    show_default=True,
    help="Return the existing file when the same name and content is uploaded again.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Probability that a /v1 request gets an injected fault.",
)
@click.option(
    "--fault-kinds",
    default=None,
    callback=_parse_fault_kinds,
    help=(
        f"Comma list of faults to draw from: {','.join(FAULT_KINDS)} "
        f"(default: {','.join(DEFAULT_FAULT_KINDS)}; hang, stall and the job-* kinds only"
        " when named; a job-* kind decides how a batch job created by the request ends)."
    ),
)
@click.option(
    "--retry-after",
    default=None,
    type=click.FloatRange(min=0.0),
    help="Seconds sent as Retry-After on injected 429 and 503 answers.",
)
@click.option(
    "--latency-ms",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Delay added to every /v1 request.",
)
@click.option("--seed", default=None, type=int, help="Seed for reproducible fault draws.")
@click.option(
    "--max-upload-bytes",
    default=EmulatorOptions.max_upload_bytes,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger uploads get 413.",
)
@click.option(
    "--purposes",
    default=None,
    callback=_parse_purposes,
    help="Comma list of the upload purposes accepted; any other is a 422, as on the real API"
    f" (default: {','.join(FILE_PURPOSES)}).",
)
@click.option(
    "--batch-job-seconds",
    default=DEFAULT_BATCH_JOB_SECONDS,
    show_default=True,
    type=click.FloatRange(0.0, 86400.0, max_open=True),
    help="How long a batch job takes from create to its end (a quarter QUEUED, then RUNNING).",
)
@click.option(
    "--manual-jobs",
    is_flag=True,
    help="Never run batch jobs: they stay QUEUED until POST /_emulator/jobs/{id}/status.",
)
@click.option("--access-log", is_flag=True, help="Log every request to stderr.")
def emulator(
    host: str,
    port: int,
    data_dir: Path,
    api_key: str | None,
    dedupe: bool,
    fault_rate: float,
    fault_kinds: tuple[str, ...],
    retry_after: float | None,
    latency_ms: int,
    seed: int | None,
    max_upload_bytes: int,
    purposes: tuple[str, ...],
    batch_job_seconds: float,
    manual_jobs: bool,
    access_log: bool,
) -> None:
    """Serve a local emulator of the Mistral Files API until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.INFO if access_log else logging.WARNING, stream=sys.stderr)
    if api_key is None and not is_loopback_host(host):
        # Anyone who can reach the address could read, upload and delete files and switch
        # faults on: as the daemon's listener rule, not without a key (exit 78, EX_CONFIG).
        click.echo(
            f"syncd emulator: --host {host} is not a loopback address; give --api-key (or "
            "SYNCD_EMULATOR_API_KEY) so only clients with the key are served, "
            "or listen on 127.0.0.1",
            err=True,
        )
        sys.exit(EXIT_CONFIG)
    options = EmulatorOptions(
        api_key=api_key,
        dedupe=dedupe,
        fault_rate=fault_rate,
        fault_kinds=fault_kinds,
        retry_after=retry_after,
        latency_ms=latency_ms,
        seed=seed,
        max_upload_bytes=max_upload_bytes,
        purposes=purposes,
        batch_job_seconds=None if manual_jobs else batch_job_seconds,
    )
    # Block the stop signals before the server thread exists (threads inherit the mask), then
    # wait for them synchronously: no handler can interrupt startup or shutdown half-way.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    server = EmulatorServer(data_dir, options, host=host, port=port, access_log=access_log)
    try:
        url = server.start()
    except (OSError, RuntimeError, ValueError) as exc:
        click.echo(f"syncd emulator: cannot start on {host}:{port}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"syncd emulator listening on {url}")
    sys.stdout.flush()
    try:
        while signal.sigtimedwait(_STOP_SIGNALS, _LIVENESS_SECONDS) is None:
            if not server.is_running:
                click.echo("syncd emulator: the server stopped unexpectedly", err=True)
                sys.exit(1)
    finally:
        server.stop()
