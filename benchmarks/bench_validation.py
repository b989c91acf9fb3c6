"""Figure 8: fine-tune validation, syncd's own rules against mistral-common run per record.

syncd judges fine-tune files by rules that follow Mistral's fine-tuning code
(``syncd/validation/finetune.py``); the alternative was to run Mistral's own library at run time,
building ``mistral_common`` messages and running its finetuning validator on every record, the
way mistral-finetune does (``tests/finetune_oracle.py``). This benchmark measures both on the
same file (a warm page cache, best of the rounds), and what importing mistral-common would add
to the daemon's memory and start-up.

The file mixes the shapes users upload: plain chats, multi-turn chats with a system prompt and
weights, and function-calling conversations with a tools list. Every record is valid, so both
contenders do the whole work on every line.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from benchmarks.context import BenchContext
from benchmarks.results import Figure, Target, result, times
from syncd.validation import validate_file

__all__ = ["run"]

_MB = 1_000_000

_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
                "required": ["city"],
            },
        },
    }
]


def _records(index: int) -> list[dict[str, object]]:
    """Ten records: seven plain chats, two multi-turn ones, one function-calling exchange."""
    chat: dict[str, object] = {
        "messages": [
            {"role": "user", "content": f"Summarise document {index} in one sentence."},
            {"role": "assistant", "content": f"Document {index} explains a benchmark. " * 4},
        ]
    }
    multi: dict[str, object] = {
        "messages": [
            {"role": "system", "content": "You answer in French."},
            {"role": "user", "content": f"Question {index}?"},
            {"role": "assistant", "content": "Réponse.", "weight": 0},
            {"role": "user", "content": "Plus de détails ?"},
            {"role": "assistant", "content": f"Détails sur {index}. " * 5, "weight": 1},
        ]
    }
    call_id = f"{index % 10**9:09d}"
    calling: dict[str, object] = {
        "messages": [
            {"role": "user", "content": f"Weather in city {index}?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "content": '{"temp": 21}', "tool_call_id": call_id},
            {"role": "assistant", "content": "It is 21 degrees."},
        ],
        "tools": _TOOLS,
    }
    return [chat] * 7 + [multi] * 2 + [calling]


def write_mixed_jsonl(path: Path, size: int) -> int:
    """About ``size`` bytes of valid fine-tune records at ``path``; returns the record count."""
    written = records = 0
    with path.open("wb") as handle:
        index = 0
        while written < size:
            block = b"".join(json.dumps(r).encode() + b"\n" for r in _records(index))
            handle.write(block)
            written += len(block)
            records += 10
            index += 1
    return records


def _time_syncd(path: Path, size: int) -> float:
    started = time.perf_counter()
    verdict = validate_file(path, purpose="fine-tune", mode="strict", size=size)
    elapsed = time.perf_counter() - started
    if not verdict.ok:
        raise RuntimeError(f"syncd refused the benchmark file: {verdict.errors[:3]}")
    return elapsed


def _time_json_loads(path: Path) -> float:
    """Seconds to parse every line with ``json.loads``: the floor of any check per record."""
    loads = json.loads
    started = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            loads(line)
    return time.perf_counter() - started


def _time_mistral_common(path: Path) -> float | None:
    """Seconds for mistral-common to judge every record, or None when it is not installed."""
    try:
        from tests.finetune_oracle import oracle_verdict
    except ImportError:
        return None
    started = time.perf_counter()
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            refusal = oracle_verdict(json.loads(line))
            if refusal is not None:
                raise RuntimeError(f"mistral-common refused line {number}: {refusal}")
    return time.perf_counter() - started


_PROBE = """
import resource, sys, time
started = time.perf_counter()
import syncd.daemon
from syncd.validation import validate_file
{extra}
validate_file(__import__("pathlib").Path(sys.argv[1]), purpose="fine-tune", mode="strict",
              size=__import__("os").path.getsize(sys.argv[1]))
elapsed = time.perf_counter() - started
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, elapsed)
"""

_WITH_MISTRAL_COMMON = """
from tests.finetune_oracle import oracle_verdict
import json
for line in open(sys.argv[1], "rb"):
    oracle_verdict(json.loads(line))
"""


def _footprint(ctx: BenchContext, sample: Path, *, with_mistral_common: bool) -> tuple[int, float]:
    """Peak RSS (bytes) and seconds of a process that imports the daemon's modules and
    validates ``sample`` (with mistral-common as well, when asked)."""
    code = _PROBE.format(extra=_WITH_MISTRAL_COMMON if with_mistral_common else "")
    out = subprocess.run(
        [ctx.python, "-c", code, str(sample)],
        cwd=ctx.repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), float(out[1])


def run(ctx: BenchContext) -> dict[str, object]:
    size = ctx.size(200 * _MB, 8 * _MB)
    rounds = ctx.size(3, 2)
    workdir = ctx.scratch("validation")
    path = workdir / "mixed.jsonl"
    ctx.log(f"validation: writing {size // _MB} MB of fine-tune records")
    records = write_mixed_jsonl(path, size)
    actual = path.stat().st_size
    sample = workdir / "sample.jsonl"
    write_mixed_jsonl(sample, 200_000)
    try:
        path.read_bytes()  # warm the page cache
        syncd_times: list[float] = []
        loads_times: list[float] = []
        for _ in range(rounds):  # alternating, best of each kept
            syncd_times.append(_time_syncd(path, actual))
            loads_times.append(_time_json_loads(path))
        reference = [_time_mistral_common(path) for _ in range(ctx.size(1, 1))]
        plain_rss, plain_start = _footprint(ctx, sample, with_mistral_common=False)
        mc_rss, mc_start = _footprint(ctx, sample, with_mistral_common=True)
    finally:
        ctx.discard(workdir)
    syncd_rate = actual / min(syncd_times) / _MB
    loads_rate = actual / min(loads_times) / _MB
    reference_seconds = [s for s in reference if s is not None]
    reference_rate = actual / min(reference_seconds) / _MB if reference_seconds else None
    figures = [
        Figure(
            name=f"fine-tune validation, {actual // _MB} MB mixed JSONL ({records:,} records)",
            unit="MB/s",
            syncd=syncd_rate,
            baseline=reference_rate,
            baseline_label="mistral-common per record (as mistral-finetune)",
            ratio=times(syncd_rate, reference_rate) if reference_rate else None,
            ratio_means="of mistral-common",
            target=Target("ratio_at_least", 1.0),
        ),
        Figure(
            name="strict fine-tune validation against json.loads per line, same file",
            unit="MB/s",
            syncd=syncd_rate,
            baseline=loads_rate,
            baseline_label="json.loads of each line",
            ratio=times(syncd_rate, loads_rate),
            ratio_means="of json.loads",
            target=Target("ratio_at_least", 0.8),
            before="0.58x",
        ),
        Figure(
            name="daemon modules + validating a 0.2 MB file: peak RSS",
            unit="MB",
            syncd=plain_rss / 1e6,
            baseline=mc_rss / 1e6,
            baseline_label="the same with mistral-common",
            ratio=times(plain_rss, mc_rss),
            ratio_means="of with mistral-common",
            note=f"start-up + validation {plain_start:.2f} s vs {mc_start:.2f} s",
        ),
    ]
    return result(
        figures,
        {
            "bytes": actual,
            "records": records,
            "syncd_seconds": syncd_times,
            "json_loads_seconds": loads_times,
            "mistral_common_seconds": reference_seconds,
            "rss_bytes": {"syncd": plain_rss, "with_mistral_common": mc_rss},
            "startup_seconds": {"syncd": plain_start, "with_mistral_common": mc_start},
        },
    )
