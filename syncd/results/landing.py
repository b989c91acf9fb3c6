"""Results land whole, inside their results folder, and never over a file a person edited.

A result streams into a temporary file (``.<name>.syncd-<random>.tmp``) in its target
directory, is checked against the size the API reported, optionally rewritten (batch output
ordered by ``custom_id``), fsynced, and renamed into place; the directory is fsynced after the
rename. A crash leaves at most a temporary file, never a torn result.

Every directory below the results folder is opened from its parent's descriptor with
``O_NOFOLLOW`` (as :mod:`syncd.beneath` does for watched folders): a directory someone swapped
for a symlink is refused, so a result never lands outside its folder. A file already at the
target name is replaced only when it is exactly what syncd wrote there last (same size and
sha256, as the state store recorded); anything else is a person's, and the new result lands
beside it under another name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from syncd.beneath import SymlinkOnPathError, open_parent
from syncd.errors import LocalFileError
from syncd.hashing import hash_file, open_regular

__all__ = [
    "Landed",
    "Previous",
    "ResultSizeError",
    "Transform",
    "clean_temporaries",
    "land",
    "read_chunks",
    "remove_if_unchanged",
    "sha256_of",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_NONBLOCKING = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_TMP_MARK = ".syncd-"
_CHUNK = 1 << 20

#: Rewrites a staged result: reads the first file, writes the second.
Transform = Callable[[BinaryIO, BinaryIO], None]


class ResultSizeError(OSError):
    """The downloaded result is not as long as the API said: not landed."""


@dataclass(frozen=True, slots=True)
class Landed:
    """A result in place."""

    path: str
    """Relative to the results folder (the beside name when ``beside``)."""
    size: int
    sha256: str
    beside: bool
    """The target name held a file syncd did not write (or one edited since): kept."""


@dataclass(frozen=True, slots=True)
class Previous:
    """What syncd wrote last at the target name (from the state store)."""

    size: int
    sha256: str


def land(
    root: Path,
    rel_path: str,
    chunks: Iterable[bytes],
    *,
    expected_size: int | None,
    previous: Previous | None,
    beside: str,
    transform: Transform | None = None,
    owner: str = "",
) -> Landed:
    """Write ``chunks`` to ``root/rel_path`` (see the module docstring) and return where.

    Raises:
        ResultSizeError: the stream was not ``expected_size`` bytes long.
        OSError: the folder could not be written (full disk, permissions, a symlink on the
            way); nothing was placed and the temporary file is gone.
    """
    parts = PurePosixPath(rel_path).parts
    name = parts[-1]
    with _directory(root, parts[:-1]) as dir_fd:
        staged = _stage(dir_fd, name, chunks, owner)
        try:
            if expected_size is not None and staged.size != expected_size:
                raise ResultSizeError(
                    errno.EIO,
                    f"{rel_path}: downloaded {staged.size} bytes, the API reported "
                    f"{expected_size}; not landed",
                )
            if transform is not None:
                rewritten = _rewrite(dir_fd, name, staged.name, transform, owner)
                os.unlink(staged.name, dir_fd=dir_fd)
                staged = rewritten
            final_name, kept = _target(
                dir_fd, name, PurePosixPath(beside).name, previous, staged.sha256
            )
            os.rename(staged.name, final_name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink_quietly(dir_fd, staged.name)
            raise
        os.fsync(dir_fd)
    final = str(PurePosixPath(*parts[:-1], final_name))
    return Landed(final, staged.size, staged.sha256, kept)


def clean_temporaries(root: Path, *, owner: str, older_than: float) -> int:
    """Remove temporary files a crash left in ``root``: ``owner``'s own (this node runs one
    daemon at a time, so none of them is in progress), and other nodes' once older than
    ``older_than`` seconds (a fresh one may be a download in progress); how many."""
    removed = 0
    if not root.is_dir():
        return 0
    deadline = time.time() - older_than
    for directory, _dirs, files in os.walk(root):
        for name in files:
            if not (name.startswith(".") and _TMP_MARK in name and name.endswith(".tmp")):
                continue
            path = Path(directory, name)
            mine = f"{_TMP_MARK}{owner}-" in name
            try:
                if mine or path.lstat().st_mtime < deadline:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


@dataclass(frozen=True, slots=True)
class _Staged:
    name: str
    size: int
    sha256: str


@contextmanager
def _directory(root: Path, parts: tuple[str, ...]) -> Iterator[int]:
    """The directory ``root/parts`` (created as needed), opened without following a link."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            if part in ("", ".", ".."):
                raise OSError(errno.EXDEV, f"{part!r} in a result path", str(root))
            with suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SymlinkOnPathError(
                        errno.ELOOP,
                        "not a directory (a symlink is never followed out of a results folder)",
                        str(root.joinpath(*parts[: parts.index(part) + 1])),
                    ) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _temporary_name(name: str, owner: str) -> str:
    return f".{name}{_TMP_MARK}{owner}-{secrets.token_hex(4)}.tmp"


