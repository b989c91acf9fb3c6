"""Results come home (issue 24): a real daemon, the emulator over loopback, real folders.

Batch folders that submit one job per uploaded file, or wait for jobs someone else creates;
OCR folders whose documents come back as Markdown; the spending guard; and the crash cases
(SIGKILL between a job's create and its record, between a download and its rename).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mistralai.client import Mistral as OfficialMistral

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from tests.configs import write_batch_file
from tests.conftest import StartDaemon
from tests.results_support import (
    EXAMPLE_PDF,
    SUBMIT,
    audit_actions,
    custom_ids_of,
    emulator_requests,
    remote_jobs,
    results_config,
    set_faults,
    store_rows,
)
from tests.support import wait_until


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    """The emulator with short batch jobs (0.3 s instead of 2 s): the flow is the same."""
    return make_emulator(batch_job_seconds=0.3)


def test_a_submit_folder_brings_each_output_home_in_the_order_of_its_inputs(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """Drop a batch file: one job is created with its key in the metadata, and its output
    lands under the results folder's mirrored tree, in the input's custom_id order (the
    emulator writes output lines shuffled)."""
    config = results_config(tmp_path, emulator, batch=SUBMIT)
    source = write_batch_file(tmp_path / "in" / "batch" / "eu" / "q3.jsonl", n=12, salt="c")
    daemon = start_daemon(config)
    output = tmp_path / "out" / "batch" / "eu" / "q3.output.jsonl"
    wait_until(output.exists, timeout=30, what="the batch output")

    assert custom_ids_of(output) == custom_ids_of(source)
    [job] = remote_jobs(emulator, api_key)
    assert job.status == "SUCCESS"
    assert (job.metadata or {}).get("syncd_key")
    assert not (tmp_path / "out" / "batch" / "eu" / "q3.errors.jsonl").exists()
    actions = audit_actions(tmp_path)
    assert actions.count("job_created") == 1
    assert actions.count("results_downloaded") == 1
    assert store_rows(tmp_path, "select state, remote_job_id from jobs") == [("done", job.id)]
    assert [e["event"] for e in daemon.named("job_created")] == ["job_created"]


def test_ocr_documents_come_back_as_markdown_with_the_raw_answer_beside(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    config = results_config(tmp_path, emulator, ocr={})
    (tmp_path / "in" / "ocr" / "a").mkdir(parents=True)
    shutil.copy(EXAMPLE_PDF, tmp_path / "in" / "ocr" / "a" / "contract.pdf")
    daemon = start_daemon(config)
    markdown = tmp_path / "out" / "ocr" / "a" / "contract.md"
    daemon.wait_event("results_downloaded", timeout=30, path="a/contract.pdf")
    wait_until(
        lambda: store_rows(tmp_path, "select state from jobs") == [("done",)],
        timeout=10,
        what="the OCR job done",
    )

    assert "Hello from syncd" in markdown.read_text()
    raw = json.loads((tmp_path / "out" / "ocr" / "a" / "contract.ocr.json").read_text())
    assert [page["index"] for page in raw["pages"]] == [0]
    assert store_rows(tmp_path, "select kind, state, requests_sent, answers_lost from jobs") == [
        ("ocr", "done", 1, 0)
    ]


def test_a_job_created_by_hand_with_the_official_sdk_comes_home(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """``batch_jobs = "wait"``: syncd creates nothing; a job someone creates with the SDK on
    the file syncd uploaded is adopted and its output written back."""

    config = results_config(tmp_path, emulator)
    write_batch_file(tmp_path / "in" / "batch" / "q.jsonl", n=4, salt="w")
    daemon = start_daemon(config)
    uploaded = daemon.wait_event("file_uploaded", timeout=30, path="q.jsonl")
    daemon.wait_event("job_input_found", timeout=30, path="q.jsonl")
    assert remote_jobs(emulator, api_key) == []  # wait mode creates no job

    sdk = OfficialMistral(api_key=api_key, server_url=emulator.url)
    created = sdk.batch.jobs.create(
        input_files=[uploaded["file_id"]], endpoint="/v1/chat/completions", model="m"
    )
    output = tmp_path / "out" / "batch" / "q.output.jsonl"
    wait_until(output.exists, timeout=30, what="the adopted job's output")

    assert len(output.read_text().splitlines()) == 4
    assert daemon.wait_event("job_adopted", path="q.jsonl")["job"] == created.id
    assert "job_adopted" in audit_actions(tmp_path)
    assert [job.id for job in remote_jobs(emulator, api_key)] == [created.id]


def test_the_spending_guard_holds_what_is_over_the_hourly_cap_and_loses_nothing(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    config = results_config(tmp_path, emulator, batch={**SUBMIT, "max_jobs_per_hour": "1"})
    write_batch_file(tmp_path / "in" / "batch" / "a.jsonl", salt="a")
    write_batch_file(tmp_path / "in" / "batch" / "b.jsonl", salt="b")
    daemon = start_daemon(config)
    held = daemon.wait_event("job_held", timeout=30)
    wait_until(
        lambda: store_rows(tmp_path, "select count(*) from jobs where state = 'done'")[0][0] == 1,
        timeout=30,
        what="the first job done",
    )

    assert len(remote_jobs(emulator, api_key)) == 1
    assert "max_jobs_per_hour" in held["reason"]
    [(path, reason)] = store_rows(tmp_path, "select rel_path, reason from jobs where state='held'")
    assert path == held["path"]
    assert "spending guard" in reason


def test_a_failed_job_is_reported_with_the_apis_reason(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    start_daemon: StartDaemon,
) -> None:
    emulator = make_emulator(fault_rate=1.0, fault_kinds=("job-fail",), batch_job_seconds=0.3)
    config = results_config(tmp_path, emulator, batch=SUBMIT)
    write_batch_file(tmp_path / "in" / "batch" / "f.jsonl", salt="f")
    daemon = start_daemon(config)
    failed = daemon.wait_event("job_failed", timeout=30)

    assert failed["reason"].startswith("FAILED")
    [(state, reason)] = store_rows(tmp_path, "select state, reason from jobs")
    assert state == "failed" and reason.startswith("FAILED")
    assert store_rows(tmp_path, "select state from job_results") == [("failed",)]
    assert not (tmp_path / "out" / "batch" / "f.output.jsonl").exists()


def test_sigkill_between_a_job_create_and_its_record_creates_no_second_job(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """The create is served (the job exists) and its answer never comes; the daemon is
    killed while it waits. The next start finds the job by its metadata key."""
    set_faults(emulator, api_key, fault_rate=1.0, fault_kinds=["job-create-hang"])
    config = results_config(tmp_path, emulator, batch=SUBMIT)
    write_batch_file(tmp_path / "in" / "batch" / "k.jsonl", salt="k")
    first = start_daemon(config)
    wait_until(lambda: remote_jobs(emulator, api_key), timeout=30, what="the job created")
    assert store_rows(tmp_path, "select state, remote_job_id from jobs") == [("creating", None)]
    first.signal(signal.SIGKILL)
    first.kill()

    set_faults(emulator, api_key, fault_rate=0.0)
    second = start_daemon(config)
    output = tmp_path / "out" / "batch" / "k.output.jsonl"
    wait_until(output.exists, timeout=30, what="the output after the restart")

    [job] = remote_jobs(emulator, api_key)
    assert second.wait_event("job_found_again")["job"] == job.id
    assert store_rows(tmp_path, "select remote_job_id, requests_sent from jobs") == [(job.id, 1)]
    assert "job_created" not in audit_actions(tmp_path)


def test_sigkill_between_a_download_and_its_rename_leaves_no_torn_result(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """The output's content starts coming and stalls; the daemon is killed with the download
    in its temporary file. No result is in place; the next start lands it whole."""
    set_faults(emulator, api_key, fault_rate=1.0, fault_kinds=["download-stall"])
    config = results_config(tmp_path, emulator, batch=SUBMIT)
    source = write_batch_file(tmp_path / "in" / "batch" / "t.jsonl", n=20, salt="t")
    first = start_daemon(config)
    results = tmp_path / "out" / "batch"
    wait_until(
        lambda: list(results.glob(".t.output.jsonl.syncd-*.tmp")), timeout=30, what="a temporary"
    )
    first.signal(signal.SIGKILL)
    first.kill()
    assert not (results / "t.output.jsonl").exists()

    set_faults(emulator, api_key, fault_rate=0.0)
    start_daemon(config)
    output = results / "t.output.jsonl"
    wait_until(output.exists, timeout=30, what="the output after the restart")

    assert custom_ids_of(output) == custom_ids_of(source)
    assert len(remote_jobs(emulator, api_key)) == 1
    assert sorted(p.name for p in results.iterdir()) == ["t.output.jsonl"]


def test_an_edited_result_is_never_overwritten_and_a_copy_reuses_the_job(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    config = results_config(tmp_path, emulator, batch=SUBMIT)
    source = write_batch_file(tmp_path / "in" / "batch" / "e.jsonl", salt="e1")
    daemon = start_daemon(config)
    output = tmp_path / "out" / "batch" / "e.output.jsonl"
    wait_until(output.exists, timeout=30, what="the first output")

    # A copy of the same content joins the same job: its results come without a second job.
    shutil.copy(source, tmp_path / "in" / "batch" / "copy.jsonl")
    copy_output = tmp_path / "out" / "batch" / "copy.output.jsonl"
    wait_until(copy_output.exists, timeout=30, what="the copy's output")
    assert copy_output.read_bytes() == output.read_bytes()
    assert len(remote_jobs(emulator, api_key)) == 1

    # A person edits the result; then the input changes: the new result lands beside.
    output.write_text("my notes\n")
    write_batch_file(source, n=2, salt="e2")
    beside = daemon.wait_event(
        "results_downloaded", timeout=30, path="e.jsonl", beside_edited_file=True
    )
    assert output.read_text() == "my notes\n"
    [landed] = beside["results"]
    assert landed.startswith("e.output.") and landed != "e.output.jsonl"
    assert len(custom_ids_of(tmp_path / "out" / "batch" / landed)) == 2
    assert len(remote_jobs(emulator, api_key)) == 2
    # The lineage keeps both jobs.
    assert store_rows(tmp_path, "select count(*) from jobs") == [(2,)]


def test_no_listing_while_nothing_is_in_flight(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """Polling is cheap: once every job is done, the daemon sends the API nothing."""
    config = results_config(tmp_path, emulator, batch=SUBMIT)
    write_batch_file(tmp_path / "in" / "batch" / "p.jsonl", salt="p")
    daemon = start_daemon(config)
    output = tmp_path / "out" / "batch" / "p.output.jsonl"
    wait_until(output.exists, timeout=30, what="the output")
    daemon.wait_event("results_downloaded")
    before = emulator_requests(emulator, api_key)
    # Longer than several poll intervals (200 ms, at most 1 s): any poll would show.
    with pytest.raises(AssertionError):
        wait_until(
            lambda: emulator_requests(emulator, api_key) > before, timeout=3, what="a request"
        )


def test_jobs_show_on_the_status_api_the_page_metrics_and_the_manifest(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:

    config = results_config(
        tmp_path, emulator, batch=SUBMIT, sections={"metrics": {"listen": '"127.0.0.1:0"'}}
    )
    write_batch_file(tmp_path / "in" / "batch" / "v.jsonl", salt="v")
    daemon = start_daemon(config)
    base = "http://" + daemon.wait_event("metrics_listening")["listen"]
    daemon.wait_event("results_downloaded", timeout=30, path="v.jsonl")
    [remote] = remote_jobs(emulator, api_key)

    document = httpx.get(base + "/api/jobs").json()
    [job] = document["jobs"]
    assert (job["path"], job["state"], job["job_id"]) == ("v.jsonl", "done", remote.id)
    assert job["progress"]["succeeded"] == 3
    assert job["results"] == ["v.output.jsonl"]
    assert document["counts"] == {"batch": {"done": 1}}
    page = httpx.get(base + "/").text
    assert 'id="results"' in page and remote.id in page

    def gauges() -> str | None:
        text = httpx.get(base + "/metrics").text
        return text if 'syncd_jobs{folder="batch",state="done"} 1.0' in text else None

    metrics = wait_until(gauges, timeout=15, what="the jobs gauge")
    assert 'syncd_result_bytes_downloaded_total{folder="batch"}' in metrics

    manifest = subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "manifest"],
        capture_output=True,
        text=True,
        check=True,
    )
    status = subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    jobs = json.loads(status.stdout)["jobs"]
    assert jobs["counts"] == {"batch": {"done": 1}}
    assert [(j["path"], j["job_id"], j["results"]) for j in jobs["jobs"]] == [
        ("v.jsonl", remote.id, ["v.output.jsonl"])
    ]
    [row] = [json.loads(line) for line in manifest.stdout.splitlines()]
    assert (row["path"], row["job_id"], row["output_file_id"], row["results"]) == (
        "v.jsonl",
        remote.id,
        remote.output_file,
        ["v.output.jsonl"],
    )


def test_an_ocr_answer_lost_to_a_crash_is_counted_and_asked_again_once(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:

    set_faults(emulator, api_key, fault_rate=1.0, fault_kinds=["job-create-hang"])
    config = results_config(tmp_path, emulator, ocr={})
    shutil.copy(EXAMPLE_PDF, tmp_path / "in" / "ocr" / "scan.pdf")
    first = start_daemon(config)

    def served() -> bool:
        stats = httpx.get(
            emulator.url + "/_emulator/stats", headers={"Authorization": f"Bearer {api_key}"}
        ).json()
        return bool(stats["faults_by_kind"].get("job-create-hang"))

    wait_until(served, timeout=30, what="the OCR request served")
    first.signal(signal.SIGKILL)
    first.kill()
    set_faults(emulator, api_key, fault_rate=0.0)
    second = start_daemon(config)
    second.wait_event("results_downloaded", timeout=30, path="scan.pdf")
    wait_until(
        lambda: store_rows(tmp_path, "select state from jobs") == [("done",)],
        timeout=10,
        what="the OCR job done",
    )

    assert second.named("ocr_answer_lost")[0]["path"] == "scan.pdf"
    assert store_rows(tmp_path, "select state, requests_sent, answers_lost from jobs") == [
        ("done", 2, 1)
    ]
    assert "Hello from syncd" in (tmp_path / "out" / "ocr" / "scan.md").read_text()


def test_refused_request_lines_come_back_in_the_errors_file(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """A line the model refuses (no messages) is answered in the job's error file, which
    lands beside the output, each in the input's order."""
    config = results_config(tmp_path, emulator, batch={**SUBMIT, "validate": '"basic"'})
    good = '{"custom_id": "%s", "body": {"messages": [{"role": "user", "content": "q"}]}}'
    bad = '{"custom_id": "%s", "body": {"prompt": "no messages"}}'
    (tmp_path / "in" / "batch" / "mixed.jsonl").write_text(
        "\n".join([good % "a", bad % "b", good % "c", bad % "d"]) + "\n"
    )
    daemon = start_daemon(config)
    landed = daemon.wait_event("results_downloaded", timeout=30, path="mixed.jsonl")

    assert landed["results"] == ["mixed.output.jsonl", "mixed.errors.jsonl"]
    out = tmp_path / "out" / "batch"
    assert custom_ids_of(out / "mixed.output.jsonl") == ["a", "c"]
    assert sorted(custom_ids_of(out / "mixed.errors.jsonl")) == ["b", "d"]

    # A new version without errors: its output replaces the old one (syncd wrote it and
    # nobody edited it), and the old errors file goes.
    (tmp_path / "in" / "batch" / "mixed.jsonl").write_text(
        "\n".join([good % "e", good % "f"]) + "\n"
    )
    daemon.wait_event("stale_result_removed", timeout=30, path="mixed.jsonl")
    wait_until(
        lambda: custom_ids_of(out / "mixed.output.jsonl") == ["e", "f"],
        timeout=30,
        what="the new output in place",
    )
    assert sorted(p.name for p in out.iterdir()) == ["mixed.output.jsonl"]


