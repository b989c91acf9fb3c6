"""``syncd sync``: one reconcile pass (scan, upload everything pending, wait), then exit.

Exit status: 0 when every eligible file is on the remote; 3 when that holds but some files were
quarantined or skipped (bad content, bad names: see ``syncd status``); 1 when some eligible file
is still not uploaded (failed after its retries, or changing while read); 78 for a bad config;
75 when another syncd (a daemon or a pass) works on the same store as the same node: the pass is
refused with one line naming the store, the node and the holder, and changes nothing.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from contextlib import ExitStack

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from syncd.cli.context import (
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    fail,
    load_config_or_exit,
    open_store_or_exit,
)
from syncd.config import describe_server
from syncd.connection import connect
from syncd.engine import Engine, SyncReport
from syncd.errors import ApiError, ConfigError, StoreBusyError, StoreError
from syncd.fleet_runtime import FleetRuntime, NodeSnapshot, StateDatabaseMonitor, beating
from syncd.logs import configure_logging
from syncd.pipeline import ScanSummary
from syncd.store import instance_lock
from syncd.upload import UploadEvent

__all__ = ["EXIT_QUARANTINED", "sync"]

#: Everything eligible is uploaded, but some files were rejected (shown by `syncd status`).
EXIT_QUARANTINED = 3


class _ProgressView:
    """A rich progress bar on a terminal: files and bytes, rate and ETA."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._lock = threading.Lock()
        self._scan = self.progress.add_task("hashing", total=None, files="")
        self._upload = self.progress.add_task("uploading", total=None, files="", visible=False)
        self._files_total = 0
        self._files_done = 0

    def hashed(self, size: int) -> None:
        self.progress.advance(self._scan, size)

    def start_uploads(self, files: int, size: int) -> None:
        """The scan is over: ``files``/``size`` still wait, on top of what is already sent."""
        self.progress.update(self._scan, total=self.progress.tasks[self._scan].completed)
        with self._lock:
            self._files_total = files + self._files_done
            done, total = self._files_done, self._files_total
        sent = self.progress.tasks[self._upload].completed
        self.progress.update(
            self._upload, total=size + sent, visible=True, files=f"{done}/{total} files"
        )

    def uploaded(self, event: UploadEvent) -> None:
        if event.outcome not in ("uploaded", "adopted"):
            return
        with self._lock:
            self._files_done += 1
            done, total = self._files_done, self._files_total
        # Uploads start while the scan still runs: the total is known only once it ends.
        files = f"{done}/{total} files" if total else f"{done} files"
        self.progress.update(self._upload, advance=event.bytes, visible=True, files=files)


