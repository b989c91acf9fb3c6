"""Figure 11: the CLI answers at once: ``syncd --help``, ``syncd status`` on a small store and
``syncd check-config``, each against ``python -c "import sqlalchemy"`` on the same machine.

Every contender is a whole process, as a user runs it (the installed interpreter and
``-m syncd``), best of N, alternating with the baseline so a busy neighbour moves both. The
store is a real one synced from a few files by ``syncd sync`` against the embedded emulator.
"""

from __future__ import annotations

import os
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


def _time(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=_env(), check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]!r}")
    return elapsed


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
    for argv in [baseline, *commands.values()]:
        _time(argv)  # warm the page cache and the byte-code
    for _ in range(rounds):
        samples["baseline"].append(_time(baseline))
        for name, argv in commands.items():
            samples[name].append(_time(argv))
    best_baseline = min(samples["baseline"])
    figures = [
        Figure(
            name=f"{name}, wall time",
            unit="s",
            syncd=min(samples[name]),
            baseline=best_baseline,
            baseline_label='python -c "import sqlalchemy"',
            ratio=times(min(samples[name]), best_baseline),
            ratio_means="of importing sqlalchemy",
            target=Target("ratio_at_most", _GOAL),
        )
        for name in commands
    ]
    ctx.discard(workdir)
    return result(figures, {"rounds": rounds, "seconds": samples})