def test_a_job_that_never_finishes_is_reported_overdue_and_still_followed(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    start_daemon: StartDaemon,
) -> None:

    emulator = make_emulator(fault_rate=1.0, fault_kinds=("job-stuck",), batch_job_seconds=0.3)
    config = results_config(
        tmp_path,
        emulator,
        batch=SUBMIT,
        sections={"results": {"overdue_after": '"1s"'}, "metrics": {"listen": '"127.0.0.1:0"'}},
    )
    write_batch_file(tmp_path / "in" / "batch" / "s.jsonl", salt="s")
    daemon = start_daemon(config)
    base = "http://" + daemon.wait_event("metrics_listening")["listen"]
    overdue = daemon.wait_event("job_overdue", timeout=30, path="s.jsonl")

    # Reported while queued or running (a loaded box may start it after the second), then
    # still followed: it is seen running, and stays marked overdue.
    assert overdue["status"] in ("QUEUED", "RUNNING")

    def running() -> dict[str, Any] | None:
        [job] = httpx.get(base + "/api/jobs").json()["jobs"]
        return job if job["state"] == "running" else None

    job = wait_until(running, timeout=30, what="the overdue job seen running")
    assert job["overdue"] is True


def test_retention_never_deletes_the_output_files_of_jobs(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """Retention deletes what syncd uploaded (the batch input), never a job's output file."""

    config = results_config(tmp_path, emulator, batch={**SUBMIT, "retention": '"1s"'})
    write_batch_file(tmp_path / "in" / "batch" / "r.jsonl", salt="r")
    daemon = start_daemon(config)
    daemon.wait_event("results_downloaded", timeout=30, path="r.jsonl")
    daemon.stop()
    [job] = remote_jobs(emulator, api_key)

    subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "cleanup"],
        check=True,
        capture_output=True,
        env={**os.environ, "MISTRAL_API_KEY": api_key},
    )

    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        remaining = {f.id for f in client.files.iter_all()}
    assert job.output_file in remaining
    assert job.input_files[0] not in remaining


