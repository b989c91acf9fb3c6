"""Fine-tuning and batch jobs: the emulator's endpoints, syncd's client, and the official SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mistralai.client import Mistral as OfficialMistral

from syncd.api import BatchJob, FineTuningJob, Mistral
from syncd.emulator import EmulatorServer
from syncd.errors import InvalidRequestError, NotFoundError
from tests.configs import write_batch_file, write_chat_file


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    """Jobs stay where they are (no batch runner): these tests play a job's life by hand."""
    return make_emulator(batch_job_seconds=None)


@pytest.fixture
def client(emulator: EmulatorServer, api_key: str) -> Iterator[Mistral]:
    with Mistral(api_key=api_key, server_url=emulator.url, max_retries=0) as mistral:
        yield mistral


def upload_chat(client: Mistral, tmp_path: Path, name: str = "train.jsonl") -> str:
    return client.files.upload(write_chat_file(tmp_path / name, salt=name), "fine-tune").id


def upload_batch(client: Mistral, tmp_path: Path, name: str = "requests.jsonl") -> str:
    return client.files.upload(write_batch_file(tmp_path / name, salt=name), "batch").id


def set_status(emulator: EmulatorServer, api_key: str, job_id: str, status: str) -> httpx.Response:
    return httpx.post(
        f"{emulator.url}/_emulator/jobs/{job_id}/status",
        json={"status": status},
        headers={"Authorization": f"Bearer {api_key}"},
    )


def test_a_fine_tuning_job_is_created_queued_and_listed_with_its_files(
    client: Mistral, tmp_path: Path
) -> None:
    """POST /v1/fine_tuning/jobs answers a QUEUED job that list and get show with its file ids."""
    training = upload_chat(client, tmp_path)
    validation = upload_chat(client, tmp_path, "valid.jsonl")
    job = client.fine_tuning.jobs.create(
        "open-mistral-7b", [training], validation_files=[validation], auto_start=False
    )
    assert job.status == "QUEUED"
    assert job.training_files == [training]
    assert job.file_ids == {training, validation}
    assert job.is_active
    listing = client.fine_tuning.jobs.list()
    assert listing.total == 1
    assert [j.id for j in listing.data] == [job.id]
    fetched = client.fine_tuning.jobs.get(job.id)
    assert fetched.validation_files == [validation]
    assert fetched.model_extra is not None and fetched.model_extra["job_type"] == "completion"


