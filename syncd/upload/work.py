"""The uploader's vocabulary: its settings, the events it reports, one claimed row, and one
upload the server accepted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncd.api import FileInfo
from syncd.pipeline import FolderSpec
from syncd.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from syncd.store.records import LocalFileRecord

__all__ = ["TRANSIENT_ATTEMPTS_FACTOR", "UploadEvent", "UploadSettings", "Uploaded", "Work"]

#: Transient failures (no answer, 429, 5xx) a file may have, in multiples of ``max_attempts``:
#: a healthy API failing 30% of requests must not make files give up.
TRANSIENT_ATTEMPTS_FACTOR = 4


@dataclass(frozen=True, slots=True)
class UploadSettings:
    concurrency: int = 4
    max_attempts: int = 8
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    idle_wait: float = 5.0
    """Longest the dispatcher sleeps when nothing is due (the doorbell usually wakes it first)."""
    node: str | None = None
    """This node's name: its claims carry it, and a restart puts back only its own (fleet)."""
    probe_timeout: float = 0.0
    """The longest one request may wait for an answer (connect + idle timeout): ``syncd sync``
    starts no probe of a silent API that could not end within its patience."""

    @property
    def outage_patience(self) -> float:
        """How long ``syncd sync`` waits through an outage: as long as ``max_attempts`` backoff
        delays take at their longest (about two minutes for the default 8)."""
        policy = self.retry_policy
        return sum(
            min(policy.initial * policy.multiplier**n, policy.maximum)
            for n in range(self.max_attempts)
        )


@dataclass(frozen=True, slots=True)
class UploadEvent:
    """One finished upload attempt, for progress bars and metrics."""

    folder: str
    rel_path: str
    outcome: str  # uploaded | adopted | retry | failed | quarantined | changed | vanished
    bytes: int
    file_id: str | None = None
    error: str | None = None
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class Work:
    """A claimed row, its folder, and when it was claimed."""

    record: LocalFileRecord
    folder: FolderSpec
    claimed: datetime
    #: The outage gate's ticket taken before the claim (None for a probe: judged as of now).
    ticket: int | None


@dataclass(frozen=True, slots=True)
class Uploaded:
    """A claimed row the server accepted (or an earlier attempt of it, found and adopted), its
    outcome not written yet (see :class:`~syncd.upload.success.Successes`)."""

    work: Work
    info: FileInfo
    action: str  # upload | adopt
