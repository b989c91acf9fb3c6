"""The status listener in-process over real loopback HTTP, on a store `syncd sync` filled.

The page's data as JSON (``/api/...``), paging and filters, the lineage lookup, the retention
dry run, bad query parameters, the token, the security headers and the escaping of hostile
file names. The browser's view of the same page is tests/test_status_page_browser.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from syncd.api import Mistral
from syncd.cli import cli
from syncd.config import load_config
from syncd.emulator import EmulatorServer
from syncd.folder_specs import folder_specs
from syncd.retention_job import RetentionSettings
from syncd.retention_preview import RetentionPreviewer
from syncd.retention_setup import retention_settings
from syncd.store import Store, open_store, repo
from tests.configs import FolderSetup, chat_line, write_batch_file, write_chat_file, write_config
from tests.postgres_cluster import PostgresCluster
from tests.status_support import FixedSource, live_status, serving
from tests.support import wait_until

HOSTILE = "<img src=x onerror=alert(1)> \"quoted\" 'single'.jsonl"
TOKEN = "s3cret-status-token"


@dataclass
class Synced:
    root: Path
    store: Store
    source: FixedSource
    emulator: EmulatorServer
    remote: dict[str, str]
    """remote filename -> file id"""
    status: dict[str, Any]
    """``syncd status --json`` of the same store."""


@pytest.fixture
def synced(tmp_path: Path, emulator: EmulatorServer, api_key: str) -> Iterator[Synced]:
    train, batch = tmp_path / "train", tmp_path / "batch"
    write_chat_file(train / "good-1.jsonl", 2, salt="one")
    write_chat_file(train / "nested" / "good-2.jsonl", 2, salt="two")
    (train / "bad.jsonl").write_text(chat_line("q", "a") + '\n{"messages": []}\n')
    (train / HOSTILE).write_text("not json\n")
    write_batch_file(batch / "requests.jsonl", 2)
    config_path = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[
            FolderSetup(train, extra={"retention": '"30d"'}),
            FolderSetup(batch, purpose="batch"),
        ],
    )
    runner = CliRunner()
    env = {"MISTRAL_API_KEY": api_key}
    sync = runner.invoke(cli, ["-c", str(config_path), "sync"], env=env)
    assert sync.exit_code == 3, sync.output  # quarantined files: exit 3
    status = runner.invoke(cli, ["-c", str(config_path), "status", "--json"], env=env)
    config = load_config(config_path, environ={"MISTRAL_API_KEY": api_key})
    store = open_store(config.state.database_url)
    client = Mistral(api_key=api_key, server_url=emulator.url)
    previewer = RetentionPreviewer(
        store,
        client,
        lambda: retention_settings(config),
        # 60 days on: every train upload is past its 30 days.
        clock=lambda: datetime.now(UTC) + timedelta(days=60),
    )
    remote = {f.filename: f.id for f in client.files.iter_all()}
    try:
        yield Synced(
            tmp_path,
            store,
            FixedSource(folder_specs(config), previewer),
            emulator,
            remote,
            json.loads(status.stdout),
        )
    finally:
        client.close()
        store.dispose()


def _get(url: str, **kwargs: Any) -> Any:
    response = httpx.get(url, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


class TestJson:
    def test_status_counts_match_syncd_status(self, synced: Synced) -> None:
        """/api/status's folders carry the counts `syncd status --json` prints, and more."""
        with serving(synced.store, synced.source) as base:
            document = _get(base + "/api/status")
        by_name = {f["name"]: f for f in document["folders"]}
        assert {n: f["counts"] for n, f in by_name.items()} == {
            f["name"]: f["counts"] for f in synced.status["folders"]
        }
        assert by_name["train"]["counts"] == {"uploaded": 2, "quarantined": 2}
        assert by_name["train"]["purpose"] == "fine-tune"
        assert by_name["train"]["shared"] is False
        assert document["health"] == {"healthy": True, "reason": "ok"}
        assert document["upload_rate"]["files"] == 3
        assert document["files_page"]["total"] == 5
        # The file entries have `syncd status --json`'s fields.
        assert set(synced.status["files"][0]) <= set(document["files"][0])

    def test_files_are_paged_and_filtered(self, synced: Synced) -> None:
        with serving(synced.store, synced.source) as base:
            first = _get(base + "/api/status", params={"limit": 2})
            second = _get(base + "/api/status", params={"limit": 2, "offset": 2})
            quarantined = _get(base + "/api/status", params={"state": "quarantined"})
            batch = _get(base + "/api/status", params={"folder": "batch"})
        assert len(first["files"]) == len(second["files"]) == 2
        assert {f["path"] for f in first["files"]}.isdisjoint(f["path"] for f in second["files"])
        assert first["files_page"]["total"] == 5
        assert {f["path"] for f in quarantined["files"]} == {"bad.jsonl", HOSTILE}
        assert [f["path"] for f in batch["files"]] == ["requests.jsonl"]

    def test_problems_carry_their_reason_and_filter_by_folder(self, synced: Synced) -> None:
        with serving(synced.store, synced.source) as base:
            problems = _get(base + "/api/problems")
            in_batch = _get(base + "/api/problems", params={"folder": "batch"})
            unknown = _get(base + "/api/problems", params={"folder": "nope"})
        reasons = {p["path"]: p["reason"] for p in problems["files"]}
        assert set(reasons) == {"bad.jsonl", HOSTILE}
        assert reasons["bad.jsonl"].startswith("line 2:")
        assert reasons[HOSTILE].startswith("line 1:")
        assert problems["total"] == 2
        assert in_batch["files"] == [] and unknown["files"] == []

    def test_activity_lists_uploads_with_file_ids(self, synced: Synced) -> None:
        with serving(synced.store, synced.source) as base:
            activity = _get(base + "/api/activity")
        uploads = {e["path"]: e["file_id"] for e in activity["entries"] if e["action"] == "upload"}
        assert uploads == {
            "good-1.jsonl": synced.remote["good-1.jsonl"],
            "nested/good-2.jsonl": synced.remote["good-2.jsonl"],
            "requests.jsonl": synced.remote["requests.jsonl"],
        }

    def test_activity_pages_say_whether_older_entries_exist(self, synced: Synced) -> None:
        with serving(synced.store, synced.source) as base:
            everything = _get(base + "/api/activity", params={"limit": 1000})
            count = len(everything["entries"])
            first = _get(base + "/api/activity", params={"limit": 2})
            last = _get(base + "/api/activity", params={"limit": 2, "offset": count - 2})
            html = httpx.get(base + "/", params={"activity_page": 1}).text
        assert count >= 5 and everything["has_more"] is False
        assert first["has_more"] is True and first["entries"] == everything["entries"][:2]
        assert last["has_more"] is False and last["entries"] == everything["entries"][-2:]
        assert 'rel="next"' not in html  # fewer than a page of 50: no pager

    def test_lineage_by_sha256_relative_and_absolute_path(self, synced: Synced) -> None:
        path = synced.root / "train" / "nested" / "good-2.jsonl"
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        with serving(synced.store, synced.source) as base:
            by_sha = _get(base + "/api/lineage", params={"q": sha})
            by_rel = _get(base + "/api/lineage", params={"q": "nested/good-2.jsonl"})
            by_abs = _get(base + "/api/lineage", params={"q": str(path)})
            nothing = _get(base + "/api/lineage", params={"q": "no/such.jsonl"})
        expected = [synced.remote["good-2.jsonl"]]
        for found in (by_sha, by_rel, by_abs):
            assert [m["file_id"] for m in found["matches"]] == expected
        match = by_abs["matches"][0]
        assert (match["purpose"], match["folder_name"], match["sha256"]) == (
            "fine-tune",
            "train",
            sha,
        )
        assert match["uploaded_at"] is not None
        assert nothing["matches"] == []

    def test_retention_shows_the_dry_run_plan(self, synced: Synced) -> None:
        next_run = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
        synced.source.status = live_status(next_retention_at=next_run)
        with serving(synced.store, synced.source) as base:
            document = _get(base + "/api/retention")
        assert document["next_run_at"] == next_run.isoformat()
        plan = document["plan"]
        assert plan["dry_run"] is True
        assert {(f["path"], f["outcome"]) for f in plan["files"]} == {
            ("good-1.jsonl", "would delete"),
            ("nested/good-2.jsonl", "would delete"),
        }
        # A dry run: nothing was deleted.
        with Mistral(api_key="test-key", server_url=synced.emulator.url) as client:
            assert len(list(client.files.iter_all())) == 3

    def test_the_page_never_waits_for_the_retention_plan(self, synced: Synced) -> None:
        """The first page load says the plan is being worked out; the next one shows it."""
        with serving(synced.store, synced.source) as base:
            first = httpx.get(base + "/").text
            wait_until(
                lambda: "would delete" in httpx.get(base + "/").text,
                what="the plan computed in the background",
            )
        assert "Working out what it would delete" in first

    def test_bad_parameters_are_400_naming_them(self, synced: Synced) -> None:
        with serving(synced.store, synced.source) as base:
            cases = {
                "/api/status?limit=0": "limit",
                "/api/status?limit=abc": "limit",
                "/api/status?state=done": "state",
                "/api/lineage": "q",
                "/?problems_page=0": "problems_page",
            }
            for path, name in cases.items():
                response = httpx.get(base + path)
                assert response.status_code == 400, path
                assert name in response.text, path


