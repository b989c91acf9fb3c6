"""Filesystem events for the watched folders, as ``(folder name, absolute path)`` callbacks.

Owns the watchdog observer: which folders are watched, which raw events count as a change, and
noticing when watching stopped being trustworthy (inotify limit, queue overflow, root gone, a
dead thread), which it reports as "degraded" so the daemon can fall back to rescans. It never
looks at file contents, never debounces and never raises from a watchdog thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from syncd.watcher.inotify import (
    LIMIT_ERRNOS,
    SignallingInotifyObserver,
    describe_limit_error,
    inotify_sysctl,
)

__all__ = ["DEFAULT_POLL_INTERVAL", "ChangeCallback", "DegradedCallback", "Watcher"]

log = structlog.get_logger(__name__)

#: Seconds between two directory snapshots in polling mode.
DEFAULT_POLL_INTERVAL = 1.0

ChangeCallback = Callable[[str, str], None]
"""``on_change(folder_name, absolute_path)``: something at this path may have changed."""
DegradedCallback = Callable[[str, str], None]
"""``on_degraded(folder_name, message)``: events for this folder can no longer be trusted."""

# A file appeared, changed, finished being written (close-write), changed mode/mtime, or went
# away. Opened and closed-without-write events are noise.
_FILE_CHANGES = frozenset(
    {
        EVENT_TYPE_CREATED,
        EVENT_TYPE_MODIFIED,
        EVENT_TYPE_CLOSED,
        EVENT_TYPE_ATTRIB,
        EVENT_TYPE_DELETED,
    }
)
# The file's bytes were written (IN_MODIFY, IN_CLOSE_WRITE; a poll seeing size or mtime move).
_FILE_WRITES = frozenset({EVENT_TYPE_MODIFIED, EVENT_TYPE_CLOSED})
# A directory that appeared may hold files created before its watch existed (watchdog#318/#684),
# and one that vanished took its files along: the consumer looks at the whole subtree.
# A directory's "modified" (an entry added or removed) is covered by the entry's own event.
_DIR_CHANGES = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_DELETED})

#: The inotify mask is built from this list, so the kernel never even queues the open, read and
#: close-without-write events that syncd's own hashing and uploading of every file would cause
#: (measured: 3.1 s of CPU for 30,000 files read under a watch without it, 0.35 s with it).
_WANTED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


@dataclass(eq=False)
class _Folder:
    name: str
    root: Path
    """The root as configured: reported paths start with it."""
    watched_root: Path
    """The root with symlinks resolved: what the kernel watches and events start with."""
    observer: BaseObserver | None = None
    watch: ObservedWatch | None = None
    unwatch_root: Callable[[], None] | None = None
    is_lost: bool = False
    hit_limit: bool = False
    setting_up: bool = True
    """While ``add_folder`` schedules it: a limit hit below the root is reported once, there."""
    limit_during_setup: str | None = None

    def reported_path(self, raw: str) -> str:
        """Map a path under ``watched_root`` back under the configured ``root``."""
        if self.watched_root == self.root:
            return raw
        watched = str(self.watched_root)
        if raw == watched:
            return str(self.root)
        if raw.startswith(watched + "/"):
            return str(self.root) + raw[len(watched) :]
        return raw


class _FolderHandler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, folder: _Folder) -> None:
        self._watcher = watcher
        self._folder = folder

    def dispatch(self, event: FileSystemEvent) -> None:
        self._watcher._on_event(self._folder, event)


class Watcher:
    """Watches folders and calls ``on_change`` / ``on_degraded`` (see the module docstring).

    Callbacks run on watchdog's threads (``on_degraded`` also on the caller's thread during
    :meth:`add_folder`). They must be quick, may read :meth:`degraded_folders` but must not add
    or remove folders (that waits for watchdog's dispatcher, which is running the callback),
    and an exception they raise is logged and dropped.

    With ``use_polling`` directories are snapshotted every ``poll_interval`` seconds instead of
    using inotify (network filesystems, or no inotify at all).

    ``on_written`` is called, before ``on_change``, for a file the event says was written to
    (modified, or closed after writing): its bytes changed whatever its stat shows.
    """

    def __init__(
        self,
        on_change: ChangeCallback,
        on_degraded: DegradedCallback,
        use_polling: bool = False,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_written: ChangeCallback | None = None,
    ) -> None:
        self._on_change = on_change
        self._on_written = on_written
        self._on_degraded = on_degraded
        self._use_polling = use_polling
        self._poll_interval = poll_interval
        # _setup_lock serialises add/remove/stop; _lock guards state read from watchdog threads.
        self._setup_lock = threading.RLock()
        self._lock = threading.Lock()
        self._folders: dict[str, _Folder] = {}
        self._degraded: dict[str, str] = {}
        self._observer: BaseObserver | None = None
        self._is_stopped = False
        self._overflows = 0
        self._events_received = 0

    # -- public API ------------------------------------------------------------------------

    def add_folder(self, name: str, root: Path, recursive: bool = True) -> bool:
        """Watch ``root`` as folder ``name`` (replacing an earlier watch of that name).

        Returns False, after calling ``on_degraded(name, message)``, when the folder is not
        (fully) watched: the root is missing or unreadable, or an inotify limit was hit. A
        folder that hit the limit below its root stays partly watched; it needs rescans.
        """
        with self._setup_lock:
            if self._is_stopped:
                raise RuntimeError("the watcher is stopped; create a new one")
            self.remove_folder(name)
            root = Path(root)
            problem = _unwatchable_reason(root)
            if problem is not None:
                self._degrade(name, f"cannot watch folder {name!r}: {root} {problem}")
                return False
            folder = _Folder(name=name, root=root, watched_root=root.resolve())
            with self._lock:
                self._folders[name] = folder
            try:
                self._schedule(folder, recursive=recursive)
            except OSError as exc:
                self._unschedule(folder)
                with self._lock:
                    self._folders.pop(name, None)
                    below_root = folder.limit_during_setup
                # watchdog >= 7.1.1 raises a limit hit below the root too, and watches nothing.
                if below_root is not None:
                    message = f"folder {name!r} is not watched (rescans only): {below_root}"
                else:
                    message = _describe_watch_failure(folder, exc)
                self._degrade(name, message)
                return False
            with self._lock:
                folder.setting_up = False
                below_root = folder.limit_during_setup
            if below_root is not None:
                self._degrade(name, f"folder {name!r} is only partly watched: {below_root}")
            log.info("folder_watched", folder=name, root=str(root), polling=self._use_polling)
            return not folder.hit_limit

    def remove_folder(self, name: str) -> None:
        """Stop watching folder ``name`` and forget its degraded state; unknown names: no-op."""
        with self._setup_lock:
            with self._lock:
                folder = self._folders.pop(name, None)
                self._degraded.pop(name, None)
            if folder is not None:
                self._unschedule(folder)

    def stop(self) -> None:
        """Stop watching everything and join watchdog's threads. The watcher cannot be reused."""
        with self._setup_lock:
            with self._lock:
                self._is_stopped = True
                self._folders.clear()
                observer, self._observer = self._observer, None
            if observer is not None:
                observer.stop()
                observer.join()

    def degraded_folders(self) -> dict[str, str]:
        """Folders whose events cannot be trusted right now, with the reason for each."""
        with self._lock:
            return dict(self._degraded)

    def clear_degraded(self, name: str) -> None:
        """Forget folder ``name``'s degraded state (e.g. a rescan caught up after an overflow)."""
        with self._lock:
            self._degraded.pop(name, None)

    @property
    def events_received(self) -> int:
        """Events watchdog delivered (before syncd's own filtering): a cost measure."""
        with self._lock:
            return self._events_received

    @property
    def overflows(self) -> int:
        """How many times the kernel dropped events (IN_Q_OVERFLOW) since the watcher started."""
        with self._lock:
            return self._overflows

    # -- setup -----------------------------------------------------------------------------

    def _schedule(self, folder: _Folder, *, recursive: bool) -> None:
        observer = self._running_observer()
        folder.observer = observer
        folder.watch = observer.schedule(
            _FolderHandler(self, folder),
            str(folder.watched_root),
            recursive=recursive,
            event_filter=_WANTED_EVENTS,
        )
        if isinstance(observer, SignallingInotifyObserver):
            folder.unwatch_root = observer.watch_root(
                str(folder.watched_root), lambda what: self._root_lost(folder, what)
            )

    def _unschedule(self, folder: _Folder) -> None:
        if folder.unwatch_root is not None:
            folder.unwatch_root()
        if folder.observer is not None and folder.watch is not None:
            # KeyError: watchdog already dropped the watch (its observer was stopped).
            with contextlib.suppress(KeyError):
                folder.observer.unschedule(folder.watch)

    def _running_observer(self) -> BaseObserver:
        observer = self._observer
        if observer is not None and observer.is_alive():
            return observer
        # Created on first use, and again after a dead observer was reported: re-adding the
        # folders then puts them on a fresh one. What is left of the dead one is released.
        if observer is not None:
            self._observer = None
            observer.stop()
        if self._use_polling:
            observer = PollingObserver(timeout=self._poll_interval)
        else:
            observer = SignallingInotifyObserver(self._limit_hit, self._overflowed)
        observer.start()
        self._observer = observer
        threads: list[threading.Thread] = [observer]
        if isinstance(observer, SignallingInotifyObserver):
            threads.append(observer.inotify_fd)
        for thread in threads:
            threading.Thread(
                target=self._supervise,
                args=(observer, thread),
                name="syncd-watch-supervisor",
                daemon=True,
            ).start()
        return observer

    # -- events (watchdog threads) ---------------------------------------------------------

    def _on_event(self, folder: _Folder, event: FileSystemEvent) -> None:
        with self._lock:
            self._events_received += 1
            if self._folders.get(folder.name) is not folder:
                return  # removed while the event was queued
        src = os.fsdecode(event.src_path)
        if event.is_directory:
            if event.event_type == EVENT_TYPE_DELETED and src == str(folder.watched_root):
                self._root_lost(folder, "was deleted")
                return
            interesting = event.event_type in _DIR_CHANGES
        else:
            interesting = event.event_type in _FILE_CHANGES
        if event.event_type == EVENT_TYPE_MOVED:
            # Both ends: the old path vanished and the new one appeared (either may be outside).
            paths = [src, os.fsdecode(event.dest_path)]
        elif interesting:
            paths = [src]
        else:
            return
        written = not event.is_directory and event.event_type in _FILE_WRITES
        for path in paths:
            if path:
                reported = folder.reported_path(path)
                if written and self._on_written is not None:
                    self._call(self._on_written, folder.name, reported)
                self._call(self._on_change, folder.name, reported)

    def _limit_hit(self, path: str, exc: OSError) -> None:
        folder = self._folder_containing(Path(path))
        if folder is None or Path(path) == folder.watched_root:
            return  # the root itself: add_folder gets the exception and reports it
        reason = f"cannot watch {path}: {describe_limit_error(exc)}"
        with self._lock:
            is_first = not folder.hit_limit
            folder.hit_limit = True
            if folder.setting_up:
                # add_folder reports it once it knows whether watchdog gave up on the folder.
                if is_first:
                    folder.limit_during_setup = reason
                return
        if is_first:
            self._degrade(folder.name, f"folder {folder.name!r} is only partly watched: {reason}")

    def _overflowed(self) -> None:
        with self._lock:
            self._overflows += 1
            names = [name for name, f in self._folders.items() if f.observer is self._observer]
        limit = inotify_sysctl("max_queued_events")
        for name in names:
            self._degrade(
                name,
                "the inotify event queue overflowed and events were lost "
                f"(sysctl fs.inotify.max_queued_events = {limit}); folder {name!r} needs a rescan",
            )

    def _root_lost(self, folder: _Folder, what: str) -> None:
        with self._lock:
            if (
                folder.is_lost
                or self._is_stopped
                or self._folders.get(folder.name) is not folder
                or folder.observer is not self._observer
            ):
                return  # already reported, removed on purpose, or its observer was replaced
            folder.is_lost = True
        self._degrade(
            folder.name,
            f"the root of folder {folder.name!r} ({folder.root}) {what}; "
            "its changes are no longer seen until the folder is watched again",
        )

    def _supervise(self, observer: BaseObserver, thread: threading.Thread) -> None:
        thread.join()
        with self._lock:
            if self._is_stopped or observer is not self._observer:
                return
            names = [name for name, f in self._folders.items() if f.observer is observer]
        log.error("watch_thread_died", thread=thread.name)
        for name in names:
            self._degrade(
                name,
                f"the file watcher thread {thread.name!r} stopped unexpectedly; changes in "
                f"folder {name!r} are seen only by rescans until it is watched again",
            )

    # -- helpers ---------------------------------------------------------------------------

    def _folder_containing(self, path: Path) -> _Folder | None:
        with self._lock:
            candidates = [
                f
                for f in self._folders.values()
                if path == f.watched_root or f.watched_root in path.parents
            ]
        return max(candidates, key=lambda f: len(f.watched_root.parts), default=None)

    def _degrade(self, name: str, message: str) -> None:
        with self._lock:
            self._degraded[name] = message
        log.warning("watch_degraded", folder=name, reason=message)
        self._call(self._on_degraded, name, message)

    def _call(self, callback: Callable[[str, str], None], name: str, arg: str) -> None:
        try:
            callback(name, arg)
        except Exception:
            # A watchdog thread that raises dies silently and takes every later event with it.
            log.exception("watch_callback_failed", folder=name, path=arg)


def _unwatchable_reason(root: Path) -> str | None:
    try:
        if not stat.S_ISDIR(root.stat().st_mode):
            return "is not a directory"
        # watchdog ignores EACCES from inotify_add_watch and would "watch" nothing at all.
        with os.scandir(root) as entries:
            next(entries, None)
    except FileNotFoundError:
        return "does not exist"
    except PermissionError:
        return "is not readable by this user (check its permissions, or SupplementaryGroups=)"
    except OSError as exc:
        return f"cannot be listed: {exc.strerror or exc}"
    return None


def _describe_watch_failure(folder: _Folder, exc: OSError) -> str:
    if exc.errno in LIMIT_ERRNOS:
        return f"cannot watch folder {folder.name!r} ({folder.root}): {describe_limit_error(exc)}"
    return f"cannot watch folder {folder.name!r} ({folder.root}): {exc.strerror or exc}"
