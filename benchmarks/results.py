"""Figures, their targets, and the two forms of the report: a table and a JSON document.

Every figure carries the syncd number and the baseline a user would compare it with, measured
in the same run, so a slow machine or a busy neighbour moves both. A target only reports; the
suite never fails because of one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Figure",
    "Target",
    "format_table",
    "result",
    "speedup",
    "times",
]

TargetKind = Literal["ratio_at_least", "ratio_at_most", "value_at_least", "value_at_most"]


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on a figure's ratio or on its syncd value."""

    kind: TargetKind
    bound: float

    def is_met(self, value: float, ratio: float | None) -> bool | None:
        """Whether the bound holds; None when the ratio it is about is missing."""
        if self.kind.startswith("ratio"):
            if ratio is None or math.isnan(ratio):
                return None
            subject = ratio
        else:
            subject = value
        return subject >= self.bound if self.kind.endswith("least") else subject <= self.bound

    def describe(self, unit: str) -> str:
        sign = ">=" if self.kind.endswith("least") else "<="
        if self.kind.startswith("ratio"):
            return f"ratio {sign} {self.bound:g}"
        return f"{sign} {self.bound:g} {unit}".rstrip()


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure: syncd's value, the baseline's, and how they compare.

    ``ratio_means`` says how the ratio reads ("syncd / openssl", "loop / syncd = x faster"):
    each benchmark picks the direction in which its target is stated.
    """

    name: str
    unit: str
    syncd: float
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    ratio_means: str = ""
    target: Target | None = None
    note: str = ""
    #: The figure before the change that set the target (as the issue measured it), if any.
    before: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.is_met(self.syncd, self.ratio)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "unit": self.unit,
            "syncd": self.syncd,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "ratio_means": self.ratio_means,
            "target": None if self.target is None else self.target.describe(self.unit),
            "target_kind": None if self.target is None else self.target.kind,
            "target_bound": None if self.target is None else self.target.bound,
            "passed": self.passed,
            "note": self.note,
            "before": self.before,
        }


def times(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else None


def speedup(baseline_seconds: float, syncd_seconds: float) -> float | None:
    """How many times faster syncd was than the baseline (both wall-clock seconds)."""
    return times(baseline_seconds, syncd_seconds)


def result(figures: list[Figure], details: dict[str, object]) -> dict[str, object]:
    """The dict a benchmark's ``run(ctx)`` returns: its figures and the raw measurements."""
    return {"figures": [figure.to_json() for figure in figures], "details": details}


_HEADERS = ("figure", "syncd", "baseline", "ratio", "before", "target", "result")


def format_table(benchmarks: dict[str, dict[str, object]]) -> str:
    """The report table: one row per figure, grouped by benchmark."""
    rows: list[tuple[str, ...]] = []
    for bench_name, outcome in benchmarks.items():
        error = outcome.get("error")
        if error is not None:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else "?"
            rows.append((f"{bench_name}: ERROR {first_line[:100]}", "", "", "", "", "", "error"))
            continue
        figures = outcome.get("figures", [])
        assert isinstance(figures, list)
        for figure in figures:
            assert isinstance(figure, dict)
            rows.append(_row(bench_name, figure))
    widths = [max(len(row[i]) for row in [_HEADERS, *rows]) for i in range(len(_HEADERS))]
    lines = [_line(_HEADERS, widths), _line(tuple("-" * w for w in widths), widths)]
    lines.extend(_line(row, widths) for row in rows)
    return "\n".join(lines)


def _row(bench_name: str, figure: dict[str, object]) -> tuple[str, ...]:
    unit = str(figure["unit"])
    syncd = _number(figure["syncd"], unit)
    baseline_value = figure["baseline"]
    baseline = ""
    if baseline_value is not None:
        baseline = f"{_number(baseline_value, unit)} ({figure['baseline_label']})"
    ratio_value = figure["ratio"]
    ratio = ""
    if isinstance(ratio_value, int | float):
        ratio = f"{ratio_value:.2f}x {figure['ratio_means']}".rstrip()
    passed = figure["passed"]
    if figure["target"] is None:
        verdict = "info"
    elif isinstance(passed, bool):
        verdict = "PASS" if passed else "FAIL"
    else:
        verdict = "n/a"
    return (
        f"{bench_name}: {figure['name']}",
        syncd,
        baseline,
        ratio,
        str(figure.get("before") or ""),
        str(figure["target"] or ""),
        verdict,
    )


def _number(value: object, unit: str) -> str:
    if not isinstance(value, int | float):
        return str(value)
    magnitude = abs(value)
    text = (
        f"{value:.3g}"
        if magnitude < 10
        else f"{value:,.0f}"
        if magnitude >= 1000
        else f"{value:.1f}"
    )
    return f"{text} {unit}".rstrip()


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
