"""Shared vocabulary: the states a local file moves through, and small value types.

No I/O here; every layer may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MAX_UPLOAD_BYTES", "FileStat", "LocalState", "is_sendable_api_key"]

#: The Files API's per-file cap (512 MB, decimal as the API documents it).
MAX_UPLOAD_BYTES = 512 * 1000 * 1000


class LocalState(StrEnum):
    """Where one local file stands. The state store is the queue: rows are the work."""

    PENDING = "pending"
    """Hashed and valid; waiting for its upload (``next_attempt_at``)."""
    UPLOADING = "uploading"
    """An upload intent is recorded and a request may be in flight (adopt before re-sending)."""
    UPLOADED = "uploaded"
    """This exact content is on the remote (``remote_file_id``)."""
    QUARANTINED = "quarantined"
    """Failed validation; not tried again until its content changes."""
    FAILED = "failed"
    """Gave up after ``max_attempts``; tried again when its content changes."""
    UNSTABLE = "unstable"
    """Changed while hashed, or unreadable for now; a later scan looks again."""
    MISSING = "missing"
    """Gone from disk; its remote file stays until retention says otherwise."""
    EXPIRED = "expired"
    """Its remote file was deleted by retention; not uploaded again unless the content changes."""


@dataclass(frozen=True, slots=True)
class FileStat:
    """The fingerprint that decides whether a file must be hashed again.

    The ctime is in it because a write always moves it and nobody can set it back: a file
    rewritten in place with its old size and its mtime restored (``rsync --inplace -t``,
    ``touch -d``, a backup restore) still shows a new ctime. ``ctime_ns`` 0 means not known
    (a row recorded before syncd kept it): see :meth:`moved_since`.
    """

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int = 0

    @property
    def identity(self) -> tuple[int, int, int]:
        """(size, mtime_ns, inode): what a rename keeps (a rename moves the ctime)."""
        return self.size, self.mtime_ns, self.inode

    @property
    def last_change_ns(self) -> int:
        """When the file last changed, as far as its stamps tell: the later of mtime and ctime."""
        return max(self.mtime_ns, self.ctime_ns)

    def moved_since(self, recorded: FileStat) -> bool:
        """Whether this fresh stat differs from the ``recorded`` one, so the bytes may have
        changed; an unknown recorded ctime is not held against it."""
        if self.identity != recorded.identity:
            return True
        return recorded.ctime_ns != 0 and recorded.ctime_ns != self.ctime_ns


_BEARER = "bearer "


def is_sendable_api_key(key: str) -> bool:
    """Whether ``key`` can travel in an ``Authorization`` header as one token.

    A space, a control character (a line break from a pasted two-line value) or a non-ASCII
    letter makes the HTTP library raise an error that quotes the whole header, key included;
    such a key is refused before anything is sent. An optional leading ``Bearer `` is allowed.
    """
    token = key[len(_BEARER) :] if key.lower().startswith(_BEARER) else key
    return bool(token) and all(0x21 <= ord(char) <= 0x7E for char in token)
