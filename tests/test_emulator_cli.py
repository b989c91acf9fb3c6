"""``syncd emulator`` as a real subprocess: prints its URL, serves, exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import wait_until

PREFIX = "syncd emulator listening on "


def start_cli(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd",
            "emulator",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def url_of(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith(PREFIX), line
    return line.removeprefix(PREFIX).strip()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_serves_on_a_free_port_and_exits_0_on_sigterm(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    """--port 0 prints the real URL, the API answers there, SIGTERM ends it with status 0."""
    process = start_cli(tmp_path / "data", "--api-key", "cli-key")
    processes.append(process)
    url = url_of(process)
    assert not url.endswith(":0")
    headers = {"Authorization": "Bearer cli-key"}
    created = httpx.post(
        url + "/v1/files", headers=headers, files={"file": ("t.jsonl", b'{"text":"x"}\n')}
    )
    assert created.status_code == 200
    assert (
        httpx.get(url + "/v1/files", headers={"Authorization": "Bearer other"}).status_code == 401
    )
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert (tmp_path / "data" / "blobs" / created.json()["id"]).is_file()


def test_options_reach_the_server_and_sigint_exits_0(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    """Key from the environment, fault options and --no-dedupe apply; SIGINT exits 0."""
    process = start_cli(
        tmp_path / "data",
        "--fault-rate",
        "1",
        "--fault-kinds",
        "503",
        "--retry-after",
        "3",
        "--no-dedupe",
        env={"SYNCD_EMULATOR_API_KEY": "env-key"},
    )
    processes.append(process)
    url = url_of(process)
    headers = {"Authorization": "Bearer env-key"}
    response = httpx.get(url + "/v1/files", headers=headers)
    assert (response.status_code, response.headers["retry-after"]) == (503, "3")
    control = httpx.post(url + "/_emulator/faults", headers=headers, json={"fault_rate": 0})
    assert control.status_code == 200
    ids = {
        httpx.post(
            url + "/v1/files", headers=headers, files={"file": ("t.jsonl", b'{"text":"x"}\n')}
        ).json()["id"]
        for _ in range(2)
    }
    assert len(ids) == 2
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    """An unknown fault kind is rejected with exit status 2 and a message naming it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncd",
            "emulator",
            "--data-dir",
            str(tmp_path),
            "--fault-kinds",
            "429,boom",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "boom" in result.stderr


def test_purposes_option_sets_the_accepted_purposes(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    """--purposes replaces the closed purpose set; an empty list is a usage error."""
    process = start_cli(tmp_path / "data", "--purposes", "fine-tune, retrieval")
    processes.append(process)
    url = url_of(process)
    headers = {"Authorization": "Bearer any"}
    chat = b'{"text":"x"}\n'
    for purpose, status in (("retrieval", 200), ("fine-tune", 200), ("ocr", 422)):
        response = httpx.post(
            url + "/v1/files",
            headers=headers,
            files={"file": (f"{purpose}.jsonl", chat)},
            data={"purpose": purpose},
        )
        assert response.status_code == status, (purpose, response.text)
    assert response.json()["detail"][0]["msg"] == "Input should be 'fine-tune' or 'retrieval'"
    refused = subprocess.run(
        [sys.executable, "-m", "syncd", "emulator", "--data-dir", str(tmp_path), "--purposes", ","],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2
    assert "--purposes" in refused.stderr


def test_busy_port_exits_1(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    """Starting on a port already in use fails with exit status 1 and says why."""
    first = start_cli(tmp_path / "one")
    processes.append(first)
    port = url_of(first).rsplit(":", 1)[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncd",
            "emulator",
            "--port",
            port,
            "--data-dir",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot start" in result.stderr


def run_one_batch_job(url: str, headers: dict[str, str], requests: bytes) -> str:
    uploaded = httpx.post(
        url + "/v1/files",
        headers=headers,
        files={"file": ("requests.jsonl", requests)},
        data={"purpose": "batch"},
    ).json()
    job = httpx.post(
        url + "/v1/batch/jobs",
        headers=headers,
        json={"input_files": [uploaded["id"]], "endpoint": "/v1/chat/completions", "model": "m"},
    ).json()
    job_id: str = job["id"]
    return job_id


def test_batch_job_options_set_how_jobs_run(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    """--batch-job-seconds 0 runs a job to SUCCESS at once; --manual-jobs leaves it QUEUED
    (still so once a job created after it on the other server has finished)."""
    requests = b'{"custom_id":"0","body":{"messages":[{"role":"user","content":"hi"}]}}\n'
    headers = {"Authorization": "Bearer any"}
    fast = start_cli(tmp_path / "fast", "--batch-job-seconds", "0")
    manual = start_cli(tmp_path / "manual", "--manual-jobs")
    processes += [fast, manual]
    fast_url, manual_url = url_of(fast), url_of(manual)
    held = run_one_batch_job(manual_url, headers, requests)
    ran = run_one_batch_job(fast_url, headers, requests)
    wait_until(
        lambda: (
            httpx.get(f"{fast_url}/v1/batch/jobs/{ran}", headers=headers).json()["status"]
            == "SUCCESS"
        ),
        what="the job to succeed",
    )
    listing = httpx.get(manual_url + "/v1/batch/jobs", headers=headers).json()
    assert {job["id"]: job["status"] for job in listing["data"]} == {held: "QUEUED"}
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncd",
            "emulator",
            "--data-dir",
            str(tmp_path),
            "--batch-job-seconds",
            "-1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2
    assert "--batch-job-seconds" in refused.stderr
