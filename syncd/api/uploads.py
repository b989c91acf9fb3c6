"""Upload input normalisation and the streamed ``multipart/form-data`` body.

Every accepted input form (a path, a binary file object, bytes, or the SDK's ``{"file_name",
"content", "content_type"}`` dict) becomes an :class:`UploadSource`: a name, an exact size and a
way to read the content from the start again, so a retried upload re-sends the same bytes. The
body (:class:`MultipartBody`) is produced chunk by chunk with a precomputed Content-Length: a
500 MB file never sits in memory. Nothing here talks to the network.
"""

from __future__ import annotations

import io
import mimetypes
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeAlias

from syncd.domain import MAX_UPLOAD_BYTES
from syncd.errors import (
    FileChangedError,
    FileUnreadableError,
    FileVanishedError,
    UsageError,
)
from syncd.purposes import rule_for

__all__ = [
    "CHUNK_BYTES",
    "FileInput",
    "MultipartBody",
    "UploadSource",
    "check_upload_allowed",
    "content_type_for",
    "open_upload_source",
    "sent_filename",
]

#: Read and send this much at a time: large enough for disk speed, small enough to stay flat.
CHUNK_BYTES = 1024 * 1024
#: Files up to this size are sent in one write with their part boundaries (see MultipartBody).
_ONE_WRITE_BYTES = 64 * 1024
#: Inputs of unknown size (pipes, sockets) are copied to a temporary file beyond this much RAM.
_SPOOL_BYTES = 8 * 1024 * 1024

FileInput: TypeAlias = str | os.PathLike[str] | BinaryIO | IO[bytes] | bytes | Mapping[str, Any]
"""What ``Files.upload(file=...)`` accepts."""

_ChunkOpener: TypeAlias = Callable[[], Iterator[bytes]]


@dataclass(frozen=True, slots=True)
class UploadSource:
    """Content to upload: its name, exact size, type, and how to read it from the start."""

    filename: str
    size: int
    content_type: str
    read_chunks: _ChunkOpener
    """Each call yields the whole content again, in chunks of at most ``CHUNK_BYTES``."""
    origin: str
    """Where the content comes from, for error messages (a path, or a description)."""
    release: Callable[[], None] = field(default=lambda: None)
    """Frees what normalisation made (a spool file); the caller's own file stays open."""

    def close(self) -> None:
        """Release temporary resources; call once the upload is over."""
        self.release()


def content_type_for(filename: str) -> str:
    """The part's Content-Type: ``application/jsonl`` for ``.jsonl`` (which ``mimetypes`` does
    not know), else the platform's guess, else ``application/octet-stream``."""
    if filename.lower().endswith(".jsonl"):
        return "application/jsonl"
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


def open_upload_source(
    file: FileInput, *, filename: str | None = None, content_type: str | None = None
) -> UploadSource:
    """Normalise any accepted input form into an :class:`UploadSource`.

    ``filename`` overrides the name taken from the input. Raises ``UsageError`` for an input
    that cannot be uploaded (text-mode file object, no name for raw bytes, unsupported type) and
    ``LocalFileError`` subclasses for a path that is missing or unreadable.
    """
    if isinstance(file, Mapping):
        return _from_mapping(file, filename=filename, content_type=content_type)
    if isinstance(file, str | os.PathLike):
        return _from_path(Path(file), filename=filename, content_type=content_type)
    if isinstance(file, bytes | bytearray | memoryview):
        return _from_bytes(bytes(file), filename=filename, content_type=content_type)
    if hasattr(file, "read"):
        return _from_file_object(file, filename=filename, content_type=content_type)
    raise UsageError(
        f"cannot upload a {type(file).__name__}: pass a path, a binary file object, bytes, "
        'or {"file_name": ..., "content": ...}'
    )


