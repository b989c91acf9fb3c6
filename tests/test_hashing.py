"""Stat and streaming SHA-256 of real files, including files that move while they are read."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.domain import FileStat
from syncd.errors import FileChangedError, FileUnreadableError, FileVanishedError
from syncd.hashing import READ_BUFFER_BYTES, describe_kind, hash_file, open_regular, stat_file
from tests.support import run_as_nobody, wait_until, world_traversable_dir

#: Big enough that hashing takes a good fraction of a second, so a concurrent change lands
#: while the file is open; sparse, so it costs no disk.
_SLOW_FILE_BYTES = 128 * 1024 * 1024


def _sparse_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def _open_by_us(path: Path) -> bool:
    """Whether this process has ``path`` open right now (so hash_file is reading it)."""
    fd_dir = Path("/proc/self/fd")
    for fd in fd_dir.iterdir():
        try:
            if fd.readlink() == path:
                return True
        except OSError:
            continue
    return False


def _while_hashing(path: Path, action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` in a thread as soon as ``path`` is open for hashing."""

    def run() -> None:
        wait_until(lambda: _open_by_us(path), timeout=10, interval=0.001, what=f"{path} open")
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def open_dir() -> Iterator[Path]:
    with world_traversable_dir() as path:
        yield path


class TestHashFile:
    def test_digest_and_stat_match_the_file(self, tmp_path: Path) -> None:
        """The digest is the SHA-256 of the content; the stat is the file's lstat."""
        path = tmp_path / "a.jsonl"
        path.write_bytes(b'{"text": "hello"}\n')
        digest, file_stat = hash_file(path)
        assert digest == hashlib.sha256(b'{"text": "hello"}\n').hexdigest()
        st = path.lstat()
        assert file_stat == FileStat(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)

    def test_multi_buffer_file(self, tmp_path: Path) -> None:
        """A file spanning several read buffers (and a partial last one) hashes correctly."""
        content = os.urandom(3 * READ_BUFFER_BYTES + 12345)
        path = tmp_path / "big.bin"
        path.write_bytes(content)
        assert hash_file(path)[0] == hashlib.sha256(content).hexdigest()

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty file hashes to the SHA-256 of nothing."""
        path = tmp_path / "empty.jsonl"
        path.touch()
        digest, file_stat = hash_file(path)
        assert digest == hashlib.sha256(b"").hexdigest()
        assert file_stat.size == 0

    def test_memory_stays_bounded_by_the_buffer(self, tmp_path: Path) -> None:
        """Hashing a 64 MiB file allocates about one read buffer, not the file."""
        path = _sparse_file(tmp_path / "sparse.bin", 64 * 1024 * 1024)
        tracemalloc.start()
        try:
            digest, _ = hash_file(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert digest == hashlib.sha256(bytes(64 * 1024 * 1024)).hexdigest()
        assert peak < 2 * READ_BUFFER_BYTES + 256 * 1024

    def test_missing_file_has_vanished(self, tmp_path: Path) -> None:
        """A path with nothing at it raises FileVanishedError naming the path."""
        path = tmp_path / "gone.jsonl"
        with pytest.raises(FileVanishedError, match=r"gone\.jsonl vanished") as info:
            hash_file(path)
        assert info.value.path == str(path)

    def test_missing_parent_directory_has_vanished(self, tmp_path: Path) -> None:
        """A file whose directory was replaced by a file is gone, not unreadable."""
        (tmp_path / "dir").write_text("now a file")
        with pytest.raises(FileVanishedError):
            hash_file(tmp_path / "dir" / "a.jsonl")

    def test_directory_is_unreadable(self, tmp_path: Path) -> None:
        """A directory is refused with a message saying what it is."""
        with pytest.raises(FileUnreadableError, match="is a directory, not a regular file"):
            hash_file(tmp_path)

    @pytest.mark.timeout(10)
    def test_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        """A FIFO is refused at once (opening one for reading would wait for a writer)."""
        fifo = tmp_path / "pipe.jsonl"
        os.mkfifo(fifo)
        with pytest.raises(FileUnreadableError, match=r"pipe\.jsonl is a FIFO, not a regular file"):
            hash_file(fifo)

    def test_symlink_is_not_followed(self, tmp_path: Path) -> None:
        """A symlink to a readable file is refused, not followed."""
        (tmp_path / "target.jsonl").write_text("{}\n")
        (tmp_path / "link.jsonl").symlink_to(tmp_path / "target.jsonl")
        with pytest.raises(FileUnreadableError, match="is a symbolic link"):
            hash_file(tmp_path / "link.jsonl")

    def test_permission_denied_is_unreadable(self, open_dir: Path) -> None:
        """A file its user may not read gives FileUnreadableError with the OS reason."""
        path = open_dir / "secret.jsonl"
        path.write_text("{}\n")
        path.chmod(0o000)
        outcome = run_as_nobody(lambda: hash_file(path))
        assert isinstance(outcome, FileUnreadableError)
        assert str(outcome) == f"cannot open {path}: Permission denied"

    def test_stale_expected_stat_is_a_change(self, tmp_path: Path) -> None:
        """A file that no longer matches the stat the scan saw is not read."""
        path = tmp_path / "a.jsonl"
        path.write_text("{}\n")
        seen = stat_file(path)
        path.write_text('{"text": "more"}\n')
        with pytest.raises(FileChangedError, match="changed while it was being hashed") as info:
            hash_file(path, expected=seen)
        assert "size 3 -> 17 bytes" in str(info.value)
        assert "will retry once it settles" in str(info.value)
        assert info.value.retryable

    def test_matching_expected_stat_is_accepted(self, tmp_path: Path) -> None:
        """When the file still matches ``expected``, the digest comes back with that stat."""
        path = tmp_path / "a.jsonl"
        path.write_text("{}\n")
        seen = stat_file(path)
        assert hash_file(path, expected=seen)[1] == seen

    def test_growing_while_hashed_is_a_change(self, tmp_path: Path) -> None:
        """A file appended to while it is read raises FileChangedError."""
        path = _sparse_file(tmp_path / "growing.bin", _SLOW_FILE_BYTES)

        def append() -> None:
            with path.open("ab") as f:
                f.write(b"more")

        writer = _while_hashing(path, append)
        with pytest.raises(FileChangedError, match="changed while it was being hashed"):
            hash_file(path)
        writer.join(timeout=10)

    def test_deleted_while_hashed_has_vanished(self, tmp_path: Path) -> None:
        """A file unlinked while it is read raises FileVanishedError, not a digest."""
        path = _sparse_file(tmp_path / "doomed.bin", _SLOW_FILE_BYTES)
        remover = _while_hashing(path, path.unlink)
        with pytest.raises(FileVanishedError):
            hash_file(path)
        remover.join(timeout=10)

    def test_replaced_while_hashed_is_a_change(self, tmp_path: Path) -> None:
        """A file renamed over while it is read raises FileChangedError ("replaced")."""
        path = _sparse_file(tmp_path / "data.bin", _SLOW_FILE_BYTES)
        (tmp_path / "new.bin").write_bytes(b"new content")
        mover = _while_hashing(path, lambda: (tmp_path / "new.bin").replace(path))
        with pytest.raises(FileChangedError, match="replaced by another file"):
            hash_file(path)
        mover.join(timeout=10)


class TestStatFile:
    def test_regular_file(self, tmp_path: Path) -> None:
        """The fingerprint is size, mtime_ns, inode and ctime_ns from lstat."""
        path = tmp_path / "a.jsonl"
        path.write_bytes(b"12345")
        st = path.lstat()
        assert stat_file(path) == FileStat(5, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)

    def test_missing(self, tmp_path: Path) -> None:
        """Nothing at the path raises FileVanishedError."""
        with pytest.raises(FileVanishedError, match="vanished"):
            stat_file(tmp_path / "nope")

    def test_socket_is_unreadable(self, tmp_path: Path) -> None:
        """A Unix socket is named as such."""
        path = tmp_path / "s.sock"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
            with pytest.raises(FileUnreadableError, match=r"s\.sock is a socket, not a regular"):
                stat_file(path)

    def test_symlink_is_unreadable(self, tmp_path: Path) -> None:
        """lstat semantics: a symlink is not the file it points to."""
        (tmp_path / "t").write_text("x")
        (tmp_path / "l").symlink_to("t")
        with pytest.raises(FileUnreadableError, match="is a symbolic link, not a regular file"):
            stat_file(tmp_path / "l")

    def test_non_utf8_name_is_printable_in_messages(self, tmp_path: Path) -> None:
        """Undecodable bytes in a path are shown as ``\\xNN`` in the error message."""
        name = os.fsdecode(b"bad\xff.jsonl")
        with pytest.raises(FileVanishedError, match=r"bad\\xff\.jsonl vanished"):
            stat_file(tmp_path / name)


class TestOpenRegular:
    @pytest.mark.timeout(10)
    def test_refuses_a_fifo(self, tmp_path: Path) -> None:
        """Opening a FIFO neither blocks nor succeeds."""
        os.mkfifo(tmp_path / "p")
        with pytest.raises(FileUnreadableError, match="is a FIFO"):
            open_regular(tmp_path / "p")

    def test_reads_a_regular_file(self, tmp_path: Path) -> None:
        """A regular file opens for reading."""
        (tmp_path / "a").write_bytes(b"abc")
        with open_regular(tmp_path / "a") as stream:
            assert stream.read() == b"abc"


def test_describe_kind_names_every_file_type() -> None:
    """Each st_mode kind has a readable name for messages."""
    assert describe_kind(stat.S_IFREG) == "a regular file"
    assert describe_kind(stat.S_IFDIR) == "a directory"
    assert describe_kind(stat.S_IFLNK) == "a symbolic link"
    assert describe_kind(stat.S_IFIFO) == "a FIFO"
    assert describe_kind(stat.S_IFSOCK) == "a socket"
    assert describe_kind(stat.S_IFCHR) == "a character device"
    assert describe_kind(stat.S_IFBLK) == "a block device"
