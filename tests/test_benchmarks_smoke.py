"""The benchmark suite runs and reports well-formed figures; speed itself is never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.results import Figure, Target, format_table

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_writes_positive_figures_for_each_benchmark(tmp_path: Path) -> None:
    """``--quick hashing emulator validation`` prints the table and writes positive figures."""
    output = tmp_path / "latest.json"
    names = ["hashing", "emulator", "validation"]
    command = ["-m", "benchmarks", *names, "--quick", "--output", str(output)]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["quick"] is True
    assert {"cpu_model", "cores", "python"} <= set(report["machine"])
    assert set(report["benchmarks"]) == set(names)
    for outcome in report["benchmarks"].values():
        assert "error" not in outcome
        assert outcome["figures"]
        for figure in outcome["figures"]:
            assert {"name", "unit", "syncd", "baseline", "ratio", "target", "passed"} <= set(figure)
            assert figure["syncd"] > 0
            assert figure["baseline"] > 0
            assert figure["ratio"] > 0
    (hashing,) = report["benchmarks"]["hashing"]["figures"]
    assert hashing["target"] == "ratio >= 0.9"
    assert isinstance(hashing["passed"], bool)
    assert "hashing: hash_file throughput" in done.stdout
    assert "validation: fine-tune validation" in done.stdout


def test_targets_judge_the_ratio_or_the_value_in_the_stated_direction() -> None:
    """A ratio target reads the ratio, a value target the syncd figure; the table says so."""
    fast = Figure("rate", "MB/s", 90.0, 100.0, "ref", 0.9, target=Target("ratio_at_least", 0.9))
    slow = Figure("time", "s", 4.0, 1.0, "ref", 4.0, target=Target("ratio_at_most", 3.0))
    small = Figure("rss", "MB", 80.0, target=Target("value_at_most", 100))
    unknown = Figure("p", "s", 1.0, target=Target("ratio_at_least", 1.0))
    assert (fast.passed, slow.passed, small.passed, unknown.passed) == (True, False, True, None)
    table = format_table({"demo": {"figures": [f.to_json() for f in (fast, slow, small, unknown)]}})
    verdicts = [line.split()[-1] for line in table.splitlines()[2:]]
    assert verdicts == ["PASS", "FAIL", "PASS", "n/a"]
    assert "<= 100 MB" in table
