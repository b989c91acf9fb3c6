"""Retention on a PostgreSQL store never runs on two nodes at once for a folder.

Files are synced to the emulator with ``syncd sync`` (state in a fresh PostgreSQL database),
then retention runs as if two hours had passed. A run holds a session advisory lock per folder
from planning to its last delete; a folder whose lock is taken is skipped for the round.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from syncd.api import Mistral
from syncd.cli import cli
from syncd.config import load_config
from syncd.emulator import EmulatorServer
from syncd.retention_job import (
    RetentionResult,
    RetentionSettings,
    retention_lock_key,
    run_retention,
)
from syncd.retention_setup import retention_settings
from syncd.store import open_store, repo
from tests.configs import FolderSetup, write_chat_file, write_config

LATER = datetime.now(UTC) + timedelta(hours=2)
NAMES = ["a.jsonl", "b.jsonl", "c.jsonl"]


@dataclass
class Synced:
    url: str
    settings: RetentionSettings
    key: str
    emulator: EmulatorServer
    api_key: str

    def client(self) -> Mistral:
        return Mistral(api_key=self.api_key, server_url=self.emulator.url, max_retries=0)

    def retention(self, client: Mistral | None = None) -> RetentionResult:
        with open_store(self.url) as store:
            if client is not None:
                return run_retention(store, client, self.settings, now=LATER)
            with self.client() as own:
                return run_retention(store, own, self.settings, now=LATER)

    def remote_names(self) -> list[str]:
        with self.client() as client:
            return sorted(f.filename for f in client.files.iter_all())


@pytest.fixture
def synced(
    tmp_path: Path, postgres_url: str, emulator: EmulatorServer, api_key: str
) -> Iterator[Synced]:
    """A shared folder with three files synced to the emulator; retention 1h."""
    folder = tmp_path / "share"
    for name in NAMES:
        write_chat_file(folder / name, salt=name)
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[
            FolderSetup(folder, extra={"id": '"data"', "shared": "true", "retention": '"1h"'})
        ],
        sections={"state": {"url": f'"{postgres_url}"'}, "node": {"name": '"alpha"'}},
    )
    result = CliRunner().invoke(
        cli, ["-c", str(config), "sync", "--no-progress"], env={"MISTRAL_API_KEY": api_key}
    )
    assert result.exit_code == 0, result.output
    settings = retention_settings(load_config(config))
    assert list(settings.policies) == ["shared:data"]
    yield Synced(postgres_url, settings, "shared:data", emulator, api_key)


def libpq_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_a_folder_whose_lock_another_node_holds_is_skipped_this_round(synced: Synced) -> None:
    """Another node holds the folder's lock: the run deletes nothing there and says why; the
    next run, after the lock is gone, deletes what is due."""
    with psycopg.connect(libpq_dsn(synced.url), autocommit=True) as other_node:
        other_node.execute("SELECT pg_advisory_lock(%s)", (retention_lock_key(synced.key),))
        with capture_logs() as logs:
            skipped = synced.retention()
    assert skipped.busy == ("shared:data",)
    assert skipped.deleted == () and skipped.plan.due == ()
    busy = [line for line in logs if line["event"] == "retention_folder_busy"]
    assert [line["folder"] for line in busy] == ["share"]
    assert synced.remote_names() == NAMES

    done = synced.retention()  # the other node's session ended, and its lock with it
    assert done.busy == ()
    assert sorted(d.rel_path for d in done.deleted) == NAMES
    assert synced.remote_names() == []


def test_two_runs_at_once_one_deletes_and_the_other_skips_the_folder(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A stops inside its first delete; run B, started meanwhile, skips the folder; A then
    deletes every file, each once (no delete found its file already gone)."""
    entered, release = threading.Event(), threading.Event()
    outcome: list[RetentionResult] = []

    with synced.client() as client_a:
        delete = client_a.files.delete

        def paused_delete(file_id: str) -> object:
            entered.set()
            assert release.wait(timeout=30)
            return delete(file_id)

        monkeypatch.setattr(client_a.files, "delete", paused_delete)
        run_a = threading.Thread(target=lambda: outcome.append(synced.retention(client_a)))
        run_a.start()
        try:
            assert entered.wait(timeout=30), "run A reached its first delete"
            run_b = synced.retention()
        finally:
            release.set()
            run_a.join(timeout=30)
    assert run_b.busy == ("shared:data",)
    assert run_b.deleted == () and run_b.plan.due == ()
    (result_a,) = outcome
    assert result_a.busy == ()
    assert sorted(d.rel_path for d in result_a.deleted) == NAMES
    assert result_a.already_gone == frozenset()
    assert synced.remote_names() == []
    with open_store(synced.url) as store, store.session() as s:
        deletes = repo.audit_entries(s, action="delete")
    assert sorted(a.rel_path or "" for a in deletes) == NAMES


def test_the_lock_is_released_after_a_run_that_failed(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies half-way (an unexpected error in a delete) gives its locks back at once,
    while the store and its pooled connections stay open: another node can take the folder."""

    class BrokenError(RuntimeError):
        pass

    def fail(_file_id: str) -> object:
        raise BrokenError

    with open_store(synced.url) as store, synced.client() as client:
        monkeypatch.setattr(client.files, "delete", fail)
        with pytest.raises(BrokenError):
            run_retention(store, client, synced.settings, now=LATER)
        with psycopg.connect(libpq_dsn(synced.url), autocommit=True) as other_node:
            key = retention_lock_key(synced.key)
            taken = other_node.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            assert taken == (True,), "the failed run left the folder locked"
    done = synced.retention()
    assert done.busy == ()
    assert sorted(d.rel_path for d in done.deleted) == NAMES
