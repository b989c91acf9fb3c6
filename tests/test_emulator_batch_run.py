"""The emulator runs batch jobs: their life, the stand-in's answers, results files, metadata,
faults, cancellation and restarts; driven through syncd's client over loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.api import BatchJob, Mistral
from syncd.emulator import EmulatorServer
from syncd.emulator.standin_model import EMBEDDING_DIMENSION
from syncd.errors import (
    ApiError,
    ApiTransportError,
    InvalidRequestError,
    NotFoundError,
    UsageError,
)
from tests.documents import make_pdf
from tests.support import wait_until

CHAT = "/v1/chat/completions"
MakeEmulator = Callable[..., EmulatorServer]


def chat_lines(n: int, salt: str = "") -> list[dict[str, Any]]:
    return [
        {"custom_id": f"r{i}", "body": {"messages": [{"role": "user", "content": f"q{i}{salt}"}]}}
        for i in range(n)
    ]


def upload_lines(client: Mistral, lines: list[dict[str, Any]], name: str = "req.jsonl") -> str:
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return client.files.upload(file={"file_name": name, "content": content}, purpose="batch").id


def finished(client: Mistral, job_id: str) -> BatchJob:
    def done() -> BatchJob | None:
        job = client.batch.jobs.get(job_id)
        return None if job.is_active else job

    return wait_until(done, timeout=60, what=f"job {job_id} to finish")


def download_lines(client: Mistral, file_id: str) -> list[dict[str, Any]]:
    with client.files.download(file_id) as response:
        content = response.read()
    return [json.loads(line) for line in content.splitlines()]


def connect(server: EmulatorServer, api_key: str) -> Mistral:
    return Mistral(api_key=api_key, server_url=server.url, max_retries=0)


def test_a_job_goes_queued_running_with_progress_then_success(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """QUEUED, then RUNNING while completed_requests climbs, then SUCCESS with every count."""
    server = make_emulator(batch_job_seconds=1.5)
    with connect(server, api_key) as client:
        job = client.batch.jobs.create([upload_lines(client, chat_lines(40))], CHAT, model="m")
        assert job.status == "QUEUED"

        def part_way() -> BatchJob | None:
            current = client.batch.jobs.get(job.id)
            moving = current.status == "RUNNING" and 0 < current.completed_requests < 40
            return current if moving else None

        running = wait_until(part_way, what="a running job part way")
        assert running.started_at is not None
        assert running.succeeded_requests == running.completed_requests
        done = finished(client, job.id)
    assert done.status == "SUCCESS"
    assert (done.total_requests, done.completed_requests) == (40, 40)
    assert (done.succeeded_requests, done.failed_requests) == (40, 0)
    assert done.completed_at is not None and done.output_file is not None
    assert done.error_file is None


def test_results_are_stored_as_the_api_stores_them_in_shuffled_order(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """Answers go to a batch_result file, refused bodies to a batch_error file, both from source
    mistral and downloadable; lines carry custom_id, in an order other than the input's."""
    server = make_emulator(batch_job_seconds=0)
    lines = [*chat_lines(30), {"custom_id": "bad", "body": {"max_tokens": 5}}]
    with connect(server, api_key) as client:
        job = client.batch.jobs.create([upload_lines(client, lines)], CHAT, model="m")
        done = finished(client, job.id)
        assert (done.succeeded_requests, done.failed_requests) == (30, 1)
        assert done.output_file is not None and done.error_file is not None
        output = client.files.retrieve(done.output_file)
        errors = client.files.retrieve(done.error_file)
        answers = download_lines(client, done.output_file)
        refused = download_lines(client, done.error_file)
        mistral_files = {f.id for f in client.files.list(source=["mistral"]).data}
        inline = httpx.get(
            f"{server.url}/v1/batch/jobs/{job.id}",
            params={"inline": "true"},
            headers={"Authorization": f"Bearer {api_key}"},
        ).json()
    assert (output.purpose, output.sample_type, output.source) == (
        "batch",
        "batch_result",
        "mistral",
    )
    assert (errors.purpose, errors.sample_type, errors.source) == (
        "batch",
        "batch_error",
        "mistral",
    )
    assert (output.num_lines, errors.num_lines) == (30, 1)
    assert mistral_files == {done.output_file, done.error_file}
    assert inline["outputs"] == answers  # ?inline=true carries the output file's lines
    ids = [line["custom_id"] for line in answers]
    assert sorted(ids) == sorted(f"r{i}" for i in range(30))
    assert ids != [f"r{i}" for i in range(30)]
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in answers)
    (bad,) = refused
    assert bad["custom_id"] == "bad"
    assert bad["response"]["status_code"] == 422
    assert "messages" in bad["error"]["message"]


