"""Figure 3: one large upload through ``syncd.api`` against ``curl -F``, same emulator.

Each client runs as its own process (the emulator in a third), alternating, best round kept.
Both report the transfer time themselves (curl's ``time_total``, the ``upload`` call for syncd),
so interpreter start-up is not counted against syncd. The purpose is ``ocr``: the emulator
stores the bytes without a JSONL check, so the figure is the transfer, not validation. Peak
RSS is the whole syncd process's (``wait4``), beside curl's.
"""

from __future__ import annotations

import json

from benchmarks.context import BenchContext
from benchmarks.curl import curl_upload_argv, parse_curl_output
from benchmarks.datasets import write_random_file
from benchmarks.processes import MIB, run_measured
from benchmarks.results import Figure, Target, result, times
from benchmarks.servers import EmulatorProcess

__all__ = ["run"]


def run(ctx: BenchContext) -> dict[str, object]:
    size = ctx.size(400 * MIB, 32 * MIB)
    rounds = ctx.size(2, 1)
    workdir = ctx.scratch("upload")
    syncd_seconds: list[float] = []
    curl_seconds: list[float] = []
    syncd_rss: list[int] = []
    curl_rss: list[int] = []
    try:
        ctx.log(f"upload: writing {size // MIB} MiB")
        path = write_random_file(workdir / "payload.bin", size)
        with EmulatorProcess(ctx.python, workdir / "emulator-data") as emulator:
            for index in range(rounds):
                # A new name each time: the emulator's dedupe would still read every byte, but
                # it would keep one blob instead of storing each copy.
                ours = run_measured(
                    [
                        ctx.python,
                        "-m",
                        "benchmarks.upload_one",
                        emulator.url,
                        str(path),
                        "ocr",
                        f"syncd-{index}.pdf",
                    ],
                    output_dir=workdir,
                    cwd=ctx.repo,
                ).check("syncd upload")
                report = json.loads(ours.stdout)
                if report["bytes"] != size:
                    raise RuntimeError(f"emulator stored {report['bytes']} bytes of {size}")
                syncd_seconds.append(float(report["seconds"]))
                syncd_rss.append(ours.peak_rss_bytes)
                theirs = run_measured(
                    curl_upload_argv(
                        emulator.url, path, purpose="ocr", filename=f"curl-{index}.pdf"
                    ),
                    output_dir=workdir,
                ).check("curl upload")
                curl_run = parse_curl_output(theirs.stdout)
                if curl_run.ok != 1:
                    raise RuntimeError(f"curl upload answered {curl_run.statuses}")
                curl_seconds.append(curl_run.seconds)
                curl_rss.append(theirs.peak_rss_bytes)
    finally:
        ctx.discard(workdir)
    syncd_mbps = size / min(syncd_seconds) / 1e6
    curl_mbps = size / min(curl_seconds) / 1e6
    peak = max(syncd_rss) / 1e6
    curl_peak = max(curl_rss) / 1e6
    figures = [
        Figure(
            name=f"upload throughput, one {size // MIB} MiB file",
            unit="MB/s",
            syncd=syncd_mbps,
            baseline=curl_mbps,
            baseline_label="curl -F",
            ratio=times(syncd_mbps, curl_mbps),
            ratio_means="of curl",
            target=Target("ratio_at_least", 0.8),
        ),
        Figure(
            name=f"peak RSS of the uploading process ({size // MIB} MiB)",
            unit="MB",
            syncd=peak,
            baseline=curl_peak,
            baseline_label="curl -F",
            ratio=times(peak, curl_peak),
            ratio_means="of curl",
            target=Target("value_at_most", 100),
        ),
    ]
    return result(
        figures,
        {
            "bytes": size,
            "syncd_seconds": syncd_seconds,
            "curl_seconds": curl_seconds,
            "syncd_peak_rss_bytes": syncd_rss,
            "curl_peak_rss_bytes": curl_rss,
        },
    )
