"""Figure 11: the CLI answers at once: ``syncd --help``, ``syncd status`` on a small store and
``syncd check-config``, each against ``python -c "import sqlalchemy"`` on the same machine.

Every contender is a whole process, as a user runs it (the installed interpreter and
``-m syncd``), best of N, alternating with the baseline so a busy neighbour moves both. The
store is a real one synced from a few files by ``syncd sync`` against the embedded emulator.

The goal is on wall time. Each figure also has its CPU time (user + system, the child's own):
on a shared host whose load is several times its cores, a wall-time ratio moves by half from
run to run; the CPU time is what start-up costs, and moves far less.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.context import BenchContext
from benchmarks.results import Figure, Target, result, times

__all__ = ["run"]

_GOAL = 2.0  # each command within 2x of importing SQLAlchemy


def _setup(root: Path) -> Path:
    """A config on the embedded emulator with three synced files; returns its path."""
    folder = root / "data"
    folder.mkdir(parents=True)
    line = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
    for i in range(3):
        (folder / f"sample-{i}.jsonl").write_text(f"{line}\n" * (i + 1), encoding="utf-8")
    config = root / "config.toml"
    config.write_text(
        '[api]\nserver_url = "embedded"\n'
        f'[state]\nurl = "sqlite:///{root / "state.db"}"\n'
        '[log]\nformat = "json"\nlevel = "warning"\n'
        f'[[folders]]\npath = "{folder}"\npurpose = "fine-tune"\n',
        encoding="utf-8",
    )
    subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "sync", "--no-progress"],
        check=True,
        capture_output=True,
        env=_env(),
    )
    return config


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SYNCD_CONFIG", "MISTRAL_API_KEY")}
    env["COLUMNS"] = "100"
    return env


def _cpu_of_children() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _time(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv`` (runs are one at a time, so the
    children's CPU time that grew is this child's)."""
    cpu_before = _cpu_of_children()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=_env(), check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]!r}")
    return elapsed, _cpu_of_children() - cpu_before


def run(ctx: BenchContext) -> dict[str, object]:
    rounds = ctx.size(7, 3)
    workdir = ctx.scratch("cli_startup")
    config = _setup(workdir)
    syncd = [sys.executable, "-m", "syncd"]
    baseline = [sys.executable, "-c", "import sqlalchemy"]
    commands = {
        "syncd --help": [*syncd, "--help"],
        "syncd status (3 files)": [*syncd, "-c", str(config), "status"],
        "syncd check-config": [*syncd, "-c", str(config), "check-config"],
    }
    samples: dict[str, list[float]] = {"baseline": [], **{name: [] for name in commands}}
    cpu: dict[str, list[float]] = {name: [] for name in samples}
    for argv in [baseline, *commands.values()]:
        _time(argv)  # warm the page cache and the byte-code
    for _ in range(rounds):
        for name, argv in {"baseline": baseline, **commands}.items():
            wall, used = _time(argv)
            samples[name].append(wall)
            cpu[name].append(used)
    figures = []
    for name in commands:
        for what, measured, target in (
            ("wall time", samples, Target("ratio_at_most", _GOAL)),
            ("CPU time", cpu, None),
        ):
            best, best_baseline = min(measured[name]), min(measured["baseline"])
            figures.append(
                Figure(
                    name=f"{name}, {what}",
                    unit="s",
                    syncd=best,
                    baseline=best_baseline,
                    baseline_label='python -c "import sqlalchemy"',
                    ratio=times(best, best_baseline),
                    ratio_means="of importing sqlalchemy",
                    target=target,
                )
            )
    ctx.discard(workdir)
    return result(figures, {"rounds": rounds, "seconds": samples, "cpu_seconds": cpu})