def bodies_by_custom_id(client: Mistral, job: BatchJob) -> dict[str, Any]:
    assert job.output_file is not None
    return {
        line["custom_id"]: line["response"]["body"]
        for line in download_lines(client, job.output_file)
    }


def test_the_stand_in_answers_the_same_request_the_same_way_and_others_differently(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """Chat answers quote the prompt and depend only on the request; embeddings are unit
    vectors of mistral-embed's size, equal for equal inputs, across emulators."""
    results: list[dict[str, Any]] = []
    for _ in range(2):
        server = make_emulator(batch_job_seconds=0)
        with connect(server, api_key) as client:
            chat = client.batch.jobs.create(
                [upload_lines(client, chat_lines(3))], CHAT, model="mistral-small-latest"
            )
            embed_lines = [
                {"custom_id": "a", "body": {"input": ["same", "other"]}},
                {"custom_id": "b", "body": {"input": "same"}},
            ]
            embed = client.batch.jobs.create(
                [upload_lines(client, embed_lines, "e.jsonl")], "/v1/embeddings", model="e"
            )
            results.append(bodies_by_custom_id(client, finished(client, chat.id)))
            results[-1].update(bodies_by_custom_id(client, finished(client, embed.id)))
    first, second = results
    answer = first["r0"]["choices"][0]["message"]["content"]
    assert '"q0"' in answer
    assert first["r0"]["object"] == "chat.completion"
    assert first["r0"]["model"] == "mistral-small-latest"
    assert answer != first["r1"]["choices"][0]["message"]["content"]
    for key in ("r0", "r1", "r2"):
        assert first[key]["choices"] == second[key]["choices"]
    same, other = (item["embedding"] for item in first["a"]["data"])
    assert len(same) == EMBEDDING_DIMENSION
    assert abs(sum(v * v for v in same) - 1.0) < 1e-3
    assert first["b"]["data"][0]["embedding"] == same
    assert other != same
    assert first["a"] == second["a"]


def test_an_ocr_batch_job_reads_its_documents_and_reports_unknown_ones(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """A /v1/ocr job answers each line as POST /v1/ocr would; an unknown file is an error line."""
    server = make_emulator(batch_job_seconds=0)
    with connect(server, api_key) as client:
        pdf = client.files.upload(
            file={"file_name": "c.pdf", "content": make_pdf(["Contract", "Signed"])},
            purpose="ocr",
        )
        lines = [
            {"custom_id": "doc", "body": {"document": {"type": "file", "file_id": pdf.id}}},
            {
                "custom_id": "gone",
                "body": {"document": {"type": "file", "file_id": "8b2a4c0e-0000-4000-8000-0"}},
            },
        ]
        job = client.batch.jobs.create(
            [upload_lines(client, lines)], "/v1/ocr", model="mistral-ocr-latest"
        )
        done = finished(client, job.id)
        answers = bodies_by_custom_id(client, done)
        assert done.error_file is not None
        (refused,) = download_lines(client, done.error_file)
    assert [p["markdown"] for p in answers["doc"]["pages"]] == ["Contract", "Signed"]
    assert answers["doc"]["model"] == "mistral-ocr-latest"
    assert refused["custom_id"] == "gone"
    assert refused["response"]["status_code"] == 422


def test_metadata_is_kept_and_the_listing_filters_on_it(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """Jobs keep their metadata; the list keeps those holding every pair asked for, whether the
    pairs come as exploded query keys (the spec's form) or as a JSON ``metadata`` parameter."""
    server = make_emulator(batch_job_seconds=None)
    with connect(server, api_key) as client:
        file_id = upload_lines(client, chat_lines(2))
        eu = client.batch.jobs.create([file_id], CHAT, metadata={"syncd_key": "k1", "team": "eu"})
        us = client.batch.jobs.create([file_id], CHAT, metadata={"syncd_key": "k2", "team": "us"})
        plain = client.batch.jobs.create([file_id], CHAT)
        assert client.batch.jobs.get(eu.id).metadata == {"syncd_key": "k1", "team": "eu"}
        assert [j.id for j in client.batch.jobs.list(metadata={"syncd_key": "k1"}).data] == [eu.id]
        both = client.batch.jobs.list(metadata={"team": "us", "syncd_key": "k2"})
        assert [j.id for j in both.data] == [us.id]
        assert client.batch.jobs.list(metadata={"team": "us", "syncd_key": "k1"}).total == 0
        assert client.batch.jobs.list().total == 3
        assert client.batch.jobs.list(status="QUEUED").total == 3
        assert client.batch.jobs.list(status=["RUNNING"]).total == 0
        filtered = list(client.batch.jobs.iter_all(page_size=1, metadata={"team": "eu"}))
        assert [j.id for j in filtered] == [eu.id]
        with pytest.raises(UsageError):
            client.batch.jobs.list(metadata={"status": "x"})
        with pytest.raises(InvalidRequestError):
            client.batch.jobs.create([file_id], CHAT, metadata={"k": "v" * 513})
        with pytest.raises(InvalidRequestError):
            client.batch.jobs.create([file_id], CHAT, metadata={"k" * 33: "v"})
    raw = httpx.get(
        f"{server.url}/v1/batch/jobs",
        params={"metadata": json.dumps({"team": "eu"})},
        headers={"Authorization": f"Bearer {api_key}"},
    ).json()
    assert [j["id"] for j in raw["data"]] == [eu.id]
    assert plain.metadata is None


def test_injected_fates_fail_time_out_or_never_finish(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """job-fail ends FAILED with errors and no files; job-timeout ends TIMEOUT_EXCEEDED half
    way with the answers so far; job-stuck stays RUNNING half way after later jobs finished."""
    server = make_emulator(batch_job_seconds=0)
    ended: dict[str, BatchJob] = {}
    with connect(server, api_key) as client:
        file_id = upload_lines(client, chat_lines(10))
        for kind in ("job-fail", "job-timeout", "job-stuck"):
            server.set_faults(fault_rate=1.0, fault_kinds=(kind,))
            job = client.batch.jobs.create([file_id], CHAT, model="m")
            server.set_faults(fault_rate=0.0)
            if kind != "job-stuck":
                ended[kind] = finished(client, job.id)
        stuck_id = job.id
        wait_until(
            lambda: client.batch.jobs.get(stuck_id).completed_requests == 5,
            what="the stuck job half way",
        )
        later = finished(client, client.batch.jobs.create([file_id], CHAT, model="m").id)
        stuck = client.batch.jobs.get(stuck_id)
        assert ended["job-timeout"].output_file is not None
        partial = download_lines(client, ended["job-timeout"].output_file)
    failed = ended["job-fail"]
    assert failed.status == "FAILED"
    assert failed.errors and "failed" in failed.errors[0].message
    assert failed.output_file is None and failed.error_file is None
    timed_out = ended["job-timeout"]
    assert timed_out.status == "TIMEOUT_EXCEEDED"
    assert timed_out.completed_requests == 5 and len(partial) == 5
    assert later.status == "SUCCESS"
    assert (stuck.status, stuck.completed_requests, stuck.total_requests) == ("RUNNING", 5, 10)
    assert server.stats()["faults_by_kind"] == {"job-fail": 1, "job-timeout": 1, "job-stuck": 1}


def test_a_drawn_job_fate_leaves_other_requests_alone(
    make_emulator: MakeEmulator, api_key: str, tmp_path: Path
) -> None:
    """With only job kinds drawn at rate 1, uploads and listings are served normally."""
    server = make_emulator(batch_job_seconds=0, fault_rate=1.0, fault_kinds=("job-fail",))
    with connect(server, api_key) as client:
        file_id = upload_lines(client, chat_lines(1))
        assert client.files.list().total == 1
        assert finished(client, client.batch.jobs.create([file_id], CHAT).id).status == "FAILED"
    assert server.stats()["faults"] == 1


def test_a_cancelled_job_ends_cancelled(make_emulator: MakeEmulator, api_key: str) -> None:
    """POST /v1/batch/jobs/{id}/cancel: CANCELLATION_REQUESTED, then CANCELLED; 404 if unknown."""
    server = make_emulator(batch_job_seconds=600)
    headers = {"Authorization": f"Bearer {api_key}"}
    with connect(server, api_key) as client:
        job = client.batch.jobs.create([upload_lines(client, chat_lines(2))], CHAT)
        answer = httpx.post(f"{server.url}/v1/batch/jobs/{job.id}/cancel", headers=headers)
        assert answer.status_code == 200
        assert answer.json()["status"] == "CANCELLATION_REQUESTED"
        assert finished(client, job.id).status == "CANCELLED"
        again = httpx.post(f"{server.url}/v1/batch/jobs/{job.id}/cancel", headers=headers)
        assert again.json()["status"] == "CANCELLED"  # a finished job stays as it is
        with pytest.raises(NotFoundError):
            client.batch.jobs.get("8b2a4c0e-0000-4000-8000-000000000000")
    unknown = httpx.post(f"{server.url}/v1/batch/jobs/nope/cancel", headers=headers)
    assert unknown.status_code == 404


def test_a_job_moved_by_hand_is_no_longer_run(make_emulator: MakeEmulator, api_key: str) -> None:
    """After POST /_emulator/jobs/{id}/status the runner leaves the job where the test put it."""
    server = make_emulator(batch_job_seconds=0.2)
    with connect(server, api_key) as client:
        file_id = upload_lines(client, chat_lines(2))
        held = client.batch.jobs.create([file_id], CHAT)
        moved = httpx.post(
            f"{server.url}/_emulator/jobs/{held.id}/status",
            json={"status": "RUNNING"},
            headers={"Authorization": f"Bearer {api_key}"},
        )
        assert moved.status_code == 200
        assert finished(client, client.batch.jobs.create([file_id], CHAT).id).status == "SUCCESS"
        assert client.batch.jobs.get(held.id).status == "RUNNING"


def test_a_restarted_emulator_finishes_the_jobs_it_had_not(
    make_emulator: MakeEmulator, api_key: str, tmp_path: Path
) -> None:
    """A job still QUEUED when the emulator stopped runs to SUCCESS after a restart."""
    data_dir = tmp_path / "data"
    first = make_emulator(data_dir=data_dir, batch_job_seconds=600)
    with connect(first, api_key) as client:
        job = client.batch.jobs.create([upload_lines(client, chat_lines(3))], CHAT, model="m")
    first.stop()
    second = make_emulator(data_dir=data_dir, batch_job_seconds=0)
    with connect(second, api_key) as client:
        done = finished(client, job.id)
        assert done.status == "SUCCESS"
        assert done.output_file is not None
        assert len(download_lines(client, done.output_file)) == 3


def test_an_unknown_endpoint_is_refused_at_create(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """The endpoint must be one of the spec's ApiEndpoint values, and model, agent_id and
    timeout_hours of their types (422 otherwise)."""
    server = make_emulator()
    with connect(server, api_key) as client:
        file_id = upload_lines(client, chat_lines(1))
        with pytest.raises(InvalidRequestError, match="endpoint"):
            client.batch.jobs.create([file_id], "/v1/chat")
    headers = {"Authorization": f"Bearer {api_key}"}
    for field, value in (("model", 5), ("agent_id", ["a"]), ("timeout_hours", "24")):
        body = {"input_files": [file_id], "endpoint": CHAT, field: value}
        answer = httpx.post(f"{server.url}/v1/batch/jobs", headers=headers, json=body)
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", field]


def test_a_stuck_running_job_can_still_be_cancelled(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """A job that never finishes ends CANCELLED when cancelled, while RUNNING."""
    server = make_emulator(batch_job_seconds=0, fault_rate=1.0, fault_kinds=("job-stuck",))
    with connect(server, api_key) as client:
        job = client.batch.jobs.create([upload_lines(client, chat_lines(4))], CHAT)
        wait_until(
            lambda: client.batch.jobs.get(job.id).completed_requests == 2, what="stuck half way"
        )
        assert client.batch.jobs.get(job.id).status == "RUNNING"
        answer = httpx.post(
            f"{server.url}/v1/batch/jobs/{job.id}/cancel",
            headers={"Authorization": f"Bearer {api_key}"},
        )
        assert answer.json()["status"] == "CANCELLATION_REQUESTED"
        assert finished(client, job.id).status == "CANCELLED"


def test_inline_requests_run_before_the_input_files(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """BatchJobIn ``requests`` need no input file; a job needs one or the other (422)."""
    server = make_emulator(batch_job_seconds=0)
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"endpoint": CHAT, "model": "m", "requests": chat_lines(2, salt="inline")}
    with connect(server, api_key) as client:
        created = httpx.post(f"{server.url}/v1/batch/jobs", headers=headers, json=body).json()
        assert (created["input_files"], created["total_requests"]) == ([], 2)
        done = finished(client, created["id"])
        answers = bodies_by_custom_id(client, done)
    assert sorted(answers) == ["r0", "r1"]
    assert "q0inline" in answers["r0"]["choices"][0]["message"]["content"]
    refused = httpx.post(f"{server.url}/v1/batch/jobs", headers=headers, json={"endpoint": CHAT})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "input_files"]


def test_stopping_the_emulator_does_not_wait_for_a_big_job_to_be_answered(
    make_emulator: MakeEmulator, api_key: str, tmp_path: Path
) -> None:
    """stop() ends the runner within a thousand lines of a 40,000-line job (answering it all
    takes seconds), and the restarted emulator runs the job to the end."""
    data_dir = tmp_path / "data"
    server = make_emulator(data_dir=data_dir, batch_job_seconds=0)
    with connect(server, api_key) as client:
        job = client.batch.jobs.create([upload_lines(client, chat_lines(40_000))], CHAT, model="m")
    started = time.monotonic()
    server.stop()
    stop_seconds = time.monotonic() - started
    restarted = make_emulator(data_dir=data_dir, batch_job_seconds=0)
    with connect(restarted, api_key) as client:
        done = finished(client, job.id)
    assert stop_seconds < 2.0, stop_seconds
    assert (done.status, done.succeeded_requests) == ("SUCCESS", 40_000)


def test_the_client_sends_a_batch_create_once_but_retries_reads(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """A 503 on create is raised at once (a retried create could start a second job), while
    a listing under the same fault is tried again (1 + max_retries requests)."""
    server = make_emulator(batch_job_seconds=None, retry_after=0)
    with Mistral(api_key=api_key, server_url=server.url, max_retries=2) as client:
        file_id = upload_lines(client, chat_lines(1))
        server.set_faults(fault_rate=1.0, fault_kinds=("503",))
        before = server.stats()["requests"]
        with pytest.raises(ApiError):
            client.batch.jobs.create([file_id], CHAT, metadata={"syncd_key": "once"})
        after_create = server.stats()["requests"]
        with pytest.raises(ApiError):
            client.batch.jobs.list(metadata={"syncd_key": "once"})
        after_list = server.stats()["requests"]
    assert isinstance(before, int) and isinstance(after_create, int)
    assert after_create - before == 1
    assert after_list == after_create + 3


def test_a_lost_create_answer_leaves_a_job_the_metadata_filter_finds(
    make_emulator: MakeEmulator, api_key: str
) -> None:
    """lost-response on a batch create: the job exists, the client sees a transport error, and
    listing by the job's metadata key finds exactly that job (how a creator recovers)."""
    server = make_emulator(batch_job_seconds=None)
    with connect(server, api_key) as client:
        file_id = upload_lines(client, chat_lines(1))
        server.set_faults(fault_rate=1.0, fault_kinds=("lost-response",))
        with pytest.raises(ApiTransportError):
            client.batch.jobs.create([file_id], CHAT, metadata={"syncd_key": "lost-1"})
        server.set_faults(fault_rate=0.0)
        found = client.batch.jobs.list(metadata={"syncd_key": "lost-1"})
    assert found.total == 1
    assert found.data[0].input_files == [file_id]
    assert server.stats()["faults_by_kind"] == {"lost-response": 1}