class _PassTally:
    """What this pass's uploads did, per folder (the summary reports the pass, not totals)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_folder: dict[str, Counter[str]] = {}

    def __call__(self, event: UploadEvent) -> None:
        outcome = "uploaded" if event.outcome == "adopted" else event.outcome
        if outcome == "retry":
            return
        with self._lock:
            self.by_folder.setdefault(event.folder, Counter())[outcome] += 1


@click.command("sync")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Scan and validate, then list what would be uploaded; send nothing, write nothing to "
    "the state database, no API key needed.",
)
@click.pass_context
def sync(ctx: click.Context, progress: bool | None, dry_run: bool) -> None:
    """Scan every folder, upload everything new or changed, wait for it, then exit.

    The summary says what this pass did per folder (uploaded, quarantined, failed...); `syncd
    status` shows every file. Exit status: 0 all eligible files uploaded; 3 likewise but some
    files are quarantined; 1 some eligible file is not uploaded; 75 another syncd holds the
    store as this node; 78 configuration error.
    """
    config = load_config_or_exit(ctx)
    if dry_run:
        from syncd.cli.sync_dry_run import dry_run_sync

        dry_run_sync(config)
        return
    show_progress = sys.stderr.isatty() if progress is None else progress
    console = Console(stderr=True)
    view = _ProgressView(console) if show_progress else None
    if view is not None and config.log.level in ("debug", "info"):
        # The bar tells the per-file story; only problems interrupt it.
        configure_logging(config.log.format, "warning")
    store = open_store_or_exit(config)
    stop = threading.Event()
    tally = _PassTally()

    def on_upload(event: UploadEvent) -> None:
        tally(event)
        if view is not None:
            view.uploaded(event)

    try:
        with ExitStack() as stack:
            # A pass beside a daemon on the same store as the same node is refused, like a second
            # daemon: both would take each other's live claims for a crashed node's.
            stack.callback(
                instance_lock.acquire(
                    config.state.database_url, config.node.name, command="sync"
                ).release
            )
            connection = stack.enter_context(connect(config, os.environ))
            engine = Engine(
                config,
                store,
                connection.client.files,
                on_upload=on_upload,
                on_hashed=view.hashed if view else lambda _b: None,
            )
            # Also on the way out of a failure: workers waiting out a locked store must end.
            stack.callback(engine.uploader.stop, grace=5)
            # A pass heartbeats like a daemon: killed mid-upload, its claims are taken over
            # by the other nodes after the lease (a node without a heartbeat never is).
            stack.enter_context(
                beating(
                    FleetRuntime(
                        store,
                        node=config.node.name,
                        lease=config.node.lease,
                        snapshot=lambda: NodeSnapshot(
                            folders=tuple(engine.folders()), queue_depth=None
                        ),
                        monitor=StateDatabaseMonitor(store.url),
                        on_taken_over=lambda _count: engine.uploader.wake(),
                    ),
                    every=config.node.heartbeat,
                )
            )
            if view is not None:
                stack.enter_context(view.progress)

            def after_scan() -> None:
                if view is not None:
                    view.start_uploads(*engine.pending_totals())

            report = engine.sync_once(stop=stop, after_scan=after_scan)
            server = describe_server(connection.server_url, embedded=connection.is_local_emulator)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except StoreBusyError as exc:
        fail(str(exc), EXIT_BUSY)
    except (ApiError, StoreError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        stop.set()
        fail("interrupted; pending uploads stay queued for the next run", 130)
    finally:
        store.dispose()
    _print_report(console, report, server, tally)
    sys.exit(_exit_code(report))


def _pass_line(
    events: Counter[str] | None, scan: ScanSummary | None, by_state: dict[str, int]
) -> str:
    """This pass in one line: what it uploaded, reused, quarantined...; then how many files
    the folder holds in all."""
    done = Counter(events or {})
    if scan is not None:
        done["reused (already on the remote)"] += scan.reused
        done["quarantined"] += scan.quarantined
        done["renamed"] += scan.renamed
        done["gone from disk"] += scan.missing
    order = ["uploaded", "reused (already on the remote)", "renamed", "quarantined", "failed"]
    order += sorted(set(done) - set(order))
    parts = [f"{done[name]} {name}" for name in order if done[name]]
    total = sum(by_state.values())
    did = ", ".join(parts) if parts else "nothing to do"
    return f"{did} ({total} file(s) in all; `syncd status` for each)"


def _exit_code(report: SyncReport) -> int:
    if report.not_uploaded or report.folder_errors or report.api_unavailable:
        return EXIT_FAILURE
    if report.quarantined:
        return EXIT_QUARANTINED
    return EXIT_OK


def _print_report(console: Console, report: SyncReport, server: str, tally: _PassTally) -> None:
    console.print(Text(f"Files API: {server}"))
    scans = {scan.folder: scan for scan in report.scans}
    for folder, by_state in sorted(report.counts.items()):
        console.print(
            Text(
                f"{folder}: {_pass_line(tally.by_folder.get(folder), scans.get(folder), by_state)}"
            )
        )
    for folder, error in report.folder_errors.items():
        console.print(f"[red]{escape(folder)}: {escape(error)}[/red]", highlight=False)
    if report.remote is not None and report.remote.vanished:
        console.print(
            f"[yellow]{len(report.remote.vanished)} remote file(s) had vanished from the remote;"
            f" {report.remote.requeued} file(s) uploaded again[/yellow]",
            highlight=False,
        )
    if report.api_unavailable:
        console.print(f"[red]{escape(report.api_unavailable)}[/red]", highlight=False)
    if report.quarantined:
        console.print(
            f"[yellow]{report.quarantined} file(s) quarantined or skipped:"
            " see `syncd status`[/yellow]"
        )
    if report.not_uploaded:
        console.print(f"[red]{report.not_uploaded} file(s) not uploaded: see `syncd status`[/red]")
    if report.uploading_elsewhere:
        console.print(
            f"{report.uploading_elsewhere} file(s) of shared folders are being uploaded by other "
            "nodes (`syncd nodes`)"
        )
