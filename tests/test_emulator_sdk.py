"""The official ``mistralai`` SDK, unchanged, against the emulator over loopback HTTP."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from mistralai.client import Mistral
from mistralai.client.errors import SDKError

from syncd.emulator import EmulatorServer
from tests.documents import make_pdf
from tests.support import wait_until

CHAT = (
    b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n'
    b'{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"2+2"},'
    b'{"role":"assistant","content":"4"}]}\n'
)
PRETRAIN = b'{"text":"one"}\n{"text":"two"}\n{"text":"three"}\n'
BATCH = b'{"custom_id":"0","body":{"messages":[{"role":"user","content":"hi"}]}}\n'


@pytest.fixture
def client(emulator: EmulatorServer, api_key: str) -> Iterator[Mistral]:
    with Mistral(api_key=api_key, server_url=emulator.url) as sdk:
        yield sdk


def status_of(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(SDKError) as caught:
        call()
    return caught.value.status_code, caught.value.body


def test_upload_by_file_object_fills_every_field(client: Mistral) -> None:
    """An upload from a binary file object returns a complete 200 file object."""
    created = client.files.upload(
        file={"file_name": "train.jsonl", "content": io.BytesIO(CHAT)}, purpose="fine-tune"
    )
    assert created.object == "file"
    assert created.size_bytes == len(CHAT)
    assert created.filename == "train.jsonl"
    assert created.purpose == "fine-tune"
    assert created.sample_type == "instruct"
    assert created.source == "upload"
    assert created.num_lines == 2
    assert created.mimetype == "application/jsonl"
    assert created.visibility == "workspace"
    assert created.expires_at is None
    assert isinstance(created.signature, str)
    assert len(created.signature) == 16
    assert created.created_at > 0


def test_upload_by_bytes_without_purpose_defaults_to_fine_tune(client: Mistral) -> None:
    """Bytes content with no purpose part is validated and stored as fine-tune."""
    created = client.files.upload(
        file={"file_name": "text.jsonl", "content": PRETRAIN, "content_type": "application/jsonl"}
    )
    assert created.purpose == "fine-tune"
    assert created.sample_type == "pretrain"
    assert created.num_lines == 3


def test_upload_batch_with_expiry_and_user_visibility(client: Mistral) -> None:
    """Batch purpose, expiry hours and visibility are reflected in the file object."""
    created = client.files.upload(
        file={"file_name": "requests.jsonl", "content": BATCH},
        purpose="batch",
        expiry=48,
        visibility="user",
    )
    assert created.sample_type == "batch_request"
    assert created.visibility == "user"
    assert created.expires_at == created.created_at + 48 * 3600


def test_list_filters_pagination_and_total(client: Mistral) -> None:
    """Every list filter narrows the result and pages partition it, with a total."""
    chat = client.files.upload(file={"file_name": "chat-a.jsonl", "content": CHAT})
    text = client.files.upload(file={"file_name": "text-b.jsonl", "content": PRETRAIN})
    batch = client.files.upload(
        file={"file_name": "batch-c.jsonl", "content": BATCH}, purpose="batch"
    )
    doc = client.files.upload(file={"file_name": "scan.pdf", "content": b"%PDF-1.4"}, purpose="ocr")

    everything = client.files.list()
    assert everything.object == "list"
    assert everything.total == 4
    assert {f.id for f in everything.data} == {chat.id, text.id, batch.id, doc.id}

    def ids(**filters: object) -> set[str]:
        return {f.id for f in client.files.list(**filters).data}  # type: ignore[arg-type]

    assert ids(sample_type=["instruct", "batch_request"]) == {chat.id, batch.id}
    assert ids(purpose="batch") == {batch.id}
    assert ids(search="TEXT") == {text.id}
    assert ids(mimetypes=["application/pdf"]) == {doc.id}
    assert ids(source=["upload"]) == {chat.id, text.id, batch.id, doc.id}
    assert ids(source=["mistral"]) == set()
    pages = [client.files.list(page=n, page_size=3) for n in range(2)]
    assert [len(p.data) for p in pages] == [3, 1]
    assert {f.id for p in pages for f in p.data} == {chat.id, text.id, batch.id, doc.id}
    assert pages[1].total == 4
    assert client.files.list(include_total=False).total is None


def test_retrieve_download_delete_round_trip(client: Mistral) -> None:
    """Retrieve says deleted=false, download returns the bytes, delete makes it 404."""
    created = client.files.upload(file={"file_name": "train.jsonl", "content": CHAT})
    fetched = client.files.retrieve(file_id=created.id)
    assert fetched.deleted is False
    assert fetched.size_bytes == len(CHAT)
    response = client.files.download(file_id=created.id)
    try:
        assert response.read() == CHAT
        assert response.headers["content-type"] == "application/octet-stream"
    finally:
        response.close()
    deleted = client.files.delete(file_id=created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    assert status_of(lambda: client.files.retrieve(file_id=created.id))[0] == 404
    assert status_of(lambda: client.files.download(file_id=created.id))[0] == 404
    assert client.files.list().total == 0


def test_signed_url_downloads_without_auth(client: Mistral) -> None:
    """The signed URL serves the content to a plain client with no Authorization header."""
    created = client.files.upload(file={"file_name": "train.jsonl", "content": CHAT})
    signed = client.files.get_signed_url(file_id=created.id, expiry=2)
    response = httpx.get(signed.url)
    assert response.status_code == 200
    assert response.content == CHAT


def test_wrong_api_key_is_401(emulator: EmulatorServer) -> None:
    """A bearer token other than the configured key surfaces as SDKError 401."""
    with Mistral(api_key="not-the-key", server_url=emulator.url) as sdk:
        status, body = status_of(sdk.files.list)
    assert status == 401
    assert json.loads(body) == {"detail": "Unauthorized"}


def test_unknown_id_is_404(client: Mistral) -> None:
    """Retrieving, downloading or deleting an unknown id gives 404 with a JSON detail."""
    unknown = "00000000-0000-4000-8000-000000000000"
    for call in (client.files.retrieve, client.files.download, client.files.delete):
        status, body = status_of(lambda call=call: call(file_id=unknown))  # type: ignore[misc]
        assert status == 404
        assert unknown in json.loads(body)["detail"]


def test_invalid_training_file_is_422_with_line_numbers(client: Mistral) -> None:
    """Bad fine-tune JSONL is rejected with one numbered error per bad line."""
    bad = CHAT + b"not json\n" + b'{"messages":[{"role":"user","content":"no answer"}]}\n'
    status, body = status_of(
        lambda: client.files.upload(file={"file_name": "bad.jsonl", "content": bad})
    )
    assert status == 422
    payload = json.loads(body)
    assert payload["detail"] == "Invalid file format."
    assert payload["description"].startswith("Found 2 errors in this file.")
    assert [e["line_number"] for e in payload["errors"]] == [3, 4]
    assert "invalid json" in payload["errors"][0]["message"]
    assert "assistant" in payload["errors"][1]["message"]


def test_upload_over_limit_is_413(
    make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """An upload above max_upload_bytes surfaces as SDKError 413 and is not stored."""
    server = make_emulator(max_upload_bytes=1000)
    with Mistral(api_key=api_key, server_url=server.url) as sdk:
        status, _ = status_of(
            lambda: sdk.files.upload(
                file={"file_name": "big.jsonl", "content": b"x" * 5000}, purpose="audio"
            )
        )
        assert status == 413
        assert sdk.files.list().total == 0


def test_unicode_filename_round_trips_through_the_sdk(client: Mistral) -> None:
    """The SDK's raw UTF-8 filename comes back unchanged from upload, list and search."""
    name = "données_日本語_😀.jsonl"
    created = client.files.upload(file={"file_name": name, "content": CHAT})
    assert created.filename == name
    assert [f.filename for f in client.files.list(search="日本語").data] == [name]


