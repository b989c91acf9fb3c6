"""Watching folders: watchdog events in, settled ``(folder, path)`` keys out.

:mod:`~syncd.watcher.observer` turns filesystem events into change and degraded callbacks;
:mod:`~syncd.watcher.debounce` holds each key until it has been quiet long enough. The daemon wires
one to the other; neither knows about the state store or the pipeline.
"""

from __future__ import annotations

from syncd.watcher.debounce import Debouncer
from syncd.watcher.observer import ChangeCallback, DegradedCallback, Watcher

__all__ = ["ChangeCallback", "Debouncer", "DegradedCallback", "Watcher"]
