"""The folder walk over real trees: rules, symlinks, special files, odd names, deep trees."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.domain import FileStat
from syncd.errors import LocalFileError
from syncd.paths import IgnoreRules
from syncd.purposes import DEFAULT_EXCLUDE
from syncd.scanner import ScanEntry, ScanItem, ScanProblem, scan_folder
from tests.support import run_as_nobody, world_traversable_dir

JSONL = IgnoreRules(["*.jsonl"], DEFAULT_EXCLUDE)
EVERYTHING = IgnoreRules(["*"], DEFAULT_EXCLUDE)


def _scan(root: Path, rules: IgnoreRules = JSONL) -> list[ScanItem]:
    return list(scan_folder(root, rules))


def _keys(items: list[ScanItem]) -> list[str]:
    return [item.rel_path for item in items if isinstance(item, ScanEntry)]


def _problems(items: list[ScanItem]) -> dict[str, str]:
    return {item.rel_path: item.reason for item in items if isinstance(item, ScanProblem)}


def _write(root: Path, key: str, content: str = "{}\n") -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "watched"
    path.mkdir()
    return path


class TestWalk:
    def test_lists_taken_files_with_their_lstat(self, root: Path) -> None:
        """Each taken regular file comes out once with its (size, mtime_ns, inode, ctime_ns)."""
        path = _write(root, "a/b/train.jsonl", '{"text": "x"}\n')
        items = _scan(root)
        st = path.lstat()
        ctime = st.st_ctime_ns
        assert items == [ScanEntry("a/b/train.jsonl", 14, st.st_mtime_ns, st.st_ino, ctime)]
        assert isinstance(items[0], ScanEntry)
        assert items[0].stat == FileStat(14, st.st_mtime_ns, st.st_ino, ctime)

    def test_order_is_key_order(self, root: Path) -> None:
        """Entries come in string order of their keys: ``m/...`` sorts as ``m/``, after ``m-``."""
        for key in ("b.jsonl", "a.jsonl", "z/2.jsonl", "z/1.jsonl", "m/x/y.jsonl", "m/a.jsonl"):
            _write(root, key)
        _write(root, "m-2.jsonl")
        _write(root, "m0.jsonl")
        assert _keys(_scan(root)) == [
            "a.jsonl",
            "b.jsonl",
            "m-2.jsonl",
            "m/a.jsonl",
            "m/x/y.jsonl",
            "m0.jsonl",
            "z/1.jsonl",
            "z/2.jsonl",
        ]

    def test_hidden_files_dirs_and_temp_files_are_excluded(self, root: Path) -> None:
        """Default excludes drop hidden files, hidden directories and temp/backup files."""
        for key in (
            "keep.jsonl",
            ".hidden.jsonl",
            ".git/objects/a.jsonl",
            "sub/.cache/b.jsonl",
            "sub/c.jsonl~",
            "sub/d.jsonl.tmp",
            "sub/#e.jsonl#",
            "sub/f.jsonl.part",
            "sub/keep2.jsonl",
            "notes.txt",
        ):
            _write(root, key)
        items = _scan(root)
        assert _keys(items) == ["keep.jsonl", "sub/keep2.jsonl"]
        assert _problems(items) == {}

    def test_excluded_directories_are_not_read(self, root: Path) -> None:
        """A pruned directory is never listed: problems inside it are not reported."""
        (root / ".git").mkdir()
        os.mkfifo(root / ".git" / "pipe.jsonl")
        (root / ".git" / "loop.jsonl").symlink_to("loop.jsonl")
        _write(root, "a.jsonl")
        items = _scan(root)
        assert _keys(items) == ["a.jsonl"]
        assert _problems(items) == {}

    def test_include_globs_with_double_star(self, root: Path) -> None:
        """``data/**/*.jsonl`` takes files under data at any depth and nothing else."""
        for key in ("data/a.jsonl", "data/x/y/b.jsonl", "other/c.jsonl", "top.jsonl"):
            _write(root, key)
        rules = IgnoreRules(["data/**/*.jsonl"], DEFAULT_EXCLUDE)
        assert _keys(_scan(root, rules)) == ["data/a.jsonl", "data/x/y/b.jsonl"]

    def test_three_hundred_levels_deep(self, root: Path) -> None:
        """A tree deeper than any recursion limit is walked with an explicit stack."""
        parts = [f"d{i}" for i in range(300)]
        deep = root.joinpath(*parts)
        # Create level by level: a single makedirs path would exceed PATH_MAX.
        fd = os.open(root, os.O_RDONLY)
        try:
            for part in parts:
                os.mkdir(part, dir_fd=fd)
                next_fd = os.open(part, os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            os.close(os.open("bottom.jsonl", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        finally:
            os.close(fd)
        keys = _keys(_scan(root))
        assert keys == ["/".join([*parts, "bottom.jsonl"])]
        assert len(str(deep)) > 1000

    def test_names_with_newlines_unicode_and_255_bytes(self, root: Path) -> None:
        """Newlines, non-ASCII letters and maximum-length names are ordinary keys."""
        long_name = "é" * 124 + ".jsonl"  # 248 + 6 = 254 bytes
        long_name_255 = "x" * 249 + ".jsonl"
        assert len(os.fsencode(long_name_255)) == 255
        for key in ("line\nbreak.jsonl", "日本語/データ.jsonl", long_name, long_name_255):
            _write(root, key)
        assert sorted(_keys(_scan(root))) == sorted(
            ["line\nbreak.jsonl", "日本語/データ.jsonl", long_name, long_name_255]
        )

    def test_file_name_that_is_not_utf8_is_reported(self, root: Path) -> None:
        """A name with undecodable bytes is a problem with a printable key, not an entry."""
        fd = os.open(os.fsencode(root) + b"/bad\xff.jsonl", os.O_WRONLY | os.O_CREAT)
        os.close(fd)
        _write(root, "good.jsonl")
        items = _scan(root)
        assert _keys(items) == ["good.jsonl"]
        assert _problems(items) == {
            "bad\\xff.jsonl": "file name is not valid UTF-8; rename it (not synced)"
        }

    def test_directory_name_that_is_not_utf8_is_reported_once(self, root: Path) -> None:
        """A directory with an undecodable name is reported as a whole, its files unlisted."""
        bad_dir = root / os.fsdecode(b"dir\xfe")  # created with the raw byte 0xfe
        bad_dir.mkdir()
        os.close(os.open(os.fsencode(bad_dir) + b"/a.jsonl", os.O_WRONLY | os.O_CREAT))
        assert os.fsencode(bad_dir).endswith(b"/dir\xfe")
        items = _scan(root)
        assert items == [
            ScanProblem(
                "dir\\xfe",
                "directory name is not valid UTF-8; rename it (its files are not synced)",
                is_directory=True,
            )
        ]

    def test_root_that_does_not_exist(self, tmp_path: Path) -> None:
        """A missing root raises LocalFileError; the caller decides what that means."""
        with pytest.raises(LocalFileError, match=r"watched folder .*/nope does not exist"):
            _scan(tmp_path / "nope")

    def test_root_that_is_a_file(self, tmp_path: Path) -> None:
        """A root that is a regular file raises LocalFileError saying so."""
        (tmp_path / "f").write_text("x")
        with pytest.raises(LocalFileError, match="is a regular file, not a directory"):
            _scan(tmp_path / "f")

    def test_root_may_be_a_symlink_to_a_directory(self, tmp_path: Path, root: Path) -> None:
        """The configured root itself may be a link; files inside are keyed under it."""
        _write(root, "a.jsonl")
        (tmp_path / "alias").symlink_to(root)
        assert _keys(_scan(tmp_path / "alias")) == ["a.jsonl"]


class TestSymlinks:
    def test_link_out_of_the_root_is_reported_and_not_followed(
        self, tmp_path: Path, root: Path
    ) -> None:
        """A symlink leaving the folder is a problem naming its target."""
        outside = _write(tmp_path, "outside/secret.jsonl")
        (root / "leak.jsonl").symlink_to(outside)
        items = _scan(root)
        assert _keys(items) == []
        assert _problems(items) == {
            "leak.jsonl": f"symlink points outside the watched folder: -> {outside}; not followed"
        }

    def test_relative_link_out_of_the_root_shows_where_it_resolves(
        self, tmp_path: Path, root: Path
    ) -> None:
        """A relative target is shown as written, followed by the resolved path."""
        outside = _write(tmp_path, "outside.jsonl")
        (root / "rel.jsonl").symlink_to("../outside.jsonl")
        assert _problems(_scan(root)) == {
            "rel.jsonl": "symlink points outside the watched folder: "
            f"-> ../outside.jsonl ({outside}); not followed"
        }

    def test_link_to_a_directory_outside_is_reported(self, tmp_path: Path, root: Path) -> None:
        """A link to an outside directory is reported even though its name is no .jsonl."""
        _write(tmp_path, "elsewhere/a.jsonl")
        (root / "more").symlink_to(tmp_path / "elsewhere")
        assert list(_problems(_scan(root))) == ["more"]

    def test_link_to_a_file_inside_is_skipped_silently(self, root: Path) -> None:
        """The target is listed under its own key; the link adds nothing."""
        _write(root, "real/a.jsonl")
        (root / "alias.jsonl").symlink_to(root / "real" / "a.jsonl")
        items = _scan(root)
        assert _keys(items) == ["real/a.jsonl"]
        assert _problems(items) == {}

    def test_link_to_a_directory_inside_is_not_followed(self, root: Path) -> None:
        """Files reached through a directory link are not listed twice."""
        _write(root, "real/a.jsonl")
        (root / "shortcut").symlink_to("real")
        items = _scan(root)
        assert _keys(items) == ["real/a.jsonl"]
        assert _problems(items) == {}

    def test_link_to_the_root_itself_makes_no_loop(self, root: Path) -> None:
        """A link back to the root is inside it, skipped, and walked no further."""
        _write(root, "a.jsonl")
        (root / "again").symlink_to(root)
        items = _scan(root)
        assert _keys(items) == ["a.jsonl"]
        assert _problems(items) == {}

    def test_symlink_loop_is_reported(self, root: Path) -> None:
        """Two links pointing at each other are reported as a loop."""
        (root / "a.jsonl").symlink_to("b.jsonl")
        (root / "b.jsonl").symlink_to("a.jsonl")
        assert _problems(_scan(root)) == {
            "a.jsonl": "symlink loop: -> b.jsonl; not followed",
            "b.jsonl": "symlink loop: -> a.jsonl; not followed",
        }

    def test_broken_symlink_is_reported(self, root: Path) -> None:
        """A link to nothing is reported with its target."""
        (root / "dangling.jsonl").symlink_to("missing.jsonl")
        assert _problems(_scan(root)) == {
            "dangling.jsonl": "broken symlink: -> missing.jsonl does not exist; skipped"
        }

    def test_problem_links_not_taken_by_the_rules_are_ignored(self, root: Path) -> None:
        """A broken ``.txt`` link in a ``*.jsonl`` folder is none of the user's business here."""
        (root / "notes.txt").symlink_to("missing")
        (root / ".hidden.jsonl").symlink_to("/etc/passwd")
        assert _scan(root) == []