def test_a_batch_job_runs_and_its_results_download_through_the_sdk(
    make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """batch.jobs.create/get/list (with the metadata filter) and files.download of the output
    file, all with the official SDK unchanged."""
    server = make_emulator(batch_job_seconds=0)
    requests = BATCH + b'{"custom_id":"1","body":{"messages":[{"role":"user","content":"yo"}]}}\n'
    with Mistral(api_key=api_key, server_url=server.url) as sdk:
        uploaded = sdk.files.upload(
            file={"file_name": "requests.jsonl", "content": requests}, purpose="batch"
        )
        job = sdk.batch.jobs.create(
            input_files=[uploaded.id],
            endpoint="/v1/chat/completions",
            model="mistral-small-latest",
            metadata={"syncd_key": "abc"},
        )
        assert job.status == "QUEUED"
        assert job.metadata == {"syncd_key": "abc"}

        def done() -> object:
            current = sdk.batch.jobs.get(job_id=job.id)
            return current if current.status == "SUCCESS" else None

        finished = wait_until(done, what="the job to succeed")
        assert isinstance(finished, type(job))
        tagged = sdk.batch.jobs.list(metadata={"syncd_key": "abc"}, status=["SUCCESS"])
        untagged = sdk.batch.jobs.list(metadata={"syncd_key": "other"})
        assert finished.output_file is not None
        output = sdk.files.retrieve(file_id=finished.output_file)
        response = sdk.files.download(file_id=finished.output_file)
        try:
            lines = [json.loads(line) for line in response.read().splitlines()]
        finally:
            response.close()
    assert (finished.total_requests, finished.succeeded_requests) == (2, 2)
    assert [j.id for j in tagged.data or []] == [job.id]
    assert untagged.total == 0
    assert (output.sample_type, output.source, output.purpose) == (
        "batch_result",
        "mistral",
        "batch",
    )
    assert sorted(line["custom_id"] for line in lines) == ["0", "1"]
    assert all(line["response"]["body"]["object"] == "chat.completion" for line in lines)


def test_ocr_process_reads_an_uploaded_pdf_through_the_sdk(client: Mistral) -> None:
    """ocr.process with a file chunk and with a signed document URL parses unchanged."""
    pdf = make_pdf(["Hello from page one", "And page two"])
    uploaded = client.files.upload(file={"file_name": "doc.pdf", "content": pdf}, purpose="ocr")
    by_id = client.ocr.process(
        model="mistral-ocr-latest", document={"type": "file", "file_id": uploaded.id}
    )
    url = client.files.get_signed_url(file_id=uploaded.id).url
    by_url = client.ocr.process(
        model="mistral-ocr-latest", document={"type": "document_url", "document_url": url}
    )
    assert [p.markdown for p in by_id.pages] == ["Hello from page one", "And page two"]
    assert [p.index for p in by_url.pages] == [0, 1]
    assert by_id.usage_info.pages_processed == 2
    assert by_id.pages[0].dimensions is not None
    assert by_id.pages[0].dimensions.dpi == 200
    status, body = status_of(
        lambda: client.ocr.process(
            model="mistral-ocr-latest",
            document={"type": "file", "file_id": "00000000-0000-4000-8000-000000000000"},
        )
    )
    assert status == 404
    assert "not found" in json.loads(body)["detail"]
