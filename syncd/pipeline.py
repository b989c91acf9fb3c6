"""The only code that turns a path on disk into a row in the state store.

A full scan of a folder and a single path from the watcher both end in
:meth:`Pipeline._judge_all`: stat, hash only when the fingerprint moved, validate by purpose,
look for the same content on the remote, and write the verdict (a scan writes the verdicts of a
batch of files in one transaction). Uploading is not done here: a ``pending`` row is the work,
and ``on_pending`` rings the uploader's doorbell.

One lock serialises the pipeline, so a scheduled rescan and a burst of watcher events never judge
the same file at the same time.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISDIR

from sqlalchemy.orm import Session

from syncd import plan
from syncd.beneath import lstat_beneath
from syncd.domain import FileStat, LocalState
from syncd.errors import FileChangedError, FileVanishedError, LocalFileError
from syncd.folder_spec import FolderSpec
from syncd.hashing import hash_file, stat_file
from syncd.logs import get_logger
from syncd.paths import is_valid_utf8_name
from syncd.scanner import ScanEntry, ScanItem, ScanProblem, scan_folder
from syncd.store import Store, repo
from syncd.store.records import LocalFileRecord, RemoteFileRecord
from syncd.validation import ValidationResult, validate_file

__all__ = ["FolderSpec", "Pipeline", "ScanSummary", "utc_now"]

log = get_logger(__name__)

#: Stat recorded for paths that are not regular files we can read (problems shown in status).
_NO_STAT = FileStat(size=0, mtime_ns=0, inode=0)
#: A batch of judged files is written in one transaction once it holds this many files, ...
_BATCH_FILES = 64
#: ... or once its first file was hashed this long ago (seconds), ...
_BATCH_SECONDS = 0.1
#: ... or before a file this large is hashed (the files before it need not wait for it).
_LARGE_FILE_BYTES = 8 << 20


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ScanSummary:
    """What one full scan of a folder found."""

    folder: str
    files: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    queued: int = 0
    reused: int = 0
    renamed: int = 0
    quarantined: int = 0
    unstable: int = 0
    unsettled: int = 0
    """Changed too recently: handed to the settle rule instead of judged."""
    missing: int = 0
    problems: list[str] = field(default_factory=list)
    skipped_dirs: list[str] = field(default_factory=list)
    """``"dir: reason"`` for each directory that could not be listed: its files are unknown."""


class _ChangedFiles:
    """Files a scan must hash, in order, packed: their keys UTF-8 encoded one after the other in
    one buffer, their stats in arrays.

    A first scan holds every file of the folder here until it is hashed (minutes for 100,000
    files) while the uploads run. As a list of ``(key, FileStat)`` that was ~300 bytes of small
    objects per file (30 MB at 100,000 files), interleaved with the uploads' own allocations:
    once freed, what the uploads kept pinned the allocator's arenas, and the daemon's idle RSS
    after its first sync kept much of the peak. Packed, a file costs its key's bytes and 40
    bytes, in a few large buffers that go back to the system whole.
    """

    __slots__ = ("_ends", "_inodes", "_keys", "_stamps")

    def __init__(self) -> None:
        self._keys = bytearray()
        #: Where each key ends in ``_keys``.
        self._ends = array("Q")
        #: size, mtime_ns, ctime_ns of each file, one after the other.
        self._stamps = array("q")
        self._inodes = array("Q")  # unsigned: an inode number may use all 64 bits

    def append(self, key: str, stat: FileStat) -> None:
        # surrogatepass: any str comes back as it was, even one a name not in UTF-8 gave.
        self._keys += key.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._keys))
        self._stamps.extend((stat.size, stat.mtime_ns, stat.ctime_ns))
        self._inodes.append(stat.inode)

    def __len__(self) -> int:
        return len(self._ends)

    def __bool__(self) -> bool:
        return bool(self._ends)

    def __iter__(self) -> Iterator[tuple[str, FileStat]]:
        keys, stamps, inodes = self._keys, self._stamps, self._inodes
        start = 0
        for index, end in enumerate(self._ends):
            key = keys[start:end].decode("utf-8", "surrogatepass")
            start = end
            at = 3 * index
            yield key, FileStat(stamps[at], stamps[at + 1], inodes[index], stamps[at + 2])


@dataclass(frozen=True, slots=True)
class _Hashed:
    """A file hashed for judging: its key, content hash and the stat the hash belongs to."""

    rel_path: str
    sha256: str
    stat: FileStat
    hashed_at_ns: int
    """Wall clock when the hash was done."""
    racy: bool
    """Hashed within a timestamp tick of its last change (:func:`syncd.plan.is_racy`)."""


class Pipeline:
    """Judges local files and records the verdict; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_pending: Callable[[], None] = lambda: None,
        on_hashed: Callable[[int], None] = lambda _bytes: None,
        on_unstable: Callable[[FolderSpec, str], None] = lambda _folder, _path: None,
        on_racy: Callable[[FolderSpec, str], None] = lambda _folder, _path: None,
        timestamp_granularity_ns: int | None = None,
        settle_ns: int = 0,
        on_unsettled: Callable[[FolderSpec, str], None] = lambda _folder, _path: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_pending = on_pending
        self._on_hashed = on_hashed
        # Told about files that were still changing, so the daemon can look again later.
        self._on_unstable = on_unstable
        # Told about files hashed within a timestamp tick of their last change: their stamps
        # may not move with the next write, so the daemon looks again (see plan.is_racy).
        self._on_racy = on_racy
        self._granularity_ns = timestamp_granularity_ns
        # A full scan hands files changed less than settle_ns ago to on_unsettled (the daemon's
        # settle rule) instead of judging them: a long write is never uploaded half-done.
        self._settle_ns = settle_ns
        self._on_unsettled = on_unsettled
        self._lock = threading.RLock()

    # -- full scan ------------------------------------------------------------------------------

    def scan(self, folder: FolderSpec) -> ScanSummary:
        """Walk ``folder`` and bring the store in line with it; hash only what changed."""
        with self._lock:
            return self._scan(folder)

    def _scan(self, folder: FolderSpec) -> ScanSummary:
        summary = ScanSummary(folder=folder.name)
        with self._store.session() as s:
            # Quarantined under other settings (the config changed since): judge them again.
            rejudged = repo.rejudge_if_settings_changed(
                s, folder.key, purpose=folder.purpose, settings=folder.judging_settings
            )
        if rejudged:
            log.info("quarantine_rejudged", folder=folder.name, files=rejudged)
        # The walk and the stored rows are merged in one pass, both in key order: no table of
        # every known path in memory. The session only reads; every write comes after it.
        with self._store.session() as s:
            found = _compare(
                folder,
                scan_folder(folder.root, folder.rules),
                repo.iter_fingerprints(s, folder.key),
                summary,
            )
        if found.ctimes:
            # Rows from before syncd kept ctimes: their fingerprint held, so record the ctime
            # instead of hashing every file once after an upgrade.
            with self._store.session() as s:
                repo.record_ctimes(s, folder.key, found.ctimes)
        for problem, stored in found.problems:
            self._record_problem(folder, problem, stored)
        vanished = found.vanished
        if folder.shared_id is not None and vanished and summary.files == 0:
            # A share that shows no file at all on this node is not mounted here (an NFS
            # mount point is an empty directory): its files are not gone, and the nodes that
            # see them keep them synced. Nothing is marked missing from this node's view.
            log.warning(
                "shared_folder_empty",
                folder=folder.name,
                path=str(folder.root),
                known_files=len(vanished),
                hint="is the share mounted on this node?",
            )
            vanished = {}
        changed = self._apply_renames(folder, found.changed, vanished, summary)
        self._judge_all(folder, self._settled(folder, changed, summary), summary)
        if vanished:
            with self._store.session() as s:
                summary.missing = repo.mark_missing(s, folder.key, vanished, now=self._clock())
            log.info("files_vanished", folder=folder.name, count=summary.missing)
        return summary

    def _settled(
        self, folder: FolderSpec, changed: _ChangedFiles, summary: ScanSummary
    ) -> _ChangedFiles:
        """The changed files quiet for ``settle``; the others go to the settle rule (issue 21).

        A stamp from the future (another host's clock) is judged at once, as before: waiting
        for it would wait for that clock.
        """
        if not self._settle_ns:
            return changed
        now_ns = time.time_ns()
        ready = _ChangedFiles()
        for rel_path, stat in changed:
            if 0 <= now_ns - stat.last_change_ns < self._settle_ns:
                summary.unsettled += 1
                self._on_unsettled(folder, rel_path)
            else:
                ready.append(rel_path, stat)
        return ready

    def _apply_renames(
        self,
        folder: FolderSpec,
        changed: _ChangedFiles,
        vanished: dict[str, tuple[FileStat, LocalState, str | None]],
        summary: ScanSummary,
    ) -> _ChangedFiles:
        """Turn (vanished path, new path with the same inode and stat) pairs into renames.

        A rename keeps the row, its history and its remote file: nothing is hashed or uploaded.
        """
        if not vanished:
            return changed  # the common case: nothing went, so nothing was renamed
        # By (size, mtime, inode): a rename moves the ctime.
        by_stat = {entry[0].identity: rel for rel, entry in vanished.items() if entry[0].inode}
        remaining = _ChangedFiles()
        for rel_path, stat in changed:
            old = by_stat.get(stat.identity)
            if old is not None and self._rename(folder, old, rel_path, stat):
                del by_stat[stat.identity]
                del vanished[old]
                summary.renamed += 1
            else:
                remaining.append(rel_path, stat)
        return remaining

    def _rename(self, folder: FolderSpec, old: str, new: str, stat: FileStat) -> bool:
        """Move the row of ``old`` to ``new``; False when ``new`` already has a row of its own.

        A file moved over another is not a rename for the store: the caller judges the new path
        afresh (its content is usually on the remote already, so nothing is uploaded).
        """
        with self._store.session() as s:
            record = repo.get_local(s, folder.key, old)
            if record is None or repo.get_local(s, folder.key, new) is not None:
                return False
            repo.rename_local(s, record.id, new, now=self._clock(), ctime_ns=stat.ctime_ns)
        log.info("file_renamed", folder=folder.name, path=new, old_path=old)
        return True

    # -- one path (watcher) ---------------------------------------------------------------------

    def refresh(self, folder: FolderSpec, rel_path: str, *, rehash: bool = False) -> None:
        """Look at one path the watcher reported: a file, a new directory, or something gone.

        ``rehash``: the watcher saw the file written, so its content is read again whatever its
        stat says (a same-length rewrite can leave every stamp as it was on a coarse clock).
        """
        with self._lock:
            if not is_valid_utf8_name(rel_path):
                # Such a name cannot be a key (the store takes text): the scan reports it, the
                # same way as one present at start.
                self._scan(folder)
                return
            path = folder.root / rel_path
            is_dir = _is_real_dir(folder.root, path)
            if is_dir:
                if not folder.rules.excludes_dir(rel_path):
                    # Files created in a new directory before its watch existed make no events.
                    self._scan(folder)
                return
            if not folder.rules.matches(rel_path):
                return
            with self._store.session() as s:
                stored = repo.get_local(s, folder.key, rel_path)
            try:
                stat = stat_file(path, root=folder.root)
            except FileVanishedError:
                if stored is not None and stored.state is not LocalState.MISSING:
                    with self._store.session() as s:
                        repo.mark_missing(s, folder.key, [rel_path], now=self._clock())
                    log.info("file_vanished", folder=folder.name, path=rel_path)
                return
            except LocalFileError:
                # Symlinks (here or on the path), FIFOs and the like: the scan records them.
                self._scan(folder)
                return
            if (
                stored is not None
                and not rehash
                and not plan.needs_hash(
                    stored.stat, stored.state, stored.sha256, stat, stored_racy=stored.racy
                )
            ):
                return
            if stored is None and self._rename_from_missing(folder, rel_path, stat):
                return
            self._judge_all(folder, [(rel_path, stat)], ScanSummary(folder=folder.name))

    def _rename_from_missing(self, folder: FolderSpec, rel_path: str, stat: FileStat) -> bool:
        with self._store.session() as s:
            old = repo.find_missing_by_stat(s, folder.key, stat)
        return old is not None and self._rename(folder, old.rel_path, rel_path, stat)

    # -- judging files --------------------------------------------------------------------------

    def _judge_all(
        self, folder: FolderSpec, items: Iterable[tuple[str, FileStat]], summary: ScanSummary
    ) -> None:
        """Hash each file, then record the verdicts of a batch of files in one transaction.

        One write per batch rather than per file: with thousands of small files the store's
        transactions (and the lock the uploaders wait on) were most of a scan's cost. A batch is
        closed after ``_BATCH_FILES`` files, ``_BATCH_SECONDS`` of hashing, or before a large
        file, so the uploader starts on the first files while the rest are being hashed.
        """
        batch: list[_Hashed] = []
        started = 0.0
        for rel_path, expected in items:
            if batch and (
                len(batch) >= _BATCH_FILES
                or time.monotonic() - started >= _BATCH_SECONDS
                or expected.size >= _LARGE_FILE_BYTES
            ):
                self._decide(folder, batch, summary)
                batch = []
            hashed = self._hash(folder, rel_path, expected, summary)
            if hashed is not None:
                if not batch:
                    started = time.monotonic()
                batch.append(hashed)
        if batch:
            self._decide(folder, batch, summary)

    def _hash(
        self, folder: FolderSpec, rel_path: str, expected: FileStat, summary: ScanSummary
    ) -> _Hashed | None:
        """The file's content hash, or None when it vanished or would not hold still."""
        try:
            sha256, stat = hash_file(folder.root / rel_path, root=folder.root, expected=expected)
        except FileVanishedError:
            with self._store.session() as s:
                summary.missing += repo.mark_missing(s, folder.key, [rel_path], now=self._clock())
            return None
        except (FileChangedError, LocalFileError) as exc:
            self._record_unstable(folder, rel_path, expected, exc)
            summary.unstable += 1
            return None
        hashed_at_ns = time.time_ns()
        granularity = plan.timestamp_granularity_ns(stat, self._granularity_ns)
        summary.hashed += 1
        summary.hashed_bytes += stat.size
        self._on_hashed(stat.size)
        racy = plan.is_racy(stat, hashed_at_ns, granularity)
        return _Hashed(rel_path, sha256, stat, hashed_at_ns, racy)

    def _decide(self, folder: FolderSpec, batch: list[_Hashed], summary: ScanSummary) -> None:
        """Validate what needs it and record each file's verdict, all in one transaction."""
        now = self._clock()
        with self._store.session() as s:
            known = repo.get_locals(s, folder.key, [item.rel_path for item in batch])
        stored = [known.get(item.rel_path) for item in batch]
        results = [
            self._validate(folder, item, row) for item, row in zip(batch, stored, strict=True)
        ]
        verdicts: list[tuple[plan.Verdict, RemoteFileRecord | None]] = []
        with self._store.session() as s:
            # One look-up for the batch: recording a verdict never changes which remote file
            # is the pick for a content (a reuse makes its pick current, which it stays).
            remotes = repo.find_live_remotes_by_content(
                s,
                {item.sha256 for item, result in zip(batch, results, strict=True) if _ok(result)},
                folder.purpose,
            )
            for item, row, result in zip(batch, stored, results, strict=True):
                verdicts.append(self._record(s, folder, item, row, result, remotes, now))
        queued = False
        for item in batch:
            # Racy, but not for a stamp from a clock ahead of ours (the next rescan looks at
            # those): look again once the tick has surely passed.
            if item.racy and item.hashed_at_ns >= item.stat.last_change_ns:
                self._on_racy(folder, item.rel_path)
        for item, result, (verdict, remote) in zip(batch, results, verdicts, strict=True):
            self._report(
                folder,
                item.rel_path,
                item.sha256,
                item.stat,
                verdict,
                result,
                remote_id=remote.file_id if remote else None,
            )
            if verdict.outcome is plan.Outcome.UPLOAD:
                summary.queued += 1
                queued = True
            elif verdict.outcome is plan.Outcome.REUSE:
                summary.reused += 1
            elif verdict.outcome is plan.Outcome.QUARANTINE:
                summary.quarantined += 1
        if queued:
            self._on_pending()

    @staticmethod
    def _validate(
        folder: FolderSpec, item: _Hashed, stored: LocalFileRecord | None
    ) -> ValidationResult | None:
        """The file's validation verdict, or None when it needs no new look: its content is
        the one already recorded, in a state that was judged."""
        if (
            stored is not None
            and stored.sha256 == item.sha256
            and stored.state not in (LocalState.MISSING, LocalState.UNSTABLE)
        ):
            return None
        result = validate_file(
            folder.root / item.rel_path,
            purpose=folder.purpose,
            mode=folder.validate,
            size=item.stat.size,
            batch_endpoint=folder.batch_endpoint,
            root=folder.root,
        )
        return result

    def _record(
        self,
        s: Session,
        folder: FolderSpec,
        item: _Hashed,
        stored: LocalFileRecord | None,
        result: ValidationResult | None,
        remotes: dict[str, RemoteFileRecord],
        now: datetime,
    ) -> tuple[plan.Verdict, RemoteFileRecord | None]:
        """Write one file's verdict in the batch's transaction; ``remotes``: the live remote
        file for each valid content of the batch that has one."""
        is_valid = _ok(result)
        remote = remotes.get(item.sha256) if is_valid else None
        verdict = plan.decide_content(
            stored_state=stored.state if stored else None,
            stored_sha256=stored.sha256 if stored else None,
            sha256=item.sha256,
            is_valid=is_valid,
            remote_has_content=remote is not None,
        )
        if result is None and stored is not None:
            # Not looked at again: what was said about these bytes still holds.
            detail, warnings = stored.last_error, stored.warnings
        else:
            detail = "; ".join(result.errors) if result and result.errors else None
            warnings = "\n".join(result.warnings) if result and result.warnings else None
        record = repo.upsert_local(
            s,
            folder.key,
            item.rel_path,
            purpose=folder.purpose,
            stat=item.stat,
            sha256=item.sha256,
            state=verdict.state,
            last_error=detail,
            warnings=warnings,
            reset_attempts=verdict.outcome is not plan.Outcome.UNCHANGED,
            keep_settled=True,
            racy=item.racy,
            seen_new=stored is None,
            now=now,
        )
        if verdict.outcome is plan.Outcome.REUSE and remote is not None:
            repo.reuse_remote(s, record.id, remote, now=now)
        elif verdict.outcome is plan.Outcome.QUARANTINE:
            repo.audit(
                s,
                "quarantine",
                now=now,
                folder=folder.key,
                rel_path=item.rel_path,
                sha256=item.sha256,
                bytes=item.stat.size,
                detail=detail,
            )
        return verdict, remote

    def _report(
        self,
        folder: FolderSpec,
        rel_path: str,
        sha256: str,
        stat: FileStat,
        verdict: plan.Verdict,
        result: ValidationResult | None,
        *,
        remote_id: str | None,
    ) -> None:
        fields = {"folder": folder.name, "path": rel_path, "sha256": sha256, "bytes": stat.size}
        if result is not None and result.ok and result.warnings:
            # Accepted (Mistral's code takes it), but not as its docs describe: say so once,
            # when the content is judged; `syncd status` keeps showing it.
            log.warning("file_validation_warnings", warnings=list(result.warnings), **fields)
        if verdict.outcome is plan.Outcome.UPLOAD:
            log.info("file_queued", **fields)
        elif verdict.outcome is plan.Outcome.REUSE:
            log.info("file_reused", file_id=remote_id, **fields)
        elif verdict.outcome is plan.Outcome.QUARANTINE:
            errors = result.errors if result is not None else ()
            log.warning("file_quarantined", error="; ".join(errors), **fields)

    def _record_unstable(
        self, folder: FolderSpec, rel_path: str, stat: FileStat, exc: LocalFileError
    ) -> None:
        with self._store.session() as s:
            stored = repo.get_local(s, folder.key, rel_path)
            repo.upsert_local(
                s,
                folder.key,
                rel_path,
                purpose=folder.purpose,
                stat=stat,
                sha256=stored.sha256 if stored else None,
                state=LocalState.UNSTABLE,
                last_error=str(exc),
                now=self._clock(),
            )
        log.warning("file_unstable", folder=folder.name, path=rel_path, error=str(exc))
        self._on_unstable(folder, rel_path)

    def _record_problem(
        self,
        folder: FolderSpec,
        problem: ScanProblem,
        stored: tuple[FileStat, LocalState, str | None] | None,
    ) -> None:
        if stored is not None and stored[1] is LocalState.QUARANTINED and stored[2] is None:
            return  # already recorded; avoid rewriting the row on every scan
        with self._store.session() as s:
            repo.upsert_local(
                s,
                folder.key,
                problem.rel_path,
                purpose=folder.purpose,
                stat=_NO_STAT,
                sha256=None,
                state=LocalState.QUARANTINED,
                last_error=problem.reason,
                now=self._clock(),
            )
        log.warning("file_skipped", folder=folder.name, path=problem.rel_path, error=problem.reason)


