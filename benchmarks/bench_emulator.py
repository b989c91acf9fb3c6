"""Figure 7: the emulator's own throughput, which figures 3 to 6 lean on.

curl drives it (C, so the client is not the bottleneck): many small fine-tune uploads in
parallel for uploads/s, one large upload for MB/s. The baseline is the bare HTTP stack the
emulator is built on (uvicorn + h11, :mod:`benchmarks.sink`) under the same load: the ratio is
the share of the stack's speed left after the emulator's own work (multipart parsing, hashing,
content checks, SQLite, the blob on disk).
"""

from __future__ import annotations

from benchmarks.context import BenchContext
from benchmarks.curl import curl_upload, curl_upload_many
from benchmarks.datasets import write_jsonl_files, write_random_file
from benchmarks.results import Figure, result, times
from benchmarks.servers import EmulatorProcess, SinkProcess

__all__ = ["run"]

_MIB = 1024**2
_PARALLEL = 8


def run(ctx: BenchContext) -> dict[str, object]:
    count = ctx.size(2000, 200)
    big_size = ctx.size(200 * _MIB, 16 * _MIB)
    workdir = ctx.scratch("emulator")
    try:
        ctx.log(f"emulator: writing {count} small files and a {big_size // _MIB} MiB file")
        small = write_jsonl_files(workdir / "small", count, 4096)
        big = write_random_file(workdir / "big.bin", big_size)
        with EmulatorProcess(ctx.python, workdir / "emulator-data") as emulator:
            cpu_before = emulator.cpu_seconds()
            emu_many = curl_upload_many(
                emulator.url, small, purpose="fine-tune", parallel=_PARALLEL, workdir=workdir
            )
            emu_cpu = emulator.cpu_seconds() - cpu_before
            emu_big = curl_upload(emulator.url, big, purpose="ocr", filename="big.pdf")
        with SinkProcess(ctx.python, workdir / "sink.log") as sink:
            sink_many = curl_upload_many(
                sink.url, small, purpose="fine-tune", parallel=_PARALLEL, workdir=workdir
            )
            sink_big = curl_upload(sink.url, big, purpose="ocr", filename="big.pdf")
    finally:
        ctx.discard(workdir)
    if emu_many.ok != count or emu_big.ok != 1:
        raise RuntimeError(
            f"emulator refused uploads: {emu_many.ok}/{count} small, {emu_big.ok}/1 large"
        )
    emu_rate = count / emu_many.seconds
    sink_rate = count / sink_many.seconds
    emu_mbps = big_size / emu_big.seconds / 1e6
    sink_mbps = big_size / sink_big.seconds / 1e6
    figures = [
        Figure(
            name=f"uploads/s, {count} x 4 KiB fine-tune, {_PARALLEL} parallel (curl)",
            unit="uploads/s",
            syncd=emu_rate,
            baseline=sink_rate,
            baseline_label="bare uvicorn sink",
            ratio=times(emu_rate, sink_rate),
            ratio_means="of the sink",
            note="syncd column = the emulator",
        ),
        Figure(
            name=f"upload MB/s, one {big_size // _MIB} MiB file (curl)",
            unit="MB/s",
            syncd=emu_mbps,
            baseline=sink_mbps,
            baseline_label="bare uvicorn sink",
            ratio=times(emu_mbps, sink_mbps),
            ratio_means="of the sink",
            note="syncd column = the emulator",
        ),
    ]
    return result(
        figures,
        {
            "small_files": count,
            "parallel": _PARALLEL,
            "emulator_small_seconds": emu_many.seconds,
            "emulator_cpu_seconds_small": emu_cpu,
            "emulator_cpu_ms_per_upload": 1000 * emu_cpu / count,
            "sink_small_seconds": sink_many.seconds,
            "large_bytes": big_size,
            "emulator_large_seconds": emu_big.seconds,
            "sink_large_seconds": sink_big.seconds,
        },
    )
