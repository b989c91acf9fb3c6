"""The settle window: a key is released once it has been quiet long enough.

Pure bookkeeping over an injected clock: no threads, no I/O, no knowledge of files. A file still
being written keeps being touched and so stays held; one written without pause is released
anyway after ``settle_max`` so it is looked at eventually (the pipeline's size/mtime check before
and after hashing catches a file that is still moving).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Debouncer"]

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Activity:
    first: float
    last: float


class Debouncer(Generic[K]):
    """Holds keys until they settle; see the module docstring.

    A key is due when nothing touched it for ``settle`` seconds, or when ``settle_max`` seconds
    have passed since its first touch, whichever comes first. ``clock`` must never go backwards
    (``time.monotonic``). Every operation is O(1) amortised per key; all methods may be called
    from different threads.
    """

    def __init__(
        self, settle: float, settle_max: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if settle < 0:
            raise ValueError(f"settle must be >= 0 seconds, got {settle}")
        if settle_max < settle:
            raise ValueError(f"settle_max ({settle_max}) must be >= settle ({settle})")
        self.settle = settle
        self.settle_max = settle_max
        self._clock = clock
        self._lock = threading.Lock()
        self._activity: dict[K, _Activity] = {}
        # Both orders are kept so due() and next_deadline() look only at the front:
        # the least recently touched key settles first, the first-seen key hits the cap first.
        self._by_last_touch: OrderedDict[K, None] = OrderedDict()
        self._by_first_touch: OrderedDict[K, None] = OrderedDict()

    def touch(self, key: K) -> None:
        """Record activity on ``key`` now; its quiet window starts again."""
        now = self._clock()
        with self._lock:
            activity = self._activity.get(key)
            if activity is None:
                self._activity[key] = _Activity(first=now, last=now)
                self._by_first_touch[key] = None
                self._by_last_touch[key] = None
            else:
                activity.last = now
                self._by_last_touch.move_to_end(key)

    def due(self) -> list[K]:
        """Remove and return the keys that have settled (or hit ``settle_max``), oldest first."""
        now = self._clock()
        released: list[K] = []
        # Compared as "now < touched + window", the very sum next_deadline() returns, so a
        # consumer that wakes exactly at the deadline finds the key due despite float rounding.
        with self._lock:
            while self._by_last_touch:
                key = next(iter(self._by_last_touch))
                if now < self._activity[key].last + self.settle:
                    break
                self._forget(key)
                released.append(key)
            while self._by_first_touch:
                key = next(iter(self._by_first_touch))
                if now < self._activity[key].first + self.settle_max:
                    break
                self._forget(key)
                released.append(key)
        return released

    def discard(self, key: K) -> None:
        """Stop tracking ``key`` (e.g. its folder was removed); unknown keys are ignored."""
        with self._lock:
            if key in self._activity:
                self._forget(key)

    def pending(self) -> int:
        """How many keys are waiting to settle."""
        with self._lock:
            return len(self._activity)

    def next_deadline(self) -> float | None:
        """Clock time at which the next key becomes due, or None when nothing is pending.

        A consumer thread waits until then (or until a new touch) before calling :meth:`due`.
        """
        with self._lock:
            if not self._activity:
                return None
            quiet_key = next(iter(self._by_last_touch))
            capped_key = next(iter(self._by_first_touch))
            return min(
                self._activity[quiet_key].last + self.settle,
                self._activity[capped_key].first + self.settle_max,
            )

    def _forget(self, key: K) -> None:
        del self._activity[key]
        del self._by_last_touch[key]
        del self._by_first_touch[key]