def test_a_job_status_set_through_the_control_endpoint_is_what_list_reports(
    client: Mistral, emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    """The test-only status endpoint moves a job; status filters and is_active follow it."""
    job = client.fine_tuning.jobs.create("open-mistral-7b", [upload_chat(client, tmp_path)])
    answer = set_status(emulator, api_key, job.id, "SUCCESS")
    assert answer.status_code == 200, answer.text
    assert client.fine_tuning.jobs.get(job.id).status == "SUCCESS"
    assert not client.fine_tuning.jobs.get(job.id).is_active
    assert client.fine_tuning.jobs.list(status="QUEUED").total == 0
    assert client.fine_tuning.jobs.list(status="SUCCESS").total == 1
    assert set_status(emulator, api_key, job.id, "DONE").status_code == 422
    assert set_status(emulator, api_key, "no-such-job", "RUNNING").status_code == 404
    unauthorised = httpx.post(
        f"{emulator.url}/_emulator/jobs/{job.id}/status", json={"status": "RUNNING"}
    )
    assert unauthorised.status_code == 401


def test_batch_jobs_are_created_listed_filtered_by_several_statuses_and_paged(
    client: Mistral, emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    """Batch jobs list newest first, filter on repeated status keys, and page by page_size."""
    first = client.batch.jobs.create(
        [upload_batch(client, tmp_path)], "/v1/chat/completions", model="mistral-small-latest"
    )
    second = client.batch.jobs.create([upload_batch(client, tmp_path, "b.jsonl")], "/v1/ocr")
    assert first.status == "QUEUED"
    assert first.total_requests == 3
    set_status(emulator, api_key, first.id, "RUNNING")
    set_status(emulator, api_key, second.id, "CANCELLED")
    page = client.batch.jobs.list(page_size=1)
    assert page.total == 2
    assert [j.id for j in page.data] == [second.id]
    assert [j.id for j in client.batch.jobs.iter_all(page_size=1)] == [second.id, first.id]
    active = client.batch.jobs.list(status=["QUEUED", "RUNNING"])
    assert [j.id for j in active.data] == [first.id]
    assert client.batch.jobs.get(first.id).is_active
    assert not client.batch.jobs.get(second.id).is_active


def test_jobs_on_unknown_files_are_refused_and_unknown_jobs_are_404(
    client: Mistral, tmp_path: Path
) -> None:
    """A job naming a file the emulator does not hold is a 422; an unknown job id is a 404."""
    with pytest.raises(InvalidRequestError, match="not found"):
        client.batch.jobs.create(["8b2a4c0e-0000-4000-8000-000000000000"], "/v1/chat/completions")
    with pytest.raises(InvalidRequestError):
        client.fine_tuning.jobs.create("open-mistral-7b", [])
    with pytest.raises(NotFoundError):
        client.fine_tuning.jobs.get("8b2a4c0e-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        client.batch.jobs.get("8b2a4c0e-0000-4000-8000-000000000000")


def test_jobs_survive_an_emulator_restart_on_the_same_data_dir(
    make_emulator: Callable[..., EmulatorServer], api_key: str, tmp_path: Path
) -> None:
    """Jobs are kept in the data dir: a restarted emulator still lists them with their status."""
    data_dir = tmp_path / "data"
    first = make_emulator(data_dir=data_dir)
    with Mistral(api_key=api_key, server_url=first.url) as mistral:
        job = mistral.batch.jobs.create([upload_batch(mistral, tmp_path)], "/v1/chat/completions")
    set_status(first, api_key, job.id, "RUNNING")
    first.stop()
    second = make_emulator(data_dir=data_dir)
    with Mistral(api_key=api_key, server_url=second.url) as mistral:
        assert [(j.id, j.status) for j in mistral.batch.jobs.iter_all()] == [(job.id, "RUNNING")]


def test_the_official_sdk_lists_batch_jobs_from_the_emulator(
    client: Mistral, emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    """mistralai's batch.jobs.list and get parse the emulator's answers unchanged."""
    file_id = upload_batch(client, tmp_path)
    job = client.batch.jobs.create([file_id], "/v1/chat/completions", model="mistral-small-latest")
    with OfficialMistral(api_key=api_key, server_url=emulator.url) as sdk:
        listing = sdk.batch.jobs.list(status=["QUEUED"])
        fetched = sdk.batch.jobs.get(job_id=job.id)
    assert listing.total == 1
    assert listing.data is not None
    assert [(j.id, j.input_files, j.status) for j in listing.data] == [
        (job.id, [file_id], "QUEUED")
    ]
    assert fetched.endpoint == "/v1/chat/completions"


def test_the_official_sdk_shape_of_a_fine_tuning_job_list_is_what_the_emulator_sends(
    client: Mistral, emulator: EmulatorServer, api_key: str, tmp_path: Path
) -> None:
    """The list answer has the SDK's JobsOut fields (mistralai 3.7 dropped fine_tuning.jobs)."""
    job = client.fine_tuning.jobs.create("open-mistral-7b", [upload_chat(client, tmp_path)])
    raw = httpx.get(
        f"{emulator.url}/v1/fine_tuning/jobs",
        params={"page": 0, "page_size": 100, "created_by_me": "false"},
        headers={"Authorization": f"Bearer {api_key}"},
    ).json()
    assert raw["object"] == "list"
    assert raw["total"] == 1
    (item,) = raw["data"]
    required = {"id", "auto_start", "model", "status", "created_at", "modified_at"}
    assert required | {"training_files", "hyperparameters", "object", "job_type"} <= set(item)
    assert item["id"] == job.id
    assert item["object"] == "job"


@pytest.mark.parametrize(
    ("model", "status", "active"),
    [
        (FineTuningJob, "QUEUED", True),
        (FineTuningJob, "VALIDATED", True),
        (FineTuningJob, "CANCELLATION_REQUESTED", True),
        (FineTuningJob, "SOME_NEW_STATE", True),
        (FineTuningJob, "SUCCESS", False),
        (FineTuningJob, "FAILED_VALIDATION", False),
        (BatchJob, "RUNNING", True),
        (BatchJob, "SOME_NEW_STATE", True),
        (BatchJob, "TIMEOUT_EXCEEDED", False),
        (BatchJob, "CANCELLED", False),
    ],
)
def test_a_job_counts_as_active_unless_its_status_is_known_to_be_final(
    model: type[FineTuningJob] | type[BatchJob], status: str, active: bool
) -> None:
    """Unknown statuses count as active, so a new server state can only keep more files."""
    job = model.model_validate({"id": "j", "status": status})
    assert job.is_active is active
