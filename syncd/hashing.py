"""Stat a local file and stream its SHA-256, refusing content that moved while it was read.

Only regular files are read; symlinks are never followed and FIFOs or devices are never opened.
Given the watched folder's ``root``, a path is walked from it without following a symlink
anywhere below it (:mod:`syncd.beneath`): a directory swapped for a link is refused, not
followed out of the folder. Without ``root`` only the last component is guarded.
OS errors become :class:`~syncd.errors.LocalFileError` subclasses whose messages name the path.
Nothing here holds more than one read buffer of a file in memory.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from pathlib import Path

from syncd.beneath import SymlinkOnPathError, lstat_beneath, open_parent
from syncd.domain import FileStat
from syncd.errors import FileChangedError, FileUnreadableError, FileVanishedError
from syncd.paths import printable_key

__all__ = [
    "READ_BUFFER_BYTES",
    "DigestingReader",
    "describe_kind",
    "file_stat_of",
    "hash_file",
    "open_regular",
    "open_unchanged",
    "stat_file",
]

#: One buffer, reused for every read of a file. A 1 MiB ``readinto`` loop matched
#: ``hashlib.file_digest`` and ``openssl dgst -sha256`` on a 1 GiB file (~1.4 GiB/s here)
#: and, unlike ``file_digest``, counts the bytes it read.
READ_BUFFER_BYTES = 1 << 20
_SMALLEST_READ = 1 << 12

#: Errors meaning the path (or a directory on it) is no longer there.
_VANISHED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})

# O_NOFOLLOW: a symlink swapped in after the lstat is refused (ELOOP), not followed.
# O_NONBLOCK: a FIFO swapped in after the lstat opens without waiting for a writer (the fstat
# then refuses it); it has no effect on reads of regular files.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def describe_kind(mode: int) -> str:
    """What kind of file ``mode`` (an ``st_mode``) describes, with its article: "a FIFO"."""
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "an unknown kind of file"


def file_stat_of(st: os.stat_result) -> FileStat:
    """The (size, mtime_ns, inode, ctime_ns) fingerprint of a stat result."""
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def stat_file(path: Path, *, root: Path | None = None) -> FileStat:
    """The fingerprint of the regular file at ``path``, without following a symlink.

    ``root``: the watched folder ``path`` is in; no symlink below it is followed either.

    Raises:
        FileVanishedError: nothing is at ``path`` any more.
        FileUnreadableError: it cannot be looked at, or is not a regular file (a symlink,
            directory, FIFO, socket or device).
    """
    try:
        st = lstat_beneath(path.parent if root is None else root, path)
    except OSError as exc:
        raise _translate(path, exc, "look at") from exc
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode)
    return file_stat_of(st)


def open_regular(path: Path, *, root: Path | None = None) -> io.FileIO:
    """Open the regular file at ``path`` for reading (unbuffered), without following a symlink.

    ``root``: the watched folder ``path`` is in; no symlink below it is followed either.

    Anything but a regular file is refused before it is opened (opening a device can have side
    effects); one swapped in between that check and the open is refused by the fstat after it,
    and a FIFO among them does not block the open.

    Raises:
        FileVanishedError: nothing is at ``path``.
        FileUnreadableError: it cannot be opened, or is not a regular file.
    """
    return _open_regular(path, root)[0]


def _open_regular(path: Path, root: Path | None) -> tuple[io.FileIO, FileStat]:
    """:func:`open_regular`, and the fingerprint of the lstat its check was made on.

    The directory is walked once: the lstat and the open are both made relative to it.
    """
    try:
        parent = open_parent(path.parent if root is None else root, path)
    except OSError as exc:
        raise _translate(path, exc, "look at") from exc
    try:
        try:
            st = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise _translate(path, exc, "look at") from exc
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        try:
            fd = os.open(path.name, _OPEN_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise _translate(path, exc, "open") from exc
    finally:
        os.close(parent)
    stream = io.FileIO(fd, "rb")  # owns fd from here on
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
    except BaseException:
        stream.close()
        raise
    return stream, file_stat_of(st)


def hash_file(
    path: Path, *, root: Path | None = None, expected: FileStat | None = None
) -> tuple[str, FileStat]:
    """Stream the SHA-256 of the regular file at ``path``; return ``(hex digest, stat)``.

    ``root``: the watched folder ``path`` is in; no symlink below it is followed.

    The returned stat is the one the digest belongs to: it was taken on the open file before
    reading, matched the number of bytes read, and was unchanged afterwards. ``expected`` is a
    stat seen earlier (a scan; its ctime may be 0, not known); if the file no longer matches
    it, nothing is read.

    Raises:
        FileVanishedError: the file is gone (before or while it was read).
        FileUnreadableError: permission denied, an I/O error, or not a regular file.
        FileChangedError: the file differs from ``expected``, or its size, mtime or inode moved
            while it was read, or it was replaced: try again once it settles.
    """
    stream, before = _open_regular(path, root)
    with stream:
        if expected is not None and before.moved_since(expected):
            raise FileChangedError(
                f"{_shown(path)} changed while it was being hashed ({_difference(expected, before)}"
                " since it was listed); will retry once it settles",
                path=str(path),
            )
        opened_stat = file_stat_of(os.fstat(stream.fileno()))
        if opened_stat != before:
            raise _changed(path, before, opened_stat)
        digest, read = _stream_sha256(path, stream, opened_stat.size)
        after = file_stat_of(os.fstat(stream.fileno()))
    # The path first: unlinking or replacing the file moves the open file's ctime too, and
    # that is a file gone or replaced, not one modified.
    now = stat_file(path, root=root)
    if now.inode != opened_stat.inode:
        raise _changed(path, opened_stat, now)
    if after != opened_stat:
        raise _changed(path, opened_stat, after)
    if read != opened_stat.size:
        raise FileChangedError(
            f"{_shown(path)} changed while it was being hashed "
            f"(read {read} bytes of {opened_stat.size}); will retry once it settles",
            path=str(path),
        )
    if now != opened_stat:
        raise _changed(path, opened_stat, now)
    return digest, opened_stat


def open_unchanged(path: Path, *, root: Path, expected: FileStat) -> io.FileIO:
    """Open the file at ``path`` below ``root`` only if it is still the one ``expected`` (a
    stat its content was hashed with): same inode, size, mtime and ctime.

    Reading the returned file, never the name again, is what makes the bytes read the bytes
    hashed, whatever is renamed or swapped at that name meanwhile.

    Raises:
        FileVanishedError: nothing is at ``path``.
        FileUnreadableError: it cannot be opened, or is not a regular file (or is below a link).
        FileChangedError: it is another file, or was modified, since ``expected``.
    """
    stream = open_regular(path, root=root)
    try:
        now = file_stat_of(os.fstat(stream.fileno()))
        if now.moved_since(expected):
            raise FileChangedError(
                f"{_shown(path)} changed since it was hashed ({_difference(expected, now)})",
                path=str(path),
            )
    except BaseException:
        stream.close()
        raise
    return stream


class DigestingReader:
    """A binary reader over an open file that hashes every byte it hands out.

    For an upload body: after sending, :meth:`hexdigest` and :attr:`bytes_read` say exactly what
    went out. Seeking back to the start (a retried request) starts the digest again; reading
    from anywhere else leaves it unusable (:meth:`hexdigest` is then None).
    """

    def __init__(self, stream: io.FileIO, name: str) -> None:
        self._stream = stream
        self.name = name
        self._sha = hashlib.sha256()
        self.bytes_read = 0
        self._from_start = True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size) or b""
        self._sha.update(data)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._stream.seek(offset, whence)
        self._sha = hashlib.sha256()
        self.bytes_read = 0
        self._from_start = position == 0
        return position

    def tell(self) -> int:
        return self._stream.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def hexdigest(self) -> str | None:
        """The SHA-256 of the bytes read since the start of the file, or None."""
        return self._sha.hexdigest() if self._from_start else None


def _stream_sha256(path: Path, stream: io.FileIO, size_hint: int) -> tuple[str, int]:
    sha = hashlib.sha256()
    # No bigger than the file (plus the byte that shows its end): a fresh 1 MiB buffer is an
    # mmap and munmap of zeroed pages, which cost a small file more than hashing it.
    buffer = bytearray(max(min(READ_BUFFER_BYTES, size_hint + 1), _SMALLEST_READ))
    view = memoryview(buffer)
    total = 0
    while True:
        try:
            count = stream.readinto(buffer)
        except OSError as exc:
            raise _translate(path, exc, "read") from exc
        if not count:  # 0 at end of file (None only for non-blocking streams)
            break
        sha.update(view[:count])
        total += count
    return sha.hexdigest(), total


def _shown(path: Path) -> str:
    # Messages go to logs and the store: undecodable bytes and newlines must not break them.
    return printable_key(str(path))


def _difference(old: FileStat, new: FileStat) -> str:
    if old.inode != new.inode:
        return "replaced by another file"
    if old.size != new.size:
        return f"size {old.size} -> {new.size} bytes"
    return "modified"


def _changed(path: Path, old: FileStat, new: FileStat) -> FileChangedError:
    return FileChangedError(
        f"{_shown(path)} changed while it was being hashed ({_difference(old, new)}); "
        "will retry once it settles",
        path=str(path),
    )


def _not_regular(path: Path, mode: int) -> FileUnreadableError:
    return FileUnreadableError(
        f"{_shown(path)} is {describe_kind(mode)}, not a regular file; not read", path=str(path)
    )


def _translate(path: Path, exc: OSError, action: str) -> FileVanishedError | FileUnreadableError:
    if exc.errno in _VANISHED_ERRNOS:
        return FileVanishedError(f"{_shown(path)} vanished before it could be read", path=str(path))
    if isinstance(exc, SymlinkOnPathError):
        return FileUnreadableError(f"{_shown(path)}: {exc.strerror}", path=str(path))
    if exc.errno == errno.ELOOP:
        return FileUnreadableError(
            f"{_shown(path)} is a symbolic link; not followed", path=str(path)
        )
    reason = exc.strerror or type(exc).__name__
    return FileUnreadableError(f"cannot {action} {_shown(path)}: {reason}", path=str(path))
