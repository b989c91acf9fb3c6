"""One retention run against the emulator: real uploads, a real store, an injected clock."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from syncd.api import Mistral
from syncd.cli import cli
from syncd.config import load_config
from syncd.emulator import EmulatorServer
from syncd.folder_specs import folder_specs
from syncd.retention_job import RetentionResult, folder_block_reason, run_retention
from syncd.retention_setup import retention_settings
from syncd.store import Store, open_store, repo
from tests.configs import FolderSetup, write_batch_file, write_chat_file, write_config
from tests.support import wait_until

LATER = timedelta(hours=2)


@dataclasses.dataclass
class World:
    """Folders synced to the emulator by `syncd sync`, and ways to look at both sides."""

    tmp: Path
    emulator: EmulatorServer
    api_key: str
    config: Path

    def cli(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            cli,
            ["-c", str(self.config), *args],
            env={"MISTRAL_API_KEY": self.api_key},
            catch_exceptions=False,
        )
        return result.exit_code, result.stdout

    def sync(self) -> None:
        code, output = self.cli("sync", "--no-progress")
        assert code == 0, output

    def client(self) -> Mistral:
        return Mistral(api_key=self.api_key, server_url=self.emulator.url, max_retries=0)

    def key(self, folder: str = "ft") -> str:
        """The store's key of the folder at ``tmp/folder`` (``<node>:<path>``)."""
        config = load_config(self.config)
        (spec,) = [s for s in folder_specs(config).values() if s.root == self.tmp / folder]
        return spec.key

    def retention(
        self, *, later: timedelta = LATER, dry_run: bool = False, max_deletes: int = 100
    ) -> RetentionResult:
        """One run as if ``later`` had passed since the uploads."""
        config = load_config(self.config)
        settings = dataclasses.replace(
            retention_settings(config), dry_run=dry_run, max_deletes=max_deletes
        )
        with open_store(config.state.database_url) as store, self.client() as client:
            return run_retention(store, client, settings, now=datetime.now(UTC) + later)

    def remote(self) -> dict[str, str]:
        """file id -> filename of every file on the emulator."""
        with self.client() as client:
            return {f.id: f.filename for f in client.files.iter_all()}

    def file_id(self, rel_path: str) -> str:
        with self.store() as store, store.session() as s:
            ids = [r.file_id for r in repo.remote_files(s) if r.rel_path == rel_path]
        assert len(ids) == 1, ids
        return ids[0]

    def local_states(self) -> dict[str, str]:
        with self.store() as store, store.session() as s:
            return {r.rel_path: r.state.value for r in repo.list_local(s)}

    def delete_audit(self) -> dict[str, str | None]:
        """file id -> audit detail of every recorded delete."""
        with self.store() as store, store.session() as s:
            return {str(a.file_id): a.detail for a in repo.audit_entries(s, action="delete")}

    def store(self) -> Store:
        return open_store(load_config(self.config).state.database_url)

    def set_job_status(self, job_id: str, status: str) -> None:
        answer = httpx.post(
            f"{self.emulator.url}/_emulator/jobs/{job_id}/status",
            json={"status": status},
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        assert answer.status_code == 200, answer.text


def make_world(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    *,
    folder_keys: dict[str, str],
    retention: dict[str, str] | None = None,
    batch_folder: bool = False,
) -> World:
    folders = [FolderSetup(tmp_path / "ft", extra=folder_keys)]
    if batch_folder:
        folders.append(FolderSetup(tmp_path / "batch", "batch", extra={"retention": '"1h"'}))
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=folders,
        sections={"retention": retention or {}},
    )
    return World(tmp_path, emulator, api_key, config)


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    """Batch jobs stay where the tests put them: a job the emulator ran to SUCCESS would add
    its output file to the remote listing these tests compare."""
    return make_emulator(batch_job_seconds=None)


@pytest.fixture
def world(tmp_path: Path, emulator: EmulatorServer, api_key: str) -> Iterator[World]:
    """ft/ with a.jsonl, b.jsonl, c.jsonl synced; retention 1h, keep_current off."""
    for name in ("a", "b", "c"):
        write_chat_file(tmp_path / "ft" / f"{name}.jsonl", salt=name)
    synced = make_world(tmp_path, emulator, api_key, folder_keys={"retention": '"1h"'})
    synced.sync()
    yield synced


