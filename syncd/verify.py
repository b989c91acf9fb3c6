"""A read-only three-way check: what the state store says, what is on disk, what the remote lists.

Nothing is written anywhere: not the store, not the disk, not the remote. Local files are hashed
again only when their stat moved since the store recorded them, or every one of them with
``deep`` (content can change without the stat showing it: a row recorded before syncd kept
ctimes, a filesystem whose clock is coarse, a disk that rots); the remote is listed once and
compared with every remote file syncd ever recorded (streamed from the store). Remote files
syncd never recorded are reported as foreign and never touched; they are not a mismatch, since a
shared workspace holds other people's files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from syncd.api import Files
from syncd.domain import FileStat, LocalState
from syncd.errors import FileVanishedError, LocalFileError
from syncd.hashing import hash_file
from syncd.pipeline import FolderSpec
from syncd.scanner import ScanProblem, scan_folder
from syncd.store import Store, repo

__all__ = ["Finding", "FindingKind", "VerifyReport", "verify"]

#: Rows whose content the store says is (or was, until retention) on the remote.
_SYNCED_STATES = frozenset({LocalState.UPLOADED, LocalState.EXPIRED})
_WAITING_STATES = frozenset(
    {LocalState.PENDING, LocalState.UPLOADING, LocalState.FAILED, LocalState.UNSTABLE}
)


class FindingKind(StrEnum):
    """What disagrees, and between which two of store, disk and remote."""

    MISSING_REMOTE = "missing_remote"
    """The store says the file is on the remote; the remote does not list it."""
    DELETED_BUT_PRESENT = "deleted_but_present"
    """The store says syncd deleted it; the remote still lists it."""
    REMOTE_DIFFERS = "remote_differs"
    """The remote lists it with another size or purpose than the store recorded."""
    NOT_UPLOADED = "not_uploaded"
    """On disk and eligible, but its content is not on the remote (new, waiting, failed)."""
    QUARANTINED = "quarantined"
    """On disk but rejected (bad content, bad name, a symlink out of the folder...)."""
    CHANGED_SINCE_UPLOAD = "changed_since_upload"
    """On disk with other bytes than the store recorded (hashed again because its stat moved,
    or because the check was deep)."""
    UNREADABLE = "unreadable"
    """On disk but could not be read to compare (changing now, or no permission)."""
    FOLDER_UNAVAILABLE = "folder_unavailable"
    """A configured folder cannot be listed (missing, not a directory, no permission)."""
    FOREIGN = "foreign"
    """On the remote but not recorded by syncd: someone else's; reported, never touched."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One disagreement (or one foreign file)."""

    kind: FindingKind
    detail: str
    folder: str | None = None
    path: str | None = None
    file_id: str | None = None

    @property
    def is_mismatch(self) -> bool:
        """Whether this makes ``syncd verify`` fail (foreign files do not)."""
        return self.kind is not FindingKind.FOREIGN


@dataclass(slots=True)
class VerifyReport:
    """Everything one check found, and how much it looked at."""

    findings: list[Finding] = field(default_factory=list)
    local_files: int = 0
    """Files on disk that the folders' rules take."""
    rehashed: int = 0
    """Of those, how many were hashed again (their stat moved, or the check was deep)."""
    deep: bool = False
    """Whether every synced file was hashed again, whatever its stat."""
    remote_files: int = 0
    """Files the remote listed."""
    recorded_files: int = 0
    """Remote files syncd recorded (live or deleted)."""

    @property
    def mismatches(self) -> list[Finding]:
        """The findings that make the check fail."""
        return [f for f in self.findings if f.is_mismatch]

    @property
    def is_clean(self) -> bool:
        """Store, disk and remote agree."""
        return not self.mismatches


def verify(
    store: Store, files: Files, folders: Mapping[str, FolderSpec], *, deep: bool = False
) -> VerifyReport:
    """Compare store, disk (the configured ``folders``) and the remote listing; change nothing.

    ``deep``: hash every file the store says is synced instead of trusting its fingerprint.

    Raises:
        ApiError: the remote could not be listed.
        StoreError: the state store could not be read.
    """
    report = VerifyReport(deep=deep)
    for spec in folders.values():
        report.findings.extend(_check_folder(store, spec, report))
    report.findings.extend(_check_remote(store, files, report))
    return report


