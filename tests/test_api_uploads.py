"""Upload inputs and the streamed multipart body, on real files in a tmp dir (no network)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from syncd.api.uploads import (
    CHUNK_BYTES,
    MultipartBody,
    UploadSource,
    check_upload_allowed,
    content_type_for,
    open_upload_source,
)
from syncd.domain import MAX_UPLOAD_BYTES
from syncd.errors import FileChangedError, FileUnreadableError, FileVanishedError, UsageError


def _content(source: UploadSource) -> bytes:
    return b"".join(source.read_chunks())


def _body_bytes(body: MultipartBody) -> bytes:
    return b"".join(body)


class TestContentType:
    def test_jsonl_is_application_jsonl(self) -> None:
        """.jsonl, which mimetypes does not know, is sent as application/jsonl."""
        assert content_type_for("train.JSONL") == "application/jsonl"

    def test_known_extension_uses_mimetypes(self) -> None:
        """Other names use the platform's mimetypes guess."""
        assert content_type_for("doc.pdf") == "application/pdf"

    def test_unknown_extension_is_octet_stream(self) -> None:
        """A name nobody knows is application/octet-stream."""
        assert content_type_for("blob.zzzunknown") == "application/octet-stream"


class TestInputForms:
    def test_path_string_and_pathlike(self, tmp_path: Path) -> None:
        """A str path and a PathLike give the file's name, size and content."""
        path = tmp_path / "data.jsonl"
        path.write_bytes(b'{"text": "x"}\n')
        for given in (str(path), path):
            source = open_upload_source(given)
            assert (source.filename, source.size) == ("data.jsonl", 14)
            assert _content(source) == b'{"text": "x"}\n'

    def test_filename_overrides(self, tmp_path: Path) -> None:
        """filename= replaces the name taken from the input."""
        path = tmp_path / "local.jsonl"
        path.write_bytes(b"x")
        assert open_upload_source(path, filename="remote.jsonl").filename == "remote.jsonl"

    def test_path_is_read_again_for_each_attempt(self, tmp_path: Path) -> None:
        """Each read_chunks() call reads the whole file again (a retry re-sends everything)."""
        path = tmp_path / "big.bin"
        path.write_bytes(os.urandom(CHUNK_BYTES + 123))
        source = open_upload_source(path)
        first, second = _content(source), _content(source)
        assert first == second == path.read_bytes()
        assert max(len(chunk) for chunk in source.read_chunks()) <= CHUNK_BYTES

    def test_seekable_file_object_from_its_position(self, tmp_path: Path) -> None:
        """A binary file object uploads from its current position, again on every attempt."""
        path = tmp_path / "obj.jsonl"
        path.write_bytes(b"HEADERbody")
        with path.open("rb") as handle:
            handle.seek(6)
            source = open_upload_source(handle)
            assert (source.filename, source.size) == ("obj.jsonl", 4)
            assert _content(source) == b"body"
            assert _content(source) == b"body"

    def test_unseekable_stream_is_spooled(self) -> None:
        """A pipe-like object is copied once, so it gets an exact size and can be retried."""

        class Pipe(io.RawIOBase):
            def __init__(self) -> None:
                self._data = io.BytesIO(b"streamed bytes")

            def readable(self) -> bool:
                return True

            def seekable(self) -> bool:
                return False

            def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
                chunk = self._data.read(len(buffer))
                buffer[: len(chunk)] = chunk
                return len(chunk)

        source = open_upload_source(io.BufferedReader(Pipe()), filename="pipe.jsonl")
        try:
            assert source.size == 14
            assert _content(source) == _content(source) == b"streamed bytes"
        finally:
            source.close()

    def test_bytes_need_a_name(self) -> None:
        """Raw bytes without filename= are refused with a clear message."""
        with pytest.raises(UsageError, match="filename"):
            open_upload_source(b"data")
        assert _content(open_upload_source(b"data", filename="a.jsonl")) == b"data"

    def test_dict_form(self) -> None:
        """The SDK's {"file_name", "content", "content_type"} dict is accepted."""
        source = open_upload_source(
            {"file_name": "d.jsonl", "content": io.BytesIO(b"abc"), "content_type": "text/x"}
        )
        assert (source.filename, source.size, source.content_type) == ("d.jsonl", 3, "text/x")
        assert _content(source) == b"abc"

    def test_dict_with_unknown_key_is_refused(self) -> None:
        """A dict with a misspelt key names the keys it got."""
        with pytest.raises(UsageError, match="filename"):
            open_upload_source({"filename": "x.jsonl", "content": b"x"})

    def test_text_mode_file_is_refused(self, tmp_path: Path) -> None:
        """A text-mode file object is refused: the bytes sent must be the bytes on disk."""
        path = tmp_path / "t.jsonl"
        path.write_text("x")
        with path.open("r") as handle, pytest.raises(UsageError, match="binary mode"):
            open_upload_source(handle)  # type: ignore[arg-type]

    def test_unsupported_type_is_refused(self) -> None:
        """Something that is no file at all names its type."""
        with pytest.raises(UsageError, match="int"):
            open_upload_source(42)  # type: ignore[arg-type]

    def test_missing_path(self, tmp_path: Path) -> None:
        """A missing path raises FileVanishedError naming it."""
        missing = tmp_path / "nope.jsonl"
        with pytest.raises(FileVanishedError, match=r"nope\.jsonl") as caught:
            open_upload_source(missing)
        assert caught.value.path == str(missing)

    def test_directory_is_not_a_file(self, tmp_path: Path) -> None:
        """A directory raises FileUnreadableError."""
        with pytest.raises(FileUnreadableError, match="not a regular file"):
            open_upload_source(tmp_path)

    def test_file_that_shrank_is_detected(self, tmp_path: Path) -> None:
        """A file truncated after it was measured fails instead of sending a short body."""
        path = tmp_path / "s.jsonl"
        path.write_bytes(b"0123456789")
        source = open_upload_source(path)
        path.write_bytes(b"01234")
        with pytest.raises(FileChangedError, match="shrank"):
            _content(source)

    def test_file_that_grew_is_detected(self, tmp_path: Path) -> None:
        """A file appended to after it was measured fails instead of sending a cut body."""
        path = tmp_path / "g.jsonl"
        path.write_bytes(b"0123")
        source = open_upload_source(path)
        path.write_bytes(b"0123456789")
        with pytest.raises(FileChangedError, match="grew"):
            _content(source)


