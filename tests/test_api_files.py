"""Every Files operation and every upload input form, against the emulator over loopback HTTP."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.api import DeletedFile, FileInfo, Mistral, RetrievedFile
from syncd.emulator import EmulatorServer
from syncd.errors import NotFoundError, UsageError

CHAT_LINE = (
    b'{"messages": [{"role": "user", "content": "hi"}, '
    b'{"role": "assistant", "content": "hello"}]}\n'
)


@pytest.fixture
def client(emulator: EmulatorServer, api_key: str) -> Iterator[Mistral]:
    """A client for the ``emulator`` fixture."""
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        yield client


def _jsonl(tmp_path: Path, name: str = "train.jsonl", lines: int = 2) -> Path:
    path = tmp_path / name
    path.write_bytes(CHAT_LINE * lines)
    return path


def _download(client: Mistral, file_id: str) -> bytes:
    with client.files.download(file_id) as response:
        return b"".join(response.iter_bytes())


class TestUploadInputForms:
    @pytest.mark.parametrize(
        "form",
        ["str path", "PathLike", "binary file object", "bytes", "dict with content type"],
    )
    def test_each_form_uploads_the_exact_bytes(
        self, client: Mistral, tmp_path: Path, form: str
    ) -> None:
        """Each accepted input form uploads the file's bytes under the expected name."""
        path = _jsonl(tmp_path, lines=3)
        data = path.read_bytes()
        inputs: dict[str, Callable[[], Any]] = {
            "str path": lambda: str(path),
            "PathLike": lambda: path,
            "binary file object": lambda: path.open("rb"),
            "bytes": lambda: data,
            "dict with content type": lambda: {
                "file_name": "train.jsonl",
                "content": io.BytesIO(data),
                "content_type": "application/x-ndjson",
            },
        }
        given = inputs[form]()
        try:
            info = client.files.upload(
                file=given,
                purpose="fine-tune",
                filename="train.jsonl" if form == "bytes" else None,
            )
        finally:
            if isinstance(given, io.BufferedReader):
                given.close()
        assert isinstance(info, FileInfo)
        assert (info.filename, info.bytes, info.size_bytes) == ("train.jsonl", len(data), len(data))
        assert (info.object, info.purpose, info.source) == ("file", "fine-tune", "upload")
        assert (info.sample_type, info.num_lines) == ("instruct", 3)
        assert _download(client, info.id) == data

    def test_filename_override_and_unicode_name(self, client: Mistral, tmp_path: Path) -> None:
        """filename= sets the stored name; non-ASCII names arrive intact."""
        info = client.files.upload(
            file=_jsonl(tmp_path), purpose="fine-tune", filename="données-été.jsonl"
        )
        assert info.filename == "données-été.jsonl"
        assert client.files.retrieve(info.id).filename == "données-été.jsonl"

    def test_visibility_and_expiry_are_sent(self, client: Mistral, tmp_path: Path) -> None:
        """visibility and expiry reach the server (it echoes them back)."""
        before = time.time()
        info = client.files.upload(
            file=_jsonl(tmp_path), purpose="fine-tune", visibility="user", expiry=48
        )
        assert info.visibility == "user"
        assert info.expires_at is not None
        assert info.expires_at >= before + 47 * 3600

    def test_jsonl_is_sent_as_application_jsonl(self, client: Mistral, tmp_path: Path) -> None:
        """A .jsonl file part is typed application/jsonl."""
        info = client.files.upload(file=_jsonl(tmp_path), purpose="fine-tune")
        assert info.mimetype == "application/jsonl"


class TestListing:
    @pytest.fixture
    def five(self, client: Mistral, tmp_path: Path) -> list[FileInfo]:
        """Three fine-tune files and two batch files with distinct names."""
        uploaded = [
            client.files.upload(file=_jsonl(tmp_path, f"ft-{n}.jsonl", n + 1), purpose="fine-tune")
            for n in range(3)
        ]
        batch_line = b'{"custom_id": "1", "body": {"messages": []}}\n'
        uploaded += [
            client.files.upload(file=batch_line * (n + 1), filename=f"b-{n}.jsonl", purpose="batch")
            for n in range(2)
        ]
        return uploaded

    def test_pages_are_disjoint_and_total_is_counted(
        self, client: Mistral, five: list[FileInfo]
    ) -> None:
        """page/page_size walk the listing without overlap; total counts everything."""
        pages = [client.files.list(page=n, page_size=2) for n in range(3)]
        ids = [info.id for page in pages for info in page.data]
        assert [len(page.data) for page in pages] == [2, 2, 1]
        assert sorted(ids) == sorted(info.id for info in five)
        assert {page.total for page in pages} == {5}
        assert pages[0].object == "list"

    def test_filters(self, client: Mistral, five: list[FileInfo]) -> None:
        """purpose, search, sample_type and source narrow the listing."""
        assert len(client.files.list(purpose="batch").data) == 2
        assert [f.filename for f in client.files.list(search="ft-1").data] == ["ft-1.jsonl"]
        assert len(client.files.list(sample_type=["instruct"]).data) == 3
        assert len(client.files.list(source="upload", purpose="fine-tune").data) == 3
        assert client.files.list(mimetypes=["application/pdf"]).data == []

    def test_iter_all_pages_through_everything(self, client: Mistral, five: list[FileInfo]) -> None:
        """iter_all yields every file once, whatever the page size."""
        ids = [info.id for info in client.files.iter_all(page_size=2)]
        assert sorted(ids) == sorted(info.id for info in five)
        assert len(list(client.files.iter_all(purpose="fine-tune", page_size=1))) == 3
        assert [f.filename for f in client.files.iter_all(search="b-0")] == ["b-0.jsonl"]