class TestPage:
    def test_hostile_names_are_text(self, synced: Synced) -> None:
        """A name with markup, quotes, a newline or a right-to-left override stays text."""
        (synced.root / "train" / "rtl-\u202egnp.jsonl").write_text("[]\n")
        (synced.root / "train" / "two\nlines.jsonl").write_text("[]\n")
        sync = CliRunner().invoke(
            cli,
            ["-c", str(synced.root / "config.toml"), "sync"],
            env={"MISTRAL_API_KEY": "test-key"},
        )
        assert sync.exit_code == 3, sync.output
        with serving(synced.store, synced.source) as base:
            html = httpx.get(base + "/").text
            lookup = httpx.get(base + "/", params={"q": HOSTILE}).text
        assert "<img" not in html and "<img" not in lookup
        assert "&lt;img src=x onerror=alert(1)&gt; &#34;quoted&#34; &#39;single&#39;.jsonl" in html
        assert "rtl-\\u202egnp.jsonl" in html and "\u202e" not in html
        assert "two\\nlines.jsonl" in html

    def test_page_sections(self, synced: Synced) -> None:
        synced.source.status = live_status(
            healthy=False,
            health_reason="degraded: train: inotify watch limit reached",
            api_down_for=75.0,
            api_error="503 Service Unavailable",
        )
        with serving(synced.store, synced.source) as base:
            response = httpx.get(base + "/")
            filtered = httpx.get(base + "/", params={"folder": "batch"}).text
        html = response.text
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        for section in ("overview", "problems", "activity", "retention", "lineage"):
            assert f'<section id="{section}">' in html
        assert 'id="nodes"' not in html  # one node: no fleet table
        assert "Degraded: <bdi>degraded: train: inotify watch limit reached</bdi>" in html
        assert "Files API unavailable for 1m15s" in html
        assert "line 2:" in html
        assert "No quarantined, failed or unstable files in <bdi>batch</bdi>" in filtered

    def test_nodes_table_appears_in_a_fleet(self, synced: Synced) -> None:
        """One node is this daemon alone: no table; two nodes: both, alive and stale."""
        with serving(synced.store, synced.source) as base:
            alone = httpx.get(base + "/").text
            now = datetime.now(UTC)
            with synced.store.session() as s:
                for name, seen, problems in (
                    ("test-node", now, ()),
                    ("gpu-<2>", now - timedelta(minutes=10), ("API unavailable for 30s",)),
                ):
                    repo.heartbeat(
                        s,
                        name,
                        version="0.1.0",
                        pid=1,
                        started_at=seen,
                        now=seen,
                        queue_depth=7,
                        folders=list(synced.source.specs),
                        problems=problems,
                    )
            fleet = httpx.get(base + "/").text
            nodes = _get(base + "/api/nodes")
        assert 'id="nodes"' not in alone
        assert '<tr class="node-alive">' in fleet and '<tr class="node-stale">' in fleet
        assert "gpu-&lt;2&gt;" in fleet and "API unavailable for 30s" in fleet
        states = {n["name"]: n["state"] for n in nodes["nodes"]}
        # `syncd sync` heartbeated too, under the config's node name.
        assert states.pop(load_config(synced.root / "config.toml").node.name) == "alive"
        assert states == {"test-node": "alive", "gpu-<2>": "stale"}


