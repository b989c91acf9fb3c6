"""Pure decisions about one local file: hash it or not, and what its new content means.

Nothing here touches the disk, the network or the database: the pipeline gathers the facts
(stored record, fresh stat, digest, validation result, a remote file with the same content) and
these functions say what to do. That keeps the policy small enough to test exhaustively.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from syncd.domain import FileStat, LocalState

__all__ = [
    "COARSE_GRANULARITY_NS",
    "FINE_GRANULARITY_NS",
    "SETTLED_STATES",
    "Outcome",
    "Verdict",
    "decide_content",
    "is_racy",
    "needs_hash",
    "timestamp_granularity_ns",
]

#: Timestamp granularity assumed for a file whose stamps have no sub-second part (FAT keeps
#: two seconds; NFS, SMB and ext3 servers one).
COARSE_GRANULARITY_NS = 2_000_000_000
#: ... and for one whose stamps do: the kernel stamps files from a clock that ticks every few
#: milliseconds (one jiffy), so two writes 4 ms apart may share a stamp.
FINE_GRANULARITY_NS = 100_000_000

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
    *,
    stored_racy: bool = False,
) -> bool:
    """Whether ``stat`` differs from what the store knows, so the content must be read again.

    The (size, mtime_ns, inode, ctime_ns) fingerprint is trusted for files already judged,
    unless it was recorded too soon after the file's last change (``stored_racy``); anything
    else (new, unstable, missing, never hashed) is hashed.
    """
    if stored_stat is None or stored_state is None or stored_sha256 is None:
        return True
    if stored_state not in SETTLED_STATES or stored_racy:
        return True
    return stat.moved_since(stored_stat)


def timestamp_granularity_ns(stat: FileStat, configured_ns: int | None) -> int:
    """The timestamp granularity to assume for this file: the configured one, or (``None``:
    auto) coarse when neither its mtime nor its ctime has a sub-second part, fine otherwise."""
    if configured_ns is not None:
        return configured_ns
    second = 1_000_000_000
    if stat.mtime_ns % second == 0 and stat.ctime_ns % second == 0:
        return COARSE_GRANULARITY_NS
    return FINE_GRANULARITY_NS


def is_racy(stat: FileStat, hashed_at_ns: int, granularity_ns: int) -> bool:
    """Git's racy-timestamp rule: whether a file hashed at ``hashed_at_ns`` (wall clock) may
    have changed again since without its stamps moving.

    That is possible while its last change (the later of mtime and ctime) lies within one
    timestamp tick of the hash: a second write in the same tick leaves the same stamps. A
    stamp in the future (another host's clock, on a network share) is racy too.
    """
    return hashed_at_ns - stat.last_change_ns < granularity_ns


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