def test_expired_files_are_deleted_recorded_and_not_uploaded_again(world: World) -> None:
    """Past the age every syncd file goes, its row turns expired, and a new sync uploads nothing."""
    uploads = world.emulator.stats()["uploads"]
    assert world.retention(later=timedelta(minutes=30)).plan.due == ()
    result = world.retention()
    assert result.is_clean
    assert sorted(d.rel_path for d in result.deleted) == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert {d.reason.value for d in result.deleted} == {"expired"}
    assert world.remote() == {}
    assert set(world.local_states().values()) == {"expired"}
    assert set(world.delete_audit().values()) == {"expired"}
    (world.tmp / "ft" / "a.jsonl").touch()  # a new stat with the same bytes changes nothing
    world.sync()
    assert world.emulator.stats()["uploads"] == uploads
    assert set(world.local_states().values()) == {"expired"}


def test_files_uploaded_by_anyone_else_are_never_touched(world: World) -> None:
    """A foreign file with the same purpose and name as a syncd file survives every run."""
    other = write_chat_file(world.tmp / "elsewhere" / "a.jsonl", salt="someone else's")
    with world.client() as client:
        foreign = client.files.upload(other, "fine-tune").id
    assert foreign not in {world.file_id(p) for p in ("a.jsonl", "b.jsonl", "c.jsonl")}
    result = world.retention(later=timedelta(days=3650))
    assert foreign not in {d.file_id for d in result.deleted}
    assert set(world.remote()) == {foreign}


