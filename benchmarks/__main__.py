"""``python -m benchmarks [NAME ...] [--quick]``: run the suite, print the table, write the JSON.

With no names every benchmark runs, in an order that lets the rescan reuse the 100,000-file
tree the memory benchmark synced. ``--quick`` shrinks every size so the whole suite is a
smoke test of about a minute. Results go to ``benchmarks/results/latest.json``. Missing a
target does not fail the run: the exit status is 1 only when a benchmark crashed.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import json
import os
import platform
import sys
import sysconfig
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.context import REPO_ROOT, BenchContext
from benchmarks.results import format_table

__all__ = ["BENCHMARKS", "main", "run_suite"]

#: Name -> module, in the order a full run uses.
BENCHMARKS: dict[str, str] = {
    "hashing": "benchmarks.bench_hashing",
    "emulator": "benchmarks.bench_emulator",
    "upload": "benchmarks.bench_upload",
    "small_files": "benchmarks.bench_small_files",
    "latency": "benchmarks.bench_latency",
    "memory": "benchmarks.bench_memory",
    "status_page": "benchmarks.bench_status_page",
    "rescan": "benchmarks.bench_rescan",
    "validation": "benchmarks.bench_validation",
    "fleet": "benchmarks.bench_fleet",
    "cli_startup": "benchmarks.bench_cli_startup",
    "results": "benchmarks.bench_results",
}

DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "latest.json"


def machine() -> dict[str, object]:
    """The facts a reader needs to compare two result files."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def run_suite(names: list[str], *, quick: bool, output: Path) -> dict[str, object]:
    """Run ``names`` in suite order; return (and write to ``output``) the JSON document."""
    started = time.monotonic()
    document: dict[str, object] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
    }
    outcomes: dict[str, dict[str, object]] = {}
    # Byte-compiled up front, as installing a wheel does: an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile syncd's sources in every timed process.
    for package in ("syncd", "benchmarks"):
        compileall.compile_dir(REPO_ROOT / package, quiet=1)
    # The environment's packages too (SQLAlchemy, httpx, the mistralai SDK...): uv installs
    # them without byte code unless asked, and with PYTHONDONTWRITEBYTECODE every timed process
    # compiled them again, about half a second of start-up for syncd and for the SDK loop alike.
    compileall.compile_dir(sysconfig.get_paths()["purelib"], quiet=1, workers=0)
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as temp:
        ctx = BenchContext(root=Path(temp), quick=quick)
        for name in (n for n in BENCHMARKS if n in names):
            ctx.log(f"{name}: start")
            bench_started = time.monotonic()
            try:
                module = importlib.import_module(BENCHMARKS[name])
                outcome: dict[str, object] = module.run(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the rest
                traceback.print_exc()
                outcome = {"error": f"{type(exc).__name__}: {exc}"}
            outcome["duration_s"] = round(time.monotonic() - bench_started, 2)
            outcomes[name] = outcome
            ctx.log(f"{name}: done in {outcome['duration_s']}s")
    document["benchmarks"] = outcomes
    document["duration_s"] = round(time.monotonic() - started, 2)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true", help="reduced sizes (about a minute)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    names = args.names or list(BENCHMARKS)
    document = run_suite(names, quick=args.quick, output=args.output)
    benchmarks = document["benchmarks"]
    assert isinstance(benchmarks, dict)
    print(format_table(benchmarks))
    print(f"\nresults: {args.output}  ({document['duration_s']} s)")
    return 1 if any("error" in outcome for outcome in benchmarks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