def check_upload_allowed(source: UploadSource, purpose: str | None) -> None:
    """Refuse, before any request, an upload the API can never accept."""
    if source.size > MAX_UPLOAD_BYTES:
        raise UsageError(
            f"{source.origin}: {source.size} bytes is over the Files API limit of "
            f"{MAX_UPLOAD_BYTES} bytes (512 MB); split the file"
        )
    if purpose == "fine-tune" and not rule_for("fine-tune").allows_name(source.filename):
        raise UsageError(
            f"{source.origin}: purpose fine-tune accepts only .jsonl files, "
            f"and {source.filename!r} does not end in .jsonl"
        )


def _from_mapping(
    spec: Mapping[str, Any], *, filename: str | None, content_type: str | None
) -> UploadSource:
    unknown = set(spec) - {"file_name", "content", "content_type"}
    if unknown or "content" not in spec:
        raise UsageError(
            'a file dict needs "file_name" and "content" (and optionally "content_type"); '
            f"got keys {sorted(spec)}"
        )
    name = filename or spec.get("file_name")
    if not isinstance(name, str) or not name:
        raise UsageError('a file dict needs a non-empty "file_name"')
    dict_type = spec.get("content_type")
    if dict_type is not None and not isinstance(dict_type, str):
        raise UsageError('"content_type" must be a string')
    content = spec["content"]
    if isinstance(content, str | os.PathLike):
        raise UsageError('"content" must be bytes or a binary file object; pass a path as file=')
    return open_upload_source(content, filename=name, content_type=content_type or dict_type)


def _from_path(path: Path, *, filename: str | None, content_type: str | None) -> UploadSource:
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise FileVanishedError(f"{path}: no such file", path=str(path)) from exc
    except OSError as exc:
        raise FileUnreadableError(f"{path}: cannot read: {exc.strerror}", path=str(path)) from exc
    if not path.is_file():
        raise FileUnreadableError(f"{path}: not a regular file", path=str(path))
    name = filename or path.name
    size = stat.st_size

    def read_chunks() -> Iterator[bytes]:
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise FileVanishedError(f"{path}: vanished before upload", path=str(path)) from exc
        except OSError as exc:
            raise FileUnreadableError(
                f"{path}: cannot read: {exc.strerror}", path=str(path)
            ) from exc
        with handle:
            yield from _exact_chunks(handle, size, origin=str(path), path=str(path))

    return UploadSource(
        name, size, content_type or content_type_for(name), read_chunks, origin=str(path)
    )


def _from_bytes(data: bytes, *, filename: str | None, content_type: str | None) -> UploadSource:
    if not filename:
        raise UsageError("uploading bytes needs a filename (filename= or a file dict)")

    def read_chunks() -> Iterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(data), CHUNK_BYTES):
            yield bytes(view[start : start + CHUNK_BYTES])

    return UploadSource(
        filename,
        len(data),
        content_type or content_type_for(filename),
        read_chunks,
        origin=f"{filename} (bytes)",
    )


def _from_file_object(
    handle: Any, *, filename: str | None, content_type: str | None
) -> UploadSource:
    if isinstance(handle, io.TextIOBase):
        raise UsageError("file objects must be opened in binary mode ('rb'), not text mode")
    name = filename or _name_of(handle)
    if not name:
        raise UsageError("this file object has no name: pass filename=")
    origin = getattr(handle, "name", None)
    origin_text = origin if isinstance(origin, str) else f"{name} (file object)"
    release = _nothing_to_release
    if not _is_seekable(handle):
        # Unknown size and no way to re-read: copy once to a spooled temporary file (RAM up to
        # _SPOOL_BYTES, disk beyond), which gives both an exact Content-Length and retries.
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (closed by release)
        while chunk := handle.read(CHUNK_BYTES):
            spool.write(chunk)
        spool.seek(0)
        handle, release = spool, spool.close
    start = handle.tell()
    size = handle.seek(0, os.SEEK_END) - start
    handle.seek(start)

    def read_chunks() -> Iterator[bytes]:
        handle.seek(start)
        yield from _exact_chunks(handle, size, origin=origin_text, path=None)

    return UploadSource(
        name,
        size,
        content_type or content_type_for(name),
        read_chunks,
        origin=origin_text,
        release=release,
    )