def test_keep_current_spares_current_files_but_not_old_versions_or_vanished_sources(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """keep_current keeps what is still on disk unchanged; superseded and gone files still go."""
    for name in ("kept", "edited", "removed"):
        write_chat_file(tmp_path / "ft" / f"{name}.jsonl", salt=name)
    world = make_world(
        tmp_path,
        emulator,
        api_key,
        folder_keys={"retention": '"1h"', "keep_current": "true", "on_change": '"keep"'},
    )
    world.sync()
    old_version = world.file_id("edited.jsonl")
    removed = world.file_id("removed.jsonl")
    write_chat_file(tmp_path / "ft" / "edited.jsonl", salt="second version")
    (tmp_path / "ft" / "removed.jsonl").unlink()
    world.sync()

    result = world.retention()
    assert {d.file_id: d.reason.value for d in result.deleted} == {
        old_version: "superseded",
        removed: "source_gone",
    }
    assert sorted(world.remote().values()) == ["edited.jsonl", "kept.jsonl"]
    assert world.local_states() == {
        "kept.jsonl": "uploaded",
        "edited.jsonl": "uploaded",
        "removed.jsonl": "missing",
    }
    assert world.delete_audit() == {old_version: "superseded", removed: "source_gone"}


def test_a_plan_over_the_cap_deletes_nothing(world: World) -> None:
    """Three files due with max_deletes_per_run 2: nothing is deleted and the result says why."""
    result = world.retention(max_deletes=2)
    assert result.deleted == ()
    assert len(result.plan.due) == 3
    assert not result.is_clean
    assert result.plan.halted is not None and "max_deletes_per_run = 2" in result.plan.halted
    assert len(world.remote()) == 3


def test_a_missing_folder_stops_retention_for_that_folder(world: World) -> None:
    """A root that vanished (an unmounted disk) is blocked: its remote files all stay."""
    shutil.rmtree(world.tmp / "ft")
    assert world.cli("sync", "--no-progress")[0] == 1  # the scan fails; the rows stay
    result = world.retention()
    assert result.deleted == ()
    assert world.key() in result.plan.blocked
    assert "does not exist" in result.plan.blocked[world.key()]
    assert len(world.remote()) == 3


def test_an_emptied_folder_stops_retention_even_after_a_scan_marked_every_file_missing(
    world: World,
) -> None:
    """An empty root while the store knew files there is blocked, though each looks source_gone."""
    for path in (world.tmp / "ft").iterdir():
        path.unlink()
    world.sync()
    assert set(world.local_states().values()) == {"missing"}
    result = world.retention()
    assert result.deleted == ()
    assert "holds no files" in result.plan.blocked[world.key()]
    assert len(world.remote()) == 3
    (world.tmp / "ft" / "sub").mkdir()
    write_chat_file(world.tmp / "ft" / "sub" / "new.jsonl", salt="new")
    assert folder_block_reason(world.tmp / "ft", known_files=3) is None


def test_files_that_queued_or_running_jobs_read_are_kept_until_the_jobs_finish(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """Fine-tuning training/validation files and batch inputs of active jobs are never deleted."""
    for name in ("train", "valid", "spare"):
        write_chat_file(tmp_path / "ft" / f"{name}.jsonl", salt=name)
    write_batch_file(tmp_path / "batch" / "requests.jsonl")
    world = make_world(
        tmp_path, emulator, api_key, folder_keys={"retention": '"1h"'}, batch_folder=True
    )
    world.sync()
    train, valid = world.file_id("train.jsonl"), world.file_id("valid.jsonl")
    requests = world.file_id("requests.jsonl")
    with world.client() as client:
        fine_tuning = client.fine_tuning.jobs.create("open-mistral-7b", [train], [valid])
        batch = client.batch.jobs.create([requests], "/v1/chat/completions")
    world.set_job_status(batch.id, "RUNNING")

    first = world.retention()
    assert [d.rel_path for d in first.deleted] == ["spare.jsonl"]
    assert {d.file_id for d in first.plan.kept_referenced} == {train, valid, requests}
    world.set_job_status(fine_tuning.id, "SUCCESS")
    second = world.retention()
    assert {d.file_id for d in second.deleted} == {train, valid}
    assert set(world.remote()) == {requests}


def test_unreadable_job_lists_mean_nothing_is_deleted(world: World) -> None:
    """When the job lists cannot be read (503s), the run deletes nothing and says why."""
    world.emulator.set_faults(fault_rate=1.0, fault_kinds=("503",))
    result = world.retention()
    world.emulator.set_faults(fault_rate=0.0)
    assert result.deleted == ()
    assert result.jobs_error is not None
    assert result.plan.halted is not None and "job lists could not be read" in result.plan.halted
    assert len(world.remote()) == 3


def test_a_file_already_gone_from_the_remote_is_recorded_as_deleted(world: World) -> None:
    """A 404 on delete is the outcome retention wanted: recorded with its reason, no failure."""
    gone = world.file_id("a.jsonl")
    with world.client() as client:
        client.files.delete(gone)
    result = world.retention()
    assert result.failed == ()
    assert result.already_gone == {gone}
    assert gone in {d.file_id for d in result.deleted}
    assert world.delete_audit()[gone] == "expired"
    assert world.local_states()["a.jsonl"] == "expired"


def test_a_dry_run_plans_but_deletes_nothing(world: World) -> None:
    """dry_run reports every due file and leaves the remote and the store as they were."""
    result = world.retention(dry_run=True)
    assert result.dry_run
    assert len(result.plan.deletions) == 3
    assert result.deleted == ()
    assert len(world.remote()) == 3
    assert set(world.local_states().values()) == {"uploaded"}


def test_syncd_cleanup_prints_the_plan_then_deletes_what_is_due(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """`cleanup --dry-run --json` lists the due files; `cleanup --json` deletes them, exit 0."""
    write_chat_file(tmp_path / "ft" / "a.jsonl")
    world = make_world(tmp_path, emulator, api_key, folder_keys={"retention": '"1s"'})
    world.sync()
    uploaded_at = time.time()
    # The remote's created_at has one-second resolution: wait until the file is surely older.
    wait_until(lambda: time.time() > uploaded_at + 2.1, timeout=5, what="the file to age")

    code, output = world.cli("cleanup", "--dry-run", "--json")
    plan = json.loads(output)
    assert code == 0, output
    assert plan["dry_run"] is True
    assert [(f["path"], f["reason"], f["outcome"]) for f in plan["files"]] == [
        ("a.jsonl", "expired", "would delete")
    ]
    assert len(world.remote()) == 1

    code, output = world.cli("cleanup", "--json")
    done = json.loads(output)
    assert code == 0, output
    assert [(f["path"], f["outcome"]) for f in done["files"]] == [("a.jsonl", "deleted")]
    assert world.remote() == {}


def test_syncd_cleanup_exits_1_and_says_why_when_the_cap_holds_the_run_back(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """Over max_deletes_per_run, the table shows the files held back and the exit status is 1."""
    write_chat_file(tmp_path / "ft" / "a.jsonl")
    write_chat_file(tmp_path / "ft" / "b.jsonl", salt="b")
    world = make_world(
        tmp_path,
        emulator,
        api_key,
        folder_keys={"retention": '"1s"'},
        retention={"max_deletes_per_run": "1"},
    )
    world.sync()
    uploaded_at = time.time()
    wait_until(lambda: time.time() > uploaded_at + 2.1, timeout=5, what="the files to age")
    code, output = world.cli("cleanup")
    assert code == 1
    assert "max_deletes_per_run" in " ".join(output.split())
    assert "held back" in output
    assert len(world.remote()) == 2
