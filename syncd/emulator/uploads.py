"""Receiving one upload: a streaming multipart/form-data reader that writes the file part to disk.

The file part goes straight into a temp file while it is hashed and counted; nothing larger than
about a megabyte is ever held in memory. Part headers are decoded as UTF-8 because clients (the
official SDK included) send raw UTF-8 filenames. The size cap is enforced as bytes arrive.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = [
    "INLINE_BYTES",
    "MalformedUploadError",
    "ReceivedUpload",
    "UploadTooLargeError",
    "receive_upload",
]

#: Write to disk in batches of about this size: few thread hops, bounded memory.
_FLUSH_BYTES = 1024 * 1024
#: A body declared no larger than this is received, written and checked on the event loop: a
#: worker-thread hop costs more CPU than a small file's own work (three hops were a third of a
#: 2 KB upload's cost, and eight clients queued on them), and it blocks the loop for well
#: under a millisecond.
INLINE_BYTES = 64 * 1024
_MAX_FIELD_BYTES = 64 * 1024
_MAX_FIELDS = 32
#: Past ``2 x limit + this`` an oversized body is no longer drained; the connection is closed.
_DRAIN_SLACK_BYTES = 16 * 1024 * 1024


class MalformedUploadError(Exception):
    """The request is not a usable multipart upload; ``field`` names the part at fault."""

    def __init__(self, message: str, field: str = "file", kind: str = "value_error") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.kind = kind


class UploadTooLargeError(Exception):
    """The file part grew past the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"file is larger than the {limit}-byte upload limit")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ReceivedUpload:
    """A fully received upload: its text fields and the file part, already on disk."""

    fields: dict[str, str]
    filename: str
    declared_type: str | None
    path: Path
    size: int
    sha256: str


class _BlobSink:
    """The open temp file of the file part; hashes and counts what it writes.

    Created in a worker thread (the file exists as soon as an upload starts); the last write
    and the close share one thread hop (:meth:`finish`): a small upload costs two hops here.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("wb")
        self._digest = hashlib.sha256()
        self.size = 0

    def write_all(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self._handle.write(chunk)
            self._digest.update(chunk)
            self.size += len(chunk)

    def finish(self, chunks: list[bytes]) -> None:
        """Write the last chunks and close."""
        self.write_all(chunks)
        self.close()

    def close(self) -> None:
        self._handle.close()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


@dataclass
class _PartCollector:
    """python-multipart callbacks: route the file part's bytes to a queue, keep text fields."""

    max_file_bytes: int
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    declared_type: str | None = None
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    file_bytes: int = 0
    too_large: bool = False
    file_complete: bool = False
    finished: bool = False
    error: MalformedUploadError | None = None
    _headers: dict[str, bytes] = field(default_factory=dict)
    _header_name: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _field_name: str | None = None
    _field_value: bytearray = field(default_factory=bytearray)
    _in_file: bool = False

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }

    def take_pending(self) -> list[bytes]:
        chunks, self.pending, self.pending_bytes = self.pending, [], 0
        return chunks

    def _fail(self, message: str, field_name: str = "file") -> None:
        if self.error is None:
            self.error = MalformedUploadError(message, field_name)

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._field_name = None
        self._field_value = bytearray()
        self._in_file = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = bytes(self._header_name).decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value).strip()
        self._header_name = bytearray()
        self._header_value = bytearray()

    def _on_headers_finished(self) -> None:
        # parse_options_header decodes bytes as latin-1 and re-encodes the values the same
        # way, so the raw UTF-8 bytes of a filename survive for the decode below.
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", errors="replace")
        raw_filename = params.get(b"filename")
        if name == "file" and raw_filename is not None:
            if self.filename is not None:
                self._fail("more than one 'file' part")
                return
            filename = raw_filename.decode("utf-8", errors="replace")
            if not filename.strip():
                self._fail("the 'file' part has an empty filename")
                return
            self.filename = filename
            declared = self._headers.get("content-type")
            self.declared_type = declared.decode("latin-1") if declared else None
            self._in_file = True
        elif len(self.fields) >= _MAX_FIELDS:
            self._fail(f"more than {_MAX_FIELDS} form fields", name)
        else:
            self._field_name = name

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.file_bytes += end - start
            if self.file_bytes > self.max_file_bytes:
                self.too_large = True
            if not self.too_large:
                self.pending.append(data[start:end])
                self.pending_bytes += end - start
        elif self._field_name is not None:
            self._field_value += data[start:end]
            if len(self._field_value) > _MAX_FIELD_BYTES:
                self._fail(f"form field is longer than {_MAX_FIELD_BYTES} bytes", self._field_name)
                self._field_name = None

    def _on_part_end(self) -> None:
        if self._in_file:
            self.file_complete = True
            self._in_file = False
        elif self._field_name is not None:
            try:
                self.fields[self._field_name] = bytes(self._field_value).decode("utf-8")
            except UnicodeDecodeError:
                self._fail("form field is not valid UTF-8", self._field_name)

    def _on_end(self) -> None:
        self.finished = True


