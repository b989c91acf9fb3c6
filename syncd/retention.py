"""Retention policy, pure: which remote files syncd uploaded are past their folder's age.

No I/O here. The job (:mod:`syncd.retention_job`) gathers the facts (candidates from the state
store, the files active jobs read, folders that look unmounted) and these functions decide. The
guards live here too, so one property test covers them all:

* only candidates (remote files syncd recorded as its own uploads) can ever be planned;
* age is the remote ``created_at`` against ``now``, never a local mtime;
* a file a queued or running job reads is kept; unknown job lists mean nothing is deleted;
* nothing in a blocked folder (missing, or empty while the store knew files there) is deleted;
* a plan larger than ``max_deletes`` deletes nothing at all, and says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from syncd.domain import LocalState

__all__ = [
    "Candidate",
    "DeleteReason",
    "Deletion",
    "FolderPolicy",
    "RetentionPlan",
    "Source",
    "decide",
    "plan_deletions",
    "source_of",
]


class Source(StrEnum):
    """What became of the local file a remote file was uploaded from."""

    CURRENT = "current"
    """A local file still holds exactly these bytes."""
    CHANGED = "changed"
    """The local file exists but its bytes moved on, or are being judged again."""
    GONE = "gone"
    """The local file is gone from disk."""
    SUPERSEDED = "superseded"
    """A newer upload replaced it; no local file points at it any more."""


class DeleteReason(StrEnum):
    """Why retention deleted a file (stored as ``delete_reason`` and in the audit trail)."""

    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    SOURCE_GONE = "source_gone"


@dataclass(frozen=True, slots=True)
class FolderPolicy:
    """One folder's retention: the maximum age of a remote file, and whether to spare current
    ones. ``max_age`` None keeps every file forever."""

    max_age: timedelta | None
    keep_current: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    """A live remote file syncd uploaded, with the facts the policy needs."""

    file_id: str
    folder: str
    rel_path: str
    created_at: datetime
    """The server's ``created_at``: age is measured from the upload, not from the local mtime."""
    source: Source
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Deletion:
    """One file the policy wants gone, and why."""

    file_id: str
    folder: str
    rel_path: str
    reason: DeleteReason
    age: timedelta
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What one run will delete, and everything the guards held back."""

    deletions: tuple[Deletion, ...]
    """What the run deletes: every due file, or nothing when the run is halted."""
    due: tuple[Deletion, ...]
    """What the policy wants gone (oldest first), before the guards that halt a whole run."""
    kept_referenced: tuple[Deletion, ...] = ()
    """Due, but a queued or running fine-tuning or batch job reads it."""
    blocked: Mapping[str, str] = field(default_factory=dict)
    """folder -> why none of its files is touched this run."""
    halted: str | None = None
    """Why the run deletes nothing at all (over the cap, job lists unknown); None when it may."""

    @property
    def message(self) -> str:
        """One line saying what the plan does (and why not, when halted)."""
        if self.halted is not None:
            return self.halted
        if not self.deletions:
            return "nothing is due for deletion"
        return f"{len(self.deletions)} file(s) due for deletion"


def source_of(
    remote_sha256: str,
    *,
    is_superseded: bool,
    holders: Iterable[tuple[LocalState, str | None]],
) -> Source:
    """Classify a remote file by the local rows that point at it (state, sha256).

    Several rows may point at one file (the same bytes at two paths). Any row still holding
    exactly these bytes makes it current. A row that exists on disk but is being judged again,
    waits for its new version's upload or was rejected counts as *changed*: with
    ``keep_current`` that is kept too, because the file's newer bytes are not on the remote.
    """
    states = [(state, sha256) for state, sha256 in holders]
    if any(state is LocalState.UPLOADED and sha == remote_sha256 for state, sha in states):
        return Source.CURRENT
    if any(state is not LocalState.MISSING for state, _sha in states):
        return Source.CHANGED
    if states:
        return Source.GONE
    return Source.SUPERSEDED if is_superseded else Source.GONE


def decide(
    candidate: Candidate, policy: FolderPolicy | None, *, now: datetime
) -> DeleteReason | None:
    """Why ``candidate`` should go now under ``policy``, or None to keep it.

    Superseded versions and files whose source is gone go at the age whatever ``keep_current``
    says; a current (or changed) file goes at the age only without ``keep_current``. A file
    whose ``created_at`` lies in the future (clock skew) is never old enough.
    """
    if policy is None or policy.max_age is None:
        return None
    if now - candidate.created_at <= policy.max_age:
        return None
    if candidate.source is Source.SUPERSEDED:
        return DeleteReason.SUPERSEDED
    if candidate.source is Source.GONE:
        return DeleteReason.SOURCE_GONE
    return None if policy.keep_current else DeleteReason.EXPIRED


def plan_deletions(
    candidates: Iterable[Candidate],
    policies: Mapping[str, FolderPolicy],
    *,
    now: datetime,
    referenced: frozenset[str] | None,
    blocked_folders: Mapping[str, str],
    max_deletes: int,
) -> RetentionPlan:
    """The plan for one run.

    ``referenced`` holds the ids that queued or running jobs read; None means the job lists
    could not be read, and then nothing is deleted. ``blocked_folders`` maps a folder to why it
    is left alone. When more files are due than ``max_deletes``, nothing is deleted (not the
    first ``max_deletes``): a surprising plan is a reason to look, not to delete part of it.
    """
    due: list[Deletion] = []
    kept: list[Deletion] = []
    for candidate in candidates:
        if candidate.folder in blocked_folders:
            continue
        reason = decide(candidate, policies.get(candidate.folder), now=now)
        if reason is None:
            continue
        deletion = Deletion(
            file_id=candidate.file_id,
            folder=candidate.folder,
            rel_path=candidate.rel_path,
            reason=reason,
            age=now - candidate.created_at,
            bytes=candidate.bytes,
        )
        if referenced is not None and candidate.file_id in referenced:
            kept.append(deletion)
        else:
            due.append(deletion)
    due.sort(key=lambda d: (-d.age, d.file_id))
    halted: str | None = None
    if referenced is None and due:
        halted = (
            f"{len(due)} file(s) are due, but the fine-tuning and batch job lists could not be "
            "read, so none is known to be unused: nothing was deleted"
        )
    elif len(due) > max_deletes:
        halted = (
            f"{len(due)} file(s) are due for deletion, more than max_deletes_per_run = "
            f"{max_deletes}: nothing was deleted. Check the plan (syncd cleanup --dry-run); if it "
            "is right, raise [retention] max_deletes_per_run"
        )
    return RetentionPlan(
        deletions=() if halted else tuple(due),
        due=tuple(due),
        kept_referenced=tuple(kept),
        blocked=dict(blocked_folders),
        halted=halted,
    )