def test_one_listing_per_folder_per_interval_however_many_jobs_run(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    start_daemon: StartDaemon,
) -> None:
    """Five jobs in flight in one folder cost one listing per poll interval, not five."""

    emulator = make_emulator(batch_job_seconds=30)
    config = results_config(
        tmp_path,
        emulator,
        batch=SUBMIT,
        sections={"results": {"poll_interval": '"250ms"', "poll_interval_max": '"1s"'}},
    )
    for n in range(5):
        write_batch_file(tmp_path / "in" / "batch" / f"j{n}.jsonl", salt=f"j{n}")
    daemon = start_daemon(config)
    wait_until(lambda: len(daemon.named("job_created")) == 5, timeout=30, what="five jobs")
    before, started = emulator_requests(emulator, api_key), time.monotonic()
    time.sleep(2.0)  # a measuring window, not a wait for something to happen
    requests = emulator_requests(emulator, api_key) - before
    listings_allowed = (time.monotonic() - started) / 0.25 + 2
    assert 1 <= requests <= listings_allowed


def test_an_input_swapped_for_a_fifo_never_stalls_its_results(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """The output is ordered by the input's custom_ids, read from the local file while it holds
    the job's content. Someone swaps the input for a FIFO before the job ends: opening it must
    not block the results for ever; the order comes from the uploaded copy instead."""

    config = results_config(tmp_path, emulator)
    source = write_batch_file(tmp_path / "in" / "batch" / "f.jsonl", n=6, salt="fifo")
    expected = custom_ids_of(source)
    daemon = start_daemon(config)
    uploaded = daemon.wait_event("file_uploaded", timeout=30, path="f.jsonl")
    daemon.wait_event("job_input_found", timeout=30, path="f.jsonl")
    source.unlink()
    os.mkfifo(source)

    sdk = OfficialMistral(api_key=api_key, server_url=emulator.url)
    sdk.batch.jobs.create(
        input_files=[uploaded["file_id"]], endpoint="/v1/chat/completions", model="m"
    )
    daemon.wait_event("results_downloaded", timeout=30, path="f.jsonl")
    assert custom_ids_of(tmp_path / "out" / "batch" / "f.output.jsonl") == expected