def _boundary_of(content_type: str | None) -> bytes:
    mime, params = parse_options_header((content_type or "").encode("latin-1", "replace"))
    boundary = params.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise MalformedUploadError("expected a multipart/form-data body with a 'file' part")
    return boundary


async def receive_upload(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    dest: Path,
    max_file_bytes: int,
    *,
    declared_bytes: int | None = None,
) -> ReceivedUpload:
    """Read a multipart upload from ``chunks``, writing its file part to ``dest``.

    Consumes the whole body even after a failure, so the client can read the answer, up to
    twice the limit (the rest of a larger body is abandoned, and the server ends the connection
    with the answer). On any error ``dest`` is removed.

    Raises:
        MalformedUploadError: not multipart, no file part, truncated or garbled body.
        UploadTooLargeError: the file part is larger than ``max_file_bytes``.

    A body whose ``declared_bytes`` (its Content-Length) is at most :data:`INLINE_BYTES` is
    handled without leaving the event loop; a body that runs past its declaration is still only
    read as far as the limit allows, in batches.
    """
    # Draining lets the client read our 413/422 instead of a reset, but not forever.
    drain_limit = 2 * max_file_bytes + _DRAIN_SLACK_BYTES
    try:
        boundary = _boundary_of(content_type)
    except MalformedUploadError:
        await _drain(chunks, drain_limit)
        raise
    collector = _PartCollector(max_file_bytes)
    parser = MultipartParser(boundary, collector.callbacks())
    inline = declared_bytes is not None and declared_bytes <= INLINE_BYTES
    sink = _BlobSink(dest) if inline else await anyio.to_thread.run_sync(_BlobSink, dest)
    body_bytes = 0
    try:
        async for chunk in chunks:
            body_bytes += len(chunk)
            if body_bytes > drain_limit:
                collector.too_large = True
                break
            if collector.error is not None:
                continue  # keep reading so the client can get our 422
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                collector.error = MalformedUploadError(f"malformed multipart body: {exc}")
                continue
            if collector.pending_bytes >= _FLUSH_BYTES:
                await anyio.to_thread.run_sync(sink.write_all, collector.take_pending())
        last = collector.take_pending() if collector.error is None else []
        if inline and body_bytes <= INLINE_BYTES:
            sink.finish(last)
        else:
            await anyio.to_thread.run_sync(sink.finish, last)
    except BaseException:
        await _discard_soon(sink, inline)
        raise
    try:
        return _finish(collector, sink)
    except (MalformedUploadError, UploadTooLargeError):
        await _discard_soon(sink, inline)
        raise


def _finish(collector: _PartCollector, sink: _BlobSink) -> ReceivedUpload:
    if collector.error is not None:
        raise collector.error
    if collector.too_large:
        raise UploadTooLargeError(collector.max_file_bytes)
    if collector.filename is None:
        raise MalformedUploadError("Field required", kind="missing")
    if not (collector.file_complete and collector.finished):
        raise MalformedUploadError("multipart body ended before its closing boundary")
    return ReceivedUpload(
        fields=collector.fields,
        filename=collector.filename,
        declared_type=collector.declared_type,
        path=sink.path,
        size=sink.size,
        sha256=sink.sha256,
    )


def _discard(sink: _BlobSink) -> None:
    sink.close()
    sink.path.unlink(missing_ok=True)


async def _discard_soon(sink: _BlobSink, inline: bool) -> None:
    """:func:`_discard`, on the loop for a small body (a cancelled task may not await)."""
    if inline and sink.size <= INLINE_BYTES:
        _discard(sink)
    else:
        await anyio.to_thread.run_sync(_discard, sink)


async def _drain(chunks: AsyncIterator[bytes], limit: int) -> None:
    """Read and discard ``chunks`` until they end or more than ``limit`` bytes went by."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            return