_Stored = tuple[FileStat, LocalState, str | None]


@dataclass(slots=True)
class _Comparison:
    """What a walk found that the store does not say yet: the work of one scan."""

    changed: _ChangedFiles
    """Files to hash (new, or with another fingerprint), in key order."""
    vanished: dict[str, _Stored]
    """Rows of files no longer on disk (not already ``missing``, not under a skipped dir)."""
    problems: list[tuple[ScanProblem, _Stored | None]]
    """Files that cannot be synced, with their stored row if any."""
    ctimes: list[tuple[str, int]]
    """Unchanged files whose row has no ctime yet (recorded before syncd kept it)."""


def _compare(
    folder: FolderSpec,
    items: Iterable[ScanItem],
    stored_rows: Iterable[repo.Fingerprint],
    summary: ScanSummary,
) -> _Comparison:
    """Merge the walk with the stored rows, both in strictly ascending key order, in one pass.

    Rows that no entry matches are collected (few, unless many files went at once): they are
    the vanished files, or the rows of paths reported as problems. Counts and problem lines go
    into ``summary``.
    """
    changed = _ChangedFiles()
    ctimes: list[tuple[str, int]] = []
    problems: list[ScanProblem] = []
    skipped: tuple[str, ...] = ()
    not_on_disk: dict[str, repo.Fingerprint] = {}
    trusted = _trusted_states()
    missing = LocalState.MISSING
    rows = iter(stored_rows)
    row = next(rows, None)
    last_key = ""  # sorts before every key
    files = 0
    for item in items:
        if isinstance(item, ScanEntry):
            key = item.rel_path
            if key <= last_key:
                raise RuntimeError(f"the walk of {folder.root} left key order at {key!r}")
            last_key = key
            files += 1
            while row is not None and row[0] < key:
                if row[4] is not missing and not row[0].startswith(skipped):
                    not_on_disk[row[0]] = row
                row = next(rows, None)
            if row is None or row[0] != key:
                # A new file. Its ctime is left out (0: not known) of the stat kept until it is
                # hashed (the settle rule goes by its mtime); the hash takes the full stat.
                changed.append(key, FileStat(item.size, item.mtime_ns, item.inode))
                continue
            _, size, mtime_ns, inode, state, sha256, ctime_ns, racy = row
            row = next(rows, None)
            if (
                item.size == size
                and item.mtime_ns == mtime_ns
                and item.inode == inode
                and item.ctime_ns == ctime_ns
                and not racy
                and sha256 is not None
                and state in trusted
            ):
                continue  # the common case: decided on plain values, nothing built
            stat = item.stat
            stored_stat = FileStat(size, mtime_ns, inode, ctime_ns)
            if plan.needs_hash(stored_stat, state, sha256, stat, stored_racy=racy):
                changed.append(key, stat)
            elif not ctime_ns:
                ctimes.append((key, item.ctime_ns))
            continue
        line = f"{item.rel_path}: {item.reason}"
        summary.problems.append(line)
        if item.is_directory:
            # Its files were not listed: they are unknown, not gone. The walk reports it
            # before any key below it, so its rows are left out as they are read.
            skipped += (item.rel_path + "/",)
            summary.skipped_dirs.append(line)
            log.warning(
                "directory_skipped", folder=folder.name, path=item.rel_path, error=item.reason
            )
        else:
            problems.append(item)
    while row is not None:
        if row[4] is not missing and not row[0].startswith(skipped):
            not_on_disk[row[0]] = row
        row = next(rows, None)
    summary.files += files
    # A problem's key may not sit where its entry sorts (a printable form of a name that is
    # not UTF-8), so its row is looked up among the unmatched ones, after the merge.
    found_problems: list[tuple[ScanProblem, _Stored | None]] = []
    for problem in problems:
        stored = not_on_disk.pop(problem.rel_path, None)
        found_problems.append((problem, None if stored is None else _stored(stored)))
    vanished = {rel_path: _stored(row) for rel_path, row in not_on_disk.items()}
    return _Comparison(changed=changed, vanished=vanished, problems=found_problems, ctimes=ctimes)


def _is_real_dir(root: Path, path: Path) -> bool:
    """Whether ``path`` is a directory reached from ``root`` without following a symlink."""
    try:
        return S_ISDIR(lstat_beneath(root, path).st_mode)
    except OSError:
        return False


def _trusted_states() -> frozenset[LocalState]:
    """States in which a row with a hash and the file's very fingerprint needs no new look.

    Asked of :func:`syncd.plan.needs_hash` (the one place that decides), once per scan.
    """
    probe = FileStat(size=0, mtime_ns=0, inode=0)
    return frozenset(
        state for state in LocalState if not plan.needs_hash(probe, state, "sha256", probe)
    )


def _stored(row: repo.Fingerprint) -> _Stored:
    _, size, mtime_ns, inode, state, sha256, ctime_ns, _racy = row
    return FileStat(size, mtime_ns, inode, ctime_ns), state, sha256


def _ok(result: ValidationResult | None) -> bool:
    """Valid, or not looked at again (what was said about these bytes still holds)."""
    return result is None or result.ok