class TestSpecialFiles:
    def test_fifo_is_reported(self, root: Path) -> None:
        """A FIFO matching the include is reported as not a regular file (and never opened)."""
        os.mkfifo(root / "pipe.jsonl")
        assert _problems(_scan(root)) == {"pipe.jsonl": "is a FIFO, not a regular file; skipped"}

    def test_socket_is_reported(self, root: Path) -> None:
        """A Unix socket matching the include is reported."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(root / "s.jsonl"))
            assert _problems(_scan(root)) == {"s.jsonl": "is a socket, not a regular file; skipped"}

    def test_device_is_reported(self, root: Path) -> None:
        """A character device node (made with mknod; tests run as root) is reported."""
        os.mknod(root / "dev.jsonl", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        assert _problems(_scan(root)) == {
            "dev.jsonl": "is a character device, not a regular file; skipped"
        }

    def test_special_files_not_taken_are_ignored(self, root: Path) -> None:
        """A FIFO whose name the rules do not take says nothing."""
        os.mkfifo(root / "pipe.txt")
        assert _scan(root) == []

    def test_special_files_do_not_hide_regular_ones(self, root: Path) -> None:
        """Problems come next to entries; the rest of the folder is still listed."""
        os.mkfifo(root / "b.jsonl")
        _write(root, "a.jsonl")
        _write(root, "c.jsonl")
        items = _scan(root)
        assert _keys(items) == ["a.jsonl", "c.jsonl"]
        assert list(_problems(items)) == ["b.jsonl"]


@pytest.fixture
def open_root() -> Iterator[Path]:
    with world_traversable_dir() as path:
        yield path


class TestUnreadable:
    def test_unreadable_directory_is_reported_and_the_rest_listed(self, open_root: Path) -> None:
        """EACCES on a subdirectory is a directory problem; its siblings are still listed."""
        _write(open_root, "a.jsonl").chmod(0o644)
        _write(open_root, "locked/b.jsonl")
        (open_root / "locked").chmod(0o000)
        outcome = run_as_nobody(lambda: _scan(open_root))
        assert isinstance(outcome, list)
        assert _keys(outcome) == ["a.jsonl"]
        assert [item for item in outcome if isinstance(item, ScanProblem)] == [
            ScanProblem(
                "locked",
                "cannot read directory: Permission denied; its files are not synced",
                is_directory=True,
            )
        ]

    def test_unreadable_root_raises(self, open_root: Path) -> None:
        """A root that cannot be listed raises: an empty listing would look like deletions."""
        (open_root / "root").mkdir(mode=0o000)
        outcome = run_as_nobody(lambda: _scan(open_root / "root"))
        assert isinstance(outcome, LocalFileError)
        assert "cannot read watched folder" in str(outcome)
        assert "Permission denied" in str(outcome)