def _stage(dir_fd: int, name: str, chunks: Iterable[bytes], owner: str) -> _Staged:
    tmp = _temporary_name(name, owner)
    fd = os.open(tmp, _NEW_FILE, 0o644, dir_fd=dir_fd)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb", closefd=True) as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        _unlink_quietly(dir_fd, tmp)
        raise
    return _Staged(tmp, size, digest.hexdigest())


def _rewrite(dir_fd: int, name: str, source: str, transform: Transform, owner: str) -> _Staged:
    fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as src:
        buffer = _HashingWriter()
        staged_name = _temporary_name(name, owner)
        out_fd = os.open(staged_name, _NEW_FILE, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(out_fd, "wb") as raw:
                buffer.target = raw
                transform(src, buffer)  # type: ignore[arg-type]
                raw.flush()
                os.fsync(raw.fileno())
        except BaseException:
            _unlink_quietly(dir_fd, staged_name)
            raise
    return _Staged(staged_name, buffer.size, buffer.digest.hexdigest())


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self) -> None:
        self.target: BinaryIO | None = None
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        assert self.target is not None
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)


def _target(
    dir_fd: int, name: str, beside: str, previous: Previous | None, new_sha256: str
) -> tuple[str, bool]:
    """The name to rename to, and whether it is the beside name (the file there is kept).

    The file at ``name`` is replaced when it is what syncd wrote there last, or already these
    very bytes (a crash between the rename and its record leaves exactly that).
    """
    try:
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return name, False
    if stat.S_ISREG(found.st_mode):
        current = _sha256_at(dir_fd, name)
        if current == new_sha256:
            return name, False
        if previous is not None and found.st_size == previous.size and current == previous.sha256:
            return name, False
    return beside, True


def _sha256_at(dir_fd: int, name: str) -> str | None:
    """The sha256 of the regular file ``name`` in ``dir_fd``; None for anything else (a FIFO
    swapped in is opened without blocking and refused)."""
    try:
        fd = os.open(name, _READ_NONBLOCKING, dir_fd=dir_fd)
    except OSError:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        while block := src.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _unlink_quietly(dir_fd: int, name: str) -> None:
    with suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def sha256_of(root: Path, rel_path: str) -> tuple[int, str] | None:
    """(size, sha256) of a regular result file below ``root``, read without following a
    link; None when there is none to read."""
    try:
        digest, found = hash_file(root / rel_path, root=root)
    except LocalFileError:
        return None
    return found.size, digest


def read_chunks(root: Path, rel_path: str) -> Iterator[bytes]:
    """A result file's content (a copy for another input with the same content).

    Raises:
        LocalFileError: it is gone, or not a regular file.
    """
    with open_regular(root / rel_path, root=root) as src:
        while block := src.read(_CHUNK):
            yield block


def remove_if_unchanged(root: Path, rel_path: str, previous: Previous) -> bool:
    """Remove a result syncd wrote that a newer result has no counterpart for (an errors file
    of an input whose new version has no errors), only while it is exactly what syncd wrote;
    whether it was removed."""
    if sha256_of(root, rel_path) != (previous.size, previous.sha256):
        return False
    try:
        parent = open_parent(root, root / rel_path)
    except OSError:
        return False
    try:
        os.unlink(PurePosixPath(rel_path).name, dir_fd=parent)
        os.fsync(parent)
    except OSError:
        return False
    finally:
        os.close(parent)
    return True
