"""Figure 1: ``syncd.hashing.hash_file`` throughput against ``openssl dgst -sha256``.

Both hash the same file from the page cache (a first read warms it), alternating, and the best
of each is kept: the figure is the hashing path's speed, not the disk's or a neighbour's.
"""

from __future__ import annotations

import subprocess
import time

from benchmarks.context import BenchContext
from benchmarks.datasets import write_random_file
from benchmarks.results import Figure, Target, result, times
from syncd.hashing import hash_file

__all__ = ["run"]

_GIB = 1024**3
_MIB = 1024**2


def run(ctx: BenchContext) -> dict[str, object]:
    size = ctx.size(_GIB, 64 * _MIB)
    rounds = ctx.size(3, 2)
    workdir = ctx.scratch("hashing")
    path = workdir / "payload.bin"
    ctx.log(f"hashing: writing {size // _MIB} MiB")
    write_random_file(path, size)
    try:
        hash_file(path)  # warm the page cache; both contenders then read from memory
        syncd_times: list[float] = []
        openssl_times: list[float] = []
        for _ in range(rounds):
            started = time.perf_counter()
            digest, _stat = hash_file(path)
            syncd_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            out = subprocess.run(
                ["openssl", "dgst", "-sha256", "-r", str(path)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            openssl_times.append(time.perf_counter() - started)
            if out.split()[0] != digest:
                raise RuntimeError(f"digests differ: syncd {digest}, openssl {out.split()[0]}")
    finally:
        ctx.discard(workdir)
    syncd_rate = size / min(syncd_times) / 1e6
    openssl_rate = size / min(openssl_times) / 1e6
    figure = Figure(
        name=f"hash_file throughput, {size // _MIB} MiB file",
        unit="MB/s",
        syncd=syncd_rate,
        baseline=openssl_rate,
        baseline_label="openssl dgst -sha256",
        ratio=times(syncd_rate, openssl_rate),
        ratio_means="of openssl",
        target=Target("ratio_at_least", 0.9),
    )
    return result(
        [figure],
        {
            "bytes": size,
            "rounds": rounds,
            "syncd_seconds": syncd_times,
            "openssl_seconds": openssl_times,
        },
    )
