"""The Watcher against real watchdog observers on real directories."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.watcher import Watcher
from tests.support import wait_until


class Recorder:
    """Collects the watcher's callbacks from watchdog's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.changes: list[tuple[str, str]] = []
        self.degraded: list[tuple[str, str]] = []

    def on_change(self, folder: str, path: str) -> None:
        with self._lock:
            self.changes.append((folder, path))

    def on_degraded(self, folder: str, message: str) -> None:
        with self._lock:
            self.degraded.append((folder, message))

    def saw(self, path: Path, folder: str = "data") -> bool:
        with self._lock:
            return (folder, str(path)) in self.changes

    def count(self, path: Path, folder: str = "data") -> int:
        with self._lock:
            return self.changes.count((folder, str(path)))

    def degraded_messages(self, folder: str = "data") -> list[str]:
        with self._lock:
            return [message for name, message in self.degraded if name == folder]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def watcher(recorder: Recorder) -> Iterator[Watcher]:
    watcher = Watcher(recorder.on_change, recorder.on_degraded)
    yield watcher
    watcher.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def _wait_for(recorder: Recorder, path: Path, folder: str = "data") -> None:
    wait_until(lambda: recorder.saw(path, folder), timeout=5, what=f"an event for {path}")


def _barrier(recorder: Recorder, root: Path, name: str = "zz-marker", folder: str = "data") -> None:
    """Create a marker file and wait for it: every earlier event has been dispatched by then."""
    marker = root / name
    marker.write_text("m")
    _wait_for(recorder, marker, folder)


