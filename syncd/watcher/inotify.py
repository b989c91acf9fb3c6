"""watchdog's inotify observer, plus the three signals watchdog keeps to itself.

watchdog 7 passes file events on, but it only logs a kernel queue overflow (IN_Q_OVERFLOW,
watchdog#654), silently leaves a subdirectory unwatched when the inotify watch limit is hit, and
says nothing when the watched root is moved away. This module surfaces those through watchdog's
own extension points and decides nothing: :mod:`syncd.watcher.observer` turns them into
"degraded" reports.

This is syncd's whole reach into watchdog's private inotify layer (pyproject.toml bounds
watchdog below its next minor release for it): two overridden methods of ``InotifyFD``
(``add_callback``, ``handle_event``), one ``WatchCallback`` (the root sentinel, which must
implement every method of the protocol), and the observer's ``inotify_fd`` argument.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.inotify import InotifyEmitter
from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchCallback,
    WatchDescriptor,
)

__all__ = [
    "LIMIT_ERRNOS",
    "SignallingInotifyObserver",
    "describe_limit_error",
    "inotify_sysctl",
]

# watchdog's reader thread warns when a new directory's watch is added twice (its creation
# event and its recursive walk race under load); the second add replaces the same callback, so
# nothing is lost: keep the warning out of the daemon's stderr.
warnings.filterwarnings(
    "ignore",
    message=r"Callback with id .* already exists for watch",
    category=RuntimeWarning,
    module=r"watchdog\.",
)

#: errno values meaning "an inotify limit was hit", not "this path is bad".
LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})

_SYSCTL_DIR = Path("/proc/sys/fs/inotify")

# Added to the root's existing watch (IN_MASK_ADD) so the emitter's own mask is left intact.
_ROOT_MASK = Mask(
    InotifyConstants.IN_MASK_ADD
    | InotifyConstants.IN_DELETE_SELF
    | InotifyConstants.IN_MOVE_SELF
    | InotifyConstants.IN_DONT_FOLLOW
    | InotifyConstants.IN_ONLYDIR
)


def inotify_sysctl(name: str) -> int | None:
    """Current value of ``fs.inotify.<name>``, or None when it cannot be read."""
    try:
        return int((_SYSCTL_DIR / name).read_text().strip())
    except (OSError, ValueError):
        return None


def describe_limit_error(exc: OSError) -> str:
    """An actionable sentence for an inotify limit error: which sysctl, and its value now."""
    if exc.errno == errno.ENOSPC:
        current = inotify_sysctl("max_user_watches")
        return (
            f"the inotify watch limit was reached (sysctl fs.inotify.max_user_watches = "
            f"{current}); raise it, e.g. `sysctl -w fs.inotify.max_user_watches=524288` and in "
            "/etc/sysctl.d/ (each watched directory needs one watch)"
        )
    current = inotify_sysctl("max_user_instances")
    return (
        f"the inotify instance limit was reached (sysctl fs.inotify.max_user_instances = "
        f"{current}) or the process ran out of file descriptors (LimitNOFILE=); raise "
        "fs.inotify.max_user_instances, e.g. `sysctl -w fs.inotify.max_user_instances=1024`"
    )


class _LimitReportingInotifyFD(InotifyFD):
    """An inotify instance that reports limit errors and overflows before watchdog hides them."""

    def __init__(
        self, on_limit: Callable[[str, OSError], None], on_overflow: Callable[[], None]
    ) -> None:
        self._on_limit = on_limit
        self._on_overflow = on_overflow
        super().__init__()

    def add_callback(
        self, path: bytes, mask: Mask, callback: WatchCallback, id_: CallbackId
    ) -> WatchDescriptor:
        try:
            return super().add_callback(path, mask, callback, id_)
        except OSError as exc:
            # watchdog re-raises this only for the root; below it, the subtree goes unwatched.
            if exc.errno in LIMIT_ERRNOS:
                self._on_limit(os.fsdecode(path), exc)
            raise

    def handle_event(self, event: InotifyEvent) -> None:
        if event.is_queue_overflow:
            self._on_overflow()
        super().handle_event(event)


@dataclass(eq=False)
class _RootSentinel:
    """A WatchCallback on a folder's root that notices the root itself going away."""

    on_lost: Callable[[str], None]

    def on_event(self, event: InotifyEvent) -> None:
        if event.is_delete_self:
            self.on_lost("was deleted")
        elif event.is_move_self:
            self.on_lost("was moved or renamed")
        elif event.mask & InotifyConstants.IN_UNMOUNT:
            self.on_lost("was unmounted")

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        # IN_IGNORED: the kernel dropped the watch (root deleted, unmounted, or replaced).
        self.on_lost("is no longer watched by the kernel")

    def on_queue_overflow(self) -> None:
        """Overflows are reported once per inotify instance by the fd, not per root."""

    def on_events_lost(self) -> None:
        """watchdog >= 7.1.1 calls this on every callback after an overflow; the fd reported it.

        A callback that lacks a method of the protocol raises on watchdog's reader thread and
        stops it (every folder then falls back to rescans), so the sentinel implements all of
        ``WatchCallback``: mypy checks that against the watchdog the lock pins.
        """


class SignallingInotifyObserver(BaseObserver):
    """watchdog's inotify observer on an inotify instance of its own that reports trouble.

    ``on_limit(path, error)`` runs when a watch cannot be added because of an inotify limit
    (on the caller's thread during ``schedule``, on watchdog's thread for new directories);
    ``on_overflow()`` runs on watchdog's reader thread when the kernel queue overflowed.

    Raises:
        OSError: EMFILE when no inotify instance can be created.
    """

    def __init__(
        self,
        on_limit: Callable[[str, OSError], None],
        on_overflow: Callable[[], None],
        *,
        timeout: float = DEFAULT_OBSERVER_TIMEOUT,
    ) -> None:
        self.inotify_fd = _LimitReportingInotifyFD(on_limit, on_overflow)
        self.inotify_fd.name = "syncd-inotify-reader"
        self.inotify_fd.start()
        super().__init__(InotifyEmitter, timeout=timeout, inotify_fd=self.inotify_fd)
        self.name = "syncd-watch-dispatcher"

    def watch_root(self, root: str, on_lost: Callable[[str], None]) -> Callable[[], None]:
        """Call ``on_lost(what happened)`` when ``root`` is deleted, moved or unmounted.

        Call after ``schedule`` for the same root, so the mask is added to the emitter's watch.
        Returns the function that removes the sentinel again.
        """
        sentinel = _RootSentinel(on_lost)
        callback_id = CallbackId(id(sentinel))
        wd = self.inotify_fd.add_callback(os.fsencode(root), _ROOT_MASK, sentinel, callback_id)

        def unwatch() -> None:
            self.inotify_fd.remove_callbacks([(wd, callback_id)])

        return unwatch

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self.inotify_fd.stop()
        self.inotify_fd.join()
