"""An inotify queue overflow costs one rescan and never stops the watcher.

watchdog 7.1.1 started calling ``on_events_lost()`` on every inotify callback after an
overflow; a callback without it raised on watchdog's reader thread, which died, and every
folder fell back to rescans. Both tests overflow the queue as the kernel does: one by lowering
``fs.inotify.max_queued_events`` (root only, restored afterwards), one by handing watchdog's
reader the kernel's IN_Q_OVERFLOW record.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, WatchDescriptor

from syncd.watcher import Watcher
from syncd.watcher.inotify import SignallingInotifyObserver
from tests.support import wait_until

_QUEUE_SYSCTL = Path("/proc/sys/fs/inotify/max_queued_events")


@pytest.fixture
def small_inotify_queue() -> Iterator[int]:
    """fs.inotify.max_queued_events lowered to 64 for the test (read when an instance starts)."""
    if os.geteuid() != 0:
        pytest.fail("lowering fs.inotify.max_queued_events needs root (CI runs as root)")
    before = _QUEUE_SYSCTL.read_text()
    _QUEUE_SYSCTL.write_text("64")
    try:
        yield 64
    finally:
        _QUEUE_SYSCTL.write_text(before)


def test_a_real_overflow_degrades_once_and_watching_goes_on(
    tmp_path: Path, small_inotify_queue: int
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    changes: list[str] = []
    degraded: list[str] = []
    lock = threading.Lock()

    def on_change(folder: str, path: str) -> None:
        with lock:
            changes.append(path)

    def on_degraded(folder: str, message: str) -> None:
        with lock:
            degraded.append(message)

    with capture_logs() as logs:
        watcher = Watcher(on_change, on_degraded)
        try:
            assert watcher.add_folder("data", root)
            for index in range(2000):
                (root / f"f{index:04}.jsonl").write_text("{}\n")
            wait_until(lambda: watcher.overflows >= 1, timeout=20)
            # The overflow degraded the folder (a rescan is owed), and nothing else happened.
            wait_until(lambda: bool(degraded), timeout=10)
            assert all("overflowed" in message for message in degraded), degraded
            watcher.clear_degraded("data")
            # The reader thread survived: a file written afterwards is still seen.
            after = root / "after-overflow.jsonl"
            after.write_text("{}\n")
            wait_until(lambda: str(after) in changes, timeout=10)
            assert watcher.degraded_folders() == {}
        finally:
            watcher.stop()
    events = [entry["event"] for entry in logs]
    assert "watch_thread_died" not in events
    assert "watch_callback_failed" not in events


class _Collect(FileSystemEventHandler):
    def __init__(self) -> None:
        self.paths: list[str] = []

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.paths.append(os.fsdecode(event.src_path))


def test_the_readers_overflow_record_reaches_every_callback_without_raising(
    tmp_path: Path,
) -> None:
    """IN_Q_OVERFLOW fed through watchdog's reader: the root sentinel takes every call."""
    overflows: list[None] = []
    lost: list[str] = []
    observer = SignallingInotifyObserver(lambda path, exc: None, lambda: overflows.append(None))
    observer.start()
    try:
        handler = _Collect()
        observer.schedule(handler, str(tmp_path), recursive=True)
        unwatch = observer.watch_root(str(tmp_path), lost.append)
        overflow = InotifyEvent(WatchDescriptor(-1), InotifyConstants.IN_Q_OVERFLOW, 0, b"")
        # What the reader thread does with the kernel's record; it raised AttributeError before.
        observer.inotify_fd.handle_event(overflow)
        assert overflows == [None]
        assert lost == []
        assert observer.inotify_fd.is_alive()
        (tmp_path / "later.jsonl").write_text("{}\n")
        wait_until(lambda: str(tmp_path / "later.jsonl") in handler.paths, timeout=10)
        unwatch()
    finally:
        observer.stop()
        observer.join()
