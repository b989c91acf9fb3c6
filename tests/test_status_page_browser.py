"""The status page as a person sees it: a real daemon, its page in headless Chromium.

The daemon runs as a subprocess on folders with files in several states (uploaded, quarantined,
missing, pending behind a failing API); the page is loaded in Debian's Chromium through
Playwright, and the assertions read what is rendered: the folder rows and their counts, a
quarantine reason, a hostile file name shown as text (and never run), the lineage lookup, the
folder filter, and the token asked for off loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, chat_line, write_batch_file, write_chat_file, write_config
from tests.daemon_process import DaemonProcess
from tests.support import wait_until

pytestmark = [pytest.mark.e2e]

HOSTILE = "<img src=x onerror=\"window.__pwned=1\"> 'q'.jsonl"
RTL = "report-\u202elmth.jsonl"
TOKEN = "page-token-0123456789abcdef"


@dataclass
class RunningDaemon:
    url: str
    daemon: DaemonProcess
    root: Path
    ids: dict[str, str]
    """remote filename -> file id, as the emulator lists them"""


def _counts(url: str, **kwargs: Any) -> dict[str, dict[str, int]]:
    document = httpx.get(url + "/api/status", **kwargs).json()
    return {folder["name"]: folder["counts"] for folder in document["folders"]}


@pytest.fixture
def running(tmp_path: Path, emulator: EmulatorServer, start_daemon: Any) -> Iterator[RunningDaemon]:
    """A daemon on two folders whose files end up uploaded, quarantined, missing and pending."""
    train, batch = tmp_path / "train", tmp_path / "batch"
    write_chat_file(train / "good-1.jsonl", salt="one")
    write_chat_file(train / "good-2.jsonl", salt="two")
    (train / "bad.jsonl").write_text(chat_line("q", "a") + '\n{"messages": []}\n')
    (train / HOSTILE).write_text("not json\n")
    (train / RTL).write_text("[]\n")
    write_batch_file(batch / "requests.jsonl")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(train, extra={"retention": '"30d"'}), FolderSetup(batch, "batch")],
        sections={
            "metrics": {"listen": '"127.0.0.1:0"'},
            "api": {"max_attempts": "50", "concurrency": "1"},
        },
    )
    daemon = start_daemon(config)
    url = "http://" + daemon.wait_event("metrics_listening")["listen"]
    wait_until(
        lambda: (
            _counts(url).get("batch") == {"uploaded": 1}
            and _counts(url)["train"] == {"uploaded": 2, "quarantined": 3}
        ),
        timeout=30,
        what="first uploads",
    )
    with Mistral(api_key="test-key", server_url=emulator.url) as client:
        ids = {f.filename: f.id for f in client.files.iter_all()}
    (train / "good-2.jsonl").unlink()
    emulator.set_faults(fault_rate=1.0, fault_kinds=("503",))
    for n in range(3):  # five failures in a row (concurrency 1) open the outage gate
        write_batch_file(batch / f"late-{n}.jsonl", salt=f"late{n}")
    wait_until(
        lambda: (
            _counts(url)
            == {
                "train": {"uploaded": 1, "missing": 1, "quarantined": 3},
                "batch": {"uploaded": 1, "pending": 3},
            }
        ),
        timeout=30,
        what="missing and pending",
    )
    yield RunningDaemon(url, daemon, tmp_path, ids)


def _open(browser: Browser, url: str, **context: Any) -> Page:
    page = browser.new_context(**context).new_page()
    response = page.goto(url)
    assert response is not None and response.status == 200, response and response.status
    return page


def _state_count(page: Page, folder: str, state: str) -> str:
    """The count shown beside a folder's bar for ``state`` ("0" when the state is not listed)."""
    shown = page.locator(f'#folders tr[data-folder="{folder}"] li[data-state="{state}"] .n')
    return shown.inner_text() if shown.count() else "0"


