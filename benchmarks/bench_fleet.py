"""Fleet mode: one shared folder synced by 1 node against 3 nodes, and PostgreSQL against SQLite.

3,000 small valid fine-tune files (4 KiB each; ``--quick``: 300) sit in one folder marked
``shared = true``. The emulator (a child process, dedupe off, so a second upload of a file would
be a second remote file) adds 100 ms of latency to every request, which is what makes more
nodes pay off: each node uploads with concurrency 4. Three runs, each from an empty state and a
fresh emulator:

* ``syncd sync`` as one node on a PostgreSQL database;
* three ``syncd sync`` processes started together, nodes ``n1``..``n3`` with the same config
  but their ``[node] name``, on one fresh PostgreSQL database and the same folder;
* ``syncd sync`` as one node on SQLite (the single-host default).

A run's time is the wall time from the start of its process(es) until the last one exits, which
is when every file is uploaded (checked: every row is ``uploaded``, and the emulator received
exactly one upload per file and holds exactly one file per file; a run that uploads a file
twice is an error, not a figure). Targets: 3 nodes >= 2.5x the throughput of 1; PostgreSQL >=
0.8x the throughput of SQLite. The PostgreSQL server is a throwaway cluster of the benchmark's
own (``tests/postgres_cluster.py``: initdb in a temp dir, 127.0.0.1, fsync off as in the tests).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from benchmarks.configs import syncd_env
from benchmarks.context import BenchContext
from benchmarks.datasets import write_jsonl_files
from benchmarks.results import Figure, Target, result, speedup
from benchmarks.servers import EmulatorProcess, ServerProcess

__all__ = ["run"]

_FILE_BYTES = 4096
_CONCURRENCY = 4
_LATENCY_MS = 100
_NODES = 3
_SHARED_ID = "bench-share"
_FOLDER_KEY = f"shared:{_SHARED_ID}"


class _Emulator(EmulatorProcess):
    """``syncd emulator`` with its latency and without dedupe: a duplicate upload is a file."""

    def __init__(self, python: str, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [python, "-m", "syncd", "emulator", "--port", "0", "--data-dir", str(data_dir)]
        argv += ["--latency-ms", str(_LATENCY_MS), "--no-dedupe"]
        ServerProcess.__init__(self, argv, data_dir.parent / f"{data_dir.name}.log")


@dataclass(frozen=True, slots=True)
class _Run:
    """One contender's outcome: wall seconds, every node's exit time and code, and checks."""

    wall_s: float
    node_exit_s: dict[str, float]
    exit_codes: dict[str, int]
    uploads: int
    remote_files: int
    states: dict[str, int]


def run(ctx: BenchContext) -> dict[str, object]:
    from tests.postgres_cluster import PostgresCluster  # psycopg: loaded only for this one

    count = ctx.size(3000, 300)
    workdir = ctx.scratch("fleet")
    details: dict[str, object] = {
        "files": count,
        "file_bytes": _FILE_BYTES,
        "concurrency_per_node": _CONCURRENCY,
        "latency_ms": _LATENCY_MS,
    }
    cluster = PostgresCluster.create()
    try:
        folder = workdir / "share"
        write_jsonl_files(folder, count, _FILE_BYTES)
        runs: dict[str, _Run] = {}
        for label, nodes, engine in (
            ("postgres_1_node", 1, "postgresql"),
            ("sqlite_1_node", 1, "sqlite"),
            (f"postgres_{_NODES}_nodes", _NODES, "postgresql"),
        ):
            ctx.log(f"fleet: {count} files, {nodes} node(s) on {engine}")
            base = ctx.scratch(label)
            if engine == "postgresql":
                database = cluster.create_database()
                url = cluster.url(database)
                runs[label] = _sync(ctx, base, folder, url, nodes, count)
                runs[label] = _checked(
                    runs[label], label, count, _postgres_states(cluster.dsn(database))
                )
                cluster.drop_database(database)
            else:
                db = base / "state" / "state.db"
                done = _sync(ctx, base, folder, f"sqlite:///{db}", nodes, count)
                runs[label] = _checked(done, label, count, _sqlite_states(db))
            ctx.discard(base)
            ctx.log(f"fleet: {label}: {runs[label].wall_s:.1f} s, exit {runs[label].exit_codes}")
        details["postgres_startup_s"] = round(cluster.startup_seconds, 2)
        details["runs"] = {
            label: {
                "wall_s": r.wall_s,
                "files_per_s": count / r.wall_s,
                "node_exit_s": r.node_exit_s,
                "exit_codes": r.exit_codes,
                "uploads_received": r.uploads,
                "remote_files": r.remote_files,
                "states": r.states,
            }
            for label, r in runs.items()
        }
    finally:
        cluster.destroy()
        ctx.discard(workdir)

    one, many = runs["postgres_1_node"], runs[f"postgres_{_NODES}_nodes"]
    sqlite = runs["sqlite_1_node"]
    figures = [
        Figure(
            name=f"{_NODES} nodes vs 1, {count} x 4 KiB shared, latency {_LATENCY_MS} ms",
            unit="files/s",
            syncd=count / many.wall_s,
            baseline=count / one.wall_s,
            baseline_label="1 node, PostgreSQL",
            ratio=speedup(one.wall_s, many.wall_s),
            ratio_means=f"faster ({_NODES} nodes / 1)",
            target=Target("ratio_at_least", 2.5),
        ),
        Figure(
            name=f"1 node, PostgreSQL vs SQLite, {count} x 4 KiB, latency {_LATENCY_MS} ms",
            unit="files/s",
            syncd=count / one.wall_s,
            baseline=count / sqlite.wall_s,
            baseline_label="1 node, SQLite",
            ratio=speedup(sqlite.wall_s, one.wall_s),
            ratio_means="of SQLite's throughput",
            target=Target("ratio_at_least", 0.8),
        ),
    ]
    return result(figures, details)


def _config(base: Path, folder: Path, url: str, node: str, server_url: str) -> Path:
    """A node's config: its name, the state URL, the shared folder; every setting spelled out."""
    config = base / f"{node}.toml"
    config.write_text(
        f"""\
[api]
server_url = "{server_url}"
concurrency = {_CONCURRENCY}
max_attempts = 8

[state]
url = "{url}"

[node]
name = "{node}"

[watch]
rescan_interval = "1h"

[log]
format = "json"
level = "info"

[[folders]]
path = "{folder}"
purpose = "fine-tune"
shared = true
id = "{_SHARED_ID}"
""",
        encoding="utf-8",
    )
    return config