class TestAccess:
    def test_token_is_required_everywhere(self, synced: Synced) -> None:
        with serving(synced.store, synced.source, token=TOKEN) as base:
            for path in ("/", "/api/status", "/metrics", "/healthz", "/static/status.css"):
                denied = httpx.get(base + path)
                assert denied.status_code == 401, path
                assert TOKEN not in denied.text
                challenges = denied.headers.get_list("www-authenticate")
                assert any(c.startswith("Bearer") for c in challenges)
                assert any(c.startswith("Basic") for c in challenges)
            wrong = httpx.get(base + "/", headers={"Authorization": "Bearer nope"})
            bearer = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            basic = httpx.get(base + "/", auth=("anyone", TOKEN))
            garbled = httpx.get(base + "/", headers={"Authorization": "Basic !!!"})
        assert wrong.status_code == 401 and garbled.status_code == 401
        assert bearer.status_code == 200
        assert basic.status_code == 200 and '<section id="overview">' in basic.text

    def test_security_headers(self, synced: Synced) -> None:
        with serving(synced.store, synced.source) as base:
            response = httpx.get(base + "/")
            static = httpx.get(base + "/static/refresh.js")
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert static.status_code == 200 and "location.reload" in static.text

    def test_page_never_shows_secrets(self, synced: Synced) -> None:
        with serving(synced.store, synced.source, token=TOKEN) as base:
            pages = [
                httpx.get(base + path, auth=("u", TOKEN)).text
                for path in ("/", "/api/status", "/api/retention", "/api/activity")
            ]
        for text in pages:
            assert "test-key" not in text and TOKEN not in text


def test_state_database_gone_is_a_503_page(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """The page and the JSON say the state database does not answer (503), and recover."""
    store = open_store(postgres_url)
    client = Mistral(api_key="unused", server_url="http://127.0.0.1:9")
    source = FixedSource({}, RetentionPreviewer(store, client, lambda: RetentionSettings({})))
    try:
        with serving(store, source) as base:
            assert httpx.get(base + "/").status_code == 200
            postgres_cluster.drop_database(postgres_url.rpartition("/")[2])
            page = httpx.get(base + "/")
            api = httpx.get(base + "/api/status")
    finally:
        client.close()
        store.dispose()
    assert page.status_code == 503 and api.status_code == 503
    assert "The state database does not answer" in page.text
    assert "tries again every 10 seconds" in page.text
    assert api.json()["error"]