def _check_folder(store: Store, spec: FolderSpec, report: VerifyReport) -> Iterable[Finding]:
    with store.session() as s:
        known = repo.folder_fingerprints(s, spec.key)
    try:
        for item in scan_folder(spec.root, spec.rules):
            if isinstance(item, ScanProblem):
                yield Finding(FindingKind.QUARANTINED, item.reason, spec.name, item.rel_path)
                continue
            report.local_files += 1
            finding = _check_file(spec, item.rel_path, item.stat, known.get(item.rel_path), report)
            if finding is not None:
                yield finding
    except LocalFileError as exc:
        yield Finding(FindingKind.FOLDER_UNAVAILABLE, str(exc), spec.name)


def _check_file(
    spec: FolderSpec,
    rel_path: str,
    stat: FileStat,
    stored: tuple[FileStat, LocalState, str | None] | None,
    report: VerifyReport,
) -> Finding | None:
    def finding(kind: FindingKind, detail: str) -> Finding:
        return Finding(kind, detail, spec.name, rel_path)

    if stored is None:
        return finding(FindingKind.NOT_UPLOADED, "not in the state store yet (never scanned)")
    stored_stat, state, stored_sha = stored
    if state is LocalState.QUARANTINED:
        return finding(FindingKind.QUARANTINED, "rejected: see `syncd status`")
    if state in _WAITING_STATES:
        return finding(FindingKind.NOT_UPLOADED, f"state {state.value}: see `syncd status`")
    if state is LocalState.MISSING:
        return finding(FindingKind.NOT_UPLOADED, "back on disk, not scanned since")
    if state not in _SYNCED_STATES or not (report.deep or stat.moved_since(stored_stat)):
        return None
    # The stat moved (or the check is deep): only the bytes can tell whether the content did.
    report.rehashed += 1
    try:
        sha256, _stat = hash_file(spec.root / rel_path, root=spec.root, expected=stat)
    except FileVanishedError:
        return None  # gone since the listing: nothing on disk to disagree with
    except LocalFileError as exc:
        return finding(FindingKind.UNREADABLE, str(exc))
    if sha256 == stored_sha:
        return None
    hint = "" if stat.moved_since(stored_stat) else "; its stat did not move: `touch` it to sync"
    return finding(
        FindingKind.CHANGED_SINCE_UPLOAD,
        f"sha256 {sha256[:12]}… on disk, {str(stored_sha)[:12]}… recorded ({state.value}){hint}",
    )


def _check_remote(store: Store, files: Files, report: VerifyReport) -> Iterable[Finding]:
    listed: dict[str, tuple[int | None, str, str]] = {}
    for info in files.iter_all():
        listed[info.id] = (info.bytes, info.purpose, info.filename)
    report.remote_files = len(listed)
    with store.session() as s:
        for record in repo.iter_remote_files(s):
            report.recorded_files += 1
            seen = listed.pop(record.file_id, None)
            where = {"folder": record.folder, "path": record.rel_path, "file_id": record.file_id}
            if record.deleted_at is not None:
                if seen is not None:
                    yield Finding(
                        FindingKind.DELETED_BUT_PRESENT,
                        f"deleted by syncd at {record.deleted_at.isoformat()} "
                        f"({record.delete_reason}) but still listed",
                        **where,
                    )
                continue
            if seen is None:
                yield Finding(
                    FindingKind.MISSING_REMOTE, "recorded as uploaded; not listed", **where
                )
                continue
            size, purpose, _filename = seen
            if (size is not None and size != record.bytes) or purpose != record.purpose:
                yield Finding(
                    FindingKind.REMOTE_DIFFERS,
                    f"listed as {size} bytes, purpose {purpose}; recorded {record.bytes} bytes, "
                    f"purpose {record.purpose}",
                    **where,
                )
    for file_id, (_size, purpose, filename) in sorted(listed.items()):
        yield Finding(
            FindingKind.FOREIGN,
            f"{filename} ({purpose}): not uploaded by this syncd; left alone",
            file_id=file_id,
        )
