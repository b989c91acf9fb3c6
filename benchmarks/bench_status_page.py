"""Figure 10: the status page of a daemon tracking 100,000 files.

The synced 100,000-file tree (shared with the memory and rescan benchmarks) is copied into a
store where one file in twenty is quarantined with a reason, so the problems table has 5,000
rows to page through; ``syncd run`` serves it, and once its first rescan has finished the page
(every section), the page with a lineage lookup and ``/api/status`` are fetched over loopback
HTTP, one at a time. The figure is the median of the page's fetches; the target is 200 ms.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import statistics
import time
from pathlib import Path

import httpx

from benchmarks.context import BenchContext
from benchmarks.daemon import DaemonProcess, poll
from benchmarks.results import Figure, Target, result
from benchmarks.servers import EmulatorProcess
from benchmarks.synced_tree import synced_tree

__all__ = ["run"]

#: One tracked file in this many is quarantined in the measured store.
_QUARANTINE_EVERY = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quarantine_some(state_db: Path) -> int:
    connection = sqlite3.connect(state_db)
    try:
        with connection:
            cursor = connection.execute(
                "UPDATE local_files SET state = 'quarantined', remote_file_id = NULL, "
                "last_error = 'line 3: message 2: the last message must be from the assistant' "
                "WHERE id % ? = 0",
                (_QUARANTINE_EVERY,),
            )
        return cursor.rowcount
    finally:
        connection.close()


def _fetch_times(
    client: httpx.Client, daemon: DaemonProcess, path: str, rounds: int, **params: str
) -> list[float]:
    times: list[float] = []
    for _ in range(rounds + 1):  # the first fetch warms the caches and is not counted
        started = time.perf_counter()
        try:
            response = client.get(path, params=params)
        except httpx.HTTPError:
            daemon.check_alive()  # a daemon that died says why
            raise
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        times.append(elapsed)
    return times[1:]


def run(ctx: BenchContext) -> dict[str, object]:
    tree = synced_tree(ctx)
    rounds = ctx.size(30, 5)
    workdir = ctx.scratch("status-page")
    with EmulatorProcess(ctx.python, tree.emulator_data) as emulator:
        setup = tree.configure(emulator.url, log_level="warning")
        # A copy of the tree's store, so the shared one stays in sync for the rescan benchmark.
        config = workdir / "config.toml"
        state_db = workdir / "state" / "state.db"
        state_db.parent.mkdir(parents=True)
        shutil.copyfile(setup.state_db, state_db)
        quarantined = _quarantine_some(state_db)
        port = _free_port()
        text = setup.config.read_text(encoding="utf-8").replace(str(setup.state_db), str(state_db))
        config.write_text(text + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n', encoding="utf-8")
        setup = type(setup)(config=config, folder=setup.folder, state_db=state_db)
        with DaemonProcess(ctx.python, setup, cwd=ctx.repo) as daemon:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as client:

                def scanned() -> bool | None:
                    daemon.check_alive()
                    try:
                        folders = client.get("/api/status").json()["folders"]
                    except httpx.HTTPError:
                        return None  # not listening yet
                    return True if folders and folders[0]["last_good_scan_at"] else None

                poll(scanned, timeout=300, interval=0.5, what="the daemon's first rescan")
                ctx.log(f"status page: {rounds} fetches of each page")
                page = _fetch_times(client, daemon, "/", rounds)
                lookup = _fetch_times(
                    client, daemon, "/", rounds, q="part-00/shard-01/set-02/s001234.jsonl"
                )
                api = _fetch_times(client, daemon, "/api/status", rounds)
                html = client.get("/").text
            rss = daemon.rss()
    if "Problems" not in html or f"({quarantined})" not in html:
        raise RuntimeError("the page does not show the quarantined files")
    median = statistics.median(page)
    figures = [
        Figure(
            name=f"status page, {tree.files} tracked files ({quarantined} quarantined)",
            unit="ms",
            syncd=median * 1000,
            target=Target("value_at_most", 200.0),
        ),
        Figure(
            name="status page with a lineage lookup",
            unit="ms",
            syncd=statistics.median(lookup) * 1000,
        ),
        Figure(name="/api/status (first 50 files)", unit="ms", syncd=statistics.median(api) * 1000),
    ]
    return result(
        figures,
        {
            "files": tree.files,
            "quarantined": quarantined,
            "page_seconds": page,
            "lookup_seconds": lookup,
            "api_status_seconds": api,
            "page_bytes": len(html.encode()),
            "daemon_rss_bytes": rss,
        },
    )
