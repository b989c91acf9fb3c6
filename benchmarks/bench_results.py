"""Figure 12: results come home. Time from dropping a file into a results folder to its results
being in place, with syncd's and the emulator's defaults (as ``make run``: settle 2 s, poll
every 2 s, a batch job 2 s), and the API requests that took.

A ``syncd run`` process on the embedded emulator watches a batch folder (``batch_jobs =
"submit"``) and an OCR folder; each round drops one file into each in turn (written beside,
renamed in) and waits for its results. The requests are the emulator's own count.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.context import REPO_ROOT, BenchContext
from benchmarks.results import Figure, result

__all__ = ["run"]

_PDF = REPO_ROOT / "example-data" / "ocr" / "sample-page.pdf"


def _config(root: Path) -> Path:
    config = root / "config.toml"
    config.write_text(
        '[api]\nserver_url = "embedded"\n'
        f'[state]\nurl = "sqlite:///{root / "state.db"}"\n'
        '[log]\nformat = "json"\nlevel = "info"\n'
        f'[[folders]]\npath = "{root / "batch"}"\npurpose = "batch"\n'
        f'results = "{root / "out-batch"}"\nbatch_jobs = "submit"\n'
        'batch_model = "mistral-small-latest"\nbatch_endpoint = "/v1/chat/completions"\n'
        f'[[folders]]\npath = "{root / "ocr"}"\npurpose = "ocr"\nresults = "{root / "out-ocr"}"\n',
        encoding="utf-8",
    )
    for name in ("batch", "ocr"):
        (root / name).mkdir()
    return config


def _wait(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for results")
        time.sleep(0.02)


def _requests(url: str) -> int:
    return int(httpx.get(url + "/_emulator/stats").json()["requests"])


def _drop(source: bytes, target: Path) -> None:
    staging = target.with_name(f".{target.name}.part")
    staging.write_bytes(source)
    staging.replace(target)


def run(ctx: BenchContext) -> dict[str, object]:
    rounds = ctx.size(5, 2)
    root = ctx.scratch("results")
    config = _config(root)
    log = (root / "daemon.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k != "MISTRAL_API_KEY"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "-c", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
    )
    samples: dict[str, list[float]] = {"batch": [], "ocr": []}
    requests: dict[str, list[int]] = {"batch": [], "ocr": []}
    try:
        url_file = root / "emulator" / "url"
        _wait(url_file.exists, 60)
        url = url_file.read_text().strip()
        for i in range(rounds):
            line = (
                '{"custom_id": "%d-%d", "body": {"messages": [{"role": "user", '
                '"content": "q%d"}], "max_tokens": 8}}\n'
            )
            batch = "".join(line % (i, n, n) for n in range(20)).encode()
            cases = {
                "batch": (
                    batch,
                    root / "batch" / f"r{i}.jsonl",
                    root / "out-batch" / f"r{i}.output.jsonl",
                ),
                "ocr": (
                    _PDF.read_bytes() + f"\n% round {i}\n".encode(),
                    root / "ocr" / f"d{i}.pdf",
                    root / "out-ocr" / f"d{i}.ocr.json",
                ),
            }
            for kind, (content, target, outcome) in cases.items():
                before = _requests(url)
                started = time.monotonic()
                _drop(content, target)
                _wait(outcome.exists, 120)
                samples[kind].append(time.monotonic() - started)
                requests[kind].append(_requests(url) - before)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    figures = [
        Figure(
            name="batch file dropped -> output in place (defaults: settle 2s, poll 2s, job 2s)",
            unit="s",
            syncd=statistics.median(samples["batch"]),
            note=f"median of {rounds}; API requests each: {sorted(requests['batch'])}",
        ),
        Figure(
            name="PDF dropped -> Markdown in place (defaults: settle 2s)",
            unit="s",
            syncd=statistics.median(samples["ocr"]),
            note=f"median of {rounds}; API requests each: {sorted(requests['ocr'])}",
        ),
    ]
    shutil.rmtree(root, ignore_errors=True)
    return result(figures, {"seconds": samples, "requests": requests})
