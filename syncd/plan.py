"""Pure decisions about one local file: hash it or not, and what its new content means.

Nothing here touches the disk, the network or the database: the pipeline gathers the facts
(stored record, fresh stat, digest, validation result, a remote file with the same content) and
these functions say what to do. That keeps the policy small enough to test exhaustively.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from syncd.domain import FileStat, LocalState

__all__ = ["SETTLED_STATES", "Outcome", "Verdict", "decide_content", "needs_hash"]

#: States whose content has been judged; a same-stat file in these needs no new look.
SETTLED_STATES = frozenset(
    {
        LocalState.PENDING,
        LocalState.UPLOADING,
        LocalState.UPLOADED,
        LocalState.QUARANTINED,
        LocalState.FAILED,
        LocalState.EXPIRED,
    }
)


def needs_hash(
    stored_stat: FileStat | None,
    stored_state: LocalState | None,
    stored_sha256: str | None,
    stat: FileStat,
) -> bool:
    """Whether ``stat`` differs from what the store knows, so the content must be read again.

    The (size, mtime_ns, inode) fingerprint is trusted for files already judged; anything else
    (new, unstable, missing, never hashed) is hashed.
    """
    if stored_stat is None or stored_state is None or stored_sha256 is None:
        return True
    if stored_state not in SETTLED_STATES:
        return True
    return stored_stat != stat


class Outcome(StrEnum):
    UNCHANGED = "unchanged"
    """Same bytes as recorded: keep the state, refresh the fingerprint."""
    QUARANTINE = "quarantine"
    """New content that fails validation."""
    REUSE = "reuse"
    """New content that is already on the remote for this purpose (a rename or a copy)."""
    UPLOAD = "upload"
    """New content to upload."""


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    state: LocalState


def decide_content(
    *,
    stored_state: LocalState | None,
    stored_sha256: str | None,
    sha256: str,
    is_valid: bool,
    remote_has_content: bool,
) -> Verdict:
    """What the freshly hashed content of one file means.

    Identical bytes keep their state: an uploaded file stays uploaded, a quarantined one stays
    quarantined (it is not retried until its content changes), an expired one is not uploaded
    again. A file that was only unstable or missing is judged afresh; when it comes back with
    bytes already on the remote, the lookup for ``remote_has_content`` turns that into a reuse.
    """
    if stored_sha256 == sha256 and stored_state in SETTLED_STATES:
        return Verdict(Outcome.UNCHANGED, stored_state)
    if not is_valid:
        return Verdict(Outcome.QUARANTINE, LocalState.QUARANTINED)
    if remote_has_content:
        return Verdict(Outcome.REUSE, LocalState.UPLOADED)
    return Verdict(Outcome.UPLOAD, LocalState.PENDING)