def _sync(ctx: BenchContext, base: Path, folder: Path, url: str, nodes: int, count: int) -> _Run:
    """``nodes`` ``syncd sync`` processes started together against a fresh emulator."""
    with _Emulator(ctx.python, base / "emulator-data") as emulator:
        names = [f"n{i}" for i in range(1, nodes + 1)]
        configs = {name: _config(base, folder, url, name, emulator.url) for name in names}
        env = syncd_env(dict(os.environ))
        procs: dict[str, subprocess.Popen[bytes]] = {}
        logs = []
        started = time.perf_counter()
        for name in names:
            log = (base / f"{name}.log").open("wb")
            logs.append(log)
            procs[name] = subprocess.Popen(
                [ctx.python, "-m", "syncd", "-c", str(configs[name]), "sync", "--no-progress"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=ctx.repo,
            )
        exits: dict[str, float] = {}
        codes: dict[str, int] = {}
        try:
            while len(exits) < len(procs):
                for name, proc in procs.items():
                    if name not in exits and proc.poll() is not None:
                        exits[name] = time.perf_counter() - started
                        codes[name] = proc.returncode
                time.sleep(0.02)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            for log in logs:
                log.close()
        wall = max(exits.values())
        stats = emulator.stats()
    for name, code in codes.items():
        if code != 0:
            tail = (base / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-1500:]
            ctx.log(f"fleet: node {name} exited {code}; log tail:\n{tail}")
    uploads, files = stats["uploads"], stats["files"]
    assert isinstance(uploads, int) and isinstance(files, int)
    return _Run(wall, exits, codes, uploads, files, {})


def _checked(done: _Run, label: str, count: int, states: dict[str, int]) -> _Run:
    """``done`` with the store's states; raises when a file is missing or was uploaded twice."""
    if done.uploads != count or done.remote_files != count:
        raise RuntimeError(
            f"{label}: the emulator received {done.uploads} uploads and holds {done.remote_files} "
            f"files for {count} local files (each must be uploaded exactly once)"
        )
    if states != {"uploaded": count}:
        raise RuntimeError(f"{label}: not every file is uploaded: {states}")
    return _Run(
        done.wall_s, done.node_exit_s, done.exit_codes, done.uploads, done.remote_files, states
    )


def _postgres_states(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn) as connection:
        query = "select state, count(*) from local_files where folder = %s group by state"
        return {state: n for state, n in connection.execute(query, (_FOLDER_KEY,))}


def _sqlite_states(db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        query = "select state, count(*) from local_files where folder = ? group by state"
        return dict(connection.execute(query, (_FOLDER_KEY,)).fetchall())
