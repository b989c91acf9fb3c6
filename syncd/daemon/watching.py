"""Watching: file events, debounced until a path settles, then judged by the pipeline.

Events → :class:`~syncd.watcher.Debouncer` → the settle loop → ``Pipeline.refresh``. Folders
whose watch does not work (a missing root, an inotify limit, an overflow, a dead watcher
thread) are degraded: rescanned on a backoff, and watched again once their root is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from syncd.config import Config
from syncd.daemon.problems import DEGRADED_FIRST_RESCAN, Problems
from syncd.engine import Engine
from syncd.errors import LocalFileError, StoreError
from syncd.paths import to_key
from syncd.pipeline import FolderSpec
from syncd.watcher import Debouncer, Watcher

__all__ = ["FolderWatching"]

log = structlog.get_logger(__name__)

_TICK = 0.5


class FolderWatching:
    """The watcher, the debouncer and the settle loop of the daemon's folders.

    Threads: watchdog's threads call :meth:`path_changed` / :meth:`path_written` (and report
    degraded folders to :class:`Problems`); ``syncd-settle`` runs the settle loop; the main
    thread calls :meth:`rescan_degraded`, and the reload and lifecycle call :meth:`watch`,
    :meth:`unwatch`, :meth:`start` and :meth:`stop`; upload workers and the pipeline call
    :meth:`retouch`. Locks: ``_debounce_lock`` (a condition) guards the debouncer and the
    written paths; the degraded folders are :class:`Problems`'s.
    """

    def __init__(
        self,
        engine: Engine,
        problems: Problems,
        config: Callable[[], Config],
        stop: threading.Event,
        owe_rescan: Callable[[], bool],
    ) -> None:
        self._engine = engine
        self._problems = problems
        self._config = config
        self._stop = stop
        #: True (and a rescan remembered) while the state database is known to be down.
        self._owe_rescan = owe_rescan
        settings = config().watch
        self._debouncer: Debouncer[tuple[str, str]] = Debouncer(
            settings.settle.total_seconds(), settings.settle_max.total_seconds(), time.monotonic
        )
        self._debounce_lock = threading.Condition()
        #: Debounced paths an event said were written to: hashed at settle whatever their stat
        #: says (guarded by _debounce_lock; at most one entry per path waiting to settle).
        self._written: set[tuple[str, str]] = set()
        self.watcher: Watcher | None = None

    def start(self) -> None:
        """Start the settle loop and watch every configured folder."""
        threading.Thread(target=self._settle_loop, name="syncd-settle", daemon=True).start()
        self.watcher = Watcher(
            on_change=self.path_changed,
            on_degraded=self._problems.folder_degraded,
            use_polling=self._config().watch.use_polling,
            on_written=self.path_written,
        )
        for spec in self._engine.folders().values():
            self.watch(spec)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def watch(self, spec: FolderSpec) -> None:
        assert self.watcher is not None
        if not spec.root.is_dir():
            self._problems.folder_degraded(spec.name, f"watched folder {spec.root} does not exist")
            return
        self.watcher.add_folder(spec.name, spec.root)

    def unwatch(self, spec: FolderSpec) -> None:
        assert self.watcher is not None
        self.watcher.remove_folder(spec.name)
        self._problems.forget(spec.name)

    @property
    def overflows(self) -> int:
        return 0 if self.watcher is None else self.watcher.overflows

    # -- events (watchdog's threads) ------------------------------------------------------------

    def path_changed(self, folder_name: str, path: str) -> None:
        key = self._debounce_key(folder_name, path)
        if key is None:
            return
        with self._debounce_lock:
            self._debouncer.touch(key)
            self._debounce_lock.notify()

    def path_written(self, folder_name: str, path: str) -> None:
        """The bytes of this file were written: a rewrite in place that keeps the size and
        puts the mtime back (or lands in the same tick of a coarse clock) leaves a stat that
        looks unchanged, so the look at settle time reads the file whatever its stat says."""
        key = self._debounce_key(folder_name, path)
        if key is not None:
            with self._debounce_lock:
                self._written.add(key)

    def _debounce_key(self, folder_name: str, path: str) -> tuple[str, str] | None:
        spec = self._engine.folder_named(folder_name)
        if spec is None:
            return None
        try:
            rel_path = to_key(spec.root, Path(path))
        except ValueError:
            return None
        if rel_path in ("", "."):
            return None
        return spec.key, rel_path

    def retouch(self, spec: FolderSpec, rel_path: str) -> None:
        """A file that was still changing: look again once it has been quiet for a while."""
        with self._debounce_lock:
            self._debouncer.touch((spec.key, rel_path))
            self._debounce_lock.notify()

    # -- settling (syncd-settle) ----------------------------------------------------------------

    def _settle_loop(self) -> None:
        while not self._stop.is_set():
            with self._debounce_lock:
                due = self._debouncer.due()
                if not due:
                    deadline = self._debouncer.next_deadline()
                    timeout = _TICK if deadline is None else max(0.0, deadline - time.monotonic())
                    self._debounce_lock.wait(timeout=min(timeout, _TICK))
                    continue
                written = [key in self._written for key in due]
                self._written.difference_update(due)
            for (folder_key, rel_path), rehash in zip(due, written, strict=True):
                self._refresh(folder_key, rel_path, rehash=rehash)

    def _refresh(self, folder_key: str, rel_path: str, *, rehash: bool = False) -> None:
        spec = self._engine.folders().get(folder_key)
        if spec is None:
            return
        try:
            self._engine.pipeline.refresh(spec, rel_path, rehash=rehash)
        except LocalFileError as exc:
            self._problems.folder_degraded(spec.name, str(exc))
        except StoreError as exc:
            self._problems.last_error = str(exc)
            if self._owe_rescan():
                # The database is down: the rescan once it is back looks at this path.
                log.debug("store_unavailable", folder=spec.name, path=rel_path, error=str(exc))
                return
            # Not judged yet: look at the path again once it has settled anew.
            log.warning("store_unavailable", folder=spec.name, path=rel_path, error=str(exc))
            if rehash:
                with self._debounce_lock:
                    self._written.add((folder_key, rel_path))
            self.retouch(spec, rel_path)
        except Exception as exc:
            self._problems.last_error = f"{spec.name}/{rel_path}: {exc}"
            log.exception("refresh_failed", folder=spec.name, path=rel_path)

    # -- degraded folders (main thread) ---------------------------------------------------------

    def rescan_degraded(self) -> None:
        """Backed-off rescans for folders whose watch does not work: never a recrawl storm."""
        now = time.monotonic()
        ceiling = self._config().watch.rescan_interval.total_seconds()
        for name, state in self._problems.due(now):
            spec = self._engine.folder_named(name)
            if spec is None:
                self._problems.forget(name)
                continue
            try:
                summary = self._engine.pipeline.scan(spec)
            except (LocalFileError, StoreError) as exc:
                log.warning("degraded_rescan_failed", folder=name, error=str(exc))
                changed = False
            else:
                changed = bool(summary.queued or summary.renamed or summary.missing)
                if state.rewatch and self._rewatch(spec):
                    continue
            state.interval = DEGRADED_FIRST_RESCAN if changed else min(state.interval * 2, ceiling)
            state.next_scan = time.monotonic() + state.interval

    def _rewatch(self, spec: FolderSpec) -> bool:
        """Watch a folder whose root came back; True when it is healthy again."""
        assert self.watcher is not None
        self._problems.forget(spec.name)
        self.watcher.remove_folder(spec.name)
        # A failure degrades the folder again, so it stays on backed-off rescans.
        if not self.watcher.add_folder(spec.name, spec.root):
            return False
        self.watcher.clear_degraded(spec.name)
        log.info("folder_recovered", folder=spec.name, path=str(spec.root))
        return True
