"""Figure 2: rescanning an unchanged, already-synced tree of 100,000 files.

The scan phase is ``Pipeline.scan`` over the synced store, in this process, against
``find DIR -type f -printf '%s %T@\\n'`` (the cheapest program that also lists every file
with its size and mtime); both run once to warm the caches, then alternate, best kept. Then the
whole no-op ``syncd sync`` as a user runs it: start-up, scan, nothing to upload, report.
"""

from __future__ import annotations

import os
import subprocess
import time

from benchmarks.configs import syncd_env
from benchmarks.context import BenchContext
from benchmarks.processes import run_measured
from benchmarks.results import Figure, Target, result, times
from benchmarks.servers import EmulatorProcess
from benchmarks.synced_tree import discard_synced_tree, synced_tree
from syncd.config import load_config
from syncd.folder_specs import folder_spec
from syncd.pipeline import Pipeline
from syncd.store import open_store

__all__ = ["run"]


def run(ctx: BenchContext) -> dict[str, object]:
    tree = synced_tree(ctx)
    rounds = ctx.size(3, 2)
    try:
        with EmulatorProcess(ctx.python, tree.emulator_data) as emulator:
            setup = tree.configure(emulator.url)
            config = load_config(setup.config)
            spec = folder_spec(config.folders[0], config.node.name)
            store = open_store(f"sqlite:///{setup.state_db}")
            try:
                pipeline = Pipeline(store)
                scan_times: list[float] = []
                find_times: list[float] = []
                ctx.log(f"rescan: {rounds} rounds of Pipeline.scan and find")
                for round_index in range(rounds + 1):  # round 0 warms the caches
                    started = time.perf_counter()
                    summary = pipeline.scan(spec)
                    scanned = time.perf_counter() - started
                    if summary.files != tree.files or summary.hashed or summary.queued:
                        raise RuntimeError(f"the tree is not in sync: {summary}")
                    started = time.perf_counter()
                    subprocess.run(
                        ["find", str(tree.folder), "-type", "f", "-printf", "%s %T@\\n"],
                        check=True,
                        stdout=subprocess.DEVNULL,
                    )
                    found = time.perf_counter() - started
                    if round_index:
                        scan_times.append(scanned)
                        find_times.append(found)
            finally:
                store.dispose()
            ctx.log("rescan: no-op syncd sync")
            noop = run_measured(
                [ctx.python, "-m", "syncd", "-c", str(setup.config), "sync", "--no-progress"],
                output_dir=tree.workdir,
                env=syncd_env(dict(os.environ)),
                cwd=ctx.repo,
            ).check("no-op syncd sync")
            uploads = emulator.stats()["uploads"]
    finally:
        discard_synced_tree(ctx)
    if uploads != 0:
        raise RuntimeError(f"the no-op sync uploaded {uploads} files")
    scan_s = min(scan_times)
    find_s = min(find_times)
    figures = [
        Figure(
            name=f"Pipeline.scan of {tree.files} unchanged files",
            unit="s",
            syncd=scan_s,
            baseline=find_s,
            baseline_label="find -printf",
            ratio=times(scan_s, find_s),
            ratio_means="of find's time",
            target=Target("ratio_at_most", 3.0),
        ),
        Figure(
            name=f"no-op syncd sync of {tree.files} files (process wall time)",
            unit="s",
            syncd=noop.wall_s,
            baseline=find_s,
            baseline_label="find -printf",
            ratio=times(noop.wall_s, find_s),
            ratio_means="of find's time",
        ),
        Figure(
            name=f"no-op syncd sync of {tree.files} files",
            unit="files/s",
            syncd=tree.files / noop.wall_s,
            baseline=tree.files / find_s,
            baseline_label="find -printf",
            ratio=times(find_s, noop.wall_s),
            ratio_means="of find's rate",
        ),
    ]
    return result(
        figures,
        {
            "files": tree.files,
            "scan_seconds": scan_times,
            "find_seconds": find_times,
            "noop_sync_seconds": noop.wall_s,
            "noop_sync_cpu_seconds": noop.cpu_s,
            "noop_sync_peak_rss_bytes": noop.peak_rss_bytes,
        },
    )
