"""The one retry policy: how long to wait before attempt ``n + 1``.

Both the API client (in-call retries for interactive commands) and the daemon's uploader (which
persists the result as a next-attempt time) call :func:`retry_delay`, so backoff behaves the same
everywhere. It is pure: randomness comes in as an argument.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from syncd.errors import RateLimitedError, ServerError, SyncdError

__all__ = ["DEFAULT_RETRY_POLICY", "RetryPolicy", "is_retryable", "retry_after_of", "retry_delay"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, honouring the server's Retry-After."""

    initial: float = 0.5
    """Base delay in seconds before the first retry."""
    multiplier: float = 2.0
    maximum: float = 60.0
    """No computed delay exceeds this (a server's Retry-After may)."""
    max_retry_after: float = 3600.0
    """A Retry-After beyond this is treated as this: a broken header must not park work for days."""


DEFAULT_RETRY_POLICY = RetryPolicy()


def retry_delay(
    attempt: int,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first failure).

    A server-sent ``retry_after`` wins (the server knows its own limits); it is never shortened by
    jitter, only bounded by ``policy.max_retry_after``. Otherwise the delay is drawn uniformly from
    ``[d/2, d]`` with ``d = initial * multiplier**(attempt-1)`` capped at ``maximum``: jitter keeps
    many workers that failed together from retrying together, and the lower half-bound keeps the
    backoff growing.
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, policy.max_retry_after)
    exponent = max(attempt, 1) - 1
    # Cap the exponent so huge attempt counts cannot overflow float arithmetic.
    ceiling = min(policy.initial * policy.multiplier ** min(exponent, 64), policy.maximum)
    draw = (rng or random).random()  # jitter, not cryptography
    return ceiling / 2 + draw * ceiling / 2


def is_retryable(exc: BaseException) -> bool:
    """Whether trying the same request again could succeed."""
    return isinstance(exc, SyncdError) and exc.retryable


def retry_after_of(exc: BaseException) -> float | None:
    """The server's requested wait, if the error carries one."""
    if isinstance(exc, RateLimitedError | ServerError):
        return exc.retry_after
    return None
