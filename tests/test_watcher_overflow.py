"""An inotify queue overflow costs one rescan and never stops the watcher.

watchdog 7.1.1 started calling ``on_events_lost()`` on every inotify callback after an
overflow; a callback without it raised on watchdog's reader thread, which died, and every
folder fell back to rescans. This test hands watchdog's reader the kernel's IN_Q_OVERFLOW
record; tests/test_watcher_limits.py overflows a real queue lowered to 64.
"""

from __future__ import annotations

import os
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, WatchDescriptor

from syncd.watcher.inotify import SignallingInotifyObserver
from tests.support import wait_until

_QUEUE_SYSCTL = Path("/proc/sys/fs/inotify/max_queued_events")


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