def test_page_shows_folders_problems_and_activity(
    browser: Browser, running: RunningDaemon, emulator: EmulatorServer, tmp_path: Path
) -> None:
    # A script's look at the retention plan waits for it; the page then shows it at once.
    assert httpx.get(running.url + "/api/retention").json()["computing"] is False
    page = _open(browser, running.url)
    expect(page).to_have_title("syncd on " + page.locator("h1 .node bdi").inner_text())

    # Overview: one row per folder, the counts a person reads beside the coloured bar.
    assert page.locator("#folders tbody tr").count() == 2
    assert _state_count(page, "train", "uploaded") == "1"
    assert _state_count(page, "train", "missing") == "1"
    assert _state_count(page, "train", "quarantined") == "3"
    # The API fails every request: the three late files wait (one may be in a probe upload).
    waiting = [_state_count(page, "batch", state) for state in ("pending", "uploading")]
    assert sum(map(int, waiting)) == 3
    assert _state_count(page, "batch", "uploaded") == "1"
    assert page.locator('#folders tr[data-folder="train"] td.total').inner_text() == "5"
    assert page.locator('#folders tr[data-folder="batch"] td.total').inner_text() == "4"

    # Problems: the reason, as the validator wrote it.
    bad = page.locator("#problems tr.problem", has_text="bad.jsonl")
    expect(bad.locator("td.reason")).to_contain_text("line 2:")
    expect(bad.locator("td.state")).to_have_text("quarantined")

    # Hostile names are text: the markup shows literally, nothing ran, no element was made.
    hostile = page.locator("#problems td.file", has_text="<img src=x onerror=")
    expect(hostile).to_have_count(1)
    expect(hostile).to_have_text(HOSTILE)
    assert page.locator("#problems img").count() == 0
    assert page.evaluate("window.__pwned") is None
    # The right-to-left override is shown as its escape, not obeyed.
    expect(page.locator("#problems td.file", has_text="report-")).to_have_text(
        "report-\\u202elmth.jsonl"
    )

    # Activity: the uploads with their remote file ids.
    ids = running.ids
    first = page.locator("#activity tr.action-upload", has_text="good-1.jsonl")
    expect(first.locator("td.id")).to_have_text(ids["good-1.jsonl"])

    # Retention: the policy and the next run.
    expect(page.locator("#retention")).to_contain_text("train: delete after 30d")

    # Lineage lookup: a path typed into the box gives the remote file id.
    page.get_by_label("path or sha256").fill(str(tmp_path / "train" / "good-1.jsonl"))
    page.get_by_role("button", name="look up").click()
    expect(page.locator("#lineage tr.match td.id").first).to_have_text(ids["good-1.jsonl"])

    # The folder filter narrows the problems to one folder.
    page.locator("#problems select[name=folder]").select_option("batch")
    page.locator("#problems").get_by_role("button", name="filter").click()
    expect(page.locator("#problems")).to_contain_text(
        "No quarantined, failed or unstable files in batch"
    )

    # The API outage shows in the overview once the daemon has seen it.
    def outage_shown() -> bool:
        page.goto(running.url)
        # "Files API (<where it goes>) unavailable for …": the server is named in between.
        text = page.locator("#api").inner_text()
        return text.startswith("Files API") and "unavailable for" in text

    wait_until(outage_shown, timeout=30, interval=0.5, what="the API outage on the page")
    page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
    assert (tmp_path / "status-page.png").stat().st_size > 10_000


def test_token_is_required_off_loopback(
    browser: Browser, tmp_path: Path, emulator: EmulatorServer, start_daemon: Any
) -> None:
    folder = tmp_path / "train"
    write_chat_file(folder / "one.jsonl")
    (tmp_path / "status-token").write_text(TOKEN + "\n")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"metrics": {"listen": '"0.0.0.0:0"', "token_file": '"status-token"'}},
    )
    daemon = start_daemon(config)
    event = daemon.wait_event("metrics_listening")
    assert event["token_required"] is True
    url = f"http://127.0.0.1:{event['listen'].rpartition(':')[2]}/"

    # Without the token the browser is challenged: headless Chromium has nobody to ask for a
    # password, so the navigation ends in its auth error and no page is shown.
    anonymous = browser.new_context().new_page()
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        anonymous.goto(url)
    refused = anonymous.request.get(url)
    assert refused.status == 401
    assert "Basic" in refused.headers["www-authenticate"]
    # A wrong password: the browser shows the 401, not the page.
    wrong = browser.new_context(http_credentials={"username": "me", "password": "nope"}).new_page()
    response = wrong.goto(url)
    assert response is not None and response.status == 401
    assert "token" in wrong.locator("body").inner_text()
    assert wrong.locator("#overview").count() == 0

    as_person = _open(browser, url, http_credentials={"username": "me", "password": TOKEN})
    expect(as_person.locator('#folders tr[data-folder="train"]')).to_have_count(1)
    as_script = _open(browser, url, extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
    expect(as_script.locator("#overview")).to_be_visible()
    assert TOKEN not in as_person.content()
    assert json.dumps(TOKEN) not in "".join(daemon.raw)
