"""Figure 5: how long after a file is closed its upload is recorded, with settle = 0.5 s.

``syncd run`` watches an empty folder (emulator in another process). Files are written at a
steady pace; each one's latency runs from the moment this process closed it to the timestamp
of the daemon's ``file_uploaded`` log line, written once the upload is in the state database.
The settle time is the floor by design (a file must be quiet that long), so it is the
baseline: the target allows 0.2 s on top of it for the median.
"""

from __future__ import annotations

import math
import time

from benchmarks.configs import write_syncd_config
from benchmarks.context import BenchContext
from benchmarks.daemon import DaemonProcess, event_time, poll
from benchmarks.datasets import chat_jsonl
from benchmarks.results import Figure, Target, result, times
from benchmarks.servers import EmulatorProcess

__all__ = ["percentile", "run"]

_SETTLE_S = 0.5
_SLACK_S = 0.2
#: Seconds between two files: a steady trickle, several files settling at any moment.
_INTERVAL_S = 0.05


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def run(ctx: BenchContext) -> dict[str, object]:
    count = ctx.size(200, 40)
    workdir = ctx.scratch("latency")
    folder = workdir / "watched"
    folder.mkdir()
    closed_at: dict[str, float] = {}
    uploaded_at: dict[str, float] = {}
    try:
        with EmulatorProcess(ctx.python, workdir / "emulator-data") as emulator:
            setup = write_syncd_config(
                workdir,
                folder=folder,
                server_url=emulator.url,
                concurrency=4,
                settle=f"{int(_SETTLE_S * 1000)}ms",
            )
            with DaemonProcess(ctx.python, setup, cwd=ctx.repo) as daemon:

                def started() -> bool | None:
                    daemon.check_alive()
                    events = daemon.log.read()
                    return True if any(e["event"] == "rescan_finished" for e in events) else None

                poll(started, timeout=60, interval=0.05, what="the daemon's startup rescan")
                ctx.log(f"latency: writing {count} files, one every {_INTERVAL_S * 1000:.0f} ms")
                begin = time.monotonic()
                for index in range(count):
                    # Paced against the start, so a slow write does not stretch the schedule.
                    delay = begin + index * _INTERVAL_S - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    name = f"file-{index:04d}.jsonl"
                    with (folder / name).open("wb") as handle:
                        handle.write(chat_jsonl(f"latency {index}", 2048))
                    closed_at[name] = time.time()

                def all_uploaded() -> bool | None:
                    daemon.check_alive()
                    for event in daemon.log.read():
                        if event["event"] == "file_uploaded":
                            uploaded_at[str(event["path"])] = event_time(event)
                    return True if len(uploaded_at) >= count else None

                poll(all_uploaded, timeout=60 + count, interval=0.1, what="every upload")
    finally:
        ctx.discard(workdir)
    latencies = [uploaded_at[name] - closed for name, closed in closed_at.items()]
    p50 = percentile(latencies, 0.5)
    p95 = percentile(latencies, 0.95)
    figures = [
        Figure(
            name=f"close -> upload recorded, p50 of {count} files",
            unit="s",
            syncd=p50,
            baseline=_SETTLE_S,
            baseline_label="settle",
            ratio=times(p50, _SETTLE_S),
            ratio_means="of settle",
            target=Target("value_at_most", _SETTLE_S + _SLACK_S),
        ),
        Figure(
            name=f"close -> upload recorded, p95 of {count} files",
            unit="s",
            syncd=p95,
            baseline=_SETTLE_S,
            baseline_label="settle",
            ratio=times(p95, _SETTLE_S),
            ratio_means="of settle",
        ),
    ]
    return result(
        figures,
        {
            "files": count,
            "settle_s": _SETTLE_S,
            "interval_s": _INTERVAL_S,
            "min_s": min(latencies),
            "max_s": max(latencies),
            "latencies_s": sorted(latencies),
        },
    )
