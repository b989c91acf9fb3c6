"""Scripted misbehaviour: which ``/v1`` request gets which fault, and how a fault is delivered.

The draw is seeded so a test can reproduce a run; the settings can change while the server runs
(``POST /_emulator/faults``). Dropping a connection needs the server's help: the uvicorn runner
puts a callable under :data:`DROP_CONNECTION_EXTENSION` in each request's ASGI scope.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncd.emulator.options import EmulatorOptions, check_fault_settings

__all__ = [
    "DROP_CONNECTION_EXTENSION",
    "JOB_FATE_EXTENSION",
    "DropConnection",
    "FaultInjector",
    "FaultSettings",
    "fault_settings_with",
]

#: ASGI scope extension key; its value is a :data:`DropConnection` for the request's socket.
DROP_CONNECTION_EXTENSION = "syncd.drop_connection"

#: ASGI scope extension key; its value is the job fault kind (``job-fail``, ...) drawn for the
#: request. Only a batch job create acts on it; every other request is served normally.
JOB_FATE_EXTENSION = "syncd.job_fate"

#: Closes the client's TCP connection without a response. ``reset=True`` sends an RST
#: (the client sees "connection reset"); ``reset=False`` a plain close (FIN).
DropConnection = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The fault part of the options: what may go wrong and how slow every answer is."""

    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ()
    retry_after: float | None = None
    latency_ms: int = 0

    def __post_init__(self) -> None:
        check_fault_settings(self.fault_rate, self.fault_kinds, self.retry_after, self.latency_ms)

    @classmethod
    def from_options(cls, options: EmulatorOptions) -> FaultSettings:
        return cls(options.fault_rate, options.fault_kinds, options.retry_after, options.latency_ms)


class FaultInjector:
    """Draws a fault (or none) per request from a seeded RNG; settings replaceable at runtime.

    Thread-safe: the event loop draws while a test thread may swap the settings.
    """

    def __init__(self, settings: FaultSettings, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._settings = settings
        # Not for security: a reproducible sequence of faults is the point.
        self._rng = random.Random(seed)  # noqa: S311

    @property
    def settings(self) -> FaultSettings:
        with self._lock:
            return self._settings

    def configure(self, settings: FaultSettings) -> None:
        """Replace the settings; requests already past their draw are not affected."""
        with self._lock:
            self._settings = settings

    def draw(self) -> str | None:
        """The fault kind for the next request, or None when it should be served normally."""
        with self._lock:
            settings = self._settings
            if settings.fault_rate <= 0 or not settings.fault_kinds:
                return None
            if self._rng.random() >= settings.fault_rate:
                return None
            return self._rng.choice(settings.fault_kinds)


def fault_settings_with(current: FaultSettings, changes: dict[str, Any]) -> FaultSettings:
    """``current`` with the fields named in ``changes`` replaced (kinds: list or comma string).

    Raises:
        ValueError: an unknown field, an unparsable number or an out-of-range value.
        TypeError: a value of the wrong JSON type.
    """
    unknown = set(changes) - {f.name for f in dataclasses.fields(FaultSettings)}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    values = dataclasses.asdict(current)
    values.update(changes)
    kinds = values["fault_kinds"]
    if isinstance(kinds, str):
        kinds = [kind.strip() for kind in kinds.split(",") if kind.strip()]
    if not isinstance(kinds, list | tuple) or not all(isinstance(k, str) for k in kinds):
        raise TypeError("fault_kinds must be a list of strings or a comma-separated string")
    retry_after = values["retry_after"]
    return FaultSettings(
        fault_rate=float(values["fault_rate"]),
        fault_kinds=tuple(kinds),
        retry_after=None if retry_after is None else float(retry_after),
        latency_ms=int(values["latency_ms"]),
    )
