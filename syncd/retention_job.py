"""One retention run: gather the facts, let :mod:`syncd.retention` decide, delete, record.

The facts: candidates from the state store (only files syncd recorded as its own uploads), the
folders that must be left alone (root missing, or empty while the store knew files there: an
unmounted disk), and the files queued or running fine-tuning and batch jobs read. When a job
list cannot be read, nothing is deleted. Each file is checked again just before its delete (it
may have become current again), a 404 counts as deleted, and every deletion is recorded with its
reason, which also moves the rows that held the file to ``expired``.

Retention never runs on two nodes at once for a folder: on PostgreSQL a run holds a session
advisory lock per folder (:func:`retention_lock_key`) from planning to its last delete, and a
folder whose lock another node (or ``syncd cleanup``) holds is left alone this round, with a
``retention_folder_busy`` line. Each node's guards then hold as before: the folder's root is
checked where the run takes place. SQLite needs no lock: one host, and the daemon never
overlaps its own runs.

:class:`ScheduledRetention` is the daemon's job: it runs, logs and never raises.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from syncd import retention
from syncd.api import Mistral
from syncd.errors import ApiError, NotFoundError, SyncdError
from syncd.retention import Candidate, Deletion, FolderPolicy, RetentionPlan
from syncd.store import Store, diagnosis, repo
from syncd.store.retention_queries import RemoteHolding

__all__ = [
    "RetentionResult",
    "RetentionSettings",
    "ScheduledRetention",
    "active_job_file_ids",
    "folder_block_reason",
    "log_result",
    "retention_lock_key",
    "run_retention",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """Everything a run needs from the configuration, as plain values."""

    policies: Mapping[str, FolderPolicy]
    """folder key -> policy; folders without retention are left out."""
    dry_run: bool = False
    max_deletes: int = 100
    names: Mapping[str, str] = field(default_factory=dict)
    """folder key -> display name, for logs and tables."""
    roots: Mapping[str, Path] = field(default_factory=dict)
    """folder key -> the folder's path on this node (default: the key itself, a path)."""

    def name_of(self, folder: str) -> str:
        """The folder's display name (its key when it has none)."""
        return self.names.get(folder, folder)

    def path_of(self, folder: str) -> str:
        """Where the folder is on this node (its key when unknown)."""
        return str(self.roots.get(folder, folder))


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one run planned and what became of each planned deletion."""

    plan: RetentionPlan
    dry_run: bool
    deleted: tuple[Deletion, ...] = ()
    """Deleted now, or found already gone (see ``already_gone``); recorded either way."""
    already_gone: frozenset[str] = frozenset()
    """Ids whose delete answered 404: someone else deleted them first."""
    failed: tuple[tuple[Deletion, str], ...] = ()
    """Deletes the API refused or that never got an answer; tried again next run."""
    skipped: tuple[Deletion, ...] = ()
    """No longer due when their turn came (current again, or deleted meanwhile)."""
    jobs_error: str | None = None
    """Why the job lists could not be read (the run then deletes nothing)."""
    busy: tuple[str, ...] = ()
    """Folders left alone this run: another node (or process) was running retention on them."""

    @property
    def is_clean(self) -> bool:
        """Everything due was handled: not halted, no folder blocked, no delete failed."""
        return self.plan.halted is None and not self.plan.blocked and not self.failed


def run_retention(
    store: Store,
    client: Mistral,
    settings: RetentionSettings,
    *,
    now: datetime,
) -> RetentionResult:
    """Plan one run at ``now`` and, unless ``settings.dry_run``, carry it out.

    On PostgreSQL each folder is locked for the run first; folders another run holds are
    skipped (``busy``).

    Raises:
        StoreError: the state store failed (nothing after the failure was done).
    """
    wanted = {k: p for k, p in settings.policies.items() if p.max_age is not None}
    with _retention_locks(store, wanted) as (held, busy):
        for folder in busy:
            log.info(
                "retention_folder_busy",
                folder=settings.name_of(folder),
                error="another node is running retention on this folder; skipped this round",
            )
        policies = {k: p for k, p in wanted.items() if k in held}
        result = _run_locked(store, client, settings, policies, now=now)
    return replace(result, busy=tuple(busy))


def _run_locked(
    store: Store,
    client: Mistral,
    settings: RetentionSettings,
    policies: Mapping[str, FolderPolicy],
    *,
    now: datetime,
) -> RetentionResult:
    candidates: list[Candidate] = []
    blocked: dict[str, str] = {}
    for folder, policy in policies.items():
        assert policy.max_age is not None
        with store.session() as s:
            aged = repo.aged_remote_files(s, folder, created_before=now - policy.max_age)
            known = repo.local_row_count(s, folder) if aged else 0
        if not aged:
            continue
        reason = folder_block_reason(settings.roots.get(folder, Path(folder)), known)
        if reason is not None:
            blocked[folder] = reason
            continue
        candidates.extend(_candidate(holding) for holding in aged)

    referenced: frozenset[str] | None = frozenset()
    jobs_error: str | None = None
    # The job lists cost API calls: ask only when something is due.
    if any(retention.decide(c, policies.get(c.folder), now=now) is not None for c in candidates):
        try:
            referenced = active_job_file_ids(client)
        except ApiError as exc:
            referenced, jobs_error = None, str(exc)
    plan = retention.plan_deletions(
        candidates,
        policies,
        now=now,
        referenced=referenced,
        blocked_folders=blocked,
        max_deletes=settings.max_deletes,
    )
    if jobs_error is not None and plan.halted is not None:
        plan = replace(plan, halted=f"{plan.halted} ({jobs_error})")
    if settings.dry_run or not plan.deletions:
        return RetentionResult(plan=plan, dry_run=settings.dry_run, jobs_error=jobs_error)
    return _carry_out(store, client, plan, policies, now=now, jobs_error=jobs_error)


def _carry_out(
    store: Store,
    client: Mistral,
    plan: RetentionPlan,
    policies: Mapping[str, FolderPolicy],
    *,
    now: datetime,
    jobs_error: str | None,
) -> RetentionResult:
    deleted: list[Deletion] = []
    gone: set[str] = set()
    failed: list[tuple[Deletion, str]] = []
    skipped: list[Deletion] = []
    for planned in plan.deletions:
        with store.session() as s:
            holding = repo.remote_holding(s, planned.file_id)
        reason = (
            None
            if holding is None
            else retention.decide(_candidate(holding), policies.get(planned.folder), now=now)
        )
        if reason is None:
            skipped.append(planned)
            continue
        deletion = replace(planned, reason=reason)
        try:
            client.files.delete(deletion.file_id)
        except NotFoundError:
            gone.add(deletion.file_id)  # already gone: the outcome retention wanted
        except ApiError as exc:
            failed.append((deletion, str(exc)))
            continue
        with store.session() as s:
            repo.record_remote_deleted(s, deletion.file_id, reason=deletion.reason.value, now=now)
        deleted.append(deletion)
    return RetentionResult(
        plan=plan,
        dry_run=False,
        deleted=tuple(deleted),
        already_gone=frozenset(gone),
        failed=tuple(failed),
        skipped=tuple(skipped),
        jobs_error=jobs_error,
    )


def retention_lock_key(folder: str) -> int:
    """The PostgreSQL advisory lock key of retention on ``folder``: a stable signed 64-bit hash
    of its store key (the same on every node and in every Python process)."""
    digest = hashlib.blake2b(f"syncd-retention\0{folder}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


@contextmanager
def _retention_locks(
    store: Store, folders: Collection[str]
) -> Iterator[tuple[list[str], list[str]]]:
    """Lock retention on each of ``folders`` for the block: yields (held, busy).

    PostgreSQL: a session advisory lock per folder on a connection of its own, kept for the
    whole run (its transaction is ended at once, so nothing stays "idle in transaction" while
    the API is asked). If the connection dies, the server drops the locks with it. Elsewhere
    (SQLite, one host) every folder is held.

    Raises:
        StoreError: the locks could not be asked for.
    """
    if store.engine.dialect.name != "postgresql" or not folders:
        yield list(folders), []
        return
    with diagnosis.translated(store.url, busy_timeout_ms=store.busy_timeout_ms):
        connection = store.engine.connect()
    held: list[str] = []
    busy: list[str] = []
    try:
        with diagnosis.translated(store.url, busy_timeout_ms=store.busy_timeout_ms):
            for folder in folders:
                got = connection.scalar(_TRY_LOCK, {"key": retention_lock_key(folder)})
                (held if got else busy).append(folder)
            connection.commit()
        yield held, busy
    finally:
        _unlock(connection, held)


def _unlock(connection: Connection, held: Collection[str]) -> None:
    try:
        for folder in held:
            connection.execute(_UNLOCK, {"key": retention_lock_key(folder)})
        connection.commit()
    except DBAPIError as exc:
        # A lock must never go back to the pool with its connection: drop the connection
        # (the server releases a dead session's locks itself).
        log.warning("retention_unlock_failed", error=str(exc.orig or exc))
        connection.invalidate()
    finally:
        connection.close()


def _candidate(holding: RemoteHolding) -> Candidate:
    remote = holding.remote
    return Candidate(
        file_id=remote.file_id,
        folder=remote.folder,
        rel_path=remote.rel_path,
        created_at=remote.created_at,
        source=retention.source_of(
            remote.sha256,
            is_superseded=remote.superseded_at is not None,
            holders=holding.holders,
        ),
        bytes=remote.bytes,
    )


def active_job_file_ids(client: Mistral) -> frozenset[str]:
    """Ids of every file a fine-tuning or batch job that has not finished still reads.

    A status not known to be final counts as active.

    Raises:
        ApiError: a job list could not be read (the caller must then delete nothing).
    """
    ids: set[str] = set()
    for fine_tuning in client.fine_tuning.jobs.iter_all():
        if fine_tuning.is_active:
            ids |= fine_tuning.file_ids
    for batch in client.batch.jobs.iter_all():
        if batch.is_active:
            ids |= batch.file_ids
    return frozenset(ids)


def folder_block_reason(root: Path, known_files: int) -> str | None:
    """Why retention must leave ``root``'s files alone this run, or None.

    A root that is missing, unreadable, or holds no file at all while the store knows
    ``known_files`` from it is what an unmounted disk or a failed mount looks like; deleting
    remote files because their sources "vanished" is exactly the mass deletion to avoid.
    """
    if known_files == 0:
        return None
    fix = (
        f"the state store knows {known_files} file(s) from it; retention leaves its remote "
        "files alone until files are back (if the folder was emptied on purpose, put one file "
        "in it or remove its retention)"
    )
    try:
        st = root.stat()
    except FileNotFoundError:
        return f"folder {root} does not exist (not mounted?); {fix}"
    except OSError as exc:
        return f"cannot look at folder {root} ({exc.strerror}); {fix}"
    if not stat.S_ISDIR(st.st_mode):
        return f"folder {root} is not a directory; {fix}"
    try:
        has_files = _has_any_file(root)
    except OSError as exc:
        return f"cannot read folder {root} ({exc.strerror}); {fix}"
    if not has_files:
        return f"folder {root} holds no files (not mounted?); {fix}"
    return None


def _has_any_file(root: Path) -> bool:
    """Whether anything other than directories lies under ``root``; stops at the first one.

    Raises:
        OSError: ``root`` itself cannot be listed (subdirectories that cannot are skipped).
    """
    return next(_non_directories(root, is_root=True), None) is not None


def _non_directories(directory: Path, *, is_root: bool = False) -> Iterator[str]:
    try:
        listing = os.scandir(directory)
    except OSError:
        if is_root:
            raise
        return
    subdirs: list[Path] = []
    with listing:
        for entry in listing:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(Path(entry.path))
            else:
                yield entry.name
    for subdir in subdirs:
        yield from _non_directories(subdir)


def log_result(result: RetentionResult, settings: RetentionSettings) -> None:
    """Log a run as the daemon's events: the plan, each deletion, and whatever held it back."""
    plan = result.plan
    for folder, reason in plan.blocked.items():
        log.warning("retention_blocked", folder=settings.name_of(folder), error=reason)
    for kept in plan.kept_referenced:
        log.debug(
            "retention_kept_in_use",
            folder=settings.name_of(kept.folder),
            path=kept.rel_path,
            file_id=kept.file_id,
        )
    log_planned = log.info if plan.due or plan.blocked else log.debug
    log_planned(
        "retention_planned",
        due=len(plan.due),
        deleting=0 if result.dry_run else len(plan.deletions),
        kept_in_use=len(plan.kept_referenced),
        blocked=len(plan.blocked),
        dry_run=result.dry_run,
    )
    if plan.halted is not None:
        log.warning("retention_halted", error=plan.halted)
    if result.dry_run:
        for due in plan.deletions:
            log.info(
                "file_would_delete",
                folder=settings.name_of(due.folder),
                path=due.rel_path,
                file_id=due.file_id,
                reason=due.reason.value,
            )
    for deletion in result.deleted:
        log.info(
            "file_deleted",
            folder=settings.name_of(deletion.folder),
            path=deletion.rel_path,
            file_id=deletion.file_id,
            reason=deletion.reason.value,
            already_gone=deletion.file_id in result.already_gone,
        )
    for deletion, error in result.failed:
        log.warning(
            "retention_delete_failed",
            folder=settings.name_of(deletion.folder),
            path=deletion.rel_path,
            file_id=deletion.file_id,
            error=error,
        )


class ScheduledRetention:
    """The daemon's retention job: one run per call, logged; failures are logged, never raised.

    ``settings`` is called at every run, so a reloaded configuration (SIGHUP) takes effect at
    the next run without rescheduling anything.
    """

    def __init__(
        self,
        store: Store,
        client: Mistral,
        settings: Callable[[], RetentionSettings],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._client = client
        self._settings = settings
        self._clock = clock

    def __call__(self) -> RetentionResult | None:
        try:
            settings = self._settings()
            result = run_retention(self._store, self._client, settings, now=self._clock())
        except SyncdError as exc:
            log.error("retention_failed", error=str(exc))
            return None
        except Exception:
            # A bug must show in the log and leave the next run scheduled, not kill the thread.
            log.exception("retention_failed")
            return None
        log_result(result, settings)
        return result
