"""How long a Files API request may take, phase by phase.

One number for every phase (what httpx's ``Timeout(300)`` means) let a server that accepts a
connection and never answers hold each try for five silent minutes. Here each phase has its
own limit, as httpx allows:

- **connect**: reaching the server (seconds: a host that does not answer a SYN is down);
- **idle**: no byte moved while sending or waiting for the answer (``[api] timeout``, a
  minute by default): a live server answers a small request in well under a second, and a
  large upload moves bytes all the time;
- **pool**: waiting for a free connection of syncd's own pool, the same as idle;
- **whole request**: a budget that grows with the size of the upload (connect + idle +
  ``timeout_per_mb`` for each MB sent), checked between chunks of the body, so a body trickling
  a byte a minute still ends.

Pure values; nothing here sends anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

__all__ = ["DEFAULT_TIMEOUTS", "MEGABYTE", "RequestTimeouts"]

MEGABYTE = 1_000_000
#: The first "still waiting" line comes after this long without an answer, at the latest.
_WAITING_AFTER_MAX = 30.0


@dataclass(frozen=True, slots=True)
class RequestTimeouts:
    """Seconds allowed per phase of one request; see the module docstring."""

    connect: float = 10.0
    idle: float = 60.0
    per_mb: float = 10.0

    def __post_init__(self) -> None:
        for name in ("connect", "idle", "per_mb"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"timeout {name} must be positive, got {value}")

    def for_httpx(self) -> httpx.Timeout:
        """The per-phase limits httpx enforces on every socket operation."""
        return httpx.Timeout(connect=self.connect, read=self.idle, write=self.idle, pool=self.idle)

    def budget(self, body_bytes: int) -> float:
        """Seconds the whole request may take when it sends ``body_bytes``."""
        return self.connect + self.idle + max(body_bytes, 0) / MEGABYTE * self.per_mb

    @property
    def waiting_after(self) -> float:
        """Seconds without an answer before syncd says it is still waiting (and again each
        time as long): 30 s, or half the idle limit when that is shorter."""
        return min(_WAITING_AFTER_MAX, self.idle / 2)


DEFAULT_TIMEOUTS = RequestTimeouts()
