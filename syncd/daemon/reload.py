"""SIGHUP: read the config again and apply folder changes without a restart.

A config that does not load keeps the old one (the error is reported). Folders that changed are
unwatched and watched again, and only they are scanned; ``[node]``, ``[api]`` and ``[state]``
changes need a restart (the old values stay); a retention change reschedules retention.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from syncd.config import Config, load_config
from syncd.daemon.problems import Problems
from syncd.daemon.scheduled import ScheduledWork
from syncd.daemon.watching import FolderWatching
from syncd.engine import Engine
from syncd.errors import ConfigError
from syncd.folder_specs import folder_specs
from syncd.notify import SystemdNotifier
from syncd.retention_preview import RetentionPreviewer

__all__ = ["Reloader"]

log = structlog.get_logger(__name__)


class Reloader:
    """Applies a new config file: :meth:`reload`.

    Threads: the main thread only (it sees the SIGHUP flag). Locks: none of its own; the
    engine's folder map has its lock, the watcher its own.
    """

    def __init__(
        self,
        config_path: Path,
        engine: Engine,
        problems: Problems,
        watching: FolderWatching,
        scheduled: ScheduledWork,
        retention_preview: RetentionPreviewer,
        notifier: SystemdNotifier,
        *,
        config: Callable[[], Config],
        set_config: Callable[[Config], None],
        status_line: Callable[[], str],
    ) -> None:
        self._config_path = config_path
        self._engine = engine
        self._problems = problems
        self._watching = watching
        self._scheduled = scheduled
        self._retention_preview = retention_preview
        self._notifier = notifier
        self._config = config
        self._set_config = set_config
        self._status_line = status_line

    def reload(self) -> None:
        """SIGHUP: apply folder changes without a restart; a bad config keeps the old one."""
        self._notifier.reloading()
        old = self._config()
        try:
            new = load_config(self._config_path)
        except ConfigError as exc:
            log.error("reload_rejected", error=str(exc))
            self._problems.last_error = f"reload rejected: {exc}"
            self._notifier.ready(self._status_line())
            return
        if new.node != old.node:
            # The node's name is in its folders' keys and its claims: a restart changes it.
            log.warning("reload_partial", error="[node] changes need a restart")
            new = new.model_copy(update={"node": old.node})
        old_specs = self._engine.folders()
        new_specs = folder_specs(new)
        self._engine.set_folders(new_specs)
        removed = [spec for key, spec in old_specs.items() if new_specs.get(key) != spec]
        added = [spec for key, spec in new_specs.items() if old_specs.get(key) != spec]
        for spec in removed:
            self._watching.unwatch(spec)
        for spec in added:
            self._watching.watch(spec)
        if added:
            # Only changed folders are scanned; unchanged files are not rehashed (fingerprints).
            self._scheduled.scan_soon([s.key for s in added])
        if new.api != old.api or new.state != old.state:
            log.warning("reload_partial", error="[api] and [state] changes need a restart")
        if new.retention != old.retention:
            self._scheduled.reschedule_retention(new)
        self._set_config(new)
        self._retention_preview.invalidate()
        log.info(
            "config_reloaded",
            added=[s.name for s in added if s.key not in old_specs],
            changed=[s.name for s in added if s.key in old_specs],
            removed=[s.name for s in removed if s.key not in new_specs],
        )
        self._notifier.ready(self._status_line())