class TestFileEvents:
    def test_created_file_is_reported(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """Writing a new file reports (folder name, absolute path)."""
        assert watcher.add_folder("data", root) is True
        (root / "new.jsonl").write_text("{}\n")
        _wait_for(recorder, root / "new.jsonl")

    def test_appending_reports_again(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """Appending to an existing file reports it."""
        target = root / "grow.jsonl"
        target.write_text("{}\n")
        watcher.add_folder("data", root)
        with target.open("a") as handle:
            handle.write("{}\n")
        _wait_for(recorder, target)

    def test_close_after_write_open_is_reported(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """Closing a file opened for writing (IN_CLOSE_WRITE alone, no data) is reported."""
        target = root / "closed.jsonl"
        target.write_text("{}\n")
        watcher.add_folder("data", root)
        os.close(os.open(target, os.O_WRONLY))
        _wait_for(recorder, target)

    def test_reading_files_reports_nothing(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """Opening and reading (syncd's own hashing and uploads) causes no change events.

        Events arrive in order, so once the marker written after the reads is seen, any event
        the reads caused would have been seen before it.
        """
        target = root / "read-me.jsonl"
        target.write_text("{}\n")
        watcher.add_folder("data", root)
        for _ in range(20):
            assert target.read_bytes() == b"{}\n"
        (root / "marker.jsonl").write_text("{}\n")
        _wait_for(recorder, root / "marker.jsonl")
        assert recorder.count(target) == 0
        # The kernel was not even asked for open/read/close events: 20 reads would be 40+.
        assert watcher.events_received <= 6

    def test_mtime_change_is_reported(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """A metadata change (utime: IN_ATTRIB) is reported, since mtime is in the fingerprint."""
        target = root / "touched.jsonl"
        target.write_text("{}\n")
        watcher.add_folder("data", root)
        os.utime(target, (1, 1))
        _wait_for(recorder, target)

    def test_read_only_access_is_not_reported(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """Opening and reading a file without writing (our own hashing) reports nothing."""
        target = root / "read.jsonl"
        target.write_text("{}\n")
        watcher.add_folder("data", root)
        assert target.read_text() == "{}\n"
        _barrier(recorder, root)
        assert not recorder.saw(target)

    def test_deleted_file_is_reported(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """Deleting a file reports its path."""
        target = root / "gone.jsonl"
        target.write_text("{}\n")
        watcher.add_folder("data", root)
        target.unlink()
        _wait_for(recorder, target)

    def test_move_within_reports_both_ends(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """A rename inside the folder reports the old path and the new one."""
        (root / "sub").mkdir()
        old = root / "old.jsonl"
        old.write_text("{}\n")
        watcher.add_folder("data", root)
        new = root / "sub" / "new.jsonl"
        old.rename(new)
        _wait_for(recorder, new)
        assert recorder.saw(old)

    def test_move_out_reports_old_path(
        self, watcher: Watcher, recorder: Recorder, root: Path, tmp_path: Path
    ) -> None:
        """A file moved out of the folder is reported at its old path (it vanished)."""
        old = root / "leaving.jsonl"
        old.write_text("{}\n")
        watcher.add_folder("data", root)
        old.rename(tmp_path / "outside.jsonl")
        _wait_for(recorder, old)
        assert not recorder.saw(tmp_path / "outside.jsonl")

    def test_move_in_reports_new_path(
        self, watcher: Watcher, recorder: Recorder, root: Path, tmp_path: Path
    ) -> None:
        """A file moved in from outside is reported at its new path."""
        outside = tmp_path / "arriving.jsonl"
        outside.write_text("{}\n")
        watcher.add_folder("data", root)
        outside.rename(root / "arriving.jsonl")
        _wait_for(recorder, root / "arriving.jsonl")


class TestDirectoryEvents:
    def test_new_directory_tree_is_reported_with_its_files(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """A new directory (and one nested in it) is reported, and so are files written at once."""
        watcher.add_folder("data", root)
        deep = root / "batch" / "2024"
        deep.mkdir(parents=True)
        (deep / "a.jsonl").write_text("{}\n")
        _wait_for(recorder, root / "batch")
        _wait_for(recorder, deep / "a.jsonl")
        assert recorder.saw(deep)

    def test_directory_moved_in_is_reported_with_its_files(
        self, watcher: Watcher, recorder: Recorder, root: Path, tmp_path: Path
    ) -> None:
        """A directory moved in from outside is reported, so the consumer rescans that subtree."""
        staged = tmp_path / "staged"
        staged.mkdir()
        (staged / "x.jsonl").write_text("{}\n")
        watcher.add_folder("data", root)
        staged.rename(root / "incoming")
        _wait_for(recorder, root / "incoming")
        _wait_for(recorder, root / "incoming" / "x.jsonl")

    def test_deleted_directory_is_reported(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """Removing a subdirectory reports it (its files are gone with it)."""
        (root / "old").mkdir()
        (root / "old" / "f.jsonl").write_text("{}\n")
        watcher.add_folder("data", root)
        shutil.rmtree(root / "old")
        _wait_for(recorder, root / "old")

    def test_directory_modified_events_are_not_reported(
        self, watcher: Watcher, recorder: Recorder, root: Path
    ) -> None:
        """The root's own 'modified' (an entry changed) is not passed on as a change."""
        watcher.add_folder("data", root)
        _barrier(recorder, root)
        assert not recorder.saw(root)


class TestFolders:
    def test_events_carry_their_folder_name(
        self, watcher: Watcher, recorder: Recorder, tmp_path: Path
    ) -> None:
        """With two folders, each event names the folder it happened in."""
        first, second = tmp_path / "one", tmp_path / "two"
        first.mkdir()
        second.mkdir()
        watcher.add_folder("one", first)
        watcher.add_folder("two", second)
        (second / "f.jsonl").write_text("{}\n")
        _wait_for(recorder, second / "f.jsonl", folder="two")
        assert not recorder.saw(second / "f.jsonl", folder="one")

    def test_removed_folder_stops_reporting(
        self, watcher: Watcher, recorder: Recorder, tmp_path: Path
    ) -> None:
        """After remove_folder, changes in that folder are no longer reported."""
        kept, dropped = tmp_path / "kept", tmp_path / "dropped"
        kept.mkdir()
        dropped.mkdir()
        watcher.add_folder("kept", kept)
        watcher.add_folder("dropped", dropped)
        watcher.remove_folder("dropped")
        watcher.remove_folder("never-added")
        (dropped / "f.jsonl").write_text("{}\n")
        _barrier(recorder, kept, folder="kept")
        assert not recorder.saw(dropped / "f.jsonl", folder="dropped")

    def test_symlinked_root_reports_paths_under_configured_root(
        self, watcher: Watcher, recorder: Recorder, root: Path, tmp_path: Path
    ) -> None:
        """A root given through a symlink is watched, and paths are reported under the link."""
        link = tmp_path / "link"
        link.symlink_to(root, target_is_directory=True)
        assert watcher.add_folder("data", link) is True
        (root / "f.jsonl").write_text("{}\n")
        _wait_for(recorder, link / "f.jsonl")

    @pytest.mark.parametrize(
        ("make", "reason"), [("nothing", "does not exist"), ("file", "is not a directory")]
    )
    def test_unwatchable_root_is_degraded(
        self, watcher: Watcher, recorder: Recorder, tmp_path: Path, make: str, reason: str
    ) -> None:
        """A missing root or a file as root: add_folder returns False and reports why."""
        target = tmp_path / "target"
        if make == "file":
            target.write_text("not a dir")
        assert watcher.add_folder("data", target) is False
        assert recorder.degraded_messages() == [f"cannot watch folder 'data': {target} {reason}"]
        assert watcher.degraded_folders() == {"data": recorder.degraded_messages()[0]}

    def test_re_adding_a_folder_clears_its_degraded_state(
        self, watcher: Watcher, recorder: Recorder, tmp_path: Path
    ) -> None:
        """Once the root exists, adding the folder again watches it and clears the report."""
        target = tmp_path / "late"
        assert watcher.add_folder("data", target) is False
        target.mkdir()
        assert watcher.add_folder("data", target) is True
        assert watcher.degraded_folders() == {}
        (target / "f.jsonl").write_text("{}\n")
        _wait_for(recorder, target / "f.jsonl")

    def test_clear_degraded_forgets_the_report(self, watcher: Watcher, tmp_path: Path) -> None:
        """clear_degraded() drops a folder from degraded_folders()."""
        watcher.add_folder("data", tmp_path / "missing")
        assert "data" in watcher.degraded_folders()
        watcher.clear_degraded("data")
        assert watcher.degraded_folders() == {}

    def test_stopped_watcher_refuses_new_folders(self, recorder: Recorder, root: Path) -> None:
        """After stop(), add_folder raises instead of silently watching nothing."""
        watcher = Watcher(recorder.on_change, recorder.on_degraded)
        watcher.add_folder("data", root)
        watcher.stop()
        with pytest.raises(RuntimeError, match="stopped"):
            watcher.add_folder("data", root)


class TestRootLost:
    def test_deleted_root_is_degraded_once(
        self, watcher: Watcher, recorder: Recorder, root: Path, tmp_path: Path
    ) -> None:
        """Deleting the watched root reports the folder degraded once (not per kernel signal)."""
        other = tmp_path / "other"
        other.mkdir()
        watcher.add_folder("other", other)
        watcher.add_folder("data", root)
        shutil.rmtree(root)
        wait_until(lambda: recorder.degraded_messages(), timeout=5, what="a degraded report")
        _barrier(recorder, other, folder="other")  # later events on the same inotify queue
        assert len(recorder.degraded_messages()) == 1
        assert "was deleted" in recorder.degraded_messages()[0]
        assert set(watcher.degraded_folders()) == {"data"}

    def test_moved_root_is_degraded(
        self, watcher: Watcher, recorder: Recorder, root: Path, tmp_path: Path
    ) -> None:
        """Renaming the watched root away reports the folder degraded (IN_MOVE_SELF)."""
        watcher.add_folder("data", root)
        root.rename(tmp_path / "elsewhere")
        wait_until(lambda: recorder.degraded_messages(), timeout=5, what="a degraded report")
        assert recorder.degraded_messages() == [
            f"the root of folder 'data' ({root}) was moved or renamed; "
            "its changes are no longer seen until the folder is watched again"
        ]


class TestCallbackFailures:
    def test_failing_callback_is_logged_and_watching_continues(
        self, recorder: Recorder, root: Path
    ) -> None:
        """An exception from on_change is logged; later events are still delivered."""

        def on_change(folder: str, path: str) -> None:
            if path.endswith("bad.jsonl"):
                raise ValueError("consumer bug")
            recorder.on_change(folder, path)

        watcher = Watcher(on_change, recorder.on_degraded)
        try:
            watcher.add_folder("data", root)
            with capture_logs() as logs:
                (root / "bad.jsonl").write_text("{}\n")
                _barrier(recorder, root)
        finally:
            watcher.stop()
        failures = [entry for entry in logs if entry["event"] == "watch_callback_failed"]
        assert failures
        assert failures[0]["path"] == str(root / "bad.jsonl")

    def test_dead_dispatcher_thread_degrades_and_re_add_recovers(
        self, recorder: Recorder, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If watchdog's thread dies, every folder is degraded; re-adding watches it again."""

        class ConsumerCrashError(BaseException):
            """Not an Exception: escapes the watcher's guard and kills the thread."""

        crashed: list[BaseException] = []

        def record_thread_crash(args: threading.ExceptHookArgs) -> None:
            crashed.append(args.exc_value or BaseException())

        monkeypatch.setattr(threading, "excepthook", record_thread_crash)

        def on_change(folder: str, path: str) -> None:
            if path.endswith("crash"):
                raise ConsumerCrashError
            recorder.on_change(folder, path)

        watcher = Watcher(on_change, recorder.on_degraded)
        try:
            watcher.add_folder("data", root)
            (root / "crash").write_text("x")
            wait_until(lambda: recorder.degraded_messages(), timeout=5, what="a degraded report")
            assert isinstance(crashed[0], ConsumerCrashError)
            assert "stopped unexpectedly" in recorder.degraded_messages()[0]
            assert watcher.add_folder("data", root) is True
            (root / "after.jsonl").write_text("{}\n")
            _wait_for(recorder, root / "after.jsonl")
        finally:
            watcher.stop()


class TestPolling:
    def test_polling_reports_changes_and_lost_root(self, recorder: Recorder, root: Path) -> None:
        """In polling mode new files are reported and a deleted root degrades the folder."""
        watcher = Watcher(
            recorder.on_change, recorder.on_degraded, use_polling=True, poll_interval=0.05
        )
        try:
            assert watcher.add_folder("data", root) is True
            (root / "polled.jsonl").write_text("{}\n")
            _wait_for(recorder, root / "polled.jsonl")
            shutil.rmtree(root)
            wait_until(lambda: recorder.degraded_messages(), timeout=5, what="a degraded report")
            assert "was deleted" in recorder.degraded_messages()[0]
        finally:
            watcher.stop()