class TestChecks:
    def test_over_512_mb_is_refused(self, tmp_path: Path) -> None:
        """A sparse file one byte over the cap is refused, naming the file and the limit."""
        path = tmp_path / "huge.jsonl"
        with path.open("wb"):
            pass
        os.truncate(path, MAX_UPLOAD_BYTES + 1)
        with pytest.raises(UsageError, match=r"huge\.jsonl.*512 MB"):
            check_upload_allowed(open_upload_source(path), "batch")

    def test_exactly_512_mb_is_allowed(self, tmp_path: Path) -> None:
        """The cap itself is allowed."""
        path = tmp_path / "cap.jsonl"
        with path.open("wb"):
            pass
        os.truncate(path, MAX_UPLOAD_BYTES)
        check_upload_allowed(open_upload_source(path), "fine-tune")

    def test_fine_tune_needs_jsonl(self) -> None:
        """fine-tune refuses a name not ending in .jsonl; other purposes do not."""
        source = open_upload_source(b"x", filename="notes.txt")
        with pytest.raises(UsageError, match=r"notes\.txt.*\.jsonl"):
            check_upload_allowed(source, "fine-tune")
        check_upload_allowed(source, "ocr")


class TestMultipartBody:
    def test_parts_in_sdk_order_with_exact_length(self) -> None:
        """Text parts expiry, visibility, purpose come first, the file last; length is exact."""
        source = open_upload_source(b'{"a": 1}\n', filename="t.jsonl")
        body = MultipartBody(
            [("expiry", "48"), ("visibility", "user"), ("purpose", "batch")], source
        )
        raw = _body_bytes(body)
        assert len(raw) == body.content_length
        assert body.headers["Content-Length"] == str(len(raw))
        assert body.content_type == f"multipart/form-data; boundary={body.boundary}"
        assert len(body.boundary) == 32
        order = [raw.index(f'name="{name}"'.encode()) for name in ("expiry", "visibility")]
        order += [raw.index(b'name="purpose"'), raw.index(b'name="file"; filename="t.jsonl"')]
        assert order == sorted(order)
        assert b'Content-Type: application/jsonl\r\n\r\n{"a": 1}\n\r\n' in raw
        assert raw.endswith(f"--{body.boundary}--\r\n".encode())

    def test_fully_sent_only_after_the_last_byte(self) -> None:
        """fully_sent turns true only when the consumer has taken the whole body."""
        body = MultipartBody([], open_upload_source(b"abc", filename="a.bin"))
        chunks = iter(body)
        next(chunks)
        assert not body.fully_sent
        list(chunks)
        assert body.fully_sent

    def test_a_small_file_is_one_write_a_large_one_is_streamed(self) -> None:
        """A small body goes to the transport as one chunk (one send, not three); a file over
        64 KiB still streams, its content never joined into one buffer."""
        small = MultipartBody(
            [("purpose", "batch")], open_upload_source(b"x" * 100, filename="a.bin")
        )
        assert [len(chunk) for chunk in small] == [small.content_length]
        size = 3 * CHUNK_BYTES + 5
        large = MultipartBody([], open_upload_source(b"y" * size, filename="b.bin"))
        lengths = [len(chunk) for chunk in large]
        assert max(lengths) == CHUNK_BYTES
        assert len(lengths) == 6 and sum(lengths) == large.content_length

    def test_body_can_be_iterated_twice(self) -> None:
        """Iterating again yields the same bytes (a redirect or retry re-sends it)."""
        body = MultipartBody([("purpose", "batch")], open_upload_source(b"x", filename="a.bin"))
        assert _body_bytes(body) == _body_bytes(body)

    def test_filename_is_utf8_and_escaped(self) -> None:
        """Non-ASCII names go out as raw UTF-8; quotes, CR and LF cannot break the header."""
        source = open_upload_source(b"x", filename='ré"su\r\nmé.jsonl')
        raw = _body_bytes(MultipartBody([], source))
        assert 'filename="ré%22su%0D%0Amé.jsonl"'.encode() in raw