class TestSingleFile:
    def test_retrieve_then_delete(self, client: Mistral, tmp_path: Path) -> None:
        """retrieve shows deleted=False; delete confirms; the file is then gone (404)."""
        info = client.files.upload(file=_jsonl(tmp_path), purpose="fine-tune")
        retrieved = client.files.retrieve(info.id)
        assert isinstance(retrieved, RetrievedFile)
        assert (retrieved.id, retrieved.deleted, retrieved.bytes) == (info.id, False, info.bytes)
        deleted = client.files.delete(info.id)
        assert deleted == DeletedFile(id=info.id, object="file", deleted=True)
        with pytest.raises(NotFoundError):
            client.files.retrieve(info.id)

    def test_download_to_writes_atomically(self, client: Mistral, tmp_path: Path) -> None:
        """download_to writes the exact bytes and leaves no temporary file behind."""
        source = _jsonl(tmp_path, lines=50)
        info = client.files.upload(file=source, purpose="fine-tune")
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        target = client.files.download_to(info.id, out_dir / "copy.jsonl")
        assert target.read_bytes() == source.read_bytes()
        assert [p.name for p in out_dir.iterdir()] == ["copy.jsonl"]

    def test_failed_download_keeps_the_old_file(self, client: Mistral, tmp_path: Path) -> None:
        """A download that fails leaves an existing target untouched and no temporary file."""
        target = tmp_path / "keep.jsonl"
        target.write_bytes(b"old")
        with pytest.raises(NotFoundError):
            client.files.download_to("6f1c1d0e-0000-4000-8000-000000000001", target)
        assert target.read_bytes() == b"old"
        assert [p.name for p in tmp_path.iterdir()] == ["keep.jsonl"]

    def test_signed_url_downloads_without_the_key(self, client: Mistral, tmp_path: Path) -> None:
        """The signed URL serves the content with no Authorization header."""
        source = _jsonl(tmp_path)
        info = client.files.upload(file=source, purpose="fine-tune")
        before = time.time()
        signed = client.files.get_signed_url(info.id, expiry=2)
        assert signed.expires_at is not None
        assert before + 2 * 3600 - 5 <= signed.expires_at <= time.time() + 2 * 3600 + 5
        response = httpx.get(signed.url)
        assert response.status_code == 200
        assert response.content == source.read_bytes()

    @pytest.mark.parametrize("expiry", [0, 169, -1])
    def test_signed_url_expiry_checked_before_any_request(
        self, client: Mistral, emulator: EmulatorServer, expiry: int
    ) -> None:
        """An expiry outside 1-168 hours is a UsageError and sends nothing."""
        before = emulator.stats()["requests"]
        with pytest.raises(UsageError, match="1 to 168"):
            client.files.get_signed_url("6f1c1d0e-0000-4000-8000-000000000001", expiry=expiry)
        assert emulator.stats()["requests"] == before

    def test_id_with_slash_cannot_reach_another_route(
        self, client: Mistral, emulator: EmulatorServer
    ) -> None:
        """A file id is one path segment: "<id>/content" is refused before any request."""
        before = emulator.stats()["requests"]
        with pytest.raises(UsageError, match="must not contain '/'"):
            client.files.retrieve("6f1c1d0e-0000-4000-8000-000000000001/content")
        assert emulator.stats()["requests"] == before


class TestFindUpload:
    def test_finds_by_name_size_and_time(self, client: Mistral, tmp_path: Path) -> None:
        """find_upload returns the matching file; wrong size, later start or excluded id: None."""
        started = time.time() - 2
        path = _jsonl(tmp_path, "dup.jsonl", lines=4)
        size = path.stat().st_size
        info = client.files.upload(file=path, purpose="fine-tune")
        client.files.upload(file=_jsonl(tmp_path, "dup-other.jsonl"), purpose="fine-tune")
        assert client.files.find_upload("dup.jsonl", size, started) == info
        assert client.files.find_upload("dup.jsonl", size + 1, started) is None
        assert client.files.find_upload("dup.jsonl", size, time.time() + 60) is None
        assert client.files.find_upload("dup.jsonl", size, started, exclude_ids={info.id}) is None
        assert client.files.find_upload("dup.jsonl", size, started, purpose="batch") is None

    def test_pages_through_many_matches(
        self, make_emulator: Callable[..., EmulatorServer], api_key: str, tmp_path: Path
    ) -> None:
        """With several pages of same-named files, every page is searched."""
        server = make_emulator(dedupe=False)
        with Mistral(api_key=api_key, server_url=server.url) as client:
            path = _jsonl(tmp_path, "same.jsonl")
            started = time.time() - 2
            uploaded = [client.files.upload(file=path, purpose="fine-tune") for _ in range(5)]
            # Listing is newest first: the first upload sits on the last of three pages.
            found = client.files.find_upload(
                "same.jsonl",
                path.stat().st_size,
                started,
                exclude_ids={info.id for info in uploaded[1:]},
                page_size=2,
            )
        assert found == uploaded[0]
