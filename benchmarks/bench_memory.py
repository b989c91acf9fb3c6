"""Figure 6: the daemon's memory with 100,000 tracked files: peak during their first sync, idle.

``syncd run`` starts on a fresh state with the whole tree to upload (emulator in its own
process); its RSS is sampled from /proc while the state database fills, and read again once
everything is uploaded and the daemon has nothing left to do. A second daemon then starts on
the synced store, as after a restart. The baseline is the floor any syncd process pays: the
same interpreter with syncd's command line imported (``syncd --version``).
"""

from __future__ import annotations

import time

from benchmarks.context import BenchContext
from benchmarks.daemon import DaemonProcess, count_state, poll
from benchmarks.processes import cpu_seconds, run_measured
from benchmarks.results import Figure, Target, result, times
from benchmarks.servers import EmulatorProcess
from benchmarks.synced_tree import make_tree, remember_synced_tree

__all__ = ["run"]

_IDLE_TARGET_MB = 100
#: After the last upload: let the daemon settle, then watch it this long.
_QUIET_S = 3.0
_IDLE_WINDOW_S = 5.0


def run(ctx: BenchContext) -> dict[str, object]:
    tree = make_tree(ctx)
    floor = run_measured(
        [ctx.python, "-m", "syncd", "--version"], output_dir=tree.workdir, cwd=ctx.repo
    ).check("syncd --version")
    samples: list[int] = []
    with EmulatorProcess(ctx.python, tree.emulator_data) as emulator:
        setup = tree.configure(emulator.url)
        ctx.log(f"memory: daemon's first sync of {tree.files} files")
        with DaemonProcess(ctx.python, setup, cwd=ctx.repo) as daemon:

            def synced() -> bool | None:
                daemon.check_alive()
                samples.append(daemon.rss())
                uploaded = count_state(setup.state_db, "uploaded")
                return True if uploaded >= tree.files else None

            emulator_cpu_before = emulator.cpu_seconds()
            poll(synced, timeout=ctx.size(1800, 300), interval=0.5, what="the first sync")
            first_sync_s = time.monotonic() - daemon.started_at
            first_sync_cpu = cpu_seconds(daemon.pid)
            emulator_cpu = emulator.cpu_seconds() - emulator_cpu_before
            idle, idle_cpu = _idle(daemon)
            peak = daemon.peak_rss()  # the high-water mark covers the first sync
        ctx.log("memory: restarting the daemon on the synced store")
        with DaemonProcess(ctx.python, setup, cwd=ctx.repo) as restarted:

            def reconciled() -> bool | None:
                restarted.check_alive()
                events = restarted.log.read()
                return True if any(e["event"] == "rescan_finished" for e in events) else None

            poll(reconciled, timeout=600, interval=0.2, what="the startup rescan")
            restart_peak = restarted.peak_rss()
            restart_idle, restart_idle_cpu = _idle(restarted)
    remember_synced_tree(ctx, tree)
    floor_mb = floor.peak_rss_bytes / 1e6
    idle_mb = idle / 1e6
    restart_idle_mb = restart_idle / 1e6
    figures = [
        Figure(
            name=f"daemon RSS idle after syncing {tree.files} files",
            unit="MB",
            syncd=idle_mb,
            baseline=floor_mb,
            baseline_label="syncd --version",
            ratio=times(idle_mb, floor_mb),
            ratio_means="of the floor",
            target=Target("value_at_most", _IDLE_TARGET_MB),
        ),
        Figure(
            name=f"daemon RSS idle after a restart, {tree.files} tracked",
            unit="MB",
            syncd=restart_idle_mb,
            baseline=floor_mb,
            baseline_label="syncd --version",
            ratio=times(restart_idle_mb, floor_mb),
            ratio_means="of the floor",
            target=Target("value_at_most", _IDLE_TARGET_MB),
        ),
        Figure(
            name=f"daemon peak RSS during the first sync of {tree.files} files",
            unit="MB",
            syncd=peak / 1e6,
            baseline=floor_mb,
            baseline_label="syncd --version",
            ratio=times(peak / 1e6, floor_mb),
            ratio_means="of the floor",
        ),
        Figure(
            name=f"daemon first sync of {tree.files} files (upload included)",
            unit="files/s",
            syncd=tree.files / first_sync_s,
        ),
        Figure(
            name=f"daemon CPU while idle, {tree.files} tracked",
            unit="% of a core",
            syncd=100 * idle_cpu,
        ),
    ]
    return result(
        figures,
        {
            "files": tree.files,
            "first_sync_seconds": first_sync_s,
            "first_sync_daemon_cpu_ms_per_file": 1000 * first_sync_cpu / tree.files,
            "first_sync_emulator_cpu_ms_per_file": 1000 * emulator_cpu / tree.files,
            "peak_rss_bytes": peak,
            "idle_rss_bytes": idle,
            "idle_cpu_share": idle_cpu,
            "restart_peak_rss_bytes": restart_peak,
            "restart_idle_rss_bytes": restart_idle,
            "restart_idle_cpu_share": restart_idle_cpu,
            "floor_rss_bytes": floor.peak_rss_bytes,
            "rss_samples_during_first_sync": samples,
        },
    )


def _idle(daemon: DaemonProcess) -> tuple[int, float]:
    """(highest RSS, CPU share of one core) of a daemon with nothing to do, over a window."""
    time.sleep(_QUIET_S)
    cpu_before = cpu_seconds(daemon.pid)
    started = time.monotonic()
    highest = 0
    while time.monotonic() - started < _IDLE_WINDOW_S:
        daemon.check_alive()
        highest = max(highest, daemon.rss())
        time.sleep(0.25)
    share = (cpu_seconds(daemon.pid) - cpu_before) / (time.monotonic() - started)
    return highest, share
