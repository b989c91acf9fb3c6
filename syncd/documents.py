"""JSON documents shared by the command line and the status page, so both say the same thing.

``syncd status --json``'s file entries, ``syncd nodes --json``'s node entries, ``syncd manifest``'s
lineage rows and ``syncd cleanup --dry-run --json``'s plan are built here and nowhere else: a
script that reads ``/api/...`` on the status listener reads the fields it knows from the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from syncd.store.records import (
    AuditRecord,
    JobRecord,
    LocalFileRecord,
    NodeRecord,
    RemoteFileRecord,
)

if TYPE_CHECKING:  # the retention job's stack (the API client) is not loaded by `syncd status`
    from syncd.retention import Deletion
    from syncd.retention_job import RetentionResult, RetentionSettings

__all__ = [
    "audit_json",
    "file_json",
    "iso",
    "job_json",
    "lineage_json",
    "node_json",
    "retention_document",
    "retention_rows",
]


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with the UTC offset, or None."""
    return None if moment is None else moment.isoformat()


def file_json(record: LocalFileRecord, folder: str) -> dict[str, Any]:
    """One tracked file: ``folder`` is the folder's display name."""
    return {
        "folder": folder,
        "path": record.rel_path,
        "state": record.state.value,
        "bytes": record.size,
        "sha256": record.sha256,
        "file_id": record.remote_file_id,
        "attempts": record.attempts,
        "next_attempt_at": iso(record.next_attempt_at),
        "reason": record.last_error,
        "warnings": record.warnings.splitlines() if record.warnings else [],
        "state_changed_at": iso(record.state_changed_at),
    }


def job_json(
    record: JobRecord,
    folder: str,
    *,
    now: datetime,
    overdue_after: timedelta,
    results: list[str] | None = None,
) -> dict[str, Any]:
    """One batch job or OCR document whose results come home (``folder``: display name).

    ``overdue``: still unfinished ``overdue_after`` after it was created (it is still followed).
    """
    return {
        "folder": folder,
        "path": record.rel_path,
        "sha256": record.sha256,
        "kind": record.kind,
        "mode": record.mode,
        "state": record.state,
        "input_file_id": record.input_file_id,
        "job_id": record.remote_job_id,
        "status": record.remote_status,
        "progress": {
            "total": record.total_requests,
            "completed": record.completed_requests,
            "succeeded": record.succeeded_requests,
            "failed": record.failed_requests,
        },
        "output_file_id": record.output_file_id,
        "error_file_id": record.error_file_id,
        "reason": record.reason,
        "overdue": record.is_overdue(now, overdue_after),
        "requests_sent": record.requests_sent,
        "answers_lost": record.answers_lost,
        "result_bytes": record.result_bytes,
        "results": results or [],
        "created_at": iso(record.created_at),
        "finished_at": iso(record.finished_at),
    }


def lineage_json(record: RemoteFileRecord) -> dict[str, str | int | None]:
    """One remote file and where it came from (a line of ``syncd manifest``)."""
    return {
        "folder": record.folder,
        "path": record.rel_path,
        "sha256": record.sha256,
        "file_id": record.file_id,
        "purpose": record.purpose,
        "filename": record.filename,
        "bytes": record.bytes,
        "created_at": iso(record.created_at),
        "uploaded_at": iso(record.uploaded_at),
        "superseded_at": iso(record.superseded_at),
        "deleted_at": iso(record.deleted_at),
        "delete_reason": record.delete_reason,
    }


def audit_json(entry: AuditRecord, folder: str | None) -> dict[str, Any]:
    """One audit line: ``folder`` is the folder's display name (None: about no folder)."""
    return {
        "at": iso(entry.at),
        "action": entry.action,
        "folder": folder,
        "path": entry.rel_path,
        "sha256": entry.sha256,
        "file_id": entry.file_id,
        "bytes": entry.bytes,
        "detail": entry.detail,
    }


def _age(now: datetime, then: datetime) -> float:
    """Seconds from ``then`` to ``now``, never negative (clocks a little apart)."""
    return max((now - then).total_seconds(), 0.0)


def node_json(
    node: NodeRecord,
    *,
    now: datetime,
    lease: timedelta,
    this_node: str,
    names: Mapping[str, str],
    oldest: Mapping[str, datetime],
) -> dict[str, Any]:
    """One node of the fleet as of ``now`` (the database's clock): alive or stale."""
    seen_age = _age(now, node.last_seen_at)
    since = min((oldest[key] for key in node.folders if key in oldest), default=None)
    return {
        "name": node.name,
        "this_node": node.name == this_node,
        "state": "alive" if seen_age <= lease.total_seconds() else "stale",
        "version": node.version,
        "pid": node.pid,
        "started_at": node.started_at.isoformat(),
        "last_seen_at": node.last_seen_at.isoformat(),
        "last_seen_age_s": round(seen_age, 1),
        "queue_depth": node.queue_depth,
        "folders": [{"key": key, "name": names.get(key)} for key in node.folders],
        "oldest_unsynced_at": iso(since),
        "oldest_unsynced_age_s": round(_age(now, since), 1) if since else None,
        "problems": list(node.problems),
    }


def _deletion_row(deletion: Deletion, settings: RetentionSettings, outcome: str) -> dict[str, Any]:
    return {
        "folder": settings.name_of(deletion.folder),
        "folder_path": settings.path_of(deletion.folder),
        "path": deletion.rel_path,
        "file_id": deletion.file_id,
        "reason": deletion.reason.value,
        "age_seconds": int(deletion.age.total_seconds()),
        "bytes": deletion.bytes,
        "outcome": outcome,
    }


def retention_rows(result: RetentionResult, settings: RetentionSettings) -> list[dict[str, Any]]:
    """Every file a retention run (or its dry run) deleted, would delete or held back."""
    plan = result.plan
    rows: list[dict[str, Any]] = []
    if result.dry_run or plan.halted is not None:
        outcome = "held back" if plan.halted is not None else "would delete"
        rows += [_deletion_row(d, settings, outcome) for d in plan.due]
    else:
        rows += [
            _deletion_row(
                d, settings, "already gone" if d.file_id in result.already_gone else "deleted"
            )
            for d in result.deleted
        ]
        rows += [_deletion_row(d, settings, f"failed: {error}") for d, error in result.failed]
        rows += [_deletion_row(d, settings, "no longer due") for d in result.skipped]
    rows += [_deletion_row(d, settings, "kept: in use by a job") for d in plan.kept_referenced]
    return rows


def retention_document(result: RetentionResult, settings: RetentionSettings) -> dict[str, Any]:
    """A retention run (or dry run) as ``syncd cleanup --json`` prints it."""
    return {
        "dry_run": result.dry_run,
        "ok": result.is_clean,
        "message": result.plan.message,
        "halted": result.plan.halted,
        "blocked": [
            {
                "folder": settings.name_of(folder),
                "folder_path": settings.path_of(folder),
                "reason": reason,
            }
            for folder, reason in result.plan.blocked.items()
        ],
        "busy": [settings.name_of(folder) for folder in result.busy],
        "due": len(result.plan.due),
        "deleted": len(result.deleted),
        "failed": len(result.failed),
        "files": retention_rows(result, settings),
    }