def _nothing_to_release() -> None:
    """The caller owns its file object: closing it is not ours to do."""


def _name_of(handle: IO[Any]) -> str | None:
    raw = getattr(handle, "name", None)
    if isinstance(raw, str) and raw:
        return Path(raw).name
    if isinstance(raw, bytes) and raw:
        return Path(os.fsdecode(raw)).name
    return None


def _is_seekable(handle: IO[Any]) -> bool:
    try:
        return bool(handle.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _exact_chunks(handle: IO[Any], size: int, *, origin: str, path: str | None) -> Iterator[bytes]:
    """Yield exactly ``size`` bytes; a file that shrank or grew since it was measured is an
    error (``FileChangedError``), never a body that disagrees with its Content-Length."""
    remaining = size
    try:
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                raise FileChangedError(
                    f"{origin}: shrank while uploading ({size - remaining} of {size} bytes read)",
                    path=path,
                )
            remaining -= len(chunk)
            yield bytes(chunk)
        if handle.read(1):
            raise FileChangedError(f"{origin}: grew while uploading (over {size} bytes)", path=path)
    except OSError as exc:
        raise FileUnreadableError(f"{origin}: read failed: {exc}", path=path) from exc


class MultipartBody:
    """One upload's ``multipart/form-data`` body, streamed, in the official SDK's part order.

    Text fields come first (in the order given), the ``file`` part last. Iterating yields the
    whole body from the start (so a redirect or retry can re-send it); ``fully_sent`` tells
    whether the last byte has been handed to the transport, which decides whether a lost answer
    is ambiguous.
    """

    def __init__(
        self,
        fields: Sequence[tuple[str, str]],
        source: UploadSource,
        *,
        boundary: str | None = None,
    ) -> None:
        self.boundary = boundary or secrets.token_hex(16)
        self._source = source
        head = b"".join(self._text_part(name, value) for name, value in fields)
        head += self._file_part_header(source.filename, source.content_type)
        self._head = head
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        self.fully_sent = False

    @property
    def content_type(self) -> str:
        """The request's Content-Type header value."""
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        """The exact body size, known before the first byte is read."""
        return len(self._head) + self._source.size + len(self._tail)

    @property
    def headers(self) -> dict[str, str]:
        """Content-Type and Content-Length: a fixed length, never chunked encoding."""
        return {"Content-Type": self.content_type, "Content-Length": str(self.content_length)}

    def __iter__(self) -> Iterator[bytes]:
        self.fully_sent = False
        if self._source.size <= _ONE_WRITE_BYTES:
            # A small file goes out as one write, not three: each is a system call here, a
            # packet on the wire and a read for the server, more work than the bytes themselves.
            yield b"".join((self._head, *self._source.read_chunks(), self._tail))
        else:
            yield self._head
            yield from self._source.read_chunks()
            yield self._tail
        # Reached only when the transport asked for more after the tail: all bytes are out.
        self.fully_sent = True

    def _text_part(self, name: str, value: str) -> bytes:
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
            f"{value}\r\n"
        ).encode()

    def _file_part_header(self, filename: str, content_type: str) -> bytes:
        # RFC 7578: the filename goes out as raw UTF-8 (no filename*=), as the SDK sends it.
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{_quote(filename)}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()


def sent_filename(name: str) -> str:
    """The filename a server records for a file uploaded as ``name``: what :func:`_quote` sends,
    once the quoted string's backslash escapes are undone (percent escapes are not: WHATWG
    form encoding keeps them). An adoption lookup after a lost response must look for this."""
    return _quote(name).replace("\\\\", "\\")


def _quote(value: str) -> str:
    """Escape a quoted header parameter the way browsers and httpx do (WHATWG form encoding):
    ``"`` and control characters are percent-encoded, a backslash is doubled, so a filename can
    neither end the quoted string nor start a new header line."""
    out = []
    for char in value:
        if char == '"':
            out.append("%22")
        elif char == "\\":
            out.append("\\\\")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"%{ord(char):02X}")
        else:
            out.append(char)
    return "".join(out)
