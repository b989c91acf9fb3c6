"""The status page's Results section as a person sees it, in headless Chromium (issue 24):
a job done with the file it wrote, and one held by the spending guard with its reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from syncd.emulator import EmulatorServer
from tests.configs import write_batch_file
from tests.conftest import StartDaemon
from tests.results_support import SUBMIT, results_config
from tests.support import wait_until

pytestmark = [pytest.mark.e2e]


def test_the_page_shows_jobs_done_and_held_with_their_reason(
    browser: Browser,
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    start_daemon: StartDaemon,
) -> None:
    emulator = make_emulator(batch_job_seconds=0.3)
    config = results_config(
        tmp_path,
        emulator,
        batch={**SUBMIT, "max_jobs_per_hour": "1"},
        sections={"metrics": {"listen": '"127.0.0.1:0"'}},
    )
    write_batch_file(tmp_path / "in" / "batch" / "first.jsonl", salt="1")
    daemon = start_daemon(config)
    url = "http://" + daemon.wait_event("metrics_listening")["listen"]
    daemon.wait_event("results_downloaded", timeout=30, path="first.jsonl")
    write_batch_file(tmp_path / "in" / "batch" / "second.jsonl", salt="2")
    daemon.wait_event("job_held", timeout=30, path="second.jsonl")
    job_id = httpx.get(url + "/api/jobs").json()["jobs"][-1]["job_id"]

    page = browser.new_context().new_page()
    wait_until(lambda: page.goto(url) and page.locator("#results").count(), timeout=10)
    done = page.locator("#results tr.job-done", has_text="first.jsonl")
    expect(done.locator("td.state")).to_have_text("done")
    expect(done.locator("td.job-id")).to_contain_text(job_id)
    expect(done.locator("td.reason")).to_contain_text("first.output.jsonl")
    held = page.locator("#results tr.job-held", has_text="second.jsonl")
    expect(held.locator("td.state")).to_have_text("held")
    expect(held.locator("td.reason")).to_contain_text("spending guard")
    expect(page.locator("#results p.counts")).to_contain_text("1 held")
